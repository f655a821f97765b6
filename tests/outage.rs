//! Fast, honest failure when PostgreSQL is unreachable, against a private cluster the test
//! creates, starts and kills (never the shared server): start-up names the cause, or waits for
//! the database when asked to; while it is down readiness and calls answer 503 problem+json
//! promptly, counted under their operation; the pool recovers by itself and nothing committed
//! is lost. PostgreSQL only: it runs when `COUPOND_TEST_DATABASE_URL` is set.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, PASSWORD};
use coupond::{app::Application, config::DatabaseConfig};
use reqwest::{Client, Method};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

/// The acquire timeout the test configures: every call while the database is down must be
/// answered within it plus a margin.
const ACQUIRE_SECS: u64 = 2;

fn db_config(url: &str) -> DatabaseConfig {
    let mut config = DatabaseConfig::new(url, 4);
    config.database_connect_timeout_secs = 2;
    config.database_acquire_timeout_secs = ACQUIRE_SECS;
    config
}

/// Start-up's error and how long it took to give it.
async fn startup_error(url: &str) -> (String, Duration) {
    let started = Instant::now();
    let err = Application::build(&db_config(url), &common::test_serve_config())
        .await
        .err()
        .expect("start-up fails");
    (err.to_string(), started.elapsed())
}

struct Api {
    client: Client,
    base: String,
    key: String,
}

impl Api {
    /// Status, body and time of one call with the org's key.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, Duration) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        answer(req).await
    }

    /// A call without credentials, as a load balancer or a scraper makes it.
    async fn probe(&self, path: &str) -> (u16, Value, Duration) {
        answer(self.client.get(format!("{}{path}", self.base))).await
    }

    async fn issue(&self, pool: i64, who: &str) -> (u16, Value, Duration) {
        let body = json!({"customer": {"external_id": who}});
        self.call(Method::POST, &format!("/v1/pools/{pool}/issue"), Some(body))
            .await
    }
}

/// Status, body and time of one request; every error must be problem+json.
async fn answer(req: reqwest::RequestBuilder) -> (u16, Value, Duration) {
    let started = Instant::now();
    let resp = req.send().await.expect("the service answers");
    let status = resp.status().as_u16();
    let is_problem = resp.headers()["content-type"] == "application/problem+json";
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    assert!(status < 400 || is_problem, "{status} {body}");
    (status, body, started.elapsed())
}

async fn held_codes(db: &DatabaseConnection) -> Vec<String> {
    let sql = "SELECT code FROM coupons WHERE customer_id IS NOT NULL ORDER BY code";
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "code").unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_fast_and_honestly_and_the_pool_recovers() {
    if std::env::var("COUPOND_TEST_DATABASE_URL").is_err() {
        eprintln!("COUPOND_TEST_DATABASE_URL is not set: skipping the PostgreSQL run");
        return;
    }
    let Some(cluster) = Cluster::init() else {
        return;
    };
    let url = cluster.url(PASSWORD, "postgres");

    // Start-up names the cause, well within the connect timeout.
    for (url, cause) in [
        (url.clone(), "connection refused"),
        (
            "postgres://postgres@no-such-host.invalid:5432/postgres".to_string(),
            "unknown host no-such-host.invalid",
        ),
    ] {
        let (err, took) = startup_error(&url).await;
        eprintln!("start-up with the database down: {took:?}: {err}");
        assert!(err.contains(cause), "{err}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    cluster.start();
    for (url, cause) in [
        (
            cluster.url("wrong", "postgres"),
            "authentication failed for user postgres",
        ),
        (
            cluster.url(PASSWORD, "nope"),
            "database nope does not exist",
        ),
    ] {
        let (err, took) = startup_error(&url).await;
        eprintln!("start-up: {took:?}: {err}");
        assert!(err.contains(cause), "{err}");
    }

    // Asked to wait, start-up keeps trying until the database comes up.
    cluster.kill();
    let mut waiting = db_config(&url);
    waiting.database_wait_secs = 30;
    let started = Instant::now();
    let build = tokio::spawn(async move {
        Application::build(&waiting, &common::test_serve_config())
            .await
            .map_err(|e| e.to_string())
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.start();
    let app = build
        .await
        .unwrap()
        .expect("start-up waited for the database");
    eprintln!("start-up waited {:?} for the database", started.elapsed());

    let db = app.db().clone();
    let (org, key) = coupond::store::orgs::create(&db, "Outage".into(), "UTC".into())
        .await
        .unwrap();
    let api = Api {
        client: Client::new(),
        base: format!("http://127.0.0.1:{}", app.port()),
        key,
    };
    tokio::spawn(app.run_until_stopped());
    let (status, pool, _) = api
        .call(
            Method::POST,
            "/v1/pools",
            Some(json!({"name": "P", "source": "uploaded",
        "discount_type": "amount", "value": 500, "currency": "EUR"})),
        )
        .await;
    assert_eq!(status, 201, "{pool}");
    let pool = pool["id"].as_i64().unwrap();
    let codes: Vec<String> = (0..20).map(|i| format!("OUT{}C{i:03}", org.id)).collect();
    api.call(
        Method::POST,
        &format!("/v1/pools/{pool}/codes"),
        Some(json!({"codes": codes})),
    )
    .await;
    for i in 0..6 {
        api.call(Method::PUT, &format!("/v1/customers/c{i}"), Some(json!({})))
            .await;
    }
    for i in 0..5 {
        assert_eq!(api.issue(pool, &format!("c{i}")).await.0, 201);
    }
    let before = held_codes(&db).await;

    cluster.kill();
    let (status, body, took) = api.probe("/readyz").await;
    eprintln!("readyz while down: {status} in {took:?}");
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("database_unavailable"))
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    let limit = Duration::from_secs(ACQUIRE_SECS) + Duration::from_millis(1500);
    for _ in 0..3 {
        let (status, body, took) = api.issue(pool, "c5").await;
        eprintln!("issue while down: {status} in {took:?}");
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("database_unavailable")),
            "{body}"
        );
        assert!(took < limit, "{took:?}");
    }
    let (status, _, took) = api.call(Method::GET, "/v1/pools", None).await;
    eprintln!("list pools while down: {status} in {took:?}");
    assert!(status == 503 && took < limit, "{status} {took:?}");
    let (_, metrics, took) = api.probe("/metrics").await;
    eprintln!("metrics while down: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains(r#"coupond_http_requests_total{operation="issueCoupon",status="503"} 3"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"operation="unmatched""#), "{metrics}");

    let restarted = Instant::now();
    cluster.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.issue(pool, "c5").await.0 != 201 {
        assert!(Instant::now() < deadline, "the pool did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "calls succeed again {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(api.probe("/readyz").await.0, 200);
    let after = held_codes(&db).await;
    assert_eq!(after.len(), before.len() + 1);
    assert!(
        before.iter().all(|c| after.contains(c)),
        "a committed issue was lost"
    );
}
