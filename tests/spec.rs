//! The spec tells the truth: what schemathesis found, kept as regression tests. Every error the
//! service itself answers is a problem document, numbers the schema allows are not crashes,
//! idempotency keys are bounded everywhere, and the published document is one client
//! generators take.

mod common;

use common::{TestApp, expect_problem, fixtures, json};
use reqwest::{Method, header};
use serde_json::{Value, json};

/// The spec as served.
async fn spec(app: &TestApp) -> Value {
    json(
        app.request(Method::GET, "/openapi.json", None)
            .send()
            .await
            .unwrap(),
    )
    .await
}

both_databases! {
    async fn a_page_past_the_end_is_an_empty_page_not_a_crash(app) {
        let resp = app.get("/v1/pools?page=1000000&per_page=200").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(json(resp).await["items"], json!([]));
        // Beyond the bound the schema states: refused, naming the parameter.
        let resp = app.get("/v1/pools?page=18446744073709551614").await;
        let p = expect_problem(resp, 400, "invalid_parameter").await;
        assert_eq!(p["field"], "page");
        for path in ["/v1/coupons", "/v1/coupons/X/events", "/v1/customers/c/events"] {
            let resp = app.get(&format!("{path}?page=18446744073709551614")).await;
            assert_eq!(resp.status(), 400, "{path}");
        }
    }

    async fn the_most_negative_points_delta_is_refused_not_a_crash(app) {
        fixtures::customer(&app, "c-1", json!({})).await;
        let resp = app
            .request(Method::POST, "/v1/customers/c-1/points", Some(&app.key))
            .header("Idempotency-Key", "k-1")
            .json(&json!({"delta": i64::MIN, "reason": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let resp = app.get("/v1/customers/c-1/points").await;
        assert_eq!(json(resp).await["balance"], 0);
    }

    async fn idempotency_keys_are_1_to_255_printable_characters_everywhere(app) {
        let pool = fixtures::uploaded_pool(&app, 2, json!({})).await;
        fixtures::customer(&app, "c-1", json!({})).await;
        let too_long = "k".repeat(256);
        let calls = [
            (format!("/v1/pools/{pool}/issue"), json!({"customer": {"external_id": "c-1"}})),
            ("/v1/coupons/NOPE/redeem".into(), json!({"basket": {"total": 100, "currency": "EUR"}})),
            ("/v1/checkouts".into(), json!({"codes": [], "basket": {"total": 1, "currency": "EUR"}})),
            ("/v1/customers/c-1/points".into(), json!({"delta": 5, "reason": "x"})),
            ("/v1/workflow/actions/credit_points".into(), json!({})),
        ];
        for (path, body) in &calls {
            for key in [too_long.as_str(), "tab\there", "caf\u{e9}"] {
                let resp = app
                    .request(Method::POST, path, Some(&app.key))
                    .header("Idempotency-Key", header::HeaderValue::from_bytes(key.as_bytes()).unwrap())
                    .json(body)
                    .send()
                    .await
                    .unwrap();
                let p = expect_problem(resp, 400, "invalid_idempotency_key").await;
                assert_eq!(p["field"], "Idempotency-Key", "{path}");
            }
        }
        let resp = app
            .request(Method::POST, &format!("/v1/pools/{pool}/issue"), Some(&app.key))
            .header("Idempotency-Key", "k".repeat(255))
            .json(&json!({"customer": {"external_id": "c-1"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        // Nothing was issued by the refused calls.
        assert_eq!(fixtures::events(&app, "coupon_issue").await, 1);
    }

    async fn errors_outside_handlers_are_problems(app) {
        let resp = app.request(Method::PUT, "/v1/pools", Some(&app.key)).send().await.unwrap();
        assert_eq!(resp.headers()[header::ALLOW], "GET, POST");
        expect_problem(resp, 405, "method_not_allowed").await;

        let long = format!("/v1/pools?name={}", "a".repeat(9000));
        expect_problem(app.get(&long).await, 414, "uri_too_long").await;

        let resp = app
            .request(Method::POST, "/v1/pools", Some(&app.key))
            .header(header::CONTENT_TYPE, "text/plain")
            .body("x")
            .send()
            .await
            .unwrap();
        expect_problem(resp, 415, "unsupported_media_type").await;

        expect_problem(app.get("/v1/no-such-thing").await, 404, "not_found").await;

        let p = expect_problem(app.get("/v1/pools/abc").await, 400, "invalid_parameter").await;
        assert_eq!(p["field"], "id");
        assert!(!p["detail"].as_str().unwrap().contains("param0"), "{p}");
    }
}

/// Generators refuse `allOf` around an enum and defaults on model-typed properties; optional
/// properties are nullable; integers carry their bounds.
#[tokio::test]
async fn the_spec_is_shaped_for_client_generators() {
    let app = TestApp::spawn(common::Backend::Sqlite).await.unwrap();
    let doc = spec(&app).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        for (field, prop) in schema["properties"].as_object().into_iter().flatten() {
            let at = format!("{name}.{field}");
            if let Some(parts) = prop["allOf"].as_array() {
                assert_eq!(parts.len(), 1, "{at}");
                let target = parts[0]["$ref"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap();
                assert!(
                    schemas[target].get("enum").is_none(),
                    "{at}: allOf around an enum"
                );
                assert!(prop.get("default").is_none(), "{at}: default on a model");
            }
            if !required.contains(&json!(field)) && prop.get("$ref").is_none() {
                assert_eq!(prop["nullable"], true, "{at} is optional but not nullable");
            }
        }
    }
    let key = &schemas["ApiKey"]["properties"]["pool_id"];
    assert_eq!(key["nullable"], true);
    assert_eq!(key["minimum"], json!(i64::MIN));
    let create = &doc["paths"]["/v1/pools"]["post"]["responses"];
    assert!(create["415"].is_object() && create["414"].is_object());
    let docs = app
        .request(Method::GET, "/docs", None)
        .send()
        .await
        .unwrap();
    let page = docs.text().await.unwrap();
    assert!(
        page.contains("url: \"/openapi.json\""),
        "the UI loads the served spec"
    );
}
