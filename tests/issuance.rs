//! Issuing coupons: customers, every rule with its refusal code, idempotency, expiry in the
//! org's zone, and exactness under concurrency.

mod common;

use std::collections::HashSet;

use common::{
    TestApp, expect_problem,
    fixtures::{customer, events, issue_ok, pool, uploaded_pool},
    json,
};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

async fn issue(app: &TestApp, pool_id: i64, customer: Value) -> reqwest::Response {
    app.post(
        &format!("/v1/pools/{pool_id}/issue"),
        json!({"customer": customer}),
    )
    .await
}

both_databases! {
    async fn customers_are_upserted_and_unknown_identifiers_named(app) {
        customer(&app, "c-1", json!({"email": " Ana@Example.COM ", "mobile": "+34 600-111-222", "level": "gold"})).await;
        let c = json(app.get("/v1/customers/c-1").await).await;
        assert_eq!(c["email"], "ana@example.com");
        assert_eq!(c["mobile"], "+34600111222");
        customer(&app, "c-1", json!({"level": "silver"})).await;
        assert_eq!(json(app.get("/v1/customers/c-1").await).await["level"], "silver");
        expect_problem(app.get("/v1/customers/nobody").await, 404, "customer_not_found").await;

        let p = uploaded_pool(&app, 1, json!({})).await;
        for (who, message) in [
            (json!({"external_id": "nobody"}), "User does not exist with provided external id"),
            (json!({"email": "no@example.com"}), "User does not exist with provided email"),
            (json!({"mobile": "+34999999999"}), "User does not exist with provided mobile"),
            (json!({"user_id": 999999}), "User ID is not valid or is inactive"),
        ] {
            let problem = expect_problem(issue(&app, p, who).await, 422, "customer_not_found").await;
            assert_eq!(problem["detail"], message);
        }
        let resp = issue(&app, p, json!({"external_id": "a", "email": "b@example.com"})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "customer");

        // Another org's customer is nobody here.
        let (_, other) = app.other_org().await;
        let theirs = app.request(Method::PUT, "/v1/customers/elsewhere", Some(&other))
            .json(&json!({})).send().await.unwrap();
        assert!(theirs.status().is_success(), "{}", theirs.status());
        let resp = issue(&app, p, json!({"external_id": "elsewhere"})).await;
        expect_problem(resp, 422, "customer_not_found").await;
        // None of the refused issues took the pool's one code.
        customer(&app, "c-2", json!({})).await;
        assert_eq!(issue_ok(&app, p, "c-2").await["status"], "issued");
    }

    async fn issuing_hands_out_a_code_once_and_lists_it(app) {
        customer(&app, "ana", json!({"email": "ana@example.com"})).await;
        let p = uploaded_pool(&app, 2, json!({})).await;
        let first = issue_ok(&app, p, "ana").await;
        assert_eq!(first["status"], "issued");
        assert!(first["code"].as_str().unwrap().starts_with(&format!("P{p}C")));
        assert!(first["redeemable_from"].is_string());
        let by_email = json(issue(&app, p, json!({"email": "ana@example.com"})).await).await;
        assert_ne!(by_email["code"], first["code"], "a code is delivered once");
        expect_problem(issue(&app, p, json!({"external_id": "ana"})).await, 422, "pool_exhausted").await;

        let list = json(app.get("/v1/customers/ana/coupons").await).await;
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|c| c["is_reversed"] == false && c["last_status_change_at"].is_string()));
        let stats = json(app.get(&format!("/v1/pools/{p}/stats")).await).await;
        assert_eq!((stats["issued"].as_i64(), stats["available"].as_i64()), (Some(2), Some(0)));
        assert_eq!(events(&app, "coupon_issue").await, 2);
    }

    async fn a_pool_changed_through_the_api_is_issued_from_as_changed_at_once(app) {
        let p = uploaded_pool(&app, 3, json!({})).await;
        customer(&app, "a", json!({})).await;
        customer(&app, "b", json!({})).await;
        issue_ok(&app, p, "a").await;
        let resp = app.patch(&format!("/v1/pools/{p}"), json!({"state": "archived"})).await;
        assert_eq!(resp.status(), 200);
        let resp = issue(&app, p, json!({"external_id": "b"})).await;
        expect_problem(resp, 422, "pool_inactive").await;
    }

    async fn a_retry_the_rules_would_now_refuse_replays_the_first_coupon(app) {
        customer(&app, "ana", json!({})).await;
        let p = uploaded_pool(&app, 1, json!({})).await;
        let send = || {
            app.request(Method::POST, &format!("/v1/pools/{p}/issue"), Some(&app.key))
                .header("Idempotency-Key", "once")
                .json(&json!({"customer": {"external_id": "ana"}}))
                .send()
        };
        let first = send().await.unwrap();
        assert_eq!(first.status(), 201);
        let code = json(first).await["code"].clone();
        // The pool is empty now: the retry is answered from the key, not refused.
        let again = send().await.unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(json(again).await["code"], code);
    }

    async fn an_idempotency_key_replays_the_same_coupon(app) {
        customer(&app, "ana", json!({})).await;
        customer(&app, "bob", json!({})).await;
        let p = uploaded_pool(&app, 3, json!({})).await;
        let send = |who: &'static str| {
            app.request(Method::POST, &format!("/v1/pools/{p}/issue"), Some(&app.key))
                .header("Idempotency-Key", "run-7/step-2")
                .json(&json!({"customer": {"external_id": who}}))
                .send()
        };
        let first = send("ana").await.unwrap();
        assert_eq!(first.status(), 201);
        let first = json(first).await;
        let again = send("ana").await.unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(json(again).await["code"], first["code"]);
        expect_problem(send("bob").await.unwrap(), 409, "idempotency_key_reused").await;
        let stats = json(app.get(&format!("/v1/pools/{p}/stats")).await).await;
        assert_eq!(stats["issued"], 1);
    }

    async fn per_customer_limit_with_resend_or_refuse(app) {
        customer(&app, "ana", json!({})).await;
        let refuse = uploaded_pool(&app, 5, json!({"max_per_customer": 2})).await;
        issue_ok(&app, refuse, "ana").await;
        issue_ok(&app, refuse, "ana").await;
        expect_problem(issue(&app, refuse, json!({"external_id": "ana"})).await, 422, "customer_limit").await;

        let resend = uploaded_pool(&app, 5, json!({"max_per_customer": 1, "on_repeat": "resend_existing"})).await;
        let first = issue_ok(&app, resend, "ana").await;
        let resp = issue(&app, resend, json!({"external_id": "ana"})).await;
        assert_eq!(resp.status(), 200);
        let again = json(resp).await;
        assert_eq!((again["code"].clone(), again["existing"].clone()), (first["code"].clone(), json!(true)));
    }

    async fn gap_series_levels_exclusions_and_allow_lists(app) {
        customer(&app, "ana", json!({"level": "gold"})).await;
        customer(&app, "bob", json!({"level": "bronze"})).await;
        let gap = uploaded_pool(&app, 5, json!({"min_days_between": 1})).await;
        issue_ok(&app, gap, "ana").await;
        expect_problem(issue(&app, gap, json!({"external_id": "ana"})).await, 422, "min_gap").await;

        let series = uploaded_pool(&app, 5, json!({"max_total": 1})).await;
        issue_ok(&app, series, "ana").await;
        expect_problem(issue(&app, series, json!({"external_id": "bob"})).await, 422, "series_limit").await;

        // A limit set later counts what was already issued.
        let later = uploaded_pool(&app, 5, json!({})).await;
        issue_ok(&app, later, "ana").await;
        issue_ok(&app, later, "bob").await;
        let resp = app.patch(&format!("/v1/pools/{later}"), json!({"issuance": {"max_total": 3}})).await;
        assert_eq!(resp.status(), 200);
        issue_ok(&app, later, "ana").await;
        expect_problem(issue(&app, later, json!({"external_id": "bob"})).await, 422, "series_limit").await;

        let gold = uploaded_pool(&app, 5, json!({"allowed_levels": ["gold"]})).await;
        issue_ok(&app, gold, "ana").await;
        expect_problem(issue(&app, gold, json!({"external_id": "bob"})).await, 422, "not_eligible").await;

        // Ana received a coupon of `gap` within six months.
        let excluding = uploaded_pool(&app, 5, json!({"exclude_if_issued_from": [gap]})).await;
        expect_problem(issue(&app, excluding, json!({"external_id": "ana"})).await, 422, "not_eligible").await;
        issue_ok(&app, excluding, "bob").await;

        let listed = uploaded_pool(&app, 5, json!({"specific_customers_only": true})).await;
        let resp = app
            .request(Method::POST, &format!("/v1/pools/{listed}/customers"), Some(&app.key))
            .header("content-type", "text/csv")
            .body("external_id\nbob\nnobody\nbob\n")
            .send()
            .await
            .unwrap();
        let import = json(resp).await;
        assert_eq!((import["accepted"].as_i64(), import["rejected"].as_i64(), import["skipped"].as_i64()), (Some(1), Some(1), Some(1)));
        issue_ok(&app, listed, "bob").await;
        expect_problem(issue(&app, listed, json!({"external_id": "ana"})).await, 422, "not_eligible").await;

        let draft = pool(&app, json!({"name": "D", "source": "uploaded", "discount_type": "free_shipping", "state": "draft"})).await;
        expect_problem(issue(&app, draft, json!({"external_id": "ana"})).await, 422, "pool_inactive").await;
    }

    async fn common_generated_randomized_and_aggregated_pools(app) {
        customer(&app, "ana", json!({})).await;
        customer(&app, "bob", json!({})).await;
        let common = pool(&app, json!({"name": "C", "source": "common", "pattern": "SUMMER50", "discount_type": "percentage", "value": 5000})).await;
        assert_eq!(issue_ok(&app, common, "ana").await["code"], "SUMMER50");
        assert_eq!(issue_ok(&app, common, "bob").await["code"], "SUMMER50");
        let problem = expect_problem(issue(&app, common, json!({"external_id": "ana"})).await, 422, "already_issued").await;
        assert!(problem["detail"].as_str().unwrap().contains("Generic coupon code has already been issued"));

        let generated = pool(&app, json!({"name": "G", "source": "generated", "pattern": "GEN-####", "discount_type": "free_shipping"})).await;
        let a = issue_ok(&app, generated, "ana").await["code"].as_str().unwrap().to_string();
        let b = issue_ok(&app, generated, "bob").await["code"].as_str().unwrap().to_string();
        assert!(a.starts_with("GEN-") && b.starts_with("GEN-") && a != b);

        let randomized = pool(&app, json!({"name": "R", "source": "randomized_common", "sample_code": "TEST12345", "discount_type": "free_shipping"})).await;
        let r = issue_ok(&app, randomized, "ana").await["code"].as_str().unwrap().to_string();
        assert!(r.starts_with("TEST") && r.len() == 9 && r[4..].chars().all(|c| c.is_ascii_digit()), "{r}");

        let aggregated = uploaded_pool(&app, 5, json!({"aggregated": true})).await;
        let first = issue_ok(&app, aggregated, "ana").await;
        let again = json(issue(&app, aggregated, json!({"external_id": "ana"})).await).await;
        assert_eq!(again["code"], first["code"]);
        assert_ne!(issue_ok(&app, aggregated, "bob").await["code"], first["code"]);
    }

    async fn expiry_is_end_of_day_in_the_orgs_zone(app) {
        customer(&app, "ana", json!({})).await;
        let p = pool(&app, json!({"name": "E", "source": "generated", "pattern": "EXP####", "discount_type": "free_shipping",
                                  "expiry": {"mode": "days_from_issual", "days": 1, "redemption_starts": "days_after_issual", "start_days": 1}})).await;
        let c = issue_ok(&app, p, "ana").await;
        let tz: chrono_tz::Tz = "Europe/Madrid".parse().unwrap();
        let today = chrono::Utc::now().with_timezone(&tz).date_naive();
        let expires: chrono::DateTime<chrono::Utc> = c["expires_at"].as_str().unwrap().parse().unwrap();
        let local = expires.with_timezone(&tz);
        assert_eq!(local.date_naive(), today + chrono::Days::new(1));
        assert_eq!(local.time(), chrono::NaiveTime::from_hms_opt(23, 59, 59).unwrap());
        let from: chrono::DateTime<chrono::Utc> = c["redeemable_from"].as_str().unwrap().parse().unwrap();
        let from = from.with_timezone(&tz);
        assert_eq!((from.date_naive(), from.time()), (today + chrono::Days::new(1), chrono::NaiveTime::MIN));
    }

    async fn customer_lists_follow_capillarys_four_duplicate_cases(app) {
        customer(&app, "dup", json!({})).await;
        let four_rows = "external_id\ndup\ndup\ndup\ndup\n";
        // Case 1: at most 3 per customer; the same file again, then one row, are refused.
        let case1 = uploaded_pool(&app, 20, json!({"max_per_customer": 3})).await;
        assert_eq!(batch(&app, case1, four_rows).await, (3, 1, strs(&["customer_limit"])));
        assert_eq!(batch(&app, case1, four_rows).await, (0, 4, strs(&["customer_limit"; 4])));
        assert_eq!(batch(&app, case1, "external_id\ndup\n").await, (0, 1, strs(&["customer_limit"])));
        // Case 2: a gap of one day between issuals.
        let case2 = uploaded_pool(&app, 20, json!({"max_per_customer": 3, "min_days_between": 1})).await;
        assert_eq!(batch(&app, case2, four_rows).await, (1, 3, strs(&["min_gap"; 3])));
        // Case 3: the series may issue two in all.
        let case3 = uploaded_pool(&app, 20, json!({"max_total": 2})).await;
        assert_eq!(batch(&app, case3, four_rows).await, (2, 2, strs(&["series_limit"; 2])));
        // Case 4: a generic code, once per customer, also on a second upload.
        let case4 = pool(&app, json!({"name": "G", "source": "common", "pattern": "GENERIC1", "discount_type": "free_shipping"})).await;
        assert_eq!(batch(&app, case4, four_rows).await, (1, 3, strs(&["already_issued"; 3])));
        assert_eq!(batch(&app, case4, four_rows).await, (0, 4, strs(&["already_issued"; 4])));
        // Every coupon issued has its event in the customer's history, and nothing refused has.
        let history = json(app.get("/v1/customers/dup/events?kind=coupon_issue").await).await;
        assert_eq!(history["total"], 3 + 1 + 2 + 1, "{history}");
        // Unknown customers are rejected with Capillary's sentence.
        let (issued, rejected, codes) = batch(&app, case1, "email\nnobody@example.com\n").await;
        assert_eq!((issued, rejected, codes), (0, 1, strs(&["invalid_customer"])));
    }

    async fn concurrent_issuers_hand_out_each_code_once(app) {
        let p = uploaded_pool(&app, 1000, json!({})).await;
        let customers: Vec<String> = (0..1100).map(|i| format!("cust-{i}")).collect();
        for chunk in customers.chunks(64) {
            join_all(chunk.iter().map(|c| customer(&app, c, json!({})))).await;
        }
        let results = run_concurrently(&app, p, customers.clone(), 64).await;
        let codes: Vec<String> = results
            .iter()
            .filter(|(s, _)| *s == 201)
            .map(|(_, b)| b["code"].as_str().unwrap().to_string())
            .collect();
        let distinct: HashSet<&String> = codes.iter().collect();
        assert_eq!(codes.len(), 1000, "every code handed out");
        assert_eq!(distinct.len(), 1000, "never one code twice");
        assert!(results.iter().filter(|(s, _)| *s != 201).all(|(s, b)| *s == 422 && b["code"] == "pool_exhausted"));
    }

    async fn concurrent_issuers_never_pass_a_customer_or_series_limit(app) {
        customer(&app, "ana", json!({})).await;
        let per_customer = uploaded_pool(&app, 100, json!({"max_per_customer": 3})).await;
        let results = run_concurrently(&app, per_customer, vec!["ana".to_string(); 64], 64).await;
        assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 3);
        assert!(results.iter().filter(|(s, _)| *s != 201).all(|(_, b)| b["code"] == "customer_limit"));

        let names: Vec<String> = (0..64).map(|i| format!("s-{i}")).collect();
        join_all(names.iter().map(|c| customer(&app, c, json!({})))).await;
        let series = uploaded_pool(&app, 100, json!({"max_total": 20})).await;
        let results = run_concurrently(&app, series, names, 64).await;
        assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 20);
        assert!(results.iter().filter(|(s, _)| *s != 201).all(|(_, b)| b["code"] == "series_limit"));
    }
}

