//! Test harness: every test spawns the real service on a random port over a fresh database and
//! talks HTTP to it. `both_databases!` runs each test on SQLite and on PostgreSQL (when
//! `COUPOND_TEST_DATABASE_URL` names a server; each test gets its own database).

#![allow(dead_code)]

pub mod checkout;
pub mod cluster;
pub mod fixtures;
pub mod receiver;
pub mod smtp;

use std::sync::Arc;

use coupond::{
    app::Application,
    config::{DatabaseConfig, NotifyConfig, ServeConfig},
    notify::Dispatcher,
    scheduler::{ManualClock, Scheduler},
};
use reqwest::{Client, Method, RequestBuilder, Response};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub backend: Backend,
    pub base: String,
    pub client: Client,
    pub db: DatabaseConnection,
    pub database_url: String,
    pub org_id: i64,
    /// The admin key of the test's org.
    pub key: String,
    /// The scheduler's clock: it stands still until the test moves it.
    pub clock: ManualClock,
    pub scheduler: Scheduler,
    pub dispatcher: Dispatcher,
}

/// A further replica of a test's service, on the same database and clock.
pub struct Instance {
    pub base: String,
    pub scheduler: Scheduler,
    pub dispatcher: Dispatcher,
}

async fn build(
    database_url: &str,
    configure: impl FnOnce(&mut ServeConfig),
    clock: &ManualClock,
) -> Application {
    let db_config = DatabaseConfig::new(database_url, 8);
    let mut serve = test_serve_config();
    configure(&mut serve);
    Application::build_with_clock(&db_config, &serve, Arc::new(clock.clone()))
        .await
        .expect("build app")
}

/// The tests' settings: a random port, abuse limits off, loopback receivers allowed, and no
/// background sender running on its own.
pub fn test_serve_config() -> ServeConfig {
    ServeConfig {
        bind: "127.0.0.1:0".into(),
        shutdown_grace_secs: 1,
        remote_retry_window_secs: 60,
        // Abuse limits are off except in the tests of the limits themselves.
        rate_limit_per_key: 0,
        rate_limit_per_customer: 0,
        rate_limit_unknown_codes: 0,
        rate_limit_auth_failures: 0,
        // Receivers listen on loopback.
        allow_private_urls: true,
        // Tests drive webhook delivery with `Worker::run_once`.
        webhook_interval_ms: 0,
        webhook_concurrency_per_endpoint: 8,
        webhook_concurrency: 256,
        cache_ttl_ms: 5000,
        notify: quiet_notifications(),
        limits: Default::default(),
        wallet: Default::default(),
        job_workers: 1,
        job_lease_secs: 30,
        job_poll_ms: 20,
    }
}

/// No transports, and no scheduler or dispatcher running on their own: tests that need them
/// configure and drive them.
pub fn quiet_notifications() -> NotifyConfig {
    NotifyConfig {
        outbox_interval_ms: 0,
        scheduler_tick_ms: 0,
        ..NotifyConfig::default()
    }
}

/// Runs each listed test body once on SQLite and once on PostgreSQL. With a leading
/// `with fixture = make;`, each run first makes the fixture and starts the service with
/// `fixture.configure(&mut serve_config)`; the fixture lives as long as the test.
#[macro_export]
macro_rules! both_databases {
    (with $fixture:ident = $make:expr; $(async fn $name:ident($app:ident) $body:block)*) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $fixture = $make;
                let $app = common::TestApp::spawn_configured(common::Backend::Sqlite, |s| {
                    $fixture.configure(s)
                })
                .await
                .unwrap();
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $fixture = $make;
                let Some($app) = common::TestApp::spawn_configured(common::Backend::Postgres, |s| {
                    $fixture.configure(s)
                })
                .await
                else {
                    return;
                };
                $body
            }
        }
    )*};
    ($(async fn $name:ident($app:ident) $body:block)*) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $app = common::TestApp::spawn(common::Backend::Sqlite).await.unwrap();
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($app) = common::TestApp::spawn(common::Backend::Postgres).await else {
                    return;
                };
                $body
            }
        }
    )*};
}

