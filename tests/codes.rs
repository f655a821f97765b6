//! Codes and issuance edge cases (issue 10, items 16-31): generation caps, case-insensitive
//! pools, pattern shapes, customer lists, input refused instead of ignored, honest stats, check
//! characters, webhook ids, and the remote-code callback's bodies, mismatches and retries.

mod common;

use chrono::Utc;
use common::{
    TestApp, expect_problem,
    fixtures::{customer, issue_ok, uploaded_pool},
    json,
    receiver::{Receiver, Reply},
};
use coupond::service::webhooks::Worker;
use futures_util::future::join_all;
use reqwest::{Method, Response};
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait, Statement};
use serde_json::{Value, json};
use std::collections::HashSet;

async fn pool(app: &TestApp, body: Value) -> i64 {
    common::fixtures::pool(app, body).await
}

async fn stats(app: &TestApp, pool_id: i64) -> Value {
    json(app.get(&format!("/v1/pools/{pool_id}/stats")).await).await
}

async fn post_csv(app: &TestApp, path: &str, csv: &str) -> Response {
    app.request(Method::POST, path, Some(&app.key))
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap()
}

/// Waits for the job a 201 or 202 started; its issue rows as `line,value,code`.
async fn finished_job_issues(app: &TestApp, started: Response) -> Vec<String> {
    assert!(
        [201, 202].contains(&started.status().as_u16()),
        "{}",
        started.status()
    );
    let id = started.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let job = app.wait_for_job(id).await;
    assert_eq!(job["state"], "done", "{job}");
    let csv = app
        .get(&format!("/v1/imports/{id}/issues"))
        .await
        .text()
        .await
        .unwrap();
    csv.lines()
        .skip(1)
        .map(|l| l.splitn(4, ',').take(3).collect::<Vec<_>>().join(","))
        .collect()
}

async fn jobs(app: &TestApp) -> u64 {
    coupond::store::entity::imports::Entity::find()
        .count(&app.db)
        .await
        .unwrap()
}

async fn generate(app: &TestApp, pool_id: i64, count: u64) -> Response {
    app.post(
        &format!("/v1/pools/{pool_id}/generate"),
        json!({"count": count}),
    )
    .await
}

/// A remote key bound to a pool.
async fn remote_key(app: &TestApp, pool_id: i64) -> String {
    let resp = app
        .post(
            "/v1/api-keys",
            json!({"name": "antavo", "scopes": ["remote"], "pool_id": pool_id}),
        )
        .await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 201, "{body}");
    body["api_key"].as_str().unwrap().to_string()
}

async fn callback_json(app: &TestApp, body: Value) -> Response {
    app.request(Method::POST, "/v1/remote/coupon-code", None)
        .json(&body)
        .send()
        .await
        .unwrap()
}

