//! The local API over real HTTP on loopback, against a real SQLite file:
//! what a POS developer and a cashier see.

use serde_json::json;

use crate::support::*;

/// Goal: a tap, a quote and a commit give the cashier the label, the
/// amounts and a signed, chained record whose receipt shows no reason for
/// entitlement. Method: identify, quote and commit one lunch; check the
/// record's signature with the terminal key and its link to GENESIS.
#[tokio::test]
async fn quote_then_commit_gives_a_signed_record_and_receipt() {
    let daemon = Daemon::start(Setup::default()).await;

    let (status, _, identified) = daemon
        .post("/v1/identify", json!({"credential": card(PUPIL)}))
        .await;
    assert_eq!(status, 200, "{identified}");
    let labels: Vec<&str> = identified["benefits"]
        .as_array()
        .expect("benefits")
        .iter()
        .map(|b| b["label"].as_str().expect("label"))
        .collect();
    assert_eq!(
        labels,
        [
            "Coffee 10 %",
            "Bezmaksas pusdienas",
            "Free ride",
            "Snack 50 %"
        ]
    );
    assert_eq!(
        identified["benefits"][1]["limits"],
        json!([{"period": "day", "max_count": 1, "used_count": 0}])
    );
    assert_eq!(identified["snapshot"]["version"], 1);
    assert_eq!(identified["snapshot"]["stale"], false);

    let (status, _, quote) = daemon
        .post(
            "/v1/quote",
            json!({"credential": card(PUPIL), "cart": lunch_cart()}),
        )
        .await;
    assert_eq!(status, 200, "{quote}");
    assert_eq!(
        (quote["total"].as_str(), quote["due"].as_str()),
        (Some("2.50"), Some("0.00"))
    );
    assert_eq!(quote["lines"][0]["label"], "Bezmaksas pusdienas");
    assert_eq!(quote["by_provider"], json!({"riga": "2.50"}));
    assert_eq!(quote["warnings"], json!([]));

    let (status, headers, committed) = daemon
        .post(
            "/v1/commit",
            json!({"idempotency_key": "till1-0001", "credential": card(PUPIL), "cart": lunch_cart(),
                   "expected": {"due": "0.00", "discount_total": "2.50"}}),
        )
        .await;
    assert_eq!(status, 200, "{committed}");
    assert_eq!(headers["x-commit-outcome"], "new");
    assert_eq!(committed["seq"], 1);
    assert_eq!(committed["local_time"], "2026-03-02T12:05:00+02:00");
    let receipt = committed["receipt"].as_str().expect("receipt");
    assert!(receipt.contains("Bezmaksas pusdienas"), "{receipt}");
    assert!(
        !receipt.contains("R-1"),
        "no recipient reference on a receipt: {receipt}"
    );

    let record_bytes = serde_json::to_vec(&committed["record"]).expect("record json");
    let record =
        shared::wire::record::SignedRecord::from_json(&record_bytes).expect("record decodes");
    let key = daemon.app.enrolment.key.public_key();
    assert!(record.verify_signature(&key).is_ok());
    assert_eq!(record.body.prev, shared::wire::keys::Hash::GENESIS);
    assert_eq!(
        record.hash().to_hex(),
        committed["hash"].as_str().expect("hash")
    );
    assert_eq!(record.body.terminal, TERMINAL);
    assert_eq!(record.body.credential.hash, central().card_hash(PUPIL));
    assert_eq!(record.body.inputs.snapshot, 1);
    // Central's check: the engine on the record's own inputs gives its quote.
    let catalog = daemon.app.store.snapshot();
    let benefits: Vec<shared::model::Benefit> = record
        .body
        .inputs
        .benefits
        .iter()
        .map(|b| catalog.catalog.get(&b.id).expect("benefit").clone())
        .collect();
    let requote = shared::rules::evaluate(&shared::rules::QuoteInput {
        benefits: &benefits,
        grants: &record.body.inputs.entitlements,
        memberships: &[],
        history: &record.body.inputs.history,
        cart: &record.body.cart,
        now: record.body.at,
    });
    assert_eq!(requote, record.body.quote);

    // The second lunch the same day is refused, naming the limit.
    let (status, _, refused) = daemon
        .post(
            "/v1/quote",
            json!({"credential": card(PUPIL), "cart": lunch_cart()}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(error_code(&refused), "limit_reached");
    assert_eq!(
        error_message(&refused),
        "Bezmaksas pusdienas: daily limit reached (1 use a day)"
    );

    // The raw card number is nowhere in the database.
    let dir = daemon.stop().await;
    let bytes = std::fs::read(dir.path().join("agent.sqlite")).expect("db");
    let wal = std::fs::read(dir.path().join("agent.sqlite-wal")).unwrap_or_default();
    for haystack in [&bytes, &wal] {
        for needle in ["04:A2:2B:1C", "04A22B1C"] {
            assert!(
                !haystack
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes()),
                "{needle} stored"
            );
        }
    }
}

/// Goal: the same idempotency key gives the same answer and no second
/// record; the same key for another sale is a conflict. Method: commit
/// twice with one key, then reuse it with another cart.
#[tokio::test]
async fn idempotency_key_replays_and_never_charges_twice() {
    let daemon = Daemon::start(Setup::default()).await;
    let request =
        json!({"idempotency_key": "till1-0042", "credential": card(PUPIL), "cart": lunch_cart()});
    let (status, headers, first) = daemon.post("/v1/commit", request.clone()).await;
    assert_eq!(
        (
            status,
            headers["x-commit-outcome"].to_str().expect("header")
        ),
        (200, "new")
    );
    daemon.clock.advance(jiff::SignedDuration::from_secs(30));
    let (status, headers, second) = daemon.post("/v1/commit", request).await;
    assert_eq!(
        (
            status,
            headers["x-commit-outcome"].to_str().expect("header")
        ),
        (200, "replayed")
    );
    assert_eq!(first, second, "the same answer, byte for byte");
    assert_eq!(daemon.status().await["journal"]["records"], 1);

    let snack = json!([{"sku": "S", "category": "meal.snack", "unit_price": "1.00", "qty": 1}]);
    let (status, _, conflict) = daemon
        .post(
            "/v1/commit",
            json!({"idempotency_key": "till1-0042", "credential": card(PUPIL), "cart": snack}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(error_code(&conflict), "idempotency_key_reused");
    assert!(
        error_message(&conflict).starts_with("idempotency_key: already used for record 1"),
        "{conflict}"
    );
    daemon.stop().await;
}

/// Goal: a validator charges a double tap once and lights green both
/// times; after the window a tap is a new fare. Method: tap, tap again
/// 1 s later, then 5 s later; check records and indicator signals.
#[tokio::test]
async fn validator_double_tap_returns_the_same_record() {
    let daemon = Daemon::start(Setup {
        toml: "[terminal]\nmode = \"validator\"\n[validator]\nfare = { sku = \"RIDE\", category = \"transport.bus\", unit_price = \"1.20\" }\n[sync]\nenabled = false\n".into(),
        ..Setup::default()
    })
    .await;
    let (status, headers, first) = daemon
        .post("/v1/tap", json!({"credential": card(PUPIL)}))
        .await;
    assert_eq!(
        (
            status,
            headers["x-commit-outcome"].to_str().expect("header")
        ),
        (200, "new"),
        "{first}"
    );
    assert_eq!(first["discount_total"], "1.20");
    daemon
        .clock
        .advance(jiff::SignedDuration::from_millis(1_000));
    let (status, headers, again) = daemon
        .post("/v1/tap", json!({"credential": card("04a22b1c")}))
        .await;
    assert_eq!(
        (
            status,
            headers["x-commit-outcome"].to_str().expect("header")
        ),
        (200, "double_tap")
    );
    assert_eq!(again, first);
    daemon
        .clock
        .advance(jiff::SignedDuration::from_millis(5_000));
    let (status, headers, third) = daemon
        .post("/v1/tap", json!({"credential": card(PUPIL)}))
        .await;
    assert_eq!(
        (
            status,
            headers["x-commit-outcome"].to_str().expect("header")
        ),
        (200, "new")
    );
    assert_eq!(third["seq"], 2);

    let (status, _, refused) = daemon
        .post("/v1/tap", json!({"credential": card(BLOCKED)}))
        .await;
    assert_eq!((status, error_code(&refused)), (422, "blocked_credential"));
    let shown = daemon.indicator.shown.lock().expect("lock").clone();
    let signals: Vec<(&str, &str)> = shown
        .iter()
        .map(|(s, c)| (s.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        signals,
        [
            ("accepted", "ok"),
            ("accepted", "ok"),
            ("accepted", "ok"),
            ("refused", "blocked_credential")
        ]
    );

    // A validator takes no cashier commits, and a till no taps.
    let (status, _, body) = daemon
        .post(
            "/v1/commit",
            json!({"idempotency_key": "x", "credential": card(PUPIL), "cart": lunch_cart()}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (409, "not_a_till"));
    daemon.stop().await;

    let till = Daemon::start(Setup::default()).await;
    let (status, _, body) = till
        .post("/v1/tap", json!({"credential": card(PUPIL)}))
        .await;
    assert_eq!((status, error_code(&body)), (409, "not_a_validator"));
    till.stop().await;
}

/// Goal: each refusal a cashier can meet has its own code and words, and
/// none reveals why a person is entitled. Method: one request per case.
#[tokio::test]
async fn refusals_are_distinct_and_clear() {
    let daemon = Daemon::start(Setup::default()).await;
    let quote = |uid: &str, cart: serde_json::Value| json!({"credential": card(uid), "cart": cart});
    let bus = json!([{"sku": "B", "category": "transport.bus", "unit_price": "1.20", "qty": 1}]);
    let cases = [
        (
            quote(STRANGER, lunch_cart()),
            "unknown_credential",
            "Card not recognised: no benefit is registered for it here",
        ),
        (
            quote(BLOCKED, lunch_cart()),
            "blocked_credential",
            "This card is blocked: the holder should contact the benefit provider",
        ),
        (
            quote(EXPIRED, lunch_cart()),
            "benefit_expired",
            "Bezmaksas pusdienas: expired on 2026-02-28",
        ),
        (
            quote(SNACKER, bus),
            "no_eligible_benefit",
            "No item in this sale is covered by the holder's benefits (Snack 50 %)",
        ),
    ];
    for (request, code, message) in cases {
        let (status, _, body) = daemon.post("/v1/quote", request).await;
        assert_eq!(
            (status, error_code(&body), error_message(&body)),
            (422, code, message)
        );
        let text = body.to_string().to_lowercase();
        for word in ["needy", "disab", "pension", "group", "r-3", "r-2"] {
            assert!(!text.contains(word), "{text}");
        }
    }

    // The POS showed an older quote: the commit refuses rather than charge
    // something else.
    let (status, _, body) = daemon
        .post(
            "/v1/commit",
            json!({"idempotency_key": "k1", "credential": card(PUPIL), "cart": lunch_cart(), "expected": {"due": "2.50"}}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "quote_changed"));
    assert_eq!(
        daemon.status().await["journal"]["records"],
        0,
        "nothing recorded"
    );

    // Three days later the snapshot is older than 48 h: still quotes, but says so.
    daemon.clock.advance(jiff::SignedDuration::from_hours(72));
    let (status, _, body) = daemon.post("/v1/quote", quote(PUPIL, lunch_cart())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["warnings"][0]["code"], "snapshot_stale");
    assert_eq!(
        body["warnings"][0]["message"],
        "Benefit data is 3 days old, more than the 2 days allowed: connect the terminal to the network"
    );
    let status = daemon.status().await;
    assert_eq!(status["snapshot"]["stale"], true);
    daemon.stop().await;
}

/// Goal: every malformed request gets a 4xx JSON error that names what is
/// wrong and where. Method: a table of bad requests.
#[tokio::test]
async fn malformed_requests_get_a_4xx_naming_the_field() {
    let daemon = Daemon::start(Setup::default()).await;
    let json_type = Some("application/json");
    let post = reqwest::Method::POST;
    // (method, path, content type, body, status, code, part of the message)
    type Case<'a> = (
        reqwest::Method,
        &'a str,
        Option<&'a str>,
        String,
        u16,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (post.clone(), "/v1/quote", Some("text/plain"), "{}".into(), 415, "unsupported_media_type", "Content-Type: application/json"),
        (post.clone(), "/v1/quote", json_type, "{\"credential\":".into(), 400, "malformed_request", "not valid JSON"),
        (post.clone(), "/v1/quote", json_type, "{}".into(), 400, "malformed_request", "missing field `credential`"),
        (post.clone(), "/v1/quote", json_type, json!({"credential": {"kind": "passport", "id": "X"}, "cart": lunch_cart()}).to_string(), 400, "malformed_request", "credential.kind: unknown variant `passport`"),
        (post.clone(), "/v1/quote", json_type, json!({"credential": {"kind": "card"}, "cart": lunch_cart()}).to_string(), 400, "malformed_request", "credential: missing field `id`"),
        (post.clone(), "/v1/quote", json_type, json!({"credential": card(PUPIL), "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": 2.5, "qty": 1}]}).to_string(), 400, "malformed_request", "cart[0].unit_price: expected a decimal string such as \"2.50\", found a JSON number"),
        (post.clone(), "/v1/quote", json_type, json!({"credential": card(PUPIL), "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": -1}]}).to_string(), 400, "malformed_request", "cart[0].qty: invalid value"),
        (post.clone(), "/v1/quote", json_type, json!({"credential": card(PUPIL), "cart": []}).to_string(), 400, "invalid_cart", "cart: is empty"),
        (post.clone(), "/v1/quote", json_type, json!({"credential": card(PUPIL), "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1}, {"sku": "", "category": "Meal", "unit_price": "1.00", "qty": 0}]}).to_string(), 400, "invalid_cart", "cart[1].sku: must be 1-128 characters; cart[1].category: \"Meal\" is not a category (e.g. \"meal.lunch\"); cart[1].qty: must be at least 1"),
        (post.clone(), "/v1/quote", json_type, json!({"credential": card(PUPIL), "cart": lunch_cart(), "tip": "1.00"}).to_string(), 400, "malformed_request", "unknown field `tip`"),
        (post.clone(), "/v1/quote", json_type, json!({"credential": card(""), "cart": lunch_cart()}).to_string(), 400, "invalid_request", "credential.id: must be 1-512 characters"),
        (post.clone(), "/v1/quote", json_type, json!({"credential": card("::--"), "cart": lunch_cart()}).to_string(), 400, "invalid_request", "credential.id: has no characters left after removing separators"),
        (post.clone(), "/v1/quote", json_type, format!("{} x", json!({"credential": card(PUPIL), "cart": lunch_cart()})), 400, "malformed_request", "more after the JSON value"),
        (post.clone(), "/v1/commit", json_type, json!({"idempotency_key": "", "credential": card(PUPIL), "cart": lunch_cart()}).to_string(), 400, "invalid_request", "idempotency_key: must be 1-128 printable ASCII characters without spaces"),
        (post.clone(), "/v1/commit", json_type, json!({"idempotency_key": "k", "credential": card(PUPIL), "cart": lunch_cart(), "expected": {"due": "x"}}).to_string(), 400, "malformed_request", "expected.due: \"x\" is not a decimal number"),
        (post.clone(), "/v1/void", json_type, json!({"idempotency_key": "v", "seq": "one"}).to_string(), 400, "malformed_request", "seq: invalid type"),
        (post.clone(), "/v1/quote", json_type, format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024)), 413, "body_too_large", "api.body_bytes_max"),
        (post.clone(), "/v1/nothing", json_type, "{}".into(), 404, "not_found", "POST /v1/nothing: no such endpoint"),
        (reqwest::Method::GET, "/v1/quote", None, String::new(), 405, "method_not_allowed", "GET is not allowed on /v1/quote"),
    ];
    for (method, path, content_type, body, status, code, message) in cases {
        let (got_status, got) = daemon
            .raw(method, path, content_type, body.clone().into_bytes())
            .await;
        assert_eq!(
            (got_status, error_code(&got)),
            (status, code),
            "{path} {body:.80}: {got}"
        );
        assert!(
            error_message(&got).contains(message),
            "{path} {body:.80}: {got}"
        );
    }
    assert_eq!(daemon.status().await["journal"]["records"], 0);
    daemon.stop().await;
}