impl TestApp {
    /// None when the backend is PostgreSQL and no server is configured.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_configured(backend, |_| {}).await
    }

    /// [`TestApp::spawn`] with these notification settings.
    pub async fn spawn_with(backend: Backend, notify: NotifyConfig) -> Option<TestApp> {
        Self::spawn_configured(backend, |s| s.notify = notify).await
    }

    /// [`TestApp::spawn`] with settings changed from the tests' defaults by `configure`.
    pub async fn spawn_configured(
        backend: Backend,
        configure: impl FnOnce(&mut ServeConfig),
    ) -> Option<TestApp> {
        let database_url = match backend {
            Backend::Sqlite => sqlite_url(),
            Backend::Postgres => postgres_database().await?,
        };
        let clock = ManualClock::new(chrono::Utc::now());
        let app = build(&database_url, configure, &clock).await;
        let base = format!("http://127.0.0.1:{}", app.port());
        let db = app.db().clone();
        let scheduler = app.scheduler().clone();
        let dispatcher = app.dispatcher().clone();
        tokio::spawn(app.run_until_stopped());
        let (org, key) =
            coupond::store::orgs::create(&db, "Test Org".into(), "Europe/Madrid".into())
                .await
                .expect("create org");
        Some(TestApp {
            backend,
            base,
            client: Client::new(),
            db,
            database_url,
            org_id: org.id,
            key,
            clock,
            scheduler,
            dispatcher,
        })
    }

    /// Starts another replica on this test's database and clock.
    pub async fn another_instance(&self, notify: NotifyConfig) -> Instance {
        self.another_configured(|s| s.notify = notify).await
    }

    /// [`TestApp::another_instance`] with settings changed from the tests' defaults.
    pub async fn another_configured(&self, configure: impl FnOnce(&mut ServeConfig)) -> Instance {
        let app = build(&self.database_url, configure, &self.clock).await;
        let instance = Instance {
            base: format!("http://127.0.0.1:{}", app.port()),
            scheduler: app.scheduler().clone(),
            dispatcher: app.dispatcher().clone(),
        };
        tokio::spawn(app.run_until_stopped());
        instance
    }

    /// A second org with its own admin key, for isolation tests.
    pub async fn other_org(&self) -> (i64, String) {
        let (org, key) = coupond::store::orgs::create(&self.db, "Other".into(), "UTC".into())
            .await
            .expect("create org");
        (org.id, key)
    }

    pub fn request(&self, method: Method, path: &str, key: Option<&str>) -> RequestBuilder {
        let req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, Some(&self.key))
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(&self.key))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, Some(&self.key))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path, Some(&self.key))
            .send()
            .await
            .unwrap()
    }

    /// Polls a background job until it is no longer running and returns its record.
    pub async fn wait_for_job(&self, job_id: i64) -> Value {
        for _ in 0..1_200 {
            let job = json(self.get(&format!("/v1/jobs/{job_id}")).await).await;
            if job["state"] != "running" {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("job {job_id} did not finish");
    }

    /// Creates a key with the given scopes and returns its secret.
    pub async fn key_with(&self, scopes: &[&str]) -> String {
        let resp = self
            .post(
                "/v1/api-keys",
                serde_json::json!({"name": "test", "scopes": scopes}),
            )
            .await;
        assert_eq!(resp.status(), 201);
        json(resp).await["api_key"].as_str().unwrap().to_string()
    }
}

pub async fn json(resp: Response) -> Value {
    resp.json().await.expect("JSON body")
}

/// Asserts a problem+json response with this status and code, and returns the problem.
pub async fn expect_problem(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    let body = json(resp).await;
    assert_eq!(body["code"], code, "problem code in {body}");
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

pub fn sqlite_url() -> String {
    let path = std::env::temp_dir().join(format!("coupond-test-{}.db", uuid::Uuid::new_v4()));
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Creates a fresh database on the configured server and returns its URL.
pub async fn postgres_database() -> Option<String> {
    let Ok(server) = std::env::var("COUPOND_TEST_DATABASE_URL") else {
        eprintln!("COUPOND_TEST_DATABASE_URL is not set: skipping the PostgreSQL run");
        return None;
    };
    let name = format!("coupond_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(&server)
        .await
        .expect("connect to PostgreSQL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    Some(with_database(&server, &name))
}

/// Replaces the database name in a PostgreSQL URL, keeping any query string.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}
