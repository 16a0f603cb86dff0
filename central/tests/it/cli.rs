//! The `central` command as an operator runs it: `init`, `demo` (whose
//! planted cases come out as open flags, paged by `flags list`), a bad
//! import (non-zero exit, line numbers, nothing changed), then `serve`
//! answering over HTTPS (the same flags under `GET /api/v1/flags`) and
//! stopping on SIGTERM.

use std::collections::BTreeSet;

use std::process::{Command, Stdio};

/// Runs the `central` binary on the data directory `data`.
pub(crate) fn central(data: &std::path::Path, args: &[&str]) -> std::process::Output {
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
    let admin_token = stdout
        .lines()
        .find_map(|line| line.strip_prefix("admin token: "))
        .expect("admin token line")
        .to_owned();
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
    // The one planted use of a blocked card is the only record ingestion
    // flags; every other demo record verifies.
    assert!(
        report.contains(" 1 flagged)"),
        "only the blocked card's use is flagged at ingestion: {report}"
    );
    assert!(report.contains("planted case: "), "{report}");
    assert!(report.contains("enrolment code for T-"), "{report}");
    // What the demo planted is open in the register, a page at a time.
    let all = flag_lines(&data, &["--limit", "1000"]);
    let kinds: BTreeSet<&str> = all.iter().map(|line| line[1].as_str()).collect();
    for kind in PLANTED_KINDS {
        assert!(
            kinds.contains(kind),
            "a fresh demo has a {kind} flag: {all:?}"
        );
    }
    assert!(
        all.iter().all(|line| line[2] == "open"),
        "nobody decided them yet: {all:?}"
    );
    assert!(all.len() >= 4, "{all:?}");
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = vec!["flags", "list", "--limit", "3"];
        if let Some(after) = &after {
            args.extend(["--after", after.as_str()]);
        }
        let page = central(&data, &args);
        assert!(
            page.status.success(),
            "{}",
            String::from_utf8_lossy(&page.stderr)
        );
        let lines = parse_flags(&page.stdout);
        assert!(lines.len() <= 3, "a page holds at most --limit flags");
        pages += 1;
        let stderr = String::from_utf8_lossy(&page.stderr);
        let next = stderr
            .lines()
            .find_map(|line| line.strip_prefix("next page: --after "))
            .map(str::to_owned);
        if let Some(next) = &next {
            assert_eq!(lines.len(), 3, "only a full page has a next one");
            assert_eq!(
                Some(next.as_str()),
                lines.last().map(|line| line[0].as_str()),
                "the cursor is the last flag of the page"
            );
        }
        paged.extend(lines);
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages <= all.len(), "paging ends");
    }
    assert_eq!(paged, all, "the pages are the whole list, in order, once");
    assert_eq!(pages, all.len().div_ceil(3));
    for (args, expected) in [
        (
            vec![
                "flags",
                "list",
                "--after",
                "0123456789abcdef0123456789abcdef",
            ],
            "--after \"0123456789abcdef0123456789abcdef\": no flag with this id",
        ),
        (
            vec!["flags", "list", "--limit", "0"],
            "--limit 0: must be 1 to 1000",
        ),
        (
            vec!["flags", "list", "--kind", "nonsense"],
            "--kind \"nonsense\"",
        ),
    ] {
        let refused = central(&data, &args);
        assert!(!refused.status.success(), "{args:?} is refused");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let travel = flag_lines(&data, &["--kind", "impossible_travel"]);
    assert!(
        !travel.is_empty() && travel.iter().all(|line| line[1] == "impossible_travel"),
        "{travel:?}"
    );

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
    let flags: serde_json::Value = client
        .get(format!("https://localhost:{port}/api/v1/flags?limit=1000"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .expect("GET /api/v1/flags")
        .json()
        .await
        .expect("flags JSON");
    let listed: Vec<(String, String)> = flags
        .as_array()
        .expect("a list of flags")
        .iter()
        .map(|flag| {
            (
                flag["id"].as_str().expect("id").to_owned(),
                flag["kind"].as_str().expect("kind").to_owned(),
            )
        })
        .collect();
    let from_cli: Vec<(String, String)> = all
        .iter()
        .map(|line| (line[0].clone(), line[1].clone()))
        .collect();
    assert_eq!(listed, from_cli, "the API lists the flags the CLI does");
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

/// Flag kinds a fresh demo plants (docs/reconciliation.md).
const PLANTED_KINDS: [&str; 4] = [
    "offline_overuse",
    "offline_overuse_tolerated",
    "impossible_travel",
    "blocked_credential",
];

/// `flags list` lines split at tabs: id, kind, state, raised at, subject.
fn parse_flags(stdout: &[u8]) -> Vec<Vec<String>> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect::<Vec<_>>())
        .inspect(|fields| assert_eq!(fields.len(), 5, "{fields:?}"))
        .collect()
}

fn flag_lines(data: &std::path::Path, extra: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["flags", "list"];
    args.extend(extra);
    let list = central(data, &args);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    parse_flags(&list.stdout)
}
