//! The OpenAPI document in `docs/` is the one central serves, and every
//! operation it lists is a route central has (no stale entries). Method:
//! call each documented operation without credentials and check the
//! router knew it (anything but the fallback 404 and 405).

use crate::db;
use crate::world::{Server, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_lists_only_real_routes() {
    let world = World::new(db::sqlite().await, 0, 0).await;
    let server = Server::start(world.state.clone()).await;
    let served: serde_json::Value = server
        .http
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .expect("openapi.json")
        .json()
        .await
        .expect("JSON");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let in_docs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("docs/openapi.json"))
            .expect("valid JSON");
    assert_eq!(served, in_docs, "central serves docs/openapi.json");
    let paths = in_docs["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (template, methods) in paths {
        let concrete = template.replace("{id}", "x").replace("{kind}", "grants");
        for method in methods.as_object().expect("methods").keys() {
            operations += 1;
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let response = server
                .http
                .request(method.clone(), format!("{}{concrete}", server.base))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let body = response.text().await.expect("body");
            assert_ne!(
                status, 405,
                "{method} {template} is documented but not routed"
            );
            assert!(
                !body.contains("no such route"),
                "{method} {template} is documented but not routed"
            );
        }
    }
    assert_eq!(
        operations, 43,
        "every route of central::app is documented (update this count with the router)"
    );
    server.stop().await;
}
