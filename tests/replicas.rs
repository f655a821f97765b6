//! Chaos with several replicas: three `coupond serve` processes on one PostgreSQL database take
//! issues, market exchanges, redemptions, reversals and customer-list issue jobs for 30 s from
//! a client-side round-robin (a connection refused moves on to the next replica, as a load
//! balancer's health check would), while one replica is `kill -9`ed and restarted. Then SQL
//! checks that no code is held twice, no limit is exceeded, every points balance is its ledger's
//! sum, every coupon event matches a state change, every answered issue is still held, and no
//! job is left running. PostgreSQL only; the figures are printed for the notes.

mod common;

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::cluster::free_port;
use coupond::domain::coupon::CouponStatus;
use reqwest::{Client, Method};
use sea_orm::{ActiveEnum, ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};

const REPLICAS: usize = 3;
const RUN: Duration = Duration::from_secs(30);
const KILL_AT: Duration = Duration::from_secs(8);
const RESTART_AT: Duration = Duration::from_secs(13);
const CLIENTS: usize = 8;
const CUSTOMERS: usize = 60;
const PER_CUSTOMER: i64 = 2;
const MAX_TOTAL: i64 = 100;

/// One `coupond serve` process on a fixed loopback port.
struct Replica {
    child: Option<Child>,
}

