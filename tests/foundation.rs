//! The service skeleton: health, docs, metrics, API keys, scopes, org isolation, problem+json.

mod common;

use common::{TestApp, expect_problem, json};
use reqwest::Method;
use serde_json::json;

both_databases! {
    async fn health_docs_spec_and_metrics_are_served(app) {
        assert_eq!(app.client.get(format!("{}/healthz", app.base)).send().await.unwrap().status(), 200);
        assert_eq!(app.client.get(format!("{}/readyz", app.base)).send().await.unwrap().status(), 200);
        let docs = app.client.get(format!("{}/docs", app.base)).send().await.unwrap();
        assert_eq!(docs.status(), 200);
        assert!(docs.text().await.unwrap().contains("swagger"));
        let spec = json(app.client.get(format!("{}/openapi.json", app.base)).send().await.unwrap()).await;
        assert!(spec["paths"]["/v1/org"]["get"]["responses"]["401"].is_object());

        assert_eq!(app.get("/v1/org").await.status(), 200);
        let metrics = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
        assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = metrics.text().await.unwrap();
        assert!(text.contains("coupond_http_requests_total{operation=\"getOrg\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("coupond_http_request_duration_seconds_bucket{operation=\"getOrg\",status=\"200\",le=\"+Inf\"} 1"));
    }

    async fn missing_or_unknown_keys_are_401(app) {
        let resp = app.request(Method::GET, "/v1/org", None).send().await.unwrap();
        expect_problem(resp, 401, "unauthorized").await;
        let resp = app.request(Method::GET, "/v1/org", Some("cpd_not_a_key")).send().await.unwrap();
        expect_problem(resp, 401, "unauthorized").await;
    }

    async fn org_is_the_callers_own(app) {
        let body = json(app.get("/v1/org").await).await;
        assert_eq!(body["id"], app.org_id);
        assert_eq!(body["timezone"], "Europe/Madrid");
        let (other_id, other_key) = app.other_org().await;
        let other = json(app.request(Method::GET, "/v1/org", Some(&other_key)).send().await.unwrap()).await;
        assert_eq!(other["id"], other_id);
        assert_ne!(other_id, app.org_id);
    }

    async fn keys_are_created_listed_without_secrets_and_revoked(app) {
        let resp = app.post("/v1/api-keys", json!({"name": "till 4", "scopes": ["pos"]})).await;
        assert_eq!(resp.status(), 201);
        let created = json(resp).await;
        let secret = created["api_key"].as_str().unwrap().to_string();
        assert!(secret.starts_with(created["key_hint"].as_str().unwrap()));
        assert_eq!(created["scopes"], json!(["pos"]));

        let list = json(app.get("/v1/api-keys").await).await;
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "admin key and the new one");
        assert!(items.iter().all(|k| k.get("api_key").is_none()));
        assert!(!list.to_string().contains(&secret));

        // The new key authenticates, then stops once revoked.
        let org = app.request(Method::GET, "/v1/org", Some(&secret)).send().await.unwrap();
        assert_eq!(org.status(), 200);
        let id = created["id"].as_i64().unwrap();
        assert_eq!(app.delete(&format!("/v1/api-keys/{id}")).await.status(), 204);
        let org = app.request(Method::GET, "/v1/org", Some(&secret)).send().await.unwrap();
        expect_problem(org, 401, "unauthorized").await;
        expect_problem(app.delete(&format!("/v1/api-keys/{id}")).await, 404, "not_found").await;
    }

    async fn a_key_without_the_scope_is_403(app) {
        let pos = app.key_with(&["pos"]).await;
        let resp = app
            .request(Method::POST, "/v1/api-keys", Some(&pos))
            .json(&json!({"name": "x", "scopes": ["admin"]}))
            .send()
            .await
            .unwrap();
        let problem = expect_problem(resp, 403, "missing_scope").await;
        assert!(problem["detail"].as_str().unwrap().contains("admin"));
        let resp = app.request(Method::GET, "/v1/api-keys", Some(&pos)).send().await.unwrap();
        expect_problem(resp, 403, "missing_scope").await;
    }

    async fn another_orgs_key_is_404_and_untouched(app) {
        let (_, other_key) = app.other_org().await;
        let other_keys = json(app.request(Method::GET, "/v1/api-keys", Some(&other_key)).send().await.unwrap()).await;
        let other_admin_id = other_keys["items"][0]["id"].as_i64().unwrap();
        let resp = app.delete(&format!("/v1/api-keys/{other_admin_id}")).await;
        expect_problem(resp, 404, "not_found").await;
        let still = app.request(Method::GET, "/v1/org", Some(&other_key)).send().await.unwrap();
        assert_eq!(still.status(), 200);
    }

    async fn bad_input_is_a_problem_naming_what_is_wrong(app) {
        let resp = app
            .request(Method::POST, "/v1/api-keys", Some(&app.key))
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap();
        expect_problem(resp, 400, "malformed_body").await;

        let resp = app
            .request(Method::POST, "/v1/api-keys", Some(&app.key))
            .header("content-type", "application/json")
            .body("\u{feff}{\"name\": \"x\", \"scopes\": [\"pos\"]}")
            .send()
            .await
            .unwrap();
        let problem = expect_problem(resp, 400, "malformed_body").await;
        assert!(problem["detail"].as_str().unwrap().contains("byte-order mark"), "{problem}");

        let resp = app.post("/v1/api-keys", json!({"name": "x", "scopes": ["root"]})).await;
        let problem = expect_problem(resp, 400, "malformed_body").await;
        assert!(problem["detail"].as_str().unwrap().contains("root"));

        let resp = app.post("/v1/api-keys", json!({"name": "x", "scopes": []})).await;
        let problem = expect_problem(resp, 422, "validation_failed").await;
        assert_eq!(problem["field"], "scopes");

        let resp = app.delete("/v1/api-keys/not-a-number").await;
        let problem = expect_problem(resp, 400, "invalid_parameter").await;
        assert_eq!(problem["field"], "id");
        let keys = json(app.get("/v1/api-keys").await).await;
        assert_eq!(keys["items"].as_array().unwrap().len(), 1, "nothing was created");

        expect_problem(app.get("/v1/no-such-thing").await, 404, "not_found").await;
    }
}

/// `/readyz` tells a load balancer when the database is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_when_the_database_is_unreachable() {
    let Some(app) = TestApp::spawn(common::Backend::Postgres).await else {
        return;
    };
    use sea_orm::ConnectionTrait;
    let name = app.database_url.rsplit('/').next().unwrap().to_string();
    let server = std::env::var("COUPOND_TEST_DATABASE_URL").unwrap();
    let admin = sea_orm::Database::connect(&server).await.unwrap();
    admin
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap();
    let resp = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let resp = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the process itself is still alive");
}