/// Goal: a cashier can void a sale just made, which frees the limit, and
/// not void it twice. Method: commit, void, commit again, void again.
#[tokio::test]
async fn void_cancels_a_sale_once() {
    let daemon = Daemon::start(Setup::default()).await;
    let (status, _, sale) = daemon
        .post(
            "/v1/commit",
            json!({"idempotency_key": "s1", "credential": card(PUPIL), "cart": lunch_cart()}),
        )
        .await;
    assert_eq!(status, 200, "{sale}");
    let (status, headers, void) = daemon
        .post("/v1/void", json!({"idempotency_key": "v1", "seq": 1}))
        .await;
    assert_eq!(
        (
            status,
            headers["x-commit-outcome"].to_str().expect("header")
        ),
        (200, "new"),
        "{void}"
    );
    assert_eq!(
        (
            void["kind"].as_str(),
            void["voids"].as_u64(),
            void["seq"].as_u64()
        ),
        (Some("void"), Some(1), Some(2))
    );
    assert!(void["receipt"]
        .as_str()
        .expect("receipt")
        .starts_with("VOID of record 1"));
    let (status, _, again) = daemon
        .post("/v1/void", json!({"idempotency_key": "v2", "seq": 1}))
        .await;
    assert_eq!((status, error_code(&again)), (409, "already_voided"));
    let (status, _, replay) = daemon
        .post("/v1/void", json!({"idempotency_key": "v1", "seq": 1}))
        .await;
    assert_eq!((status, &replay), (200, &void));
    let (status, _, unknown) = daemon
        .post("/v1/void", json!({"idempotency_key": "v3", "seq": 99}))
        .await;
    assert_eq!((status, error_code(&unknown)), (404, "unknown_record"));
    // The voided lunch no longer counts: the pupil can have lunch.
    let (status, _, _) = daemon
        .post(
            "/v1/commit",
            json!({"idempotency_key": "s2", "credential": card(PUPIL), "cart": lunch_cart()}),
        )
        .await;
    assert_eq!(status, 200);
    daemon.clock.advance(jiff::SignedDuration::from_hours(1));
    let (status, _, late) = daemon
        .post("/v1/void", json!({"idempotency_key": "v4", "seq": 3}))
        .await;
    assert_eq!((status, error_code(&late)), (409, "void_window_passed"));
    daemon.stop().await;
}