both_databases! {
    async fn a_workflow_key_issues_only_from_claimed_pools_on_every_path(app) {
        let wf = app.key_with(&["workflow"]).await;
        customer(&app, "ana", json!({})).await;
        let unclaimed = uploaded_pool(&app, 2, json!({})).await;
        let body = json!({"customer": {"external_id": "ana"}});
        let resp = app.request(Method::POST, &format!("/v1/pools/{unclaimed}/issue"), Some(&wf))
            .json(&body).send().await.unwrap();
        assert_eq!(expect_problem(resp, 422, "pool_not_claimed").await["field"], "pool_id");
        assert_eq!(stats(&app, unclaimed).await["issued"], 0);
        // The admin key and a market key are not gated by the claim.
        issue_ok(&app, unclaimed, "ana").await;
        let market = app.key_with(&["market"]).await;
        let resp = app.request(Method::POST, &format!("/v1/pools/{unclaimed}/issue"), Some(&market))
            .json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        let claimed = uploaded_pool(&app, 1, json!({})).await;
        assert_eq!(app.post(&format!("/v1/pools/{claimed}/claim"), json!({})).await.status(), 200);
        let resp = app.request(Method::POST, &format!("/v1/pools/{claimed}/issue"), Some(&wf))
            .json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 201);
    }

    async fn a_customer_list_without_an_identifier_column_is_400_before_any_job(app) {
        customer(&app, "ana", json!({})).await;
        let p = uploaded_pool(&app, 2, json!({})).await;
        let before = jobs(&app).await;
        let resp = post_csv(&app, &format!("/v1/pools/{p}/issue/batch"), "name,city\nana,Madrid\n").await;
        expect_problem(resp, 400, "missing_identifier_column").await;
        let resp = post_csv(&app, &format!("/v1/pools/{p}/customers"), "name\nana\n").await;
        expect_problem(resp, 400, "missing_identifier_column").await;
        assert_eq!(jobs(&app).await, before, "no job was started");
        let resp = post_csv(&app, &format!("/v1/pools/{p}/issue/batch"), "external_id\nana\n").await;
        assert_eq!(resp.status(), 202);
    }

    async fn naming_one_of_two_customers_by_a_shared_identifier_is_409(app) {
        customer(&app, "ana", json!({"email": "shared@example.com", "mobile": "+34600111222"})).await;
        customer(&app, "bea", json!({"email": "shared@example.com", "mobile": "+34600111222"})).await;
        let p = uploaded_pool(&app, 2, json!({})).await;
        for by in [json!({"email": "shared@example.com"}), json!({"mobile": "+34600111222"})] {
            let resp = app.post(&format!("/v1/pools/{p}/issue"), json!({"customer": by})).await;
            expect_problem(resp, 409, "ambiguous_customer").await;
        }
        assert_eq!(stats(&app, p).await["issued"], 0);
        issue_ok(&app, p, "ana").await;
    }

    async fn a_case_insensitive_pool_makes_codes_a_till_can_tell_apart(app) {
        let p = pool(&app, json!({"name": "CI", "source": "generated", "pattern": "CI-****",
                                  "case_insensitive": true, "discount_type": "free_shipping"})).await;
        assert_eq!(stats(&app, p).await["remaining"], 36u64.pow(4), "{}", stats(&app, p).await);
        let resp = generate(&app, p, 20_000).await;
        let job = app.wait_for_job(resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap()).await;
        assert_eq!(job["state"], "done", "{job}");
        let codes: Vec<String> = app.db.query_all_raw(Statement::from_string(app.db.get_database_backend(),
            format!("SELECT code FROM coupons WHERE pool_id = {p}"))).await.unwrap()
            .iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect();
        assert_eq!(codes.len(), 20_000);
        let folded: HashSet<String> = codes.iter().map(|c| c.to_ascii_uppercase()).collect();
        assert_eq!(folded.len(), 20_000, "no two codes differ only in case");

        let up = pool(&app, json!({"name": "UP", "source": "uploaded", "case_insensitive": true,
                                   "discount_type": "free_shipping"})).await;
        let report = app.post(&format!("/v1/pools/{up}/codes"), json!({"codes": ["Abc-1", "ABC1", "abc-1", "XYZ9"]})).await;
        let report = report.json::<Value>().await.unwrap();
        assert_eq!((report["accepted"].as_i64(), report["skipped"].as_i64()), (Some(2), Some(2)), "{report}");
        let issues = app.get(&format!("/v1/imports/{}/issues", report["id"])).await.text().await.unwrap();
        assert_eq!(issues.matches(",duplicate,").count(), 2, "{issues}");
        assert!(issues.contains("ABC1") && issues.contains("abc-1"), "{issues}");
    }

    async fn a_code_shape_belongs_to_one_pool_whatever_its_affixes(app) {
        let shape = |pattern: &str, extra: Value| {
            let mut body = json!({"name": "S", "source": "generated", "pattern": pattern, "discount_type": "free_shipping"});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            body
        };
        pool(&app, shape("#", json!({"prefix_enabled": true, "prefix": "ZZ"}))).await;
        expect_problem(app.post("/v1/pools", shape("ZZ#", json!({}))).await, 409, "pattern_taken").await;
        pool(&app, shape("A-##", json!({}))).await;
        pool(&app, shape("B-##", json!({}))).await;
        expect_problem(app.post("/v1/pools", shape("*-#$", json!({}))).await, 409, "pattern_taken").await;

        let randomized = |sample: &str| json!({"name": "R", "source": "randomized_common", "sample_code": sample, "discount_type": "free_shipping"});
        pool(&app, shape("TEST#####", json!({}))).await;
        expect_problem(app.post("/v1/pools", randomized("TEST1ABCD")).await, 409, "pattern_taken").await;
        pool(&app, randomized("XYZ123")).await;
        let problem = expect_problem(app.post("/v1/pools", randomized("XYZ1234")).await, 409, "pattern_taken").await;
        assert!(problem["detail"].as_str().unwrap().contains("can make codes of this shape"), "{problem}");

        let free = pool(&app, shape("C-##", json!({}))).await;
        let resp = app.patch(&format!("/v1/pools/{free}"), json!({"pattern": "A-#$"})).await;
        expect_problem(resp, 409, "pattern_taken").await;
        let resp = app.patch(&format!("/v1/pools/{free}"), json!({"pattern": "D-##"})).await;
        assert_eq!(resp.status(), 200);
    }

    async fn list_rows_naming_a_shared_identifier_are_ambiguous_not_the_oldest(app) {
        customer(&app, "ana", json!({"email": "shared@example.com"})).await;
        customer(&app, "bea", json!({"email": "shared@example.com"})).await;
        customer(&app, "cid", json!({"email": "cid@example.com"})).await;
        let list = "email\nshared@example.com\ncid@example.com\n";
        let p = uploaded_pool(&app, 4, json!({})).await;
        let issues = finished_job_issues(&app, post_csv(&app, &format!("/v1/pools/{p}/issue/batch"), list).await).await;
        assert_eq!(issues, ["2,shared@example.com,ambiguous_customer"]);
        assert_eq!(stats(&app, p).await["issued"], 1, "only cid's row issued");
        let allow = uploaded_pool(&app, 1, json!({"specific_customers_only": true})).await;
        let issues = finished_job_issues(&app, post_csv(&app, &format!("/v1/pools/{allow}/customers"), list).await).await;
        assert_eq!(issues, ["2,shared@example.com,ambiguous_customer"]);
        let revoke = app.request(Method::POST, &format!("/v1/pools/{p}/revoke"), Some(&app.key))
            .header("content-type", "text/csv").body(list).send().await.unwrap();
        let issues = finished_job_issues(&app, revoke).await;
        assert_eq!(issues, ["2,shared@example.com,ambiguous_customer"]);
    }

    async fn silently_ignored_settings_are_422_naming_the_field(app) {
        let base = json!({"name": "x", "source": "generated", "pattern": "####", "discount_type": "free_shipping"});
        let with = |extra: Value| {
            let mut body = base.clone();
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            body
        };
        let resp = app.post("/v1/pools", with(json!({"prefix": "AB"}))).await;
        assert_eq!(expect_problem(resp, 422, "invalid_affix").await["field"], "prefix");
        let resp = app.post("/v1/pools", with(json!({"suffix": "AB"}))).await;
        assert_eq!(expect_problem(resp, 422, "invalid_affix").await["field"], "suffix");
        let resp = app.post("/v1/pools", with(json!({"issuance": {"exclude_if_issued_from": [987654]}}))).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "issuance.exclude_if_issued_from");
        let (_, other_key) = app.other_org().await;
        let theirs = app.request(Method::POST, "/v1/pools", Some(&other_key)).json(&base).send().await.unwrap();
        let theirs = json(theirs).await["id"].as_i64().unwrap();
        let resp = app.post("/v1/pools", with(json!({"issuance": {"exclude_if_issued_from": [theirs]}}))).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "issuance.exclude_if_issued_from");
        let reminder = json!([{"days_before": 3, "channel": "email", "time": "09:00"}]);
        let resp = app.post("/v1/pools", with(json!({"reminders": reminder}))).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "reminders");
        assert_eq!(json(app.get("/v1/pools").await).await["total"], 0, "nothing was created");

        let p = pool(&app, with(json!({"expiry": {"mode": "days_from_issual", "days": 30}, "reminders": reminder}))).await;
        let resp = app.patch(&format!("/v1/pools/{p}"), json!({"update_criterion": "all"})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "update_criterion");
        let resp = app.patch(&format!("/v1/pools/{p}"), json!({"issuance": {"exclude_if_issued_from": [theirs]}})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "issuance.exclude_if_issued_from");
        let resp = app.patch(&format!("/v1/pools/{p}"), json!({"expiry": {"mode": "never"}})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "reminders");
        let fine = pool(&app, json!({"name": "y", "source": "uploaded", "discount_type": "free_shipping"})).await;
        let resp = app.post("/v1/pools", with(json!({"name": "z", "pattern": "Z####", "issuance": {"exclude_if_issued_from": [fine]}}))).await;
        assert_eq!(resp.status(), 201);
    }

    async fn stats_remaining_is_honest_for_remote_common_and_ended_pools(app) {
        let remote = pool(&app, json!({"name": "R", "source": "remote", "discount_type": "free_shipping",
                                       "remote": {"url": "http://127.0.0.1:9/codes"}})).await;
        assert!(stats(&app, remote).await["remaining"].is_null(), "unknown");
        let common = pool(&app, json!({"name": "C", "source": "common", "pattern": "SUMMER50", "discount_type": "free_shipping"})).await;
        assert!(stats(&app, common).await["remaining"].is_null(), "unlimited");
        let limited = pool(&app, json!({"name": "L", "source": "common", "pattern": "WINTER50", "discount_type": "free_shipping",
                                        "issuance": {"max_total": 5}})).await;
        assert_eq!(stats(&app, limited).await["remaining"], 5);
        let ended = pool(&app, json!({"name": "E", "source": "uploaded", "discount_type": "free_shipping",
                                      "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2020-02-01T00:00:00Z"})).await;
        let resp = app.post(&format!("/v1/pools/{ended}/codes"), json!({"codes": ["OLD1", "OLD2"]})).await;
        assert_eq!(json(resp).await["accepted"], 2);
        let s = stats(&app, ended).await;
        assert_eq!((s["available"].as_i64(), s["remaining"].as_i64()), (Some(2), Some(0)));
        let live = uploaded_pool(&app, 3, json!({})).await;
        assert_eq!(stats(&app, live).await["remaining"], 3);
    }

    async fn a_workflow_issue_of_three_on_a_resend_pool_lists_the_coupon_once(app) {
        let wf = app.key_with(&["workflow"]).await;
        customer(&app, "ana", json!({})).await;
        let p = uploaded_pool(&app, 5, json!({"max_per_customer": 1, "on_repeat": "resend_existing"})).await;
        assert_eq!(app.post(&format!("/v1/pools/{p}/claim"), json!({})).await.status(), 200);
        let resp = app.request(Method::POST, "/v1/workflow/actions/issue_coupon", Some(&wf))
            .header("Idempotency-Key", "run-1/step-1")
            .json(&json!({"pool_id": p, "customer": {"external_id": "ana"}, "count": 3}))
            .send().await.unwrap();
        let status = resp.status();
        let body = json(resp).await;
        assert_eq!(status, 200, "{body}");
        let coupons = body["output"]["coupons"].as_array().or_else(|| body["coupons"].as_array()).expect("coupons");
        assert_eq!(coupons.len(), 1, "{body}");
        assert_eq!(stats(&app, p).await["issued"], 1);
    }

    async fn a_wrong_check_character_is_refused_as_mistyped(app) {
        pool(&app, json!({"name": "K", "source": "generated", "pattern": "CK-####", "discount_type": "free_shipping",
                          "check_char": true})).await;
        let mut not_found = 0;
        for check in 0..10 {
            let resp = app.get(&format!("/v1/coupons/CK-1234{check}")).await;
            match resp.status().as_u16() {
                404 => {
                    expect_problem(resp, 404, "coupon_not_found").await;
                    not_found += 1;
                }
                _ => {
                    expect_problem(resp, 422, "invalid_check_character").await;
                }
            }
        }
        assert_eq!(not_found, 1, "exactly one check digit is right");
        let resp = app.get("/v1/coupons/SOMETHING-ELSE").await;
        expect_problem(resp, 404, "coupon_not_found").await;
    }

    async fn outgoing_webhook_ids_are_uuids(app) {
        let receiver = Receiver::start(|_, _| Reply::status(204)).await;
        // Two subscriptions: every message of an issue fanned out to both has its own id.
        for _ in 0..2 {
            let resp = app.post("/v1/webhooks", json!({"url": receiver.url, "events": ["coupon.issued"]})).await;
            assert_eq!(resp.status(), 201);
        }
        customer(&app, "ana", json!({})).await;
        let p = uploaded_pool(&app, 2, json!({})).await;
        issue_ok(&app, p, "ana").await;
        issue_ok(&app, p, "ana").await;
        Worker::new(app.db.clone()).run_once(Utc::now()).await.unwrap();
        let ids: Vec<String> = receiver.received().iter().map(|r| r.header("webhook-id").to_string()).collect();
        assert_eq!(ids.len(), 4);
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id.trim_start_matches("msg_")).unwrap_or_else(|_| panic!("{id}"));
            assert_eq!(parsed.get_version_num(), 4, "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), 4, "{ids:?}");
    }

    async fn the_callback_reads_a_form_body_like_json(app) {
        let p = uploaded_pool(&app, 3, json!({})).await;
        let key = remote_key(&app, p).await;
        let form = format!("api_key={key}&customer=form+customer%2F1&type=amount&value=5.00");
        let resp = app.request(Method::POST, "/v1/remote/coupon-code", None)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.clone()).send().await.unwrap();
        let status = resp.status();
        let body = json(resp).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["code"].as_str().unwrap().starts_with(&format!("P{p}C")), "{body}");
        let created = json(app.get("/v1/customers/form%20customer%2F1").await).await;
        assert_eq!(created["external_id"], "form customer/1");
        let resp = app.request(Method::POST, "/v1/remote/coupon-code", None)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("api_key={key}")).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(json(resp).await["code"], "invalid_body");
    }

    async fn a_callback_that_disagrees_with_its_pool_is_pool_mismatch(app) {
        let p = pool(&app, json!({"name": "P", "source": "uploaded", "discount_type": "percentage", "value": 2000})).await;
        let resp = app.post(&format!("/v1/pools/{p}/codes"), json!({"codes": ["PCT1", "PCT2"]})).await;
        assert_eq!(json(resp).await["accepted"], 2);
        let key = remote_key(&app, p).await;
        let resp = callback_json(&app, json!({"api_key": key, "customer": "c1", "type": "amount", "value": "10"})).await;
        assert_eq!(resp.status(), 422);
        let body = json(resp).await;
        assert_eq!(body["code"], "pool_mismatch", "{body}");
        let resp = callback_json(&app, json!({"api_key": key, "customer": "c1", "type": "percentage", "coupon_percentage": "25"})).await;
        assert_eq!(json(resp).await["code"], "pool_mismatch");
        assert_eq!(stats(&app, p).await["issued"], 0, "nothing issued");
        // Antavo's own sample body agrees with a 20% pool.
        let resp = callback_json(&app, json!({"api_key": key, "coupon_percentage": "20", "value": "THE COUPON VALUE",
                                              "customer": "c1", "type": "percentage"})).await;
        assert_eq!(resp.status(), 200);
    }

    async fn only_marked_or_identical_callbacks_are_retries(app) {
        let p = uploaded_pool(&app, 10, json!({})).await;
        let key = remote_key(&app, p).await;
        let body = json!({"api_key": key, "customer": "ana", "type": "amount", "value": "5"});
        let first = json(callback_json(&app, body.clone()).await).await["code"].clone();
        assert_eq!(json(callback_json(&app, body.clone()).await).await["code"], first, "identical: a retry");
        let mut second_reward = body.clone();
        second_reward["reward_id"] = json!("r-2");
        let second = json(callback_json(&app, second_reward).await).await["code"].clone();
        assert_ne!(second, first, "another field: another request");
        // Marked requests: the mark alone decides.
        let marked = |id: &str| {
            let mut b = body.clone();
            b["request_id"] = json!(id);
            b
        };
        let a = json(callback_json(&app, marked("m-1")).await).await["code"].clone();
        let b = json(callback_json(&app, marked("m-2")).await).await["code"].clone();
        assert_ne!(a, b, "two marks, two rewards");
        assert_eq!(json(callback_json(&app, marked("m-1")).await).await["code"], a);
        let by_header = app.request(Method::POST, "/v1/remote/coupon-code", None)
            .header("Idempotency-Key", "h-1").json(&body).send().await.unwrap();
        let h = json(by_header).await["code"].clone();
        assert!(h != first && h != a && h != b, "{h}");
        assert_eq!(stats(&app, p).await["issued"], 5);
        let concurrent = join_all((0..8).map(|_| callback_json(&app, marked("m-3")))).await;
        let mut codes = Vec::new();
        for resp in concurrent {
            codes.push(json(resp).await["code"].clone());
        }
        assert!(codes.iter().all(|c| *c == codes[0] && c.is_string()), "{codes:?}");
        assert_eq!(stats(&app, p).await["issued"], 6);
    }

    async fn queued_generation_jobs_count_against_the_caps(app) {
        let bulk = pool(&app, json!({"name": "B", "source": "bulk", "pattern": "B####", "discount_type": "free_shipping"})).await;
        let answers = join_all((0..4).map(|_| generate(&app, bulk, 60))).await;
        let mut jobs = Vec::new();
        for resp in answers {
            match resp.status().as_u16() {
                202 => jobs.push(json(resp).await["id"].as_i64().unwrap()),
                _ => {
                    expect_problem(resp, 422, "bulk_too_large").await;
                }
            }
        }
        assert_eq!(jobs.len(), 1, "60 + 60 is over the 100 the 1% cap allows");
        for job in jobs {
            app.wait_for_job(job).await;
        }
        assert_eq!(stats(&app, bulk).await["total"], 60);
        // What a job did not make is given back: 40 still fit.
        let resp = generate(&app, bulk, 40).await;
        assert_eq!(resp.status(), 202);
        app.wait_for_job(json(resp).await["id"].as_i64().unwrap()).await;
        expect_problem(generate(&app, bulk, 1).await, 422, "bulk_too_large").await;
        assert_eq!(stats(&app, bulk).await["total"], 100);

        let generated = pool(&app, json!({"name": "G", "source": "generated", "pattern": "G##", "discount_type": "free_shipping"})).await;
        let first = generate(&app, generated, 60).await;
        assert_eq!(first.status(), 202);
        expect_problem(generate(&app, generated, 60).await, 422, "pattern_exhausted").await;
        app.wait_for_job(json(first).await["id"].as_i64().unwrap()).await;
        assert_eq!(stats(&app, generated).await["total"], 60);
    }
}

