//! Goal: every option has a working default, and every bad value is
//! refused with the file and the key in the message. Method: parse small
//! TOML texts and compare messages.

use super::*;

fn error_of(text: &str) -> String {
    match Config::parse(text, "agent.toml") {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn empty_file_is_a_cashier_till_on_loopback() {
    let config = Config::parse("", "agent.toml").expect("defaults are valid");
    assert_eq!(
        config.api.listen,
        Listen::Tcp("127.0.0.1:7310".parse().expect("addr"))
    );
    assert_eq!(config.terminal.mode, Mode::Cashier);
    assert_eq!(config.terminal.time_zone.name(), "Europe/Riga");
    assert!(
        config.terminal.double_tap_window.is_zero(),
        "a till commits on the cashier's action"
    );
    assert_eq!(
        config.terminal.snapshot_age_max,
        Duration::from_secs(48 * 3600)
    );
    assert_eq!(config.sync.backoff_max, Duration::from_secs(300));
    assert!(config.validator.is_none());
}

#[test]
fn validator_gets_a_double_tap_window_and_its_fare() {
    let config = Config::parse(
        r#"
        [terminal]
        mode = "validator"
        [validator]
        fare = { sku = "RIDE", category = "transport.bus", unit_price = "1.50" }
        indicator_command = ["/usr/local/bin/lights", "--gpio", "17"]
        "#,
        "agent.toml",
    )
    .expect("valid validator config");
    assert_eq!(
        config.terminal.double_tap_window,
        Duration::from_millis(3_000)
    );
    let validator = config.validator.expect("validator section");
    assert_eq!(validator.fare.unit_price.to_string(), "1.50");
    assert_eq!(validator.fare.qty, 1);
    assert_eq!(
        validator.indicator_command.as_deref(),
        Some(
            &[
                "/usr/local/bin/lights".to_owned(),
                "--gpio".to_owned(),
                "17".to_owned()
            ][..]
        )
    );
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let message = error_of("[api]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
    assert!(message.starts_with("agent.toml: "), "{message}");
    assert!(message.contains("unknown field `lisen`"), "{message}");
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn the_api_never_listens_beyond_this_machine() {
    let message = error_of("[api]\nlisten = \"0.0.0.0:7310\"\n");
    assert_eq!(
        message,
        "agent.toml: api.listen: \"0.0.0.0:7310\" is not a loopback address: the local API must listen on 127.0.0.1, ::1 or a Unix socket"
    );
    let config = Config::parse(
        "[api]\nlisten = \"unix:/run/agent/api.sock\"\n",
        "agent.toml",
    )
    .expect("unix socket");
    assert_eq!(
        config.api.listen,
        Listen::Unix(PathBuf::from("/run/agent/api.sock"))
    );
    assert!(error_of("[api]\nlisten = \"unix:relative.sock\"\n").contains("absolute path"));
    assert!(Config::parse("[api]\nlisten = \"[::1]:7310\"\n", "x").is_ok());
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        ("[terminal]\ntime_zone = \"Mars/Olympus\"\n", "agent.toml: terminal.time_zone: unknown time zone \"Mars/Olympus\""),
        ("[terminal]\nmode = \"validator\"\n", "agent.toml: validator: terminal.mode is \"validator\" but there is no [validator] section with the fare"),
        (
            "[validator]\nfare = { sku = \"R\", category = \"bus\", unit_price = \"1\" }\n",
            "agent.toml: validator: a [validator] section needs terminal.mode = \"validator\"",
        ),
        (
            "[terminal]\nmode = \"validator\"\n[validator]\nfare = { sku = \"R\", category = \"Bus Ride\", unit_price = \"1\" }\n",
            "agent.toml: validator.fare: fare.category: \"Bus Ride\" is not a category (e.g. \"meal.lunch\")",
        ),
        (
            "[terminal]\nmode = \"validator\"\n[validator]\nfare = { sku = \"R\", category = \"bus\", unit_price = \"1.005\" }\n",
            "agent.toml: validator.fare.unit_price: \"1.005\" has more than 2 decimal places",
        ),
        ("[sync]\nbackoff_initial_seconds = 10\nbackoff_max_seconds = 5\n", "agent.toml: sync.backoff_max_seconds: 5 is below sync.backoff_initial_seconds 10"),
        ("[terminal]\nlanguage = \"Latvian\"\n", "agent.toml: terminal.language: \"Latvian\" is not a language code such as \"lv\" or \"en\""),
        ("[terminal]\ndouble_tap_window_ms = 700000\n", "agent.toml: terminal.double_tap_window_ms: 700000 is more than 600000 (10 minutes)"),
        ("data_dir = \"\"\n", "agent.toml: data_dir: must not be empty"),
    ];
    for (text, expected) in cases {
        assert_eq!(error_of(text), expected, "{text}");
    }
}

#[test]
fn a_missing_file_is_named() {
    let err = Config::load(Path::new("/nonexistent/agent.toml")).expect_err("missing file");
    assert!(
        err.to_string()
            .starts_with("reading /nonexistent/agent.toml: "),
        "{err}"
    );
}