/// Goal: status, health and metrics tell an operator what they need.
/// Method: read them before and after a commit, and with no snapshot.
#[tokio::test]
async fn status_health_and_metrics() {
    let daemon = Daemon::start(Setup::default()).await;
    let (status, _, _) = daemon
        .post(
            "/v1/commit",
            json!({"idempotency_key": "s1", "credential": card(PUPIL), "cart": lunch_cart()}),
        )
        .await;
    assert_eq!(status, 200);
    let status = daemon.status().await;
    assert_eq!(status["terminal"], TERMINAL);
    assert_eq!(status["snapshot"]["message"], "Benefit data is 65 min old");
    assert_eq!(status["outbox"]["records"], 1);
    assert_eq!(status["clock"]["local"], "2026-03-02T12:05:00+02:00");
    let (code, health) = daemon.get_text("/health").await;
    assert_eq!(
        (code, health.as_str()),
        (200, "{\"snapshot_stale\":false,\"status\":\"ok\"}")
    );
    let (code, metrics) = daemon.get_text("/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "agent_requests_total{endpoint=\"commit\",outcome=\"ok\"} 1",
        "agent_commit_duration_seconds_count 1",
        "agent_snapshot_version 1",
        "agent_outbox_records 1",
        "agent_snapshot_credentials 4",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    daemon.stop().await;

    let empty = Daemon::start(Setup {
        snapshot: false,
        ..Setup::default()
    })
    .await;
    let (code, health) = empty.get_text("/health").await;
    assert_eq!(code, 503, "{health}");
    let (status, _, body) = empty
        .post(
            "/v1/quote",
            json!({"credential": card(PUPIL), "cart": lunch_cart()}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (503, "no_snapshot"));
    empty.stop().await;
}

fn qr_token(recipient: &str, nonce_byte: u8, iat: &str, exp: &str) -> String {
    use base64::Engine;
    let central = central();
    let payload = shared::wire::qr::QrPayload {
        exp: ts(exp),
        iat: ts(iat),
        kid: central.key.key_id(),
        nonce: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([nonce_byte; 16]),
        recipient: recipient.into(),
        qr_type: shared::wire::qr::QR_TYPE.into(),
        v: shared::wire::qr::QR_VERSION,
    };
    shared::wire::qr::encode(&payload, &central.key).expect("token")
}

/// Goal: a phone's QR code pays for one sale, verified offline; a second
/// sale with it, an expired one and a forged one are refused. Method:
/// tokens signed with the test central key.
#[tokio::test]
async fn qr_tokens_pay_once_and_are_checked_offline() {
    let daemon = Daemon::start(Setup::default()).await;
    let token = qr_token("R-1", 1, "2026-03-02T10:04:00Z", "2026-03-02T10:09:00Z");
    let qr = |token: &str| json!({"kind": "qr", "id": token});
    let (status, _, identified) = daemon
        .post("/v1/identify", json!({"credential": qr(&token)}))
        .await;
    assert_eq!(status, 200, "{identified}");
    let (status, _, sale) = daemon
        .post(
            "/v1/commit",
            json!({"idempotency_key": "q1", "credential": qr(&token), "cart": lunch_cart()}),
        )
        .await;
    assert_eq!(status, 200, "{sale}");
    assert_eq!(sale["record"]["body"]["credential"]["kind"], "qr");
    assert!(
        !sale.to_string().contains(&token),
        "the token itself is not in the record"
    );
    let (status, _, again) = daemon
        .post(
            "/v1/commit",
            json!({"idempotency_key": "q2", "credential": qr(&token), "cart": coffee_cart()}),
        )
        .await;
    assert_eq!((status, error_code(&again)), (422, "token_already_used"));

    let expired = qr_token("R-1", 2, "2026-03-02T09:00:00Z", "2026-03-02T09:05:00Z");
    let (status, _, body) = daemon
        .post(
            "/v1/quote",
            json!({"credential": qr(&expired), "cart": coffee_cart()}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "token_expired"));
    let mut forged = qr_token("R-1", 3, "2026-03-02T10:04:00Z", "2026-03-02T10:09:00Z");
    // Change one character in the middle of the signature.
    let at = forged.rfind('.').expect("signature part") + 20;
    let replacement = if &forged[at..=at] == "B" { "C" } else { "B" };
    forged.replace_range(at..=at, replacement);
    let (status, _, body) = daemon
        .post(
            "/v1/quote",
            json!({"credential": qr(&forged), "cart": coffee_cart()}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "token_invalid"));
    let stranger = qr_token("R-404", 4, "2026-03-02T10:04:00Z", "2026-03-02T10:09:00Z");
    let (status, _, body) = daemon
        .post(
            "/v1/quote",
            json!({"credential": qr(&stranger), "cart": coffee_cart()}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "unknown_credential"));
    daemon.stop().await;
}

/// Goal: the API also serves on a Unix socket, for tills that prefer file
/// permissions to a port. Method: a raw HTTP/1.1 request over the socket.
#[tokio::test]
async fn serves_on_a_unix_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    central()
        .enrol_into(dir.path(), "https://127.0.0.1:9", &Setup::default().ca_pem)
        .expect("identity");
    let socket = dir.path().join("api.sock");
    let config = write_config(
        dir.path(),
        &format!(
            "[api]\nlisten = \"unix:{}\"\n[sync]\nenabled = false\n",
            socket.display()
        ),
    );
    let listener = agent::ApiListener::bind(&config.api.listen)
        .await
        .expect("bind socket");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent::run(config, listener, async move {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::UnixStream::connect(&socket)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /v1/status HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("\"terminal\":\"T-000123\""), "{answer}");
    let _ = stop.send(());
    task.await.expect("task").expect("run");
    assert!(!socket.exists(), "the socket file is removed at shutdown");
}

/// Goal: the indicator command hook gets `accepted ok` or `refused <code>`
/// for each tap, so an integrator can drive GPIO. Method: a validator
/// whose hook is a shell script appending its arguments to a file.
#[tokio::test]
async fn indicator_command_hook_receives_each_signal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("signals.txt");
    let script = dir.path().join("lights.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$1 $2 $3\" >> \"$(dirname \"$0\")/signals.txt\"\n",
    )
    .expect("script");
    let indicator = agent::indicator::CommandIndicator::new(
        vec![
            "/bin/sh".into(),
            script.display().to_string(),
            "gpio17".into(),
        ],
        std::time::Duration::from_secs(5),
    );
    use agent::indicator::{Indicator, Signal};
    indicator.show(Signal::Accepted, "ok");
    indicator.show(Signal::Refused, "blocked_credential");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        if lines.len() == 2 {
            assert_eq!(
                lines,
                ["gpio17 accepted ok", "gpio17 refused blocked_credential"]
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "signals never arrived: {text:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
