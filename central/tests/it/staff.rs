//! The staff API: each token sees and changes only its own data; benefits
//! are validated by `shared`; imports are whole or nothing, with line numbers.

use reqwest::Method;

use crate::db::TestDb;
use crate::store_test;
use crate::world::*;

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.expect("request").status().as_u16()
}

// Goal: a provider, a merchant and the admin each see only their part.
// Method: the same requests with each token.
async fn tokens_are_scoped(db: TestDb) {
    let world = World::new(db, 1, 1).await;
    let server = Server::start(world.state.clone()).await;
    assert_eq!(
        status(server.http.get(format!("{}/api/v1/me", server.base))).await,
        401
    );
    assert_eq!(
        status(server.staff(Method::GET, "/api/v1/me", "not-a-token")).await,
        401
    );
    let me: serde_json::Value = server
        .staff(Method::GET, "/api/v1/me", &world.riga_token)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("JSON");
    assert_eq!(me["role"], "provider");
    assert_eq!(me["scope"], "riga");

    // Benefits: a provider publishes only its own, validated by `shared`.
    let mut ride = ride_benefit();
    ride.discount = shared::model::Discount::Amount("0.80".parse().expect("money"));
    let body = serde_json::to_value(&ride).expect("JSON");
    assert_eq!(
        status(
            server
                .staff(
                    Method::PUT,
                    "/api/v1/benefits/state-ride",
                    &world.riga_token
                )
                .json(&body)
        )
        .await,
        403
    );
    assert_eq!(
        status(
            server
                .staff(
                    Method::PUT,
                    "/api/v1/benefits/state-ride",
                    &world.state_token
                )
                .json(&body)
        )
        .await,
        200
    );
    let mut invalid = body.clone();
    invalid["limits"] = serde_json::json!([{"period": "day"}]);
    let response = server
        .staff(
            Method::PUT,
            "/api/v1/benefits/state-ride",
            &world.state_token,
        )
        .json(&invalid)
        .send()
        .await
        .expect("put");
    assert_eq!(response.status().as_u16(), 400);
    let error: serde_json::Value = response.json().await.expect("JSON");
    assert!(
        error["error"]["message"]
            .as_str()
            .expect("message")
            .contains("benefit.limits[0]"),
        "{error}"
    );
    let mut foreign_group = body.clone();
    foreign_group["groups"] = serde_json::json!(["riga-pupil"]);
    assert_eq!(
        status(
            server
                .staff(
                    Method::PUT,
                    "/api/v1/benefits/state-ride",
                    &world.state_token
                )
                .json(&foreign_group)
        )
        .await,
        400,
        "a provider may not target another provider's group"
    );

    // Groups and recipients of another provider are invisible.
    let groups: Vec<serde_json::Value> = server
        .staff(Method::GET, "/api/v1/groups", &world.riga_token)
        .send()
        .await
        .expect("groups")
        .json()
        .await
        .expect("JSON");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["id"], "riga-pupil");
    assert_eq!(
        status(server.staff(Method::GET, "/api/v1/recipients/S00000", &world.riga_token)).await,
        404
    );
    assert_eq!(
        status(server.staff(Method::GET, "/api/v1/recipients/S00000", &world.state_token)).await,
        200
    );
    assert_eq!(
        status(server.staff(Method::GET, "/api/v1/recipients/S00000", &world.bus_token)).await,
        403
    );
    let recipient: serde_json::Value = server
        .staff(Method::GET, "/api/v1/recipients/P00000", &world.riga_token)
        .send()
        .await
        .expect("recipient")
        .json()
        .await
        .expect("JSON");
    assert_eq!(recipient["memberships"][0]["group"], "riga-pupil");
    assert_eq!(recipient["credentials"][0]["status"], "active");

    // Terminals are the merchants' business.
    assert_eq!(
        status(server.staff(Method::GET, "/api/v1/terminals", &world.riga_token)).await,
        403
    );
    let created = server
        .staff(Method::POST, "/api/v1/terminals", &world.bus_token)
        .json(&serde_json::json!({"merchant": "canteen", "label": "x", "categories": ["meal"]}))
        .send()
        .await
        .expect("create");
    assert_eq!(
        created.status().as_u16(),
        403,
        "a merchant cannot create another merchant's terminal"
    );
    assert_eq!(
        status(
            server
                .staff(Method::POST, "/api/v1/providers", &world.riga_token)
                .json(&serde_json::json!({"id": "x", "name": "X"}))
        )
        .await,
        403
    );
    assert_eq!(
        status(
            server
                .staff(Method::POST, "/api/v1/providers", &world.admin_token)
                .json(&serde_json::json!({"id": "x", "name": "X"}))
        )
        .await,
        204
    );
    assert_eq!(
        status(server.staff(Method::GET, "/api/v1/forks", &world.riga_token)).await,
        403
    );
    server.stop().await;
}
store_test!(tokens_are_scoped);

