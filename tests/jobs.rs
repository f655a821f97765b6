//! Background jobs survive their process: the real `coupond serve` binary is killed (`kill -9`)
//! or stopped (SIGTERM) while a job runs, started again, and the job ends with exactly the
//! asked counts and no duplicates.

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use chrono::Utc;
use common::fixtures;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, Set, Statement};
use serde_json::{Value, json};

/// A `coupond serve` child process over a given database.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(database_url: &str) -> Server {
        Server::start_with(database_url, &[], Stdio::inherit()).await
    }

    async fn start_with(database_url: &str, env: &[(&str, &str)], stderr: Stdio) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_coupond"))
            .arg("serve")
            .env("COUPOND_DATABASE_URL", database_url)
            .env("COUPOND_DATABASE_MAX_CONNECTIONS", "4")
            .env("COUPOND_BIND", format!("127.0.0.1:{port}"))
            .env("COUPOND_JOB_LEASE_SECS", "2")
            .env("COUPOND_JOB_POLL_MS", "50")
            .env("COUPOND_JOB_WORKERS", "1")
            .env("COUPOND_WEBHOOK_INTERVAL_MS", "0")
            .env("COUPOND_SHUTDOWN_GRACE_SECS", "20")
            .env("COUPOND_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start coupond");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "coupond did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the process to drain and exit.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "coupond exited with {status}");
    }
}

async fn database(backend: common::Backend) -> Option<String> {
    match backend {
        common::Backend::Sqlite => Some(common::sqlite_url()),
        common::Backend::Postgres => common::postgres_database().await,
    }
}

