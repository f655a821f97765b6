//! Outbound URL policy: webhook and remote-pool URLs that reach loopback, private, link-local
//! or metadata addresses are refused when saved (422 naming the field), unless the operator
//! allows private URLs; public addresses are accepted.

mod common;

use common::{Backend, TestApp, expect_problem};
use serde_json::json;

async fn each_backend(test: impl AsyncFn(TestApp)) {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(app) =
            TestApp::spawn_configured(backend, |s| s.allow_private_urls = false).await
        {
            test(app).await;
        }
    }
}

const INTERNAL: [&str; 6] = [
    "http://127.0.0.1:5432/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.8/hook",
    "http://[::1]:8080/hook",
    "http://localhost:8080/hook",
    "http://[::ffff:192.168.1.1]/hook",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_webhook_urls_are_refused() {
    each_backend(async |app| {
        for url in INTERNAL {
            let resp = app
                .post(
                    "/v1/webhooks",
                    json!({"url": url, "events": ["coupon.issued"]}),
                )
                .await;
            let problem = expect_problem(resp, 422, "validation_failed").await;
            assert_eq!(problem["field"], "url", "{url}");
        }
        let public = json!({"url": "http://93.184.216.34/hook", "events": ["coupon.issued"]});
        assert_eq!(app.post("/v1/webhooks", public).await.status(), 201);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_remote_pool_urls_are_refused() {
    each_backend(async |app| {
        for url in INTERNAL {
            let resp = app
                .post(
                    "/v1/pools",
                    json!({"name": "R", "source": "remote", "discount_type": "amount",
                           "value": 500, "currency": "EUR", "remote": {"url": url}}),
                )
                .await;
            let problem = expect_problem(resp, 422, "validation_failed").await;
            assert_eq!(problem["field"], "remote.url", "{url}");
        }
    })
    .await;
}
