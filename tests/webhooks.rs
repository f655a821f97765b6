//! Webhooks out: subscriptions, signed delivery from the outbox, retries with backoff, several
//! workers at once, and the events the issue path queues.

mod common;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeDelta, Utc};
use common::{
    Backend, TestApp, expect_problem,
    fixtures::{customer, issue_ok, outbox, pool, uploaded_pool},
    json,
    receiver::{Receiver, Reply},
};
use coupond::{
    domain::signature,
    service::webhooks::{Concurrency, Round, Worker},
};
use futures_util::{StreamExt, stream};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn subscribe(app: &TestApp, url: &str, events: &[&str]) -> Value {
    let resp = app
        .post(
            "/v1/webhooks",
            json!({"url": url, "events": events, "secret": SECRET}),
        )
        .await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 201, "{body}");
    body
}

fn round(delivered: usize, failed: usize) -> Round {
    Round { delivered, failed }
}

/// Asserts the delivery is signed with `SECRET` and returns its JSON body.
fn verified(request: &common::receiver::Received) -> Value {
    let timestamp: i64 = request.header("webhook-timestamp").parse().unwrap();
    signature::verify(
        SECRET,
        request.header("webhook-id"),
        timestamp,
        &request.body,
        request.header("webhook-signature"),
        Utc::now().timestamp(),
    )
    .expect("valid signature");
    request.json()
}

