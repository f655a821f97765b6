//! Abuse limits: 429 problem+json with `Retry-After` once a key, a customer, an unknown-code
//! guesser or a key guesser spends its budget; and a blocked guesser learns nothing.

mod common;

use common::{
    Backend, TestApp, expect_problem,
    fixtures::{customer, issue_ok, uploaded_pool},
    json,
};
use coupond::config::ServeConfig;
use reqwest::{Method, Response};
use serde_json::json;

async fn each_backend(configure: fn(&mut ServeConfig), test: impl AsyncFn(TestApp)) {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(app) = TestApp::spawn_configured(backend, configure).await {
            test(app).await;
        }
    }
}

async fn too_many(resp: Response, code: &str) {
    assert_eq!(resp.status(), 429, "{:?}", resp.text().await);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    expect_problem(resp, 429, code).await;
}

/// An issued code and its holder.
async fn issued(app: &TestApp) -> String {
    customer(app, "ana", json!({})).await;
    customer(app, "bea", json!({})).await;
    let pool = uploaded_pool(app, 3, json!({})).await;
    let coupon = issue_ok(app, pool, "ana").await;
    coupon["code"].as_str().unwrap().to_string()
}

fn validation() -> serde_json::Value {
    json!({"customer": {"external_id": "ana"}, "basket": {"total": 2000, "currency": "EUR"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_over_its_rate_is_429() {
    each_backend(
        |s| s.rate_limit_per_customer = 3,
        async |app| {
            let code = issued(&app).await;
            let path = format!("/v1/coupons/{code}/validate");
            for _ in 0..3 {
                assert_eq!(app.post(&path, validation()).await.status(), 200);
            }
            too_many(app.post(&path, validation()).await, "customer_rate_limited").await;
            // Another customer is not held back.
            let other = json!({"customer": {"external_id": "bea"}, "basket": {"total": 2000, "currency": "EUR"}});
            assert_eq!(app.post(&path, other).await.status(), 200);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_is_429() {
    each_backend(
        |s| s.rate_limit_per_key = 5,
        async |app| {
            let code = issued(&app).await;
            let path = format!("/v1/coupons/{code}/validate");
            let mut statuses = Vec::new();
            for _ in 0..12 {
                let resp = app.post(&path, json!({"basket": {"total": 2000}})).await;
                statuses.push(resp.status().as_u16());
                if resp.status() == 429 {
                    too_many(resp, "rate_limited").await;
                    break;
                }
            }
            assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_codes_blocks_the_key_before_any_look_up() {
    each_backend(
        |s| s.rate_limit_unknown_codes = 3,
        async |app| {
            let code = issued(&app).await;
            for i in 0..4 {
                let resp = app
                    .post(&format!("/v1/coupons/GUESS{i}/validate"), validation())
                    .await;
                assert_eq!(resp.status(), 404);
            }
            // Blocked: a real code now answers exactly like a wrong one, so guessing tells nothing.
            let real = app
                .post(&format!("/v1/coupons/{code}/validate"), validation())
                .await;
            too_many(real, "too_many_unknown_codes").await;
            let wrong = app.post("/v1/coupons/GUESS9/validate", validation()).await;
            too_many(wrong, "too_many_unknown_codes").await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_keys_blocks_the_address() {
    each_backend(
        |s| s.rate_limit_auth_failures = 3,
        async |app| {
            for i in 0..4 {
                let resp = app
                    .request(Method::GET, "/v1/org", Some(&format!("cpd_wrong{i}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 401);
            }
            let wrong = app
                .request(Method::GET, "/v1/org", Some("cpd_wrong9"))
                .send()
                .await
                .unwrap();
            too_many(wrong, "auth_rate_limited").await;
            // The right key from the blocked address is refused too: no oracle for guessers.
            too_many(app.get("/v1/org").await, "auth_rate_limited").await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_callback_is_limited_per_key() {
    each_backend(
        |s| s.rate_limit_per_key = 2,
        async |app| {
            let pool = uploaded_pool(&app, 10, json!({})).await;
            let resp = app
                .post(
                    "/v1/api-keys",
                    json!({"name": "antavo", "scopes": ["remote"], "pool_id": pool}),
                )
                .await;
            let key = json(resp).await["api_key"].as_str().unwrap().to_string();
            let mut last = 0;
            for i in 0..6 {
                let resp = app
                    .request(Method::POST, "/v1/remote/coupon-code", None)
                    .json(&json!({"api_key": key, "customer": format!("c{i}")}))
                    .send()
                    .await
                    .unwrap();
                last = resp.status().as_u16();
                if last == 429 {
                    assert!(resp.headers().contains_key("retry-after"));
                    break;
                }
            }
            assert_eq!(last, 429);
        },
    )
    .await;
}