// Goal: an import with a bad row changes nothing and says which line; a
// clean import applies whole; the same file again changes nothing.
// Method: CSV over the staff API, then the recipient's state.
async fn imports_are_whole_or_nothing(db: TestDb) {
    let world = World::new(db, 0, 0).await;
    let server = Server::start(world.state.clone()).await;
    let import = |kind: &str, body: &str| {
        server
            .staff(
                Method::POST,
                &format!("/api/v1/import/{kind}"),
                &world.riga_token,
            )
            .header("content-type", "text/csv")
            .body(body.to_owned())
            .send()
    };
    let bad = "recipient,group,valid_from,valid_to\nN001,riga-pupil,2026-01-01,\nN002,state-pensioner,,\nN003,riga-pupil,2026-13-01,\n";
    let response = import("memberships", bad).await.expect("import");
    assert_eq!(response.status().as_u16(), 422);
    let error: serde_json::Value = response.json().await.expect("JSON");
    let rows: Vec<&str> = error["error"]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_str().expect("text"))
        .collect();
    assert_eq!(
        rows,
        [
            "line 3: group: \"state-pensioner\" is not a group of provider \"riga\"",
            "line 4: valid_from: \"2026-13-01\" is not a date (YYYY-MM-DD)",
        ]
    );
    assert_eq!(
        status(server.staff(Method::GET, "/api/v1/recipients/N001", &world.riga_token)).await,
        404,
        "nothing of a bad file is applied"
    );

    let good = "recipient,group,valid_from,valid_to\nN001,riga-pupil,2026-01-01,\nN002,riga-pupil,,2026-06-30\n";
    let first: serde_json::Value = import("memberships", good)
        .await
        .expect("import")
        .json()
        .await
        .expect("JSON");
    assert_eq!(first["rows"], 2);
    assert_eq!(first["memberships_changed"], 2);
    assert_eq!(first["recipients_changed"], 2);
    let again: serde_json::Value = import("memberships", good)
        .await
        .expect("import")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        again["memberships_changed"], 0,
        "re-importing the same file changes nothing"
    );
    assert_eq!(again["recipients_changed"], 0);
    assert_eq!(
        again["version"], first["version"],
        "and publishes no new snapshot version"
    );

    let credentials = "recipient,kind,id\nN001,card,04:AB:CD:EF\n123456-12345,card,04AB\n";
    let response = import("credentials", credentials).await.expect("import");
    assert_eq!(response.status().as_u16(), 422);
    let error: serde_json::Value = response.json().await.expect("JSON");
    assert!(
        error["error"]["rows"][0]
            .as_str()
            .expect("row")
            .starts_with("line 3: recipient: looks like a personal code"),
        "{error}"
    );

    // An unknown kind names every kind there is, guardians included.
    let response = import("pupils", "recipient\nN001\n").await.expect("import");
    assert_eq!(response.status().as_u16(), 404);
    let error: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(
        error["error"]["message"],
        "import kind \"pupils\": use recipients, credentials, memberships, grants or guardians"
    );
    server.stop().await;
}
store_test!(imports_are_whole_or_nothing);
