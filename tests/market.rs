//! The loyalty market: points, coupon products with live stock, exchanges under concurrency,
//! idempotent replays, level restrictions, and refunds when an exchanged coupon is withdrawn.

mod common;

use std::collections::HashSet;

use common::{
    TestApp, expect_problem,
    fixtures::{customer, outbox, uploaded_pool},
    json,
};
use futures_util::future::join_all;
use reqwest::{Method, Response};
use serde_json::{Value, json};

/// Concurrent HTTP requests in flight at once: enough to race, modest for 8 DB connections.
const PARALLEL: usize = 32;

async fn keyed_post(app: &TestApp, path: &str, key: &str, body: Value) -> Response {
    app.request(Method::POST, path, Some(&app.key))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn credit(app: &TestApp, external_id: &str, delta: i64, key: &str) -> Response {
    keyed_post(
        app,
        &format!("/v1/customers/{external_id}/points"),
        key,
        json!({"delta": delta, "reason": "test", "reference": "order-1"}),
    )
    .await
}

async fn exchange(app: &TestApp, product: i64, external_id: &str, key: &str) -> Response {
    keyed_post(
        app,
        &format!("/v1/market/products/{product}/exchange"),
        key,
        json!({"customer": {"external_id": external_id}}),
    )
    .await
}

async fn balance(app: &TestApp, external_id: &str) -> i64 {
    let body = json(
        app.get(&format!("/v1/customers/{external_id}/points"))
            .await,
    )
    .await;
    body["balance"].as_i64().unwrap()
}

/// Creates a product and returns its answer.
async fn product(app: &TestApp, body: Value) -> Value {
    let resp = app.post("/v1/market/products", body).await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// A visible product selling `n` fresh codes for `price` points.
async fn coupon_product(app: &TestApp, n: usize, price: i64, extra: Value) -> i64 {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let codes: Vec<String> = (0..n).map(|i| format!("M{}-{i:04}", &tag[..8])).collect();
    let mut body = json!({"name": "Voucher", "category": "ecommerce", "price_points": price,
        "visible": true, "codes": codes, "discount_type": "amount", "value": 1000,
        "currency": "EUR"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    product(app, body).await["id"].as_i64().unwrap()
}

async fn get_product(app: &TestApp, id: i64) -> Value {
    json(app.get(&format!("/v1/market/products/{id}")).await).await
}

/// The cached balance of every customer equals the sum of their ledger entries.
async fn assert_balances_are_ledger_sums(app: &TestApp) {
    use sea_orm::EntityTrait;
    let customers = coupond::store::entity::customers::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    for c in customers {
        let sum = coupond::store::points::balance(&app.db, c.id)
            .await
            .unwrap();
        let cached = coupond::store::points::cached_balance(&app.db, c.id)
            .await
            .unwrap();
        assert_eq!(sum, cached, "customer {}", c.external_id);
    }
}

/// Runs `jobs` with at most PARALLEL in flight and returns (status, body) of each.
async fn race<F, Fut>(jobs: Vec<F>) -> Vec<(u16, Value)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let queue = std::sync::Arc::new(std::sync::Mutex::new(jobs));
    let workers = (0..PARALLEL).map(|_| {
        let queue = queue.clone();
        async move {
            let mut out = Vec::new();
            loop {
                let Some(job) = queue.lock().unwrap().pop() else {
                    return out;
                };
                let resp = job().await;
                out.push((resp.status().as_u16(), json(resp).await));
            }
        }
    });
    join_all(workers).await.into_iter().flatten().collect()
}

both_databases! {
    async fn two_hundred_customers_race_for_fifty_codes(app) {
        let p = coupon_product(&app, 50, 100, json!({})).await;
        let names: Vec<String> = (0..200).map(|i| format!("racer-{i}")).collect();
        for chunk in names.chunks(PARALLEL) {
            join_all(chunk.iter().map(|c| customer(&app, c, json!({})))).await;
            join_all(chunk.iter().map(|c| { let app = &app; async move { credit(app, c, 100, &format!("seed-{c}")).await } })).await;
        }
        let results = race(names.iter().map(|c| {
            let app = &app;
            move || async move { exchange(app, p, c, &format!("buy-{c}")).await }
        }).collect()).await;
        let won: Vec<&Value> = results.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
        assert_eq!(won.len(), 50, "exactly the stock is sold");
        let codes: HashSet<&str> = won.iter().map(|b| b["code"].as_str().unwrap()).collect();
        assert_eq!(codes.len(), 50, "never one code twice");
        assert!(won.iter().all(|b| b["balance"] == 0));
        let lost: Vec<&Value> = results.iter().filter(|(s, _)| *s != 201).map(|(_, b)| b).collect();
        assert_eq!(lost.len(), 150);
        assert!(lost.iter().all(|b| b["status"] == 409 && b["code"] == "out_of_stock"), "{lost:?}");
        let mut kept = 0;
        for c in &names {
            kept += balance(&app, c).await;
        }
        assert_eq!(kept, 150 * 100, "the losers keep every point");
        let after = get_product(&app, p).await;
        assert_eq!((after["stock"].as_i64(), after["available"].as_bool()), (Some(0), Some(false)));
        assert_balances_are_ledger_sums(&app).await;
    }

    async fn one_customer_with_points_for_one_buys_once(app) {
        customer(&app, "ana", json!({})).await;
        assert_eq!(credit(&app, "ana", 150, "seed").await.status(), 201);
        let p = coupon_product(&app, 10, 100, json!({})).await;
        let keys: Vec<String> = (0..20).map(|i| format!("k-{i}")).collect();
        let results = race(keys.iter().map(|k| {
            let app = &app;
            move || async move { exchange(app, p, "ana", k).await }
        }).collect()).await;
        assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 1, "{results:?}");
        assert!(results.iter().filter(|(s, _)| *s != 201)
            .all(|(s, b)| *s == 409 && b["code"] == "insufficient_points"));
        assert_eq!(balance(&app, "ana").await, 50);
        assert_eq!(get_product(&app, p).await["stock"], 9);
        let history = json(app.get("/v1/customers/ana/exchanges").await).await;
        assert_eq!(history["items"].as_array().unwrap().len(), 1);
        assert_balances_are_ledger_sums(&app).await;
    }

    async fn a_replayed_key_gets_the_same_code_and_is_charged_once(app) {
        customer(&app, "bo", json!({})).await;
        credit(&app, "bo", 300, "seed").await;
        let p = coupon_product(&app, 10, 100, json!({})).await;
        let first = exchange(&app, p, "bo", "same").await;
        assert_eq!(first.status(), 201);
        let first = json(first).await;
        assert_eq!(first["balance"], 200);
        let replays = race((0..6).map(|_| {
            let app = &app;
            move || async move { exchange(app, p, "bo", "same").await }
        }).collect()).await;
        assert!(replays.iter().all(|(s, b)| *s == 201 && *b == first), "{replays:?}");
        assert_eq!(balance(&app, "bo").await, 200);
        assert_eq!(get_product(&app, p).await["stock"], 9);
        // Two new keys racing each other: each charged once.
        let fresh = race(["n1", "n2", "n1", "n2"].into_iter().map(|k| {
            let app = &app;
            move || async move { exchange(app, p, "bo", k).await }
        }).collect()).await;
        let codes: HashSet<&str> = fresh.iter().map(|(_, b)| b["code"].as_str().unwrap()).collect();
        assert_eq!(codes.len(), 2, "{fresh:?}");
        assert_eq!(balance(&app, "bo").await, 0);
        // The key names this request: another product under it is refused.
        let q = coupon_product(&app, 1, 1, json!({})).await;
        expect_problem(exchange(&app, q, "bo", "same").await, 409, "idempotency_key_reused").await;
        // No key, no exchange.
        let resp = app.post(&format!("/v1/market/products/{p}/exchange"), json!({"customer": {"external_id": "bo"}})).await;
        assert_eq!(resp.status(), 400);
        assert_balances_are_ledger_sums(&app).await;
    }

    async fn levels_hide_and_refuse_products(app) {
        customer(&app, "gold-1", json!({"level": "gold"})).await;
        customer(&app, "silver-1", json!({"level": "silver"})).await;
        for c in ["gold-1", "silver-1"] {
            credit(&app, c, 1000, &format!("seed-{c}")).await;
        }
        let open = coupon_product(&app, 5, 10, json!({"category": "food"})).await;
        let gold = coupon_product(&app, 5, 10, json!({"levels": ["gold"]})).await;
        let listed = |who: &'static str| {
            let app = &app;
            async move {
                let list = json(app.get(&format!("/v1/market/products?customer={who}")).await).await;
                list["items"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect::<Vec<_>>()
            }
        };
        assert_eq!(listed("gold-1").await, vec![open, gold]);
        assert_eq!(listed("silver-1").await, vec![open]);
        expect_problem(exchange(&app, gold, "silver-1", "s1").await, 403, "level_not_allowed").await;
        assert_eq!(exchange(&app, gold, "gold-1", "g1").await.status(), 201);
        assert_eq!(balance(&app, "silver-1").await, 1000);
        // Category filter and paging.
        let food = json(app.get("/v1/market/products?category=food").await).await;
        assert_eq!(food["items"].as_array().unwrap().len(), 1);
        let page = json(app.get("/v1/market/products?limit=1").await).await;
        let cursor = page["next_cursor"].as_str().unwrap().to_string();
        let next = json(app.get(&format!("/v1/market/products?limit=1&cursor={cursor}")).await).await;
        assert_eq!(next["items"][0]["id"], gold);
        // Hidden, outside the window, archived: unbuyable, and only archived leaves the list.
        app.patch(&format!("/v1/market/products/{open}"), json!({"visible": false})).await;
        assert_eq!(listed("gold-1").await, vec![gold]);
        expect_problem(exchange(&app, open, "gold-1", "h1").await, 409, "product_hidden").await;
        let tomorrow = (chrono::Utc::now() + chrono::TimeDelta::days(1)).to_rfc3339();
        let resp = app.patch(&format!("/v1/market/products/{open}"), json!({"visible": true, "starts_at": tomorrow})).await;
        assert_eq!(json(resp).await["available"], false);
        expect_problem(exchange(&app, open, "gold-1", "w1").await, 409, "product_not_available").await;
        app.patch(&format!("/v1/market/products/{open}"), json!({"starts_at": null, "archived": true})).await;
        expect_problem(exchange(&app, open, "gold-1", "a1").await, 409, "product_not_available").await;
        assert_eq!(get_product(&app, open).await["archived"], true);
        assert_eq!(listed("gold-1").await, vec![gold]);
        assert_eq!(balance(&app, "gold-1").await, 990);
        // Only a market or admin key may exchange.
        let pos = app.key_with(&["pos"]).await;
        let resp = app.request(Method::POST, &format!("/v1/market/products/{gold}/exchange"), Some(&pos))
            .header("Idempotency-Key", "x").json(&json!({"customer": {"external_id": "gold-1"}})).send().await.unwrap();
        assert_eq!(resp.status(), 403);
    }

    async fn stock_falls_to_unavailable_and_duplicates_are_skipped(app) {
        customer(&app, "cy", json!({})).await;
        credit(&app, "cy", 100, "seed").await;
        let created = product(&app, json!({"name": "Cinema", "price_points": 20, "visible": true,
            "codes": "CIN-1, CIN-2,CIN-2 ,CIN-3", "discount_type": "free_shipping", "max_per_customer": 3})).await;
        assert_eq!(created["upload"]["duplicates"], json!(["CIN-2"]));
        assert_eq!(created["upload"]["accepted"], 3);
        let p = created["id"].as_i64().unwrap();
        assert_eq!((created["stock"].as_i64(), created["available"].as_bool()), (Some(3), Some(true)));
        // Codes already in the org are skipped too.
        let again = product(&app, json!({"name": "Cinema 2", "price_points": 5, "codes": ["CIN-3", "CIN-4"],
            "discount_type": "free_shipping"})).await;
        assert_eq!(again["upload"]["duplicates"], json!(["CIN-3"]));
        assert_eq!(again["stock"], 1);
        for (i, left) in [2, 1, 0].into_iter().enumerate() {
            let resp = exchange(&app, p, "cy", &format!("c{i}")).await;
            assert_eq!(resp.status(), 201);
            assert_eq!(get_product(&app, p).await["stock"], left);
        }
        assert_eq!(get_product(&app, p).await["available"], false);
        // The product's own limit is checked before stock.
        expect_problem(exchange(&app, p, "cy", "c3").await, 422, "product_limit").await;
        app.patch(&format!("/v1/market/products/{p}"), json!({"max_per_customer": null})).await;
        expect_problem(exchange(&app, p, "cy", "c4").await, 409, "out_of_stock").await;
        assert_eq!(balance(&app, "cy").await, 40);
        let history = json(app.get("/v1/customers/cy/exchanges?limit=2").await).await;
        let items = history["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["product_name"], "Cinema");
        assert_eq!(items[0]["points"], 20);
        assert!(items[0]["exchange_id"].as_i64() > items[1]["exchange_id"].as_i64(), "newest first");
        let cursor = history["next_cursor"].as_str().unwrap();
        let rest = json(app.get(&format!("/v1/customers/cy/exchanges?limit=2&cursor={cursor}")).await).await;
        assert_eq!(rest["items"].as_array().unwrap().len(), 1);
        // Bad products are 422s that create nothing.
        let resp = app.post("/v1/market/products", json!({"name": "X", "price_points": 0, "pool_id": 1})).await;
        assert_eq!(resp.status(), 400);
        let resp = app.post("/v1/market/products", json!({"name": "X", "price_points": 5})).await;
        expect_problem(resp, 422, "validation_failed").await;
        let resp = app.post("/v1/market/products", json!({"name": "X", "price_points": 5, "codes": "A9"})).await;
        expect_problem(resp, 422, "validation_failed").await;
    }

    async fn a_replayed_receipt_keeps_the_codes_expiry(app) {
        let pool = common::fixtures::pool(&app, json!({"name": "D", "source": "uploaded", "discount_type": "amount",
            "value": 500, "currency": "EUR", "expiry": {"mode": "days_from_issual", "days": 30}})).await;
        let codes = app.post(&format!("/v1/pools/{pool}/codes"), json!({"codes": ["D1", "D2"]})).await;
        assert_eq!(json(codes).await["accepted"], 2);
        let created = product(&app, json!({"name": "Dated", "price_points": 10, "visible": true, "pool_id": pool})).await;
        let p = created["id"].as_i64().unwrap();
        customer(&app, "dee", json!({})).await;
        credit(&app, "dee", 10, "seed").await;
        let first = exchange(&app, p, "dee", "dated").await;
        assert_eq!(first.status(), 201);
        let first = json(first).await;
        let expires_at: chrono::DateTime<chrono::Utc> = first["expires_at"].as_str().unwrap().parse().unwrap();
        assert!(expires_at > chrono::Utc::now() + chrono::TimeDelta::days(29), "{first}");
        let again = exchange(&app, p, "dee", "dated").await;
        assert_eq!(again.status(), 201);
        assert_eq!(json(again).await, first);
        assert_eq!(balance(&app, "dee").await, 0);
    }

    async fn generated_pools_sell_their_remaining_capacity(app) {
        let pool = common::fixtures::pool(&app, json!({"name": "G", "source": "generated",
            "pattern": "GEN-##", "discount_type": "free_shipping", "issuance": {"max_total": 40}})).await;
        let created = product(&app, json!({"name": "Generated", "price_points": 10, "visible": true, "pool_id": pool})).await;
        assert_eq!(created["stock"], 40, "capped by the pool's total limit");
        customer(&app, "gen", json!({})).await;
        credit(&app, "gen", 10, "seed").await;
        let p = created["id"].as_i64().unwrap();
        let resp = exchange(&app, p, "gen", "g").await;
        assert_eq!(resp.status(), 201);
        assert!(json(resp).await["code"].as_str().unwrap().starts_with("GEN-"));
        assert_eq!(get_product(&app, p).await["stock"], 39);
        let common_pool = common::fixtures::pool(&app, json!({"name": "C", "source": "common",
            "pattern": "SAME4ALL", "discount_type": "free_shipping"})).await;
        let resp = app.post("/v1/market/products", json!({"name": "C", "price_points": 1, "pool_id": common_pool})).await;
        expect_problem(resp, 422, "validation_failed").await;
    }

    async fn points_are_idempotent_and_never_negative(app) {
        customer(&app, "dee", json!({})).await;
        let first = credit(&app, "dee", 100, "p1").await;
        assert_eq!(first.status(), 201);
        let first = json(first).await;
        assert_eq!(first["balance"], 100);
        assert_eq!(first["entry"]["reference"], "order-1");
        assert_eq!(json(credit(&app, "dee", 100, "p1").await).await, first, "a retry is applied once");
        expect_problem(credit(&app, "dee", -150, "p2").await, 409, "insufficient_points").await;
        assert_eq!(json(credit(&app, "dee", -100, "p3").await).await["balance"], 0);
        expect_problem(credit(&app, "dee", 0, "p4").await, 422, "validation_failed").await;
        expect_problem(credit(&app, "nobody", 5, "p5").await, 404, "customer_not_found").await;
        let statement = json(app.get("/v1/customers/dee/points?limit=1").await).await;
        assert_eq!(statement["balance"], 0);
        assert_eq!(statement["entries"][0]["delta"], -100);
        let cursor = statement["next_cursor"].as_str().unwrap();
        let older = json(app.get(&format!("/v1/customers/dee/points?cursor={cursor}")).await).await;
        assert_eq!(older["entries"].as_array().unwrap().len(), 1, "the refused debit wrote nothing");
        // Concurrent debits with their own keys never overdraw.
        credit(&app, "dee", 50, "p6").await;
        let results = race((0..12).map(|i| {
            let app = &app;
            move || async move { credit(app, "dee", -10, &format!("d{i}")).await }
        }).collect()).await;
        assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 5);
        assert_eq!(balance(&app, "dee").await, 0);
        // The workflow action moves the same balance.
        let wf = app.key_with(&["workflow"]).await;
        let resp = app.request(Method::POST, "/v1/workflow/actions/credit_points", Some(&wf))
            .header("Idempotency-Key", "wf1")
            .json(&json!({"customer": {"external_id": "dee"}, "points": 7, "reason": "bonus"}))
            .send().await.unwrap();
        assert_eq!(json(resp).await["points"]["balance"], 7);
        assert_eq!(balance(&app, "dee").await, 7);
        assert_balances_are_ledger_sums(&app).await;
    }

    async fn withdrawn_exchanged_coupons_refund_once(app) {
        customer(&app, "eve", json!({})).await;
        credit(&app, "eve", 100, "seed").await;
        let refunding = coupon_product(&app, 5, 30, json!({"refund_on_revoke": true})).await;
        let keeping = coupon_product(&app, 5, 10, json!({})).await;
        let a = json(exchange(&app, refunding, "eve", "a").await).await;
        let b = json(exchange(&app, refunding, "eve", "b").await).await;
        let c = json(exchange(&app, keeping, "eve", "c").await).await;
        assert_eq!(c["balance"], 30);
        // Invalidated: refunded once, whatever happens next.
        let code = a["code"].as_str().unwrap();
        assert_eq!(app.post(&format!("/v1/coupons/{code}/invalidate"), json!({})).await.status(), 200);
        assert_eq!(balance(&app, "eve").await, 60);
        assert_eq!(app.post(&format!("/v1/coupons/{code}/invalidate"), json!({})).await.status(), 409);
        assert_eq!(balance(&app, "eve").await, 60);
        // Revoked with the whole pool: refunded; the product without refunds is not.
        let pool_b = json(app.get(&format!("/v1/market/products/{refunding}")).await).await["pool_id"].as_i64().unwrap();
        let resp = app.post(&format!("/v1/pools/{pool_b}/revoke"), json!({"scope": "all_unredeemed"})).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(balance(&app, "eve").await, 90);
        let pool_c = get_product(&app, keeping).await["pool_id"].as_i64().unwrap();
        app.post(&format!("/v1/pools/{pool_c}/revoke"), json!({"scope": "all_unredeemed"})).await;
        assert_eq!(balance(&app, "eve").await, 90);
        let history = json(app.get("/v1/customers/eve/exchanges").await).await;
        let refunded: Vec<bool> = history["items"].as_array().unwrap().iter().map(|l| !l["refunded_at"].is_null()).collect();
        assert_eq!(refunded, vec![false, true, true]);
        let entries = json(app.get("/v1/customers/eve/points").await).await;
        let refs: Vec<&str> = entries["entries"].as_array().unwrap().iter().filter(|e| e["delta"] == 30)
            .map(|e| e["reference"].as_str().unwrap()).collect();
        assert_eq!(refs, vec![format!("exchange:{}", b["exchange_id"]), format!("exchange:{}", a["exchange_id"])]);
        assert_balances_are_ledger_sums(&app).await;
    }

    async fn an_exchanged_coupon_is_not_put_back_on_sale(app) {
        customer(&app, "una", json!({})).await;
        credit(&app, "una", 50, "seed").await;
        let p = coupon_product(&app, 2, 10, json!({})).await;
        let bought = json(exchange(&app, p, "una", "x1").await).await;
        let code = bought["code"].as_str().unwrap();
        let resp = app.post(&format!("/v1/coupons/{code}/unassign"), json!({})).await;
        expect_problem(resp, 409, "exchanged_coupon").await;
        assert_eq!(json(app.get(&format!("/v1/coupons/{code}")).await).await["status"], "issued");
        // The product sells its other code, and then is out of stock, never a 500.
        assert_eq!(exchange(&app, p, "una", "x2").await.status(), 201);
        expect_problem(exchange(&app, p, "una", "x3").await, 409, "out_of_stock").await;
        assert_eq!(balance(&app, "una").await, 30);
    }

    async fn an_exchange_records_its_event_and_its_webhook_once(app) {
        let issued = json(app.post("/v1/webhooks", json!({"url": "https://example.com/issued", "events": ["coupon.issued"]})).await).await;
        app.post("/v1/webhooks", json!({"url": "https://example.com/redeemed", "events": ["coupon.redeemed"]})).await;
        let both = json(app.post("/v1/webhooks", json!({"url": "https://example.com/both", "events": ["coupon.redeemed", "coupon.issued"]})).await).await;
        customer(&app, "fay", json!({})).await;
        credit(&app, "fay", 100, "seed").await;
        let p = coupon_product(&app, 3, 40, json!({})).await;
        let first = json(exchange(&app, p, "fay", "w1").await).await;
        assert_eq!(json(exchange(&app, p, "fay", "w1").await).await, first, "a replay answers as the first");
        let rows = outbox(&app, "webhook").await;
        let mut to: Vec<i64> = rows.iter().map(|r| r.payload["webhook_id"].as_i64().unwrap()).collect();
        to.sort_unstable();
        assert_eq!(to, vec![issued["id"].as_i64().unwrap(), both["id"].as_i64().unwrap()], "once per subscriber: {rows:?}");
        for row in &rows {
            let body = &row.payload["body"];
            assert_eq!(body["type"], "coupon.issued");
            assert_eq!(body["data"]["coupon"]["code"], first["code"]);
            assert_eq!(body["data"]["customer"]["external_id"], "fay");
        }
        let code = first["code"].as_str().unwrap();
        let events = json(app.get(&format!("/v1/coupons/{code}/events")).await).await;
        let kinds: Vec<&str> = events["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["coupon_issue"]);
        let entries = json(app.get("/v1/customers/fay/points").await).await;
        let debit = &entries["entries"][0];
        assert_eq!((debit["delta"].as_i64(), debit["reference"].as_str()), (Some(-40), Some(format!("exchange:{}", first["exchange_id"]).as_str())));
        assert_eq!((first["balance"].as_i64(), balance(&app, "fay").await), (Some(60), 60));
        assert_balances_are_ledger_sums(&app).await;
    }

    async fn per_customer_limits_hold_under_concurrent_exchanges(app) {
        customer(&app, "gus", json!({})).await;
        credit(&app, "gus", 1000, "seed").await;
        // The product's own limit.
        let p = coupon_product(&app, 10, 10, json!({"max_per_customer": 2})).await;
        let results = race((0..12).map(|i| {
            let app = &app;
            move || async move { exchange(app, p, "gus", &format!("p-{i}")).await }
        }).collect()).await;
        assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 2, "{results:?}");
        assert!(results.iter().filter(|(s, _)| *s != 201).all(|(s, b)| *s == 422 && b["code"] == "product_limit"), "{results:?}");
        assert_eq!(balance(&app, "gus").await, 980);
        // The pool's issuance rule, on a product without a limit of its own.
        let pool = uploaded_pool(&app, 10, json!({"max_per_customer": 1})).await;
        let q = product(&app, json!({"name": "Once", "price_points": 10, "visible": true, "pool_id": pool})).await["id"].as_i64().unwrap();
        let results = race((0..12).map(|i| {
            let app = &app;
            move || async move { exchange(app, q, "gus", &format!("q-{i}")).await }
        }).collect()).await;
        assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 1, "{results:?}");
        assert!(results.iter().filter(|(s, _)| *s != 201).all(|(s, b)| *s == 422 && b["code"] == "customer_limit"), "{results:?}");
        assert_eq!(balance(&app, "gus").await, 970);
        assert_eq!(get_product(&app, q).await["stock"], 9);
        assert_balances_are_ledger_sums(&app).await;
    }

    async fn a_total_limit_sells_exactly_its_slots(app) {
        let pool = uploaded_pool(&app, 6, json!({"max_total": 3})).await;
        let p = product(&app, json!({"name": "Few", "price_points": 10, "visible": true, "pool_id": pool})).await["id"].as_i64().unwrap();
        // A buyer without the points takes no slot.
        customer(&app, "poor", json!({})).await;
        expect_problem(exchange(&app, p, "poor", "poor-1").await, 409, "insufficient_points").await;
        assert_eq!(get_product(&app, p).await["stock"], 3);
        let names: Vec<String> = (0..8).map(|i| format!("slot-{i}")).collect();
        for c in &names {
            customer(&app, c, json!({})).await;
            credit(&app, c, 10, &format!("seed-{c}")).await;
        }
        let results = race(names.iter().map(|c| {
            let app = &app;
            move || async move { exchange(app, p, c, &format!("buy-{c}")).await }
        }).collect()).await;
        assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 3, "{results:?}");
        assert!(results.iter().filter(|(s, _)| *s != 201).all(|(s, b)| *s == 422 && b["code"] == "series_limit"), "{results:?}");
        let mut kept = 0;
        for c in &names {
            kept += balance(&app, c).await;
        }
        assert_eq!(kept, 5 * 10, "the refused keep their points");
        assert_eq!(get_product(&app, p).await["stock"], 0);
        assert_balances_are_ledger_sums(&app).await;
    }
}