both_databases! {
    async fn subscriptions_are_validated_listed_without_secrets_and_deleted(app) {
        let created = json(app.post("/v1/webhooks", json!({"url": "https://example.com/h", "events": ["coupon.issued"]})).await).await;
        assert!(created["secret"].as_str().unwrap().starts_with("whsec_"), "{created}");
        let list = json(app.get("/v1/webhooks").await).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert!(list["items"][0].get("secret").is_none());
        assert_eq!(list["items"][0]["events"], json!(["coupon.issued"]));

        let bad_url = app.post("/v1/webhooks", json!({"url": "ftp://x", "events": ["coupon.issued"]})).await;
        assert_eq!(expect_problem(bad_url, 422, "validation_failed").await["field"], "url");
        let no_events = app.post("/v1/webhooks", json!({"url": "https://example.com", "events": []})).await;
        assert_eq!(expect_problem(no_events, 422, "validation_failed").await["field"], "events");
        let unknown = app.post("/v1/webhooks", json!({"url": "https://example.com", "events": ["coupon.eaten"]})).await;
        expect_problem(unknown, 400, "malformed_body").await;
        let bad_secret = app.post("/v1/webhooks", json!({"url": "https://example.com", "events": ["coupon.issued"], "secret": "whsec_!!!!!!!!!!!!!!!!"})).await;
        assert_eq!(expect_problem(bad_secret, 422, "validation_failed").await["field"], "secret");

        let (_, other) = app.other_org().await;
        let id = created["id"].as_i64().unwrap();
        let theirs = app.request(reqwest::Method::DELETE, &format!("/v1/webhooks/{id}"), Some(&other)).send().await.unwrap();
        expect_problem(theirs, 404, "not_found").await;
        assert_eq!(app.delete(&format!("/v1/webhooks/{id}")).await.status(), 204);
        expect_problem(app.delete(&format!("/v1/webhooks/{id}")).await, 404, "not_found").await;
    }

    async fn an_issued_coupon_reaches_a_receiver_that_was_down_exactly_once(app) {
        let receiver = Receiver::start(|n, _| Reply::status(if n == 0 { 503 } else { 204 })).await;
        subscribe(&app, &receiver.url, &["coupon.issued"]).await;
        let elsewhere = Receiver::start(|_, _| Reply::status(200)).await;
        subscribe(&app, &elsewhere.url, &["coupon.redeemed"]).await;
        let ana_id = customer(&app, "ana", json!({})).await;
        let p = uploaded_pool(&app, 1, json!({})).await;
        let coupon = issue_ok(&app, p, "ana").await;

        let worker = Worker::new(app.db.clone());
        let now = Utc::now();
        assert_eq!(worker.run_once(now).await.unwrap(), round(0, 1));
        assert_eq!(worker.run_once(now).await.unwrap(), round(0, 0), "not due again before its backoff");
        let row = &outbox(&app, "webhook").await[0];
        assert_eq!(row.attempts, 1);
        assert!(row.last_error.as_deref().unwrap().contains("503"), "{row:?}");
        assert_eq!(worker.run_once(now + TimeDelta::seconds(11)).await.unwrap(), round(1, 0));
        assert_eq!(worker.run_once(now + TimeDelta::hours(48)).await.unwrap(), round(0, 0));

        let got = receiver.received();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"), "a retry keeps its id");
        let event = verified(&got[1]);
        assert_eq!(event["type"], "coupon.issued");
        assert_eq!(event["data"]["coupon"]["code"], coupon["code"]);
        assert_eq!(event["data"]["coupon"]["id"], coupon["id"]);
        assert_eq!(event["data"]["coupon"]["pool_id"], json!(p));
        assert_eq!(event["data"]["coupon"]["balance"], Value::Null);
        assert_eq!(event["data"]["coupon"]["status"], "issued");
        let at = |v: &Value| v.as_str().and_then(|s| s.parse::<DateTime<Utc>>().ok());
        assert_eq!(at(&event["data"]["coupon"]["issued_at"]), at(&coupon["issued_at"]));
        assert!(at(&coupon["issued_at"]).is_some(), "{coupon}");
        assert_eq!(event["data"]["customer"]["external_id"], "ana");
        assert_eq!(event["data"]["customer"]["id"], ana_id);
        assert!(elsewhere.received().is_empty(), "not subscribed to coupon.issued");
        let row = &outbox(&app, "webhook").await[0];
        assert!(row.sent_at.is_some() && row.last_error.is_none(), "{row:?}");
    }

    async fn an_issued_gift_card_is_announced_with_its_balance(app) {
        let receiver = Receiver::start(|_, _| Reply::status(204)).await;
        subscribe(&app, &receiver.url, &["coupon.issued"]).await;
        let ana_id = customer(&app, "ana", json!({})).await;
        let p = pool(&app, json!({"name": "G", "source": "uploaded", "discount_type": "gift_card",
            "value": 10000, "currency": "EUR"})).await;
        let uploaded = app.post(&format!("/v1/pools/{p}/codes"), json!({"codes": ["G-1"]})).await;
        assert_eq!(json(uploaded).await["accepted"], 1);
        let coupon = issue_ok(&app, p, "ana").await;
        assert_eq!(coupon["balance"], 10000, "{coupon}");

        let worker = Worker::new(app.db.clone());
        assert_eq!(worker.run_once(Utc::now()).await.unwrap(), round(1, 0));
        let event = verified(&receiver.received()[0]);
        assert_eq!(event["data"]["coupon"]["balance"], 10000, "{event}");
        assert_eq!(event["data"]["coupon"]["code"], "G-1");
        assert_eq!(event["data"]["coupon"]["id"], coupon["id"]);
        assert_eq!(event["data"]["customer"]["id"], ana_id);
    }

    async fn redemptions_reversals_invalidations_and_transfers_are_announced(app) {
        let receiver = Receiver::start(|_, _| Reply::status(204)).await;
        subscribe(&app, &receiver.url, &["coupon.redeemed", "coupon.reversed", "coupon.invalidated", "coupon.transferred"]).await;
        customer(&app, "ana", json!({})).await;
        customer(&app, "bob", json!({})).await;
        let p = uploaded_pool(&app, 2, json!({})).await;
        let first = issue_ok(&app, p, "ana").await["code"].as_str().unwrap().to_string();
        let second = issue_ok(&app, p, "ana").await["code"].as_str().unwrap().to_string();
        let basket = json!({"customer": {"external_id": "ana"}, "basket": {"total": 10000, "currency": "EUR", "lines": []}});
        let redeemed = json(app.post(&format!("/v1/coupons/{first}/redeem"), basket).await).await;
        let id = redeemed["id"].as_i64().expect("redemption id");
        assert_eq!(app.post(&format!("/v1/redemptions/{id}/reverse"), json!({})).await.status(), 200);
        assert_eq!(app.post(&format!("/v1/coupons/{first}/transfer"), json!({"customer": {"external_id": "bob"}})).await.status(), 200);
        assert_eq!(app.post(&format!("/v1/coupons/{second}/invalidate"), json!({})).await.status(), 200);

        let worker = Worker::new(app.db.clone());
        assert_eq!(worker.run_once(Utc::now()).await.unwrap(), round(4, 0));
        let events: Vec<(String, String)> = receiver
            .received()
            .iter()
            .map(verified)
            .map(|e| (e["type"].as_str().unwrap().to_string(), e["data"]["coupon"]["code"].as_str().unwrap().to_string()))
            .collect();
        let expected: HashSet<(String, String)> = [
            ("coupon.redeemed", &first), ("coupon.reversed", &first),
            ("coupon.transferred", &first), ("coupon.invalidated", &second),
        ]
        .into_iter()
        .map(|(t, c)| (t.to_string(), c.to_string()))
        .collect();
        assert_eq!(events.into_iter().collect::<HashSet<_>>(), expected);
    }

    async fn deliveries_give_up_after_their_last_attempt(app) {
        let receiver = Receiver::start(|_, _| Reply::status(500)).await;
        subscribe(&app, &receiver.url, &["coupon.issued"]).await;
        customer(&app, "ana", json!({})).await;
        let p = uploaded_pool(&app, 1, json!({})).await;
        issue_ok(&app, p, "ana").await;
        let worker = Worker::new(app.db.clone());
        let mut at = Utc::now();
        for _ in 0..coupond::domain::webhook::MAX_ATTEMPTS {
            assert_eq!(worker.run_once(at).await.unwrap(), round(0, 1));
            at += TimeDelta::hours(7);
        }
        assert_eq!(worker.run_once(at).await.unwrap(), round(0, 0));
        let row = &outbox(&app, "webhook").await[0];
        let gave_up = format!("gave up after {} attempts", coupond::domain::webhook::MAX_ATTEMPTS);
        assert!(row.last_error.as_deref().unwrap().starts_with(&gave_up), "{row:?}");
    }

    async fn a_deleted_subscription_gets_nothing_more(app) {
        let receiver = Receiver::start(|_, _| Reply::status(200)).await;
        let sub = subscribe(&app, &receiver.url, &["coupon.issued"]).await;
        customer(&app, "ana", json!({})).await;
        let p = uploaded_pool(&app, 1, json!({})).await;
        issue_ok(&app, p, "ana").await;
        app.delete(&format!("/v1/webhooks/{}", sub["id"])).await;
        let worker = Worker::new(app.db.clone());
        assert_eq!(worker.run_once(Utc::now()).await.unwrap(), round(0, 1));
        assert_eq!(worker.run_once(Utc::now() + TimeDelta::days(2)).await.unwrap(), round(0, 0));
        assert!(receiver.received().is_empty());
    }

    async fn several_workers_deliver_each_event_once(app) {
        let receiver = Receiver::start(|_, _| Reply::status(200)).await;
        subscribe(&app, &receiver.url, &["coupon.issued"]).await;
        let p = uploaded_pool(&app, 30, json!({})).await;
        for i in 0..30 {
            customer(&app, &format!("c{i}"), json!({})).await;
            issue_ok(&app, p, &format!("c{i}")).await;
        }
        let workers: Vec<Worker> = (0..4).map(|_| Worker::new(app.db.clone())).collect();
        let now = Utc::now();
        let rounds = futures_util::future::join_all(workers.iter().map(|w| w.run_once(now))).await;
        let delivered: usize = rounds.into_iter().map(|r| r.unwrap().delivered).sum();
        assert_eq!(delivered, 30);
        let ids: HashSet<String> = receiver.received().iter().map(|r| r.header("webhook-id").to_string()).collect();
        assert_eq!((receiver.received().len(), ids.len()), (30, 30));
    }

    async fn batch_issues_announce_every_coupon_and_the_limit_crossing(app) {
        let receiver = Receiver::start(|_, _| Reply::status(200)).await;
        subscribe(&app, &receiver.url, &["coupon.issued", "pool.issual_limit_near"]).await;
        let p = uploaded_pool(&app, 6, json!({"max_total": 5, "notify_remaining_at": 3})).await;
        let mut csv = String::from("external_id\n");
        for i in 0..4 {
            customer(&app, &format!("c{i}"), json!({})).await;
            csv.push_str(&format!("c{i}\n"));
        }
        let resp = app.request(reqwest::Method::POST, &format!("/v1/pools/{p}/issue/batch"), Some(&app.key))
            .header("content-type", "text/csv").body(csv).send().await.unwrap();
        assert_eq!(resp.status(), 202);
        let job = app.wait_for_job(json(resp).await["id"].as_i64().unwrap()).await;
        assert_eq!((job["state"].as_str(), job["accepted"].as_i64()), (Some("done"), Some(4)), "{job}");
        let worker = Worker::new(app.db.clone());
        assert_eq!(worker.run_once(Utc::now()).await.unwrap(), round(5, 0));
        let events: Vec<Value> = receiver.received().iter().map(verified).collect();
        let issued: HashSet<String> = events.iter().filter(|e| e["type"] == "coupon.issued")
            .map(|e| e["data"]["customer"]["external_id"].as_str().unwrap().to_string()).collect();
        assert_eq!(issued.len(), 4, "{events:?}");
        let near: Vec<&Value> = events.iter().filter(|e| e["type"] == "pool.issual_limit_near").collect();
        assert_eq!(near.len(), 1);
        assert_eq!((near[0]["data"]["issued"].as_i64(), near[0]["data"]["remaining"].as_i64()), (Some(2), Some(3)));
    }

    async fn nearing_the_issual_limit_notifies_subscribers_and_pocs_once(app) {
        let resp = app.patch("/v1/org", json!({"poc_emails": ["ops@example.com"]})).await;
        assert_eq!(resp.status(), 200);
        let receiver = Receiver::start(|_, _| Reply::status(200)).await;
        subscribe(&app, &receiver.url, &["pool.issual_limit_near"]).await;
        let p = uploaded_pool(&app, 4, json!({"max_total": 4, "notify_remaining_at": 2})).await;
        for who in ["a", "b", "c", "d"] {
            customer(&app, who, json!({})).await;
            issue_ok(&app, p, who).await;
        }
        let worker = Worker::new(app.db.clone());
        assert_eq!(worker.run_once(Utc::now()).await.unwrap(), round(1, 0));
        let event = verified(&receiver.received()[0]);
        assert_eq!(event["type"], "pool.issual_limit_near");
        assert_eq!(event["data"], json!({"pool_id": p, "pool_name": "P", "max_total": 4, "issued": 2, "remaining": 2}));
        let emails = outbox(&app, "email").await;
        assert_eq!(emails.len(), 1);
        assert_eq!(emails[0].payload["to"], json!(["ops@example.com"]));
        assert_eq!(emails[0].payload["template"], "pool_issual_limit_near");
    }

    async fn a_slow_endpoint_holds_back_no_other_and_gets_at_most_its_cap_at_once(app) {
        let slow = Receiver::start(|_, _| Reply::status(200).after(Duration::from_secs(2))).await;
        let fast = Receiver::start(|_, _| Reply::status(200)).await;
        subscribe(&app, &slow.url, &["coupon.issued"]).await;
        subscribe(&app, &fast.url, &["coupon.issued"]).await;
        let p = uploaded_pool(&app, 10, json!({})).await;
        for i in 0..10 {
            customer(&app, &format!("c{i}"), json!({})).await;
            issue_ok(&app, p, &format!("c{i}")).await;
        }
        // A cap of 2 queues 8 of the slow endpoint's 10 rows and hands 2 back for later.
        let worker = Worker::bounded(app.db.clone(), Concurrency { per_endpoint: 2, overall: 16 });
        let cancel = CancellationToken::new();
        let running = tokio::spawn(worker.run(Duration::from_millis(50), cancel.clone()));
        let started = Instant::now();
        while fast.received().len() < 10 {
            assert!(started.elapsed() < Duration::from_secs(5), "the fast endpoint waited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "fast deliveries waited for a slow answer");
        assert_eq!(slow.received().len(), 2, "only the slow endpoint's first two are in flight");
        let sent = |rows: Vec<coupond::store::entity::outbox::Model>| rows.iter().filter(|r| r.sent_at.is_some()).count();
        while sent(outbox(&app, "webhook").await) < 20 {
            assert!(started.elapsed() < Duration::from_secs(20), "the slow endpoint never caught up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cancel.cancel();
        running.await.unwrap();
        assert_eq!((slow.received().len(), slow.most_at_once()), (10, 2));
        assert!(fast.most_at_once() <= 2);
        let attempts: Vec<i32> = outbox(&app, "webhook").await.iter().map(|r| r.attempts).collect();
        assert_eq!(attempts, vec![1; 20], "rows handed back are not counted as attempts");
    }
}

/// Three replicas, each delivering on its own every 20 ms, share one database and one slow
/// receiver (rounds overlap and leases matter): every message arrives once, in one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_deliver_every_message_exactly_once() {
    let Some(app) =
        TestApp::spawn_configured(Backend::Postgres, |s| s.webhook_interval_ms = 20).await
    else {
        return;
    };
    let receiver = Receiver::start(|n, _| {
        Reply::status(200).after(Duration::from_millis(20 + (n % 5) as u64 * 20))
    })
    .await;
    subscribe(&app, &receiver.url, &["coupon.issued"]).await;
    let mut bases = vec![app.base.clone()];
    for _ in 0..2 {
        bases.push(
            app.another_configured(|s| s.webhook_interval_ms = 20)
                .await
                .base,
        );
    }
    const N: usize = 240;
    let p = uploaded_pool(&app, N, json!({})).await;
    stream::iter(0..N)
        .for_each_concurrent(8, |i| {
            let (app, base) = (&app, bases[i % bases.len()].clone());
            async move {
                customer(app, &format!("c{i}"), json!({})).await;
                let resp = app
                    .client
                    .post(format!("{base}/v1/pools/{p}/issue"))
                    .bearer_auth(&app.key)
                    .json(&json!({"customer": {"external_id": format!("c{i}")}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
            }
        })
        .await;

    let deadline = Instant::now() + Duration::from_secs(60);
    while outbox(&app, "webhook")
        .await
        .iter()
        .any(|r| r.sent_at.is_none())
    {
        assert!(Instant::now() < deadline, "deliveries did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.received();
    let ids: HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    let retried = outbox(&app, "webhook")
        .await
        .iter()
        .filter(|r| r.attempts != 1)
        .count();
    eprintln!(
        "{N} messages: {} received, {} distinct, {retried} rows attempted more than once",
        got.len(),
        ids.len()
    );
    assert_eq!((got.len(), ids.len(), retried), (N, N, 0));
}

/// A delivery whose outcome cannot be recorded does not abandon the round's other deliveries,
/// which are already on the wire: before, they were dropped unrecorded and sent again once
/// their lease ran out. (A trigger makes recording the first message fail.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_record_does_not_abandon_the_deliveries_in_flight() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let receiver = Receiver::start(|_, r| {
        let slow = r.json()["data"]["customer"]["external_id"] != "c0";
        Reply::status(200).after(Duration::from_millis(if slow { 300 } else { 0 }))
    })
    .await;
    subscribe(&app, &receiver.url, &["coupon.issued"]).await;
    let p = uploaded_pool(&app, 9, json!({})).await;
    for i in 0..9 {
        customer(&app, &format!("c{i}"), json!({})).await;
        issue_ok(&app, p, &format!("c{i}")).await;
    }
    let first_row = outbox(&app, "webhook").await[0].id;
    app.db.execute_unprepared(&format!(
        "CREATE FUNCTION refuse_record() RETURNS trigger AS $$ BEGIN \
         IF NEW.id = {first_row} AND NEW.sent_at IS NOT NULL THEN RAISE EXCEPTION 'disk full'; END IF; \
         RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse_record BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_record();"
    )).await.unwrap();
    let worker = Worker::new(app.db.clone());
    assert!(
        worker.run_once(Utc::now()).await.is_err(),
        "the failed record is reported"
    );
    let rows = outbox(&app, "webhook").await;
    let unsent: Vec<i64> = rows
        .iter()
        .filter(|r| r.sent_at.is_none())
        .map(|r| r.id)
        .collect();
    assert_eq!((rows.len(), unsent), (9, vec![first_row]));
    assert_eq!(receiver.received().len(), 9);
}