fn strs(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Runs a batch issue to the end; returns (issued, rejected, the rejected rows' codes).
async fn batch(app: &TestApp, pool_id: i64, csv: &str) -> (i64, i64, Vec<String>) {
    let resp = app
        .request(
            Method::POST,
            &format!("/v1/pools/{pool_id}/issue/batch"),
            Some(&app.key),
        )
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id = json(resp).await["id"].as_i64().unwrap();
    let job = app.wait_for_job(id).await;
    assert_eq!(job["state"], "done", "{job}");
    let issues = app
        .get(&format!("/v1/imports/{id}/issues"))
        .await
        .text()
        .await
        .unwrap();
    let codes = issues
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().to_string())
        .collect();
    (
        job["accepted"].as_i64().unwrap(),
        job["rejected"].as_i64().unwrap(),
        codes,
    )
}

/// Issues one coupon per listed customer, `parallel` requests at a time.
async fn run_concurrently(
    app: &TestApp,
    pool_id: i64,
    customers: Vec<String>,
    parallel: usize,
) -> Vec<(u16, Value)> {
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(customers));
    let workers = (0..parallel).map(|_| {
        let queue = queue.clone();
        async move {
            let mut out = Vec::new();
            loop {
                let Some(c) = queue.lock().await.pop() else {
                    return out;
                };
                let resp = issue(app, pool_id, json!({"external_id": c})).await;
                out.push((resp.status().as_u16(), json(resp).await));
            }
        }
    });
    join_all(workers).await.into_iter().flatten().collect()
}
