//! Remote coupon sources in both directions: coupond answering Antavo's remote-code callback,
//! and remote pools fetching their codes from someone else's endpoint.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::{
    TestApp, expect_problem,
    fixtures::{customer, events, outbox, pool, uploaded_pool},
    json,
    receiver::{Receiver, Reply},
};
use coupond::domain::signature;
use futures_util::future::join_all;
use reqwest::{Method, Response};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn remote_key(app: &TestApp, pool_id: i64, extra: Value) -> String {
    let mut body = json!({"name": "antavo", "scopes": ["remote"], "pool_id": pool_id});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let resp = app.post("/v1/api-keys", body).await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 201, "{body}");
    body["api_key"].as_str().unwrap().to_string()
}

/// POSTs a raw body to the callback, without a bearer key, as a platform does.
async fn call(app: &TestApp, body: &str) -> Response {
    app.request(Method::POST, "/v1/remote/coupon-code", None)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn code(app: &TestApp, body: &str) -> String {
    let resp = call(app, body).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let value: Value = serde_json::from_str(&text).unwrap();
    value["code"].as_str().unwrap().to_string()
}

/// Asserts a refusal in the callback's own shape and returns it.
async fn refusal(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = json(resp).await;
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    body
}

fn antavo(key: &str, customer: &str) -> String {
    json!({"api_key": key, "value": "5", "customer": customer, "type": "amount"}).to_string()
}

/// Moves every coupon's issue time back, as if they were issued `ago`.
async fn age_coupons(app: &TestApp, ago: TimeDelta) {
    let at = Utc::now() - ago;
    let backend = app.db.get_database_backend();
    let placeholder = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    // The callback's record of its answers ages with them: the retry window is judged on it.
    for sql in [
        "UPDATE coupons SET issued_at = {} WHERE issued_at IS NOT NULL",
        "UPDATE idempotency_keys SET created_at = {}",
    ] {
        app.db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql.replace("{}", placeholder),
                [at.into()],
            ))
            .await
            .unwrap();
    }
}

async fn stats(app: &TestApp, pool_id: i64) -> Value {
    json(app.get(&format!("/v1/pools/{pool_id}/stats")).await).await
}

/// A remote pool fetching from `url`, signed with SECRET.
async fn remote_pool(app: &TestApp, url: &str, extra: Value) -> i64 {
    let mut body = json!({"name": "Remote", "source": "remote", "discount_type": "percentage",
                          "value": 1250, "expiry": {"mode": "days_from_issual", "days": 7},
                          "remote": {"url": url, "secret": SECRET, "api_key": "their-key",
                                     "timeout_ms": 300, "retries": 2}});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    pool(app, body).await
}

async fn issue(app: &TestApp, pool_id: i64, who: &str) -> Response {
    app.post(
        &format!("/v1/pools/{pool_id}/issue"),
        json!({"customer": {"external_id": who}}),
    )
    .await
}