impl Replica {
    fn start(database_url: &str, port: u16) -> Replica {
        let child = Command::new(env!("CARGO_BIN_EXE_coupond"))
            .arg("serve")
            .env("COUPOND_DATABASE_URL", database_url)
            .env("COUPOND_BIND", format!("127.0.0.1:{port}"))
            .env("COUPOND_DATABASE_MAX_CONNECTIONS", "6")
            .env("COUPOND_DATABASE_WAIT_SECS", "30")
            .env("COUPOND_ALLOW_PRIVATE_URLS", "1")
            .env("COUPOND_RATE_LIMIT_PER_KEY", "0")
            .env("COUPOND_RATE_LIMIT_PER_CUSTOMER", "0")
            .env("COUPOND_RATE_LIMIT_UNKNOWN_CODES", "0")
            .env("COUPOND_JOB_LEASE_SECS", "3")
            .env("COUPOND_JOB_POLL_MS", "100")
            .env("COUPOND_SHUTDOWN_GRACE_SECS", "1")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a replica");
        Replica { child: Some(child) }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`: no grace, leases and connections left as they were.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_ready(client: &Client, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica on {port} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts of what the clients saw.
#[derive(Default)]
struct Tally {
    requests: AtomicUsize,
    ok: AtomicUsize,
    refused: AtomicUsize,
    server_errors: AtomicUsize,
    transport_errors: AtomicUsize,
    failovers: AtomicUsize,
    errors_during_outage: AtomicUsize,
}

/// The round-robin in front of the replicas.
struct Front {
    client: Client,
    ports: Vec<u16>,
    next: AtomicUsize,
    key: String,
    tally: Tally,
    outage: AtomicBool,
}

impl Front {
    /// Sends to the next replica; a refused connection (nothing was sent) moves on to the next.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Value,
        key: Option<String>,
    ) -> Option<(u16, Value)> {
        self.tally.requests.fetch_add(1, Ordering::Relaxed);
        for _ in 0..self.ports.len() {
            let port = self.ports[self.next.fetch_add(1, Ordering::Relaxed) % self.ports.len()];
            let mut req = self
                .client
                .request(method.clone(), format!("http://127.0.0.1:{port}{path}"))
                .bearer_auth(&self.key)
                .json(&body);
            if let Some(key) = &key {
                req = req.header("Idempotency-Key", key);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.json().await.unwrap_or(Value::Null);
                    let counter = match status {
                        200..=299 => &self.tally.ok,
                        400..=499 => &self.tally.refused,
                        _ => &self.tally.server_errors,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if status >= 500 {
                        self.outage_error();
                    }
                    return Some((status, body));
                }
                Err(err) if err.is_connect() => {
                    self.tally.failovers.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        self.tally.transport_errors.fetch_add(1, Ordering::Relaxed);
        self.outage_error();
        None
    }

    fn outage_error(&self) {
        if self.outage.load(Ordering::Relaxed) {
            self.tally
                .errors_during_outage
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the clients hold: codes issued to a customer, and redemptions to reverse.
#[derive(Default)]
struct Held {
    issued: Vec<(String, String)>,
    to_redeem: Vec<(String, String)>,
    redemptions: Vec<i64>,
}

/// One client: exchange, redeem a held code, reverse a redemption, issue, in turn (an issue
/// when there is nothing to redeem or reverse yet).
async fn client_loop(
    front: Arc<Front>,
    held: Arc<Mutex<Held>>,
    pools: (i64, i64),
    n: usize,
    until: Instant,
) {
    let (pool, product) = pools;
    let mut i = n;
    while Instant::now() < until {
        i += 1;
        let who = format!("c{}", (i * 7 + n) % CUSTOMERS);
        let done = match i % 4 {
            1 => exchange(&front, product, &who).await,
            2 => redeem(&front, &held).await,
            3 => reverse(&front, &held).await,
            _ => false,
        };
        if !done {
            issue(&front, &held, pool, who).await;
        }
    }
}

async fn issue(front: &Front, held: &Mutex<Held>, pool: i64, who: String) {
    let body = json!({"customer": {"external_id": who}});
    let path = format!("/v1/pools/{pool}/issue");
    if let Some((201, c)) = front.send(Method::POST, &path, body, None).await {
        let code = c["code"].as_str().unwrap().to_string();
        let mut held = held.lock().unwrap();
        held.issued.push((code.clone(), who.clone()));
        held.to_redeem.push((code, who));
    }
}

async fn exchange(front: &Front, product: i64, who: &str) -> bool {
    let body = json!({"customer": {"external_id": who}});
    let key = Some(uuid::Uuid::new_v4().to_string());
    let path = format!("/v1/market/products/{product}/exchange");
    front.send(Method::POST, &path, body, key).await;
    true
}

async fn redeem(front: &Front, held: &Mutex<Held>) -> bool {
    let Some((code, holder)) = held.lock().unwrap().to_redeem.pop() else {
        return false;
    };
    let body =
        json!({"customer": {"external_id": holder}, "basket": {"total": 5000, "currency": "EUR"}});
    let path = format!("/v1/coupons/{code}/redeem");
    if let Some((201, r)) = front.send(Method::POST, &path, body, None).await {
        held.lock()
            .unwrap()
            .redemptions
            .push(r["id"].as_i64().unwrap());
    }
    true
}

async fn reverse(front: &Front, held: &Mutex<Held>) -> bool {
    let Some(id) = held.lock().unwrap().redemptions.pop() else {
        return false;
    };
    let path = format!("/v1/redemptions/{id}/reverse");
    front.send(Method::POST, &path, json!({}), None).await;
    true
}

/// The replica to kill: one running a job if there is one (its lease names its process), so
/// a job must be resumed elsewhere; else replica 1. True when it runs a job.
async fn victim(db: &DatabaseConnection, replicas: &[Replica]) -> (usize, bool) {
    let sql = "SELECT lease_owner FROM imports WHERE state = 'running' AND lease_owner IS NOT NULL";
    let owners: Vec<String> = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect();
    let runs_job = |r: &Replica| {
        r.pid()
            .is_some_and(|pid| owners.iter().any(|o| o.contains(&format!("-{pid}-"))))
    };
    replicas
        .iter()
        .position(runs_job)
        .map_or((1, false), |i| (i, true))
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Creates the pool, the market product, the customers and their points through replica 0.
async fn set_up(front: &Front) -> (i64, i64) {
    let codes: Vec<String> = (0..300).map(|i| format!("ISS{i:04}")).collect();
    let (status, pool) = front
        .send(
            Method::POST,
            "/v1/pools",
            json!({"name": "Issue", "source": "uploaded",
        "discount_type": "amount", "value": 500, "currency": "EUR",
        "issuance": {"max_per_customer": PER_CUSTOMER, "max_total": MAX_TOTAL}}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{pool}");
    let pool = pool["id"].as_i64().unwrap();
    let (status, _) = front
        .send(
            Method::POST,
            &format!("/v1/pools/{pool}/codes"),
            json!({"codes": codes}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 201);
    let market: Vec<String> = (0..200).map(|i| format!("MKT{i:04}")).collect();
    let (status, product) = front.send(Method::POST, "/v1/market/products", json!({"name": "Voucher",
        "price_points": 10, "visible": true, "codes": market, "discount_type": "amount", "value": 1000,
        "currency": "EUR"}), None).await.unwrap();
    assert_eq!(status, 201, "{product}");
    for c in 0..CUSTOMERS {
        front
            .send(Method::PUT, &format!("/v1/customers/c{c}"), json!({}), None)
            .await;
        let credit = json!({"delta": 50, "reason": "chaos", "reference": "seed"});
        front
            .send(
                Method::POST,
                &format!("/v1/customers/c{c}/points"),
                credit,
                Some(format!("seed-{c}")),
            )
            .await;
    }
    (pool, product["id"].as_i64().unwrap())
}

/// Starts customer-list issue jobs (every customer named 40 times; the pool gives each at most
/// 5), one through each replica, long enough that one is likely running on the replica that
/// gets killed.
async fn start_jobs(front: &Front) -> usize {
    let codes: Vec<String> = (0..400).map(|i| format!("JOB{i:04}")).collect();
    let (_, pool) = front.send(Method::POST, "/v1/pools", json!({"name": "Jobs", "source": "uploaded",
        "discount_type": "amount", "value": 100, "currency": "EUR", "issuance": {"max_per_customer": 5}}), None).await.unwrap();
    let pool = pool["id"].as_i64().unwrap();
    front
        .send(
            Method::POST,
            &format!("/v1/pools/{pool}/codes"),
            json!({"codes": codes}),
            None,
        )
        .await;
    let csv: String = std::iter::once("external_id".to_string())
        .chain((0..CUSTOMERS * 40).map(|c| format!("c{}", c % CUSTOMERS)))
        .collect::<Vec<_>>()
        .join("\n");
    let mut started = 0;
    for port in &front.ports {
        let resp = front
            .client
            .post(format!(
                "http://127.0.0.1:{port}/v1/pools/{pool}/issue/batch"
            ))
            .bearer_auth(&front.key)
            .header("content-type", "text/csv")
            .body(csv.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        started += 1;
    }
    started
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_keep_every_invariant_while_one_is_killed() {
    let Some(url) = common::postgres_database().await else {
        return;
    };
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
    let mut replicas: Vec<Replica> = ports.iter().map(|&p| Replica::start(&url, p)).collect();
    for &port in &ports {
        wait_ready(&client, port).await;
    }
    let db = Database::connect(&url).await.unwrap();
    let (_, key) = coupond::store::orgs::create(&db, "Chaos".into(), "UTC".into())
        .await
        .unwrap();
    let front = |key: &str| Front {
        client: client.clone(),
        ports: ports.clone(),
        next: AtomicUsize::new(0),
        key: key.to_string(),
        tally: Tally::default(),
        outage: AtomicBool::new(false),
    };
    let pools = set_up(&front(&key)).await;
    let front = Arc::new(front(&key));

    let started = Instant::now();
    let held = Arc::new(Mutex::new(Held::default()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            tokio::spawn(client_loop(
                front.clone(),
                held.clone(),
                pools,
                n,
                started + RUN,
            ))
        })
        .collect();
    tokio::time::sleep(KILL_AT - Duration::from_millis(300)).await;
    let jobs = start_jobs(&front).await;
    tokio::time::sleep(KILL_AT.saturating_sub(started.elapsed())).await;
    front.outage.store(true, Ordering::Relaxed);
    let (victim, held_job) = victim(&db, &replicas).await;
    replicas[victim].kill();
    tokio::time::sleep(RESTART_AT - KILL_AT).await;
    replicas[victim] = Replica::start(&url, ports[victim]);
    wait_ready(&client, ports[victim]).await;
    front.outage.store(false, Ordering::Relaxed);
    let back_after = started.elapsed();
    for c in clients {
        c.await.unwrap();
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&db, "SELECT count(*) FROM imports WHERE state = 'running'").await > 0 {
        assert!(Instant::now() < deadline, "a job was left running");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = &front.tally;
    let load = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    eprintln!(
        "{REPLICAS} replicas, {CLIENTS} clients, {:?}: {} requests ({} ok, {} refused by rules, {} 5xx, \
        {} transport errors, {} moved to another replica); replica {victim} killed at {KILL_AT:?} (running a job: {held_job}), serving again at \
        {back_after:?}; errors while it was down: {}",
        RUN,
        load(&t.requests),
        load(&t.ok),
        load(&t.refused),
        load(&t.server_errors),
        load(&t.transport_errors),
        load(&t.failovers),
        load(&t.errors_during_outage)
    );

    let redeemed = CouponStatus::Redeemed.to_value();
    let (pool, _) = pools;
    let checks: Vec<(&str, String, i64)> = vec![
        ("codes held twice", "SELECT count(*) FROM (SELECT coupon_id FROM coupon_events WHERE kind = 'coupon_issue' \
            GROUP BY coupon_id HAVING count(*) > 1) x".into(), 0),
        ("customers over the per-customer limit", format!("SELECT count(*) FROM (SELECT customer_id FROM coupons \
            WHERE pool_id = {pool} AND customer_id IS NOT NULL GROUP BY customer_id HAVING count(*) > {PER_CUSTOMER}) x"), 0),
        ("issues over the pool's total", format!("SELECT GREATEST(count(*) - {MAX_TOTAL}, 0) FROM coupons \
            WHERE pool_id = {pool} AND customer_id IS NOT NULL"), 0),
        ("balances that are not their ledger's sum", "SELECT count(*) FROM points_balances b WHERE b.balance < 0 \
            OR b.balance <> (SELECT COALESCE(SUM(delta), 0) FROM points_ledger l WHERE l.customer_id = b.customer_id)".into(), 0),
        ("held coupons without one issue event", "SELECT (SELECT count(*) FROM coupons WHERE customer_id IS NOT NULL) \
            - (SELECT count(*) FROM coupon_events WHERE kind = 'coupon_issue')".into(), 0),
        ("redemptions without a redeem event", "SELECT (SELECT count(*) FROM redemptions) \
            - (SELECT count(*) FROM coupon_events WHERE kind = 'coupon_redeem')".into(), 0),
        ("reversals without an unredeem event", "SELECT (SELECT count(*) FROM redemptions WHERE NOT active) \
            - (SELECT count(*) FROM coupon_events WHERE kind = 'coupon_unredeem')".into(), 0),
        ("redeemed coupons without an active redemption", format!("SELECT (SELECT count(*) FROM coupons WHERE status = {redeemed}) \
            - (SELECT count(DISTINCT coupon_id) FROM redemptions WHERE active)"), 0),
        ("exchanges not charged", "SELECT (SELECT count(*) FROM market_exchanges) \
            - (SELECT count(*) FROM points_ledger WHERE delta < 0)".into(), 0),
        ("jobs not done", "SELECT count(*) FROM imports WHERE state <> 'done'".into(), 0),
    ];
    let mut failed = Vec::new();
    for (what, sql, want) in &checks {
        let got = count(&db, sql).await;
        eprintln!("  {what}: {got}");
        if got != *want {
            failed.push(*what);
        }
    }
    let figures = [
        (
            "coupons held",
            "SELECT count(*) FROM coupons WHERE customer_id IS NOT NULL",
        ),
        ("redemptions", "SELECT count(*) FROM redemptions"),
        (
            "reversed",
            "SELECT count(*) FROM redemptions WHERE NOT active",
        ),
        ("market exchanges", "SELECT count(*) FROM market_exchanges"),
        (
            "job attempts beyond the first",
            "SELECT COALESCE(SUM(attempts - 1), 0)::bigint FROM imports",
        ),
    ];
    for (what, sql) in figures {
        eprintln!("  {what}: {}", count(&db, sql).await);
    }
    let held_now: HashMap<String, String> = {
        let sql =
            "SELECT c.code, u.external_id FROM coupons c JOIN customers u ON u.id = c.customer_id";
        db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get_by_index(0).unwrap(),
                    r.try_get_by_index(1).unwrap(),
                )
            })
            .collect()
    };
    let issued = held.lock().unwrap().issued.clone();
    let lost = issued
        .iter()
        .filter(|(code, who)| held_now.get(code) != Some(who))
        .count();
    eprintln!(
        "  answered issues no longer held: {lost} of {}; {jobs} issue jobs",
        issued.len()
    );
    assert!(
        failed.is_empty() && lost == 0,
        "broken: {failed:?}, {lost} issues lost"
    );
    assert!(load(&t.ok) > 0);
}