/// Uploads a code file; the import (201, done) and its issue rows as `line,value,code`.
async fn upload_codes(app: &TestApp, pool_id: i64, csv: &str) -> (Value, Vec<String>) {
    let resp = post_csv(app, &format!("/v1/pools/{pool_id}/codes"), csv).await;
    let status = resp.status();
    let import = json(resp).await;
    assert_eq!(
        (status.as_u16(), import["state"].as_str()),
        (201, Some("done")),
        "{import}"
    );
    let csv = app
        .get(&format!("/v1/imports/{}/issues", import["id"]))
        .await
        .text()
        .await
        .unwrap();
    // Read as CSV: a reason may quote a value with a line break.
    let rows = coupond::domain::csv::parse(csv.as_bytes()).unwrap();
    let issues = rows
        .iter()
        .skip(1)
        .map(|r| r.fields[..3].join(","))
        .collect();
    (import, issues)
}

fn counts(import: &Value) -> (i64, i64, i64) {
    let n = |k: &str| import[k].as_i64().unwrap();
    (n("accepted"), n("rejected"), n("skipped"))
}

/// The codes a customer holds, oldest first, with their status.
async fn held(app: &TestApp, external_id: &str) -> Vec<(String, String)> {
    let list = json(
        app.get(&format!("/v1/customers/{external_id}/coupons"))
            .await,
    )
    .await;
    let mut held: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["code"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    held.reverse();
    held
}

both_databases! {
    async fn codes_uploaded_with_their_customers_are_issued_to_them(app) {
        customer(&app, "ana", json!({})).await;
        customer(&app, "bo", json!({"email": "bo@example.com"})).await;
        customer(&app, "s1", json!({"email": "shared@example.com"})).await;
        customer(&app, "s2", json!({"email": "shared@example.com"})).await;
        let p = pool(&app, json!({"name": "Migrated", "source": "uploaded", "discount_type": "amount",
                                  "value": 500, "currency": "EUR", "issuance": {"max_per_customer": 2},
                                  "expiry": {"mode": "days_from_issual", "days": 30}})).await;
        // Excel's byte-order mark and CRLF, a header in its own words, a quoted list of codes
        // over two lines for one customer.
        let file = "\u{feff}Code,Customer\r\nMIG-1,ana\r\n\"MIG-2,\r\nMIG-3\",bo\r\nMIG-4,nobody\r\n\
                    MIG-5,\r\nMIG-6,ana\r\nMIG-7,ana\r\n";
        let (import, issues) = upload_codes(&app, p, file).await;
        assert_eq!(counts(&import), (4, 3, 0), "{import}");
        assert_eq!(issues, ["5,MIG-4,invalid_customer", "6,MIG-5,invalid_customer", "8,MIG-7,customer_limit"]);
        assert_eq!(held(&app, "ana").await, [("MIG-1".into(), "issued".into()), ("MIG-6".into(), "issued".into())]);
        assert_eq!(held(&app, "bo").await.len(), 2);
        let ana = json(app.get("/v1/customers/ana/coupons").await).await;
        for c in ana["items"].as_array().unwrap() {
            assert!(c["issued_at"].is_string() && c["expires_at"].is_string(), "{c}");
        }
        let events = json(app.get("/v1/customers/ana/events?kind=coupon_issue").await).await;
        let codes: Vec<&str> = events["items"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["MIG-6", "MIG-1"], "{events}");
        let s = stats(&app, p).await;
        assert_eq!((s["issued"].as_i64(), s["available"].as_i64()), (Some(4), Some(0)), "{s}");

        // Customer-list identifier columns name the holder too; a shared email names nobody.
        let file = "coupon_code,email\nMIG-8,bo@example.com\nMIG-9,shared@example.com\n";
        let (import, issues) = upload_codes(&app, p, file).await;
        assert_eq!(counts(&import), (0, 2, 0), "{import}");
        assert_eq!(issues, ["2,MIG-8,customer_limit", "3,MIG-9,ambiguous_customer"]);

        // Uploading the file again adds nothing: its codes are in, its refusals still hold.
        let (import, _) = upload_codes(&app, p, file.replace("coupon_code,email", "code,email").as_str()).await;
        assert_eq!(counts(&import), (0, 2, 0), "{import}");
        let (import, _) = upload_codes(&app, p, "code,customer\nMIG-1,ana\nMIG-2,bo\n").await;
        assert_eq!(counts(&import), (0, 0, 2), "{import}");

        // Later issues see the uploaded ones: ana is at her limit.
        upload_codes(&app, p, "code\nFREE-1\n").await;
        let resp = app.post(&format!("/v1/pools/{p}/issue"), json!({"customer": {"external_id": "ana"}})).await;
        expect_problem(resp, 422, "customer_limit").await;
        customer(&app, "cy", json!({})).await;
        assert_eq!(issue_ok(&app, p, "cy").await["code"], "FREE-1");
    }

    async fn comma_separated_codes_in_one_field_are_each_a_code(app) {
        let p = pool(&app, json!({"name": "OW", "source": "uploaded", "discount_type": "free_shipping"})).await;
        let (import, issues) = upload_codes(&app, p, "L1,L2\n\"L3, L4\"\nL5,bad code,\n").await;
        assert_eq!(counts(&import), (5, 1, 0), "{import}");
        assert_eq!(issues, ["3,bad code,malformed"]);
        // A header naming the code column only; a quoted list over lines; a repeat in a row.
        let (import, issues) = upload_codes(&app, p, "codes\n\"Q1,Q2\nQ3\"\nQ4,Q4,L1\n").await;
        assert_eq!(counts(&import), (4, 0, 2), "{import}");
        assert_eq!(issues, ["4,Q4,duplicate", "4,L1,duplicate"]);
        assert_eq!(stats(&app, p).await["available"], 9);
    }

    async fn a_value_in_an_unexpected_column_is_an_issue_row(app) {
        customer(&app, "ana", json!({})).await;
        let p = pool(&app, json!({"name": "U", "source": "uploaded", "discount_type": "free_shipping"})).await;
        // An unknown column: rows leaving it empty go in, a row with a value there is refused
        // whole, and a note over two lines does not shift the next row's line.
        let (import, issues) = upload_codes(&app, p, "code,note\nN1,\nN2,\"two\nlines\"\nN3\n").await;
        assert_eq!(counts(&import), (2, 1, 0), "{import}");
        assert_eq!(issues, ["3,N2,unexpected_column"]);
        // More fields than the header names.
        let (import, issues) = upload_codes(&app, p, "code,customer\nN4,ana,x\nN5,ana\n").await;
        assert_eq!(counts(&import), (1, 1, 0), "{import}");
        assert_eq!(issues, ["2,N4,unexpected_column"]);
        assert_eq!(held(&app, "ana").await, [("N5".into(), "issued".into())]);
        let report = app.get(&format!("/v1/imports/{}/issues", import["id"])).await.text().await.unwrap();
        assert!(report.contains("field 3"), "{report}");
        // A header naming a customer but no code column reads nothing: refused at once.
        let resp = post_csv(&app, &format!("/v1/pools/{p}/codes"), "external_id,voucher\nana,V1\n").await;
        expect_problem(resp, 400, "missing_code_column").await;
        assert_eq!(stats(&app, p).await["total"], 3);
    }

    async fn control_characters_in_a_bad_row_are_reported_not_a_failure(app) {
        customer(&app, "ana", json!({"email": "ana@example.com"})).await;
        let p = pool(&app, json!({"name": "U", "source": "uploaded", "discount_type": "free_shipping"})).await;
        // PostgreSQL cannot store a NUL: the issue rows quote it as an escape.
        let (import, issues) = upload_codes(&app, p, "code,email\nE1,ana@example.com\nE2,a\u{0}@x.io\nE\u{0}3,ana@example.com\n").await;
        assert_eq!(counts(&import), (1, 2, 0), "{import}");
        assert_eq!(issues, ["3,E2,invalid_customer", "4,E\\u{0}3,malformed"]);
        let report = app.get(&format!("/v1/imports/{}/issues", import["id"])).await.text().await.unwrap();
        assert!(report.contains("a\\u{0}@x.io"), "{report}");
    }
}