async fn call(
    base: &str,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(key);
    req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

async fn job(base: &str, key: &str, id: i64) -> Value {
    call(
        base,
        key,
        reqwest::Method::GET,
        &format!("/v1/jobs/{id}"),
        None,
    )
    .await
}

/// Polls the job until `until` holds of it.
async fn wait_job(
    base: &str,
    key: &str,
    id: i64,
    limit: Duration,
    until: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let j = job(base, key, id).await;
        if until(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} stuck: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_string(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn org(db: &DatabaseConnection) -> (i64, String) {
    let (org, key) = coupond::store::orgs::create(db, "Jobs".into(), "UTC".into())
        .await
        .unwrap();
    (org.id, key)
}

/// Starts the server again and waits for the job to end; it must end done.
async fn finish_after_restart(url: &str, key: &str, id: i64) -> (Server, Value) {
    let server = Server::start(url).await;
    let j = wait_job(&server.base, key, id, Duration::from_secs(600), |j| {
        j["state"] != "running"
    })
    .await;
    assert_eq!(j["state"], "done", "{j}");
    (server, j)
}

/// Distinct values of a coupon column in the pool.
async fn distinct(db: &DatabaseConnection, column: &str, pool: i64) -> i64 {
    let sql = format!("SELECT COUNT(DISTINCT {column}) FROM coupons WHERE pool_id = {pool}");
    scalar(db, &sql).await
}

const CODES: i64 = 2_000_000;

async fn generation_resumes_after_kill_and_sigterm(backend: common::Backend) {
    let Some(url) = database(backend).await else {
        return;
    };
    let server = Server::start(&url).await;
    let db = Database::connect(&url).await.unwrap();
    let (_, key) = org(&db).await;
    let base = server.base.clone();
    let pool = call(&base, &key, reqwest::Method::POST, "/v1/pools", Some(json!({
        "name": "Millions", "source": "bulk", "pattern": "GEN-**********", "discount_type": "free_shipping"
    }))).await["id"].as_i64().unwrap();
    let started = Instant::now();
    let id = call(
        &base,
        &key,
        reqwest::Method::POST,
        &format!("/v1/pools/{pool}/generate"),
        Some(json!({"count": CODES})),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    wait_job(&base, &key, id, Duration::from_secs(300), |j| {
        j["accepted"].as_i64() > Some(0)
    })
    .await;
    server.kill_9();

    let server = Server::start(&url).await;
    let base = server.base.clone();
    let j = wait_job(&base, &key, id, Duration::from_secs(300), |j| {
        j["accepted"].as_i64() > Some(500_000) || j["state"] != "running"
    })
    .await;
    assert_eq!(
        j["state"], "running",
        "the job should still be running when stopped: {j}"
    );
    server.terminate();
    // A drained process released its job: claimable at once, not held until a lease lapses.
    let owner = scalar(&db, &format!("SELECT COUNT(*) FROM imports WHERE id = {id} AND state = 'running' AND lease_owner IS NULL")).await;
    assert_eq!(owner, 1, "SIGTERM leaves the job released and running");

    let (server, j) = finish_after_restart(&url, &key, id).await;
    eprintln!(
        "{backend:?}: {CODES} codes with two restarts in {:?}",
        started.elapsed()
    );
    assert_eq!(
        (j["accepted"].as_i64(), j["total"].as_i64()),
        (Some(CODES), Some(CODES)),
        "{j}"
    );
    let in_pool = scalar(
        &db,
        &format!("SELECT COUNT(*) FROM coupons WHERE pool_id = {pool}"),
    )
    .await;
    assert_eq!(in_pool, CODES);
    assert_eq!(distinct(&db, "code", pool).await, CODES);
    server.kill_9();
}

const CUSTOMERS: usize = 50_000;

async fn customer_list_issue_resumes_after_kill(backend: common::Backend) {
    let Some(url) = database(backend).await else {
        return;
    };
    let server = Server::start(&url).await;
    let db = Database::connect(&url).await.unwrap();
    let (org_id, key) = org(&db).await;
    let base = server.base.clone();
    let now = Utc::now();
    let rows: Vec<coupond::store::entity::customers::ActiveModel> = (0..CUSTOMERS)
        .map(|i| coupond::store::entity::customers::ActiveModel {
            org_id: Set(org_id),
            external_id: Set(format!("c{i:06}")),
            transaction_count: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .collect();
    for chunk in rows.chunks(2_000) {
        coupond::store::entity::customers::Entity::insert_many(chunk.to_vec())
            .exec(&db)
            .await
            .unwrap();
    }
    let pool = call(&base, &key, reqwest::Method::POST, "/v1/pools", Some(json!({
        "name": "Stock", "source": "bulk", "pattern": "LST-********", "discount_type": "free_shipping"
    }))).await["id"].as_i64().unwrap();
    let generation = call(
        &base,
        &key,
        reqwest::Method::POST,
        &format!("/v1/pools/{pool}/generate"),
        Some(json!({"count": CUSTOMERS})),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    wait_job(&base, &key, generation, Duration::from_secs(120), |j| {
        j["state"] == "done"
    })
    .await;

    // An Excel-style file: byte-order mark, CRLF, a quoted header.
    let mut csv = String::from("\u{feff}\"external_id\"\r\n");
    for i in 0..CUSTOMERS {
        csv.push_str(&format!("c{i:06}\r\n"));
    }
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/pools/{pool}/issue/batch"))
        .bearer_auth(&key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let started = Instant::now();
    wait_job(&base, &key, id, Duration::from_secs(300), |j| {
        j["done"].as_i64() > Some(0)
    })
    .await;
    server.kill_9();

    let (server, j) = finish_after_restart(&url, &key, id).await;
    eprintln!(
        "{backend:?}: {CUSTOMERS}-row list with a restart in {:?}",
        started.elapsed()
    );
    let n = CUSTOMERS as i64;
    assert_eq!(
        (
            j["done"].as_i64(),
            j["accepted"].as_i64(),
            j["rejected"].as_i64()
        ),
        (Some(n), Some(n), Some(0)),
        "{j}"
    );
    let issued = scalar(
        &db,
        &format!("SELECT COUNT(*) FROM coupons WHERE pool_id = {pool} AND customer_id IS NOT NULL"),
    )
    .await;
    assert_eq!(issued, n);
    assert_eq!(distinct(&db, "customer_id", pool).await, n);
    server.kill_9();
}

macro_rules! on_both {
    ($($name:ident),*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::common::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(crate::common::Backend::Postgres).await;
            }
        }
    )*};
}

on_both!(
    generation_resumes_after_kill_and_sigterm,
    customer_list_issue_resumes_after_kill
);

/// A request's log lines carry its request id (the caller's, echoed back), operation and org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_logs_carry_the_request_id_operation_and_org() {
    let url = common::sqlite_url();
    let env = [("COUPOND_LOG", "info"), ("COUPOND_LOG_FORMAT", "json")];
    let mut server = Server::start_with(&url, &env, Stdio::piped()).await;
    let db = Database::connect(&url).await.unwrap();
    let (org_id, key) = org(&db).await;
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}/v1/org", server.base))
        .bearer_auth(&key)
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-abc-123");
    let made = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        made.headers()["x-request-id"].len(),
        32,
        "an id is made when none is sent"
    );
    server.child.kill().unwrap();
    let output = server.child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["span"]["request_id"] == "req-abc-123")
        .unwrap_or_else(|| panic!("no log line of the request in {logs}"));
    assert_eq!(line["span"]["operation"], "getOrg", "{line}");
    assert_eq!(line["span"]["org"], org_id, "{line}");
}

both_databases! {
    async fn excel_code_files_with_a_bom_and_quoted_line_breaks_are_read(app) {
        let id = fixtures::pool(&app, json!({"name": "U", "source": "uploaded", "discount_type": "amount",
                                             "value": 500, "currency": "EUR"})).await;
        let csv = "\u{feff}code\r\nAB-1\r\n\"AB-2,\r\nAB-3\"\r\n";
        let resp = app.request(reqwest::Method::POST, &format!("/v1/pools/{id}/codes"), Some(&app.key))
            .header("content-type", "text/csv").body(csv).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        let import = common::json(resp).await;
        assert_eq!((import["accepted"].as_i64(), import["rejected"].as_i64(), import["state"].as_str()),
                   (Some(3), Some(0), Some("done")), "{import}");
        use sea_orm::{ColumnTrait, QueryFilter};
        let mut codes: Vec<String> = coupond::store::entity::coupons::Entity::find()
            .filter(coupond::store::entity::coupons::Column::PoolId.eq(id))
            .all(&app.db).await.unwrap().into_iter().map(|c| c.code).collect();
        codes.sort();
        assert_eq!(codes, ["AB-1", "AB-2", "AB-3"]);
    }
}
