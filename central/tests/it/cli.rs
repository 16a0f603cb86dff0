//! The `central` command as an operator runs it: `init`, `demo`, a bad
//! import (non-zero exit, line numbers, nothing changed), then `serve`
//! answering over HTTPS and stopping on SIGTERM.

use std::process::{Command, Stdio};

fn central(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_central"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running central")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_demo_import_and_serve() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let init = central(&data, &["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let stdout = String::from_utf8_lossy(&init.stdout);
    assert!(stdout.contains("admin token: bpt_"), "{stdout}");
    for file in [
        "ca.pem",
        "server.pem",
        "credential.key",
        "central.sqlite",
        "central-keys/current",
    ] {
        assert!(data.join(file).exists(), "init creates {file}");
    }

    let demo = central(&data, &["demo", "--recipients", "120", "--days", "5"]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let report = String::from_utf8_lossy(&demo.stdout);
    assert!(report.contains("demo data: 120 recipients"), "{report}");
    assert!(
        report.contains(" 0 flagged)"),
        "every demo record verifies: {report}"
    );
    assert!(report.contains("enrolment code for T-"), "{report}");
    let again = central(&data, &["demo"]);
    assert!(
        !again.status.success(),
        "a second demo is refused, not half-applied"
    );

    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "recipient,group,valid_from,valid_to\nX1,riga-pupil-1-4,,\nX2,no-such-group,,\n",
    )
    .expect("writing CSV");
    let import = central(
        &data,
        &[
            "import",
            "--provider",
            "riga",
            "--kind",
            "memberships",
            csv.to_str().expect("path"),
        ],
    );
    assert!(!import.status.success());
    let stderr = String::from_utf8_lossy(&import.stderr);
    assert!(
        stderr.contains("line 3: group: \"no-such-group\" is not a group of provider \"riga\""),
        "{stderr}"
    );
    assert!(stderr.contains("nothing changed"), "{stderr}");

    let mut server = Command::new(env!("CARGO_BIN_EXE_central"))
        .arg("--data")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting central serve");
    // Wait for the "serving" line, which names the bound address.
    let stderr = server.stderr.take().expect("stderr");
    // The log is read to its end on a thread (a closed pipe would make the
    // server's later log lines fail); the address comes back on a channel.
    let (found, address) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.expect("log line");
            if line.contains("central serving HTTPS") {
                let after = line.split("address=").nth(1).expect("address field");
                let _ = found.send(after.split_whitespace().next().expect("address").to_owned());
            }
            lines.push(line);
        }
        lines.join("\n")
    });
    let address = tokio::task::spawn_blocking(move || {
        address
            .recv()
            .expect("central serve exited without serving")
    })
    .await
    .expect("reading the log");
    let port = address.rsplit(':').next().expect("port");
    let ca = std::fs::read(data.join("ca.pem")).expect("ca.pem");
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
        .build()
        .expect("client");
    let health = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .expect("healthz over HTTPS");
    assert_eq!(health.text().await.expect("body"), "ok\n");
    let pid = server.id();
    let stopped = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = server.wait().expect("central serve exits");
    let log = log.join().expect("log reader");
    assert!(
        status.success(),
        "SIGTERM is a clean stop, not {status:?}:\n{log}"
    );
    assert!(log.contains("central stopped"), "{log}");
}