both_databases! {
    async fn remote_keys_are_bound_to_one_pool_of_the_org(app) {
        let p = uploaded_pool(&app, 1, json!({})).await;
        let no_pool = app.post("/v1/api-keys", json!({"name": "r", "scopes": ["remote"]})).await;
        assert_eq!(expect_problem(no_pool, 422, "validation_failed").await["field"], "pool_id");
        let (_, other) = app.other_org().await;
        let theirs = app.request(Method::POST, "/v1/api-keys", Some(&other))
            .json(&json!({"name": "r", "scopes": ["remote"], "pool_id": p})).send().await.unwrap();
        assert_eq!(expect_problem(theirs, 422, "validation_failed").await["field"], "pool_id");
        let not_remote = app.post("/v1/api-keys", json!({"name": "r", "scopes": ["pos"], "pool_id": p})).await;
        assert_eq!(expect_problem(not_remote, 422, "validation_failed").await["field"], "pool_id");
        let bad_secret = app.post("/v1/api-keys", json!({"name": "r", "scopes": ["workflow"], "signing_secret": "whsec_%%%%%%%%%%%%%%%%"})).await;
        assert_eq!(expect_problem(bad_secret, 422, "validation_failed").await["field"], "signing_secret");
        remote_key(&app, p, json!({})).await;
    }

    async fn the_callback_answers_antavos_exact_body_and_creates_the_customer(app) {
        let p = uploaded_pool(&app, 3, json!({})).await;
        let key = remote_key(&app, p, json!({})).await;
        expect_problem(app.get("/v1/customers/53626328374843843").await, 404, "customer_not_found").await;
        let first = code(&app, &antavo(&key, "53626328374843843")).await;
        assert!(first.starts_with(&format!("P{p}C")), "{first}");
        let created = json(app.get("/v1/customers/53626328374843843").await).await;
        assert_eq!(created["external_id"], "53626328374843843");
        let coupons = json(app.get("/v1/customers/53626328374843843/coupons").await).await;
        assert_eq!(coupons["items"][0]["code"], first.as_str());

        // The identical request inside the window is a retry: the same code.
        assert_eq!(code(&app, &antavo(&key, "53626328374843843")).await, first);
        assert_eq!(stats(&app, p).await["issued"], 1);
        assert_eq!(events(&app, "coupon_issue").await, 1);

        // Numbers instead of strings, extra fields, no content type: the same customer, but
        // another request (it differs in a field), so another code.
        let numbers = format!(r#"{{"api_key": "{key}", "customer": 53626328374843843, "value": 500, "campaign": {{"id": 9}}}}"#);
        let resp = app.request(Method::POST, "/v1/remote/coupon-code", None).body(numbers.clone()).send().await.unwrap();
        let second = json(resp).await["code"].as_str().unwrap().to_string();
        assert_ne!(second, first);
        assert_eq!(stats(&app, p).await["issued"], 2);

        // Outside the window even the identical request is a new coupon.
        age_coupons(&app, TimeDelta::seconds(61)).await;
        let third = code(&app, &numbers).await;
        assert_ne!(third, second);
        assert_eq!(stats(&app, p).await["issued"], 3);
    }

    async fn wrong_keys_bad_bodies_and_refusals_have_the_callbacks_shape(app) {
        let p = uploaded_pool(&app, 1, json!({})).await;
        let key = remote_key(&app, p, json!({})).await;
        let workflow = app.key_with(&["workflow"]).await;
        for wrong in ["cpd_nope", workflow.as_str(), app.key.as_str()] {
            let body = refusal(call(&app, &antavo(wrong, "c1")).await, 401, "unauthorized").await;
            assert_eq!(body["error"], "api_key is not a valid remote key");
        }
        refusal(call(&app, "not json").await, 400, "invalid_body").await;
        refusal(call(&app, &json!({"api_key": key}).to_string()).await, 400, "invalid_body").await;
        refusal(call(&app, &json!({"api_key": key, "customer": true}).to_string()).await, 400, "invalid_body").await;

        code(&app, &antavo(&key, "c1")).await;
        let refused = refusal(call(&app, &antavo(&key, "c2")).await, 422, "pool_exhausted").await;
        assert!(refused.get("code").is_some_and(|c| c != ""), "never an empty code");

        app.patch(&format!("/v1/pools/{p}"), json!({"state": "archived"})).await;
        refusal(call(&app, &antavo(&key, "c3")).await, 422, "pool_inactive").await;
        app.delete("/v1/api-keys/2").await;
        refusal(call(&app, &antavo(&key, "c1")).await, 401, "unauthorized").await;
    }

    async fn a_signing_remote_key_needs_a_valid_signature(app) {
        let p = uploaded_pool(&app, 2, json!({})).await;
        let key = remote_key(&app, p, json!({"signing_secret": SECRET})).await;
        let body = antavo(&key, "c1");
        refusal(call(&app, &body).await, 401, "signature_required").await;
        let ts = Utc::now().timestamp();
        let send = |signature: String| {
            app.request(Method::POST, "/v1/remote/coupon-code", None)
                .header("webhook-id", "msg_1")
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", signature)
                .body(body.clone())
                .send()
        };
        let forged = signature::sign("YW5vdGhlci1zZWNyZXQtZW50aXJlbHk=", "msg_1", ts, body.as_bytes()).unwrap();
        refusal(send(forged).await.unwrap(), 401, "invalid_signature").await;
        let signed = signature::sign(SECRET, "msg_1", ts, body.as_bytes()).unwrap();
        assert_eq!(send(signed).await.unwrap().status(), 200);
    }

    async fn a_customer_the_callback_creates_is_announced_with_its_id(app) {
        let receiver = Receiver::start(|_, _| Reply::status(204)).await;
        let subscribed = app.post("/v1/webhooks", json!({"url": receiver.url, "events": ["coupon.issued"]})).await;
        assert_eq!(subscribed.status(), 201);
        let p = uploaded_pool(&app, 3, json!({})).await;
        let key = remote_key(&app, p, json!({})).await;
        let first = code(&app, &antavo(&key, "new-in-the-callback")).await;
        let created = json(app.get("/v1/customers/new-in-the-callback").await).await;
        let rows = outbox(&app, "webhook").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        let body = &rows[0].payload["body"];
        assert_eq!(body["data"]["coupon"]["code"], first.as_str());
        assert_eq!(body["data"]["customer"]["id"], created["id"]);
        assert_eq!(body["data"]["customer"]["external_id"], "new-in-the-callback");
    }

    async fn concurrent_retries_get_one_code(app) {
        let p = uploaded_pool(&app, 20, json!({})).await;
        let key = remote_key(&app, p, json!({})).await;
        let body = antavo(&key, "fresh-customer");
        let codes = join_all((0..16).map(|_| code(&app, &body))).await;
        assert!(codes.iter().all(|c| *c == codes[0]), "{codes:?}");
        assert_eq!(stats(&app, p).await["issued"], 1);
        // The customer seen first by these calls was created once, and holds the code.
        let held = json(app.get("/v1/customers/fresh-customer/coupons").await).await;
        assert_eq!(held["items"].as_array().map(Vec::len), Some(1), "{held}");
        assert_eq!(held["items"][0]["code"], codes[0].as_str());
    }

    async fn a_retry_the_rules_would_now_refuse_gets_the_first_code(app) {
        // One code per customer, and one code left after the first call: a retry must find the
        // first answer, not the rules' refusal or the empty pool's.
        let p = uploaded_pool(&app, 2, json!({"issuance": {"max_per_customer": 1}})).await;
        let key = remote_key(&app, p, json!({})).await;
        let body = antavo(&key, "limited");
        let first = code(&app, &body).await;
        let retries = join_all((0..8).map(|_| code(&app, &body))).await;
        assert!(retries.iter().all(|c| *c == first), "{first} then {retries:?}");
        code(&app, &antavo(&key, "other")).await;
        assert_eq!(code(&app, &body).await, first);
        assert_eq!(stats(&app, p).await["issued"], 2);
    }

    async fn aggregated_pools_return_the_same_code_to_the_same_customer(app) {
        let p = uploaded_pool(&app, 5, json!({"aggregated": true})).await;
        let key = remote_key(&app, p, json!({})).await;
        let first = code(&app, &antavo(&key, "ana")).await;
        age_coupons(&app, TimeDelta::hours(1)).await;
        assert_eq!(code(&app, &antavo(&key, "ana")).await, first);
        assert_ne!(code(&app, &antavo(&key, "bob")).await, first);
        assert_eq!(stats(&app, p).await["issued"], 2);
    }

    async fn a_remote_pool_issues_the_code_its_source_returns(app) {
        let source = Receiver::start(|n, _| Reply::json(json!({"code": format!("EXT-{n}")}))).await;
        let p = remote_pool(&app, &source.url, json!({})).await;
        customer(&app, "ana", json!({})).await;
        let resp = issue(&app, p, "ana").await;
        assert_eq!(resp.status(), 201);
        let issued = json(resp).await;
        assert_eq!(issued["code"], "EXT-0");
        assert_eq!(issued["pool_id"], p);
        assert!(issued["expires_at"].is_string(), "the pool's expiry applies: {issued}");
        assert_eq!(stats(&app, p).await["issued"], 1);

        let got = &source.received()[0];
        assert_eq!(got.json(), json!({"api_key": "their-key", "customer": "ana", "type": "percentage",
                                      "value": "1250", "coupon_percentage": "12.5",
                                      "pool_id": p.to_string()}));
        let ts: i64 = got.header("webhook-timestamp").parse().unwrap();
        signature::verify(SECRET, got.header("webhook-id"), ts, &got.body, got.header("webhook-signature"), Utc::now().timestamp())
            .expect("signed with the pool's secret");

        let batch = app.request(Method::POST, &format!("/v1/pools/{p}/issue/batch"), Some(&app.key))
            .header("content-type", "text/csv").body("external_id\nana\n").send().await.unwrap();
        expect_problem(batch, 409, "remote_source").await;
    }

    async fn a_slow_source_is_retried_and_a_dead_one_is_a_bad_gateway(app) {
        let source = Receiver::start(|n, _| {
            let reply = Reply::json(json!({"code": format!("SLOW-{n}")}));
            if n == 0 { reply.after(Duration::from_millis(1_500)) } else { reply }
        }).await;
        let p = remote_pool(&app, &source.url, json!({})).await;
        customer(&app, "ana", json!({})).await;
        let issued = json(issue(&app, p, "ana").await).await;
        assert_eq!(issued["code"], "SLOW-1");
        let got = source.received();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"), "a retry keeps its id");

        let dead = Receiver::start(|_, _| Reply::status(503)).await;
        let p = remote_pool(&app, &dead.url, json!({"name": "Dead"})).await;
        expect_problem(issue(&app, p, "ana").await, 502, "remote_unavailable").await;
        assert_eq!(dead.received().len(), 3, "one attempt and two retries");

        let refusing = Receiver::start(|_, _| Reply::status(403)).await;
        let p = remote_pool(&app, &refusing.url, json!({"name": "Refusing"})).await;
        expect_problem(issue(&app, p, "ana").await, 502, "remote_rejected").await;
        assert_eq!(refusing.received().len(), 1, "a refusal is not retried");
        assert_eq!(stats(&app, p).await["issued"], 0);
    }

    async fn empty_and_duplicate_codes_are_refused(app) {
        let empty = Receiver::start(|_, _| Reply::json(json!({"code": ""}))).await;
        let p = remote_pool(&app, &empty.url, json!({})).await;
        customer(&app, "ana", json!({})).await;
        customer(&app, "bob", json!({})).await;
        expect_problem(issue(&app, p, "ana").await, 502, "remote_empty_code").await;
        assert_eq!(stats(&app, p).await["total"], 0);

        let same = Receiver::start(|_, _| Reply::json(json!({"code": "SAME-CODE"}))).await;
        let p = remote_pool(&app, &same.url, json!({"name": "Same"})).await;
        assert_eq!(json(issue(&app, p, "ana").await).await["code"], "SAME-CODE");
        expect_problem(issue(&app, p, "bob").await, 502, "remote_duplicate_code").await;
        assert_eq!(stats(&app, p).await["issued"], 1);
    }

    async fn rules_refuse_before_the_source_is_asked(app) {
        let source = Receiver::start(|n, _| Reply::json(json!({"code": format!("R-{n}")}))).await;
        let p = remote_pool(&app, &source.url, json!({"issuance": {"max_per_customer": 1}})).await;
        customer(&app, "ana", json!({})).await;
        assert_eq!(issue(&app, p, "ana").await.status(), 201);
        expect_problem(issue(&app, p, "ana").await, 422, "customer_limit").await;
        assert_eq!(source.received().len(), 1);
    }

    async fn a_remote_pool_can_fetch_from_another_coupond(app) {
        // The source is another org, as another coupond would be: codes are unique per org.
        let (_, other) = app.other_org().await;
        let as_other = |path: &str, body: Value| {
            app.request(Method::POST, path, Some(&other)).json(&body).send()
        };
        let upstream = json(as_other("/v1/pools", json!({"name": "Up", "source": "uploaded",
            "discount_type": "amount", "value": 500, "currency": "EUR"})).await.unwrap()).await["id"].as_i64().unwrap();
        as_other(&format!("/v1/pools/{upstream}/codes"), json!({"codes": ["UP-1", "UP-2"]})).await.unwrap();
        let key = json(as_other("/v1/api-keys", json!({"name": "r", "scopes": ["remote"], "pool_id": upstream})).await.unwrap())
            .await["api_key"].as_str().unwrap().to_string();
        let url = format!("{}/v1/remote/coupon-code", app.base);
        let p = pool(&app, json!({"name": "Downstream", "source": "remote", "discount_type": "amount",
                                  "value": 500, "currency": "EUR",
                                  "remote": {"url": url, "api_key": key}})).await;
        customer(&app, "ana", json!({})).await;
        let resp = issue(&app, p, "ana").await;
        let status = resp.status();
        let issued = json(resp).await;
        assert_eq!(status, 201, "{issued}");
        assert_eq!(issued["code"], "UP-1");
        assert_eq!(issued["pool_id"], p);
    }
}
