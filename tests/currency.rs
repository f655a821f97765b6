//! Multi-currency values over HTTP: stores and their currencies, the org's exchange rates and
//! their history, amount and gift card coupons converted at the rate in force (and keeping it),
//! refusals that change nothing, and gift card spends across currencies under concurrency.

mod common;

use chrono::{Duration, Utc};
use common::{
    TestApp, expect_problem,
    fixtures::{customer, issue_ok, pool},
    json,
};
use futures_util::future::join_all;
use reqwest::{Method, Response};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};

async fn put(app: &TestApp, path: &str, body: Value) -> Response {
    app.request(Method::PUT, path, Some(&app.key))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn put_ok(app: &TestApp, path: &str, body: Value) -> Value {
    let resp = put(app, path, body).await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Records rates given as `(from, to, rate, effective_at)`.
async fn rates(app: &TestApp, rates: &[(&str, &str, &str, chrono::DateTime<Utc>)]) {
    let items: Vec<Value> = rates
        .iter()
        .map(|(from, to, rate, at)| json!({"from": from, "to": to, "rate": rate, "effective_at": at}))
        .collect();
    put_ok(app, "/v1/org/exchange-rates", json!({"rates": items})).await;
}

/// A pool of `discount_type` worth `value` in `currency` (none: no currency), with one code
/// issued to ana; returns the code.
async fn coupon_of(
    app: &TestApp,
    discount_type: &str,
    value: i64,
    currency: Option<&str>,
) -> String {
    customer(app, "ana", json!({})).await;
    // Each pool of an org needs a pattern of its own.
    static POOLS: AtomicU32 = AtomicU32::new(0);
    let n = POOLS.fetch_add(1, Ordering::Relaxed);
    let letter = |i: u32| char::from(b'A' + (i % 26) as u8);
    let pattern = format!("CU{}{}-######", letter(n / 26), letter(n));
    let mut body = json!({"name": "P", "source": "generated", "pattern": pattern,
                          "discount_type": discount_type, "value": value});
    if let Some(c) = currency {
        body["currency"] = json!(c);
    }
    let id = pool(app, body).await;
    issue_ok(app, id, "ana").await["code"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Ana's checkout of `basket` at `store` (a store id, or none), paying `amount` with a gift card.
fn checkout(basket: Value, store: Option<&str>, amount: Option<i64>) -> Value {
    let mut body = json!({"customer": {"external_id": "ana"}, "basket": basket});
    if let Some(s) = store {
        body["store"] = json!({"id": s});
    }
    if let Some(a) = amount {
        body["amount"] = json!(a);
    }
    body
}

async fn redeem(app: &TestApp, code: &str, body: Value) -> Response {
    app.post(&format!("/v1/coupons/{code}/redeem"), body).await
}

async fn redeem_ok(app: &TestApp, code: &str, body: Value) -> Value {
    let resp = redeem(app, code, body).await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn coupon(app: &TestApp, code: &str) -> Value {
    json(app.get(&format!("/v1/coupons/{code}")).await).await
}

async fn redemptions(app: &TestApp) -> u64 {
    coupond::store::entity::redemptions::Entity::find()
        .count(&app.db)
        .await
        .unwrap()
}

both_databases! {
    async fn stores_are_registered_with_a_currency_and_read_back(app) {
        let body = json!({"name": " Gran Vía ", "currency": "EUR", "zone": "centro", "concept": "flagship"});
        let s = put_ok(&app, "/v1/stores/madrid-01", body).await;
        assert_eq!((s["id"].as_str(), s["name"].as_str(), s["currency"].as_str()), (Some("madrid-01"), Some("Gran Vía"), Some("EUR")));
        put_ok(&app, "/v1/stores/tokyo-01", json!({"currency": "JPY"})).await;
        // A PUT replaces the settings.
        let s = put_ok(&app, "/v1/stores/madrid-01", json!({"name": "Gran Vía", "currency": "USD", "zone": "centro"})).await;
        assert_eq!((s["currency"].as_str(), s["concept"].clone()), (Some("USD"), Value::Null));
        let read = json(app.get("/v1/stores/madrid-01").await).await;
        assert_eq!(read, s);
        let list = json(app.get("/v1/stores").await).await;
        let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["madrid-01", "tokyo-01"]);

        // A till may read stores, not change them; another org sees none of them.
        let pos = app.key_with(&["pos"]).await;
        let resp = app.request(Method::GET, "/v1/stores/tokyo-01", Some(&pos)).send().await.unwrap();
        assert_eq!(json(resp).await["currency"], "JPY");
        let resp = app.request(Method::PUT, "/v1/stores/tokyo-01", Some(&pos)).json(&json!({"currency": "EUR"})).send().await.unwrap();
        expect_problem(resp, 403, "missing_scope").await;
        let (_, other) = app.other_org().await;
        let resp = app.request(Method::GET, "/v1/stores/tokyo-01", Some(&other)).send().await.unwrap();
        expect_problem(resp, 404, "not_found").await;

        // The registered zone fills in what the till does not send, for the pools' store scopes.
        customer(&app, "ana", json!({})).await;
        let p = pool(&app, json!({"name": "Z", "source": "generated", "pattern": "ZON-######", "discount_type": "percentage",
                                  "value": 1000, "redemption": {"stores": [{"kind": "zone", "id": "centro"}]}})).await;
        let code = issue_ok(&app, p, "ana").await["code"].as_str().unwrap().to_string();
        let v = json(app.post(&format!("/v1/coupons/{code}/validate"), checkout(json!({"total": 1000}), Some("madrid-01"), None)).await).await;
        assert_eq!((v["redeemable"].as_bool(), v["discount"]["amount"].as_i64()), (Some(true), Some(100)), "{v}");
        let v = json(app.post(&format!("/v1/coupons/{code}/validate"), checkout(json!({"total": 1000}), Some("tokyo-01"), None)).await).await;
        assert_eq!(v["errors"][0]["code"], "store_not_allowed");

        // Bad settings are 4xx naming the field, and change nothing.
        for (body, field) in [
            (json!({"currency": "EURO"}), "currency"),
            (json!({"currency": "eur"}), "currency"),
            (json!({"currency": "XXX"}), "currency"),
        ] {
            let p = expect_problem(put(&app, "/v1/stores/madrid-01", body).await, 422, "validation_failed").await;
            assert_eq!(p["field"], field);
        }
        let p = expect_problem(put(&app, &format!("/v1/stores/{}", "s".repeat(101)), json!({"currency": "EUR"})).await, 422, "validation_failed").await;
        assert_eq!(p["field"], "id");
        let resp = put(&app, "/v1/stores/madrid-01", json!({"currency": "EUR", "name": "a\u{0}b"})).await;
        assert!(resp.status().is_client_error(), "{}", resp.status());
        assert!(json(resp).await["code"].is_string());
        let resp = put(&app, "/v1/stores/madrid%00", json!({"currency": "EUR"})).await;
        assert!(resp.status().is_client_error(), "{}", resp.status());
        assert_eq!(json(app.get("/v1/stores/madrid-01").await).await["currency"], "USD");
        assert_eq!(json(app.get("/v1/stores").await).await["items"].as_array().unwrap().len(), 2);
    }

    async fn a_store_registered_after_a_checkout_named_it_counts_at_once(app) {
        let code = coupon_of(&app, "amount", 500, Some("EUR")).await;
        let body = checkout(json!({"total": 2000}), Some("lisbon-01"), None);
        let resp = app.post(&format!("/v1/coupons/{code}/validate"), body.clone()).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "basket.currency");
        put_ok(&app, "/v1/stores/lisbon-01", json!({"currency": "EUR"})).await;
        let resp = app.post(&format!("/v1/coupons/{code}/validate"), body).await;
        assert_eq!(json(resp).await["redeemable"], true);
    }

    async fn exchange_rates_keep_their_history(app) {
        let now = Utc::now();
        rates(&app, &[("EUR", "USD", "1.08", now - Duration::hours(2)), ("EUR", "JPY", "162.5", now - Duration::hours(2))]).await;
        rates(&app, &[("EUR", "USD", "1.1000", now - Duration::hours(1)), ("EUR", "USD", "1.2", now + Duration::days(1))]).await;
        let read = |query: String| {
            let app = &app;
            async move { json(app.get(&format!("/v1/org/exchange-rates?{query}")).await).await }
        };
        let v = read("from=EUR&to=USD".into()).await;
        assert_eq!(v["in_force"]["rate"], "1.1", "the latest in force now, trailing zeros dropped: {v}");
        let rates_of = |v: &Value| -> Vec<String> {
            v["history"].as_array().unwrap().iter().map(|r| r["rate"].as_str().unwrap().to_string()).collect()
        };
        assert_eq!(rates_of(&v), ["1.2", "1.1", "1.08"], "every rate kept, latest first");
        let at = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).replace('+', "%2B");
        assert_eq!(read(format!("from=EUR&to=USD&at={}", at(now - Duration::minutes(90)))).await["in_force"]["rate"], "1.08");
        assert_eq!(read(format!("from=EUR&to=USD&at={}", at(now + Duration::days(2)))).await["in_force"]["rate"], "1.2");
        assert!(read(format!("from=EUR&to=USD&at={}", at(now - Duration::hours(3)))).await.get("in_force").is_none());
        // No inverse is made up.
        assert!(read("from=USD&to=EUR".into()).await.get("in_force").is_none());
        assert_eq!(rates_of(&read("from=EUR".into()).await).len(), 4);
        assert_eq!(rates_of(&read("to=JPY".into()).await), ["162.5"]);
        assert_eq!(rates_of(&read("limit=1".into()).await), ["1.2"]);

        // Bad rates are 4xx with a code and the whole batch is refused.
        let when = json!(now);
        for (rate, field) in [
            (json!({"from": "EUR", "to": "USD", "rate": "0"}), "rates[1].rate"),
            (json!({"from": "EUR", "to": "USD", "rate": "-1.5"}), "rates[1].rate"),
            (json!({"from": "EUR", "to": "USD", "rate": "1e3"}), "rates[1].rate"),
            (json!({"from": "EUR", "to": "USD", "rate": "99999999999999999999999"}), "rates[1].rate"),
            (json!({"from": "EUR", "to": "USD", "rate": "1.0000000000001"}), "rates[1].rate"),
            (json!({"from": "EUR", "to": "EUR", "rate": "1"}), "rates[1].to"),
            (json!({"from": "XXX", "to": "USD", "rate": "1"}), "rates[1].from"),
            (json!({"from": "EUR", "to": "USD", "rate": "1", "effective_at": "0001-01-01T00:00:00Z"}), "rates[1].effective_at"),
        ] {
            let good = json!({"from": "EUR", "to": "GBP", "rate": "0.86", "effective_at": when});
            let resp = put(&app, "/v1/org/exchange-rates", json!({"rates": [good, rate]})).await;
            assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], field);
        }
        for body in [
            json!({"rates": [{"from": "EUR", "to": "USD", "rate": 1.08}]}),
            json!({"rates": [{"from": "EUR", "to": "USD", "rate": "1.0\u{0}8"}]}),
            json!({"rates": []}),
        ] {
            let resp = put(&app, "/v1/org/exchange-rates", body.clone()).await;
            assert!(resp.status().is_client_error(), "{} for {body}", resp.status());
            assert!(json(resp).await["code"].is_string());
        }
        assert_eq!(rates_of(&read("".into()).await).len(), 4, "nothing recorded");
        let p = expect_problem(app.get("/v1/org/exchange-rates?from=EURO").await, 422, "validation_failed").await;
        assert_eq!(p["field"], "from");
        let pos = app.key_with(&["pos"]).await;
        let resp = app.request(Method::PUT, "/v1/org/exchange-rates", Some(&pos))
            .json(&json!({"rates": [{"from": "EUR", "to": "USD", "rate": "1"}]})).send().await.unwrap();
        expect_problem(resp, 403, "missing_scope").await;
    }

    async fn an_amount_coupon_is_converted_at_the_rate_in_force_and_keeps_it(app) {
        put_ok(&app, "/v1/stores/ny-01", json!({"currency": "USD"})).await;
        rates(&app, &[("EUR", "USD", "1.085", Utc::now() - Duration::hours(1))]).await;
        let first = coupon_of(&app, "amount", 500, Some("EUR")).await;
        // The basket names no currency: it is in the store's. €5.00 = 542.5 cents -> 542.
        let body = checkout(json!({"total": 2000}), Some("ny-01"), None);
        let v = json(app.post(&format!("/v1/coupons/{first}/validate"), body.clone()).await).await;
        assert_eq!(v["discount"]["amount"], 542, "{v}");
        let r = redeem_ok(&app, &first, body).await;
        assert_eq!((r["discount"]["amount"].as_i64(), r["currency"].as_str()), (Some(542), Some("USD")));
        let conversion = &r["discount"]["conversion"];
        assert_eq!((conversion["from"].as_str(), conversion["to"].as_str(), conversion["rate"].as_str()), (Some("EUR"), Some("USD"), Some("1.085")));
        assert_eq!((conversion["value"].as_i64(), conversion["converted"].as_i64()), (Some(500), Some(542)));
        let row = coupond::store::entity::redemptions::Entity::find_by_id(r["id"].as_i64().unwrap()).one(&app.db).await.unwrap().unwrap();
        assert_eq!((row.coupon_currency.as_deref(), row.coupon_amount, row.exchange_rate.as_deref()), (Some("EUR"), Some(500), Some("1.085")));

        // A new rate applies to later redemptions only.
        rates(&app, &[("EUR", "USD", "1.2", Utc::now() - Duration::seconds(1))]).await;
        let second = coupon_of(&app, "amount", 500, Some("EUR")).await;
        let r2 = redeem_ok(&app, &second, checkout(json!({"total": 2000}), Some("ny-01"), None)).await;
        assert_eq!((r2["discount"]["amount"].as_i64(), r2["discount"]["conversion"]["rate"].as_str()), (Some(600), Some("1.2")));
        let past = json(app.get(&format!("/v1/redemptions/{}", r["id"])).await).await;
        assert_eq!(past["discount"], r["discount"], "the first redemption keeps its rate");

        // A basket naming its own currency wins over the store's; yen have no minor unit.
        rates(&app, &[("EUR", "JPY", "162.37", Utc::now() - Duration::seconds(1))]).await;
        let third = coupon_of(&app, "amount", 500, Some("EUR")).await;
        let r3 = redeem_ok(&app, &third, checkout(json!({"total": 5000, "currency": "JPY"}), Some("ny-01"), None)).await;
        assert_eq!((r3["discount"]["amount"].as_i64(), r3["currency"].as_str()), (Some(812), Some("JPY")), "811.85 yen");
        // In the coupon's own currency nothing is converted.
        let fourth = coupon_of(&app, "amount", 500, Some("EUR")).await;
        let r4 = redeem_ok(&app, &fourth, checkout(json!({"total": 2000, "currency": "EUR"}), None, None)).await;
        assert_eq!(r4["discount"]["amount"], 500);
        assert!(r4["discount"].get("conversion").is_none());
    }

    async fn no_rate_is_a_422_and_nothing_changes(app) {
        // The opposite direction is no substitute.
        rates(&app, &[("USD", "EUR", "0.92", Utc::now() - Duration::hours(1)), ("EUR", "USD", "1.1", Utc::now() + Duration::hours(1))]).await;
        let code = coupon_of(&app, "amount", 500, Some("EUR")).await;
        let usd = checkout(json!({"total": 2000, "currency": "USD"}), None, None);
        for path in ["validate", "redeem", "reserve"] {
            let resp = app.post(&format!("/v1/coupons/{code}/{path}"), usd.clone()).await;
            let p = expect_problem(resp, 422, "no_exchange_rate").await;
            assert!(p["detail"].as_str().unwrap().contains("EUR to USD"), "{p}");
        }
        let c = json(app.post("/v1/checkouts", json!({"customer": {"external_id": "ana"}, "basket": {"total": 2000, "currency": "USD"}, "codes": [code]})).await).await;
        assert_eq!((c["results"][0]["redeemed"].as_bool(), c["results"][0]["errors"][0]["code"].as_str()), (Some(false), Some("no_exchange_rate")), "{c}");
        assert_eq!(c["remaining_total"], 2000);
        let after = coupon(&app, &code).await;
        assert_eq!((after["status"].as_str(), after["redemption_count"].as_i64()), (Some("issued"), Some(0)));
        assert_eq!(redemptions(&app).await, 0);
        assert_eq!(common::fixtures::events(&app, "coupon_redeem").await, 0);

        // A basket whose currency is unknown or cannot be told is refused before any rule.
        for (basket, store) in [(json!({"total": 2000, "currency": "XYZ"}), None), (json!({"total": 2000}), None), (json!({"total": 2000}), Some("unregistered"))] {
            let p = expect_problem(redeem(&app, &code, checkout(basket, store, None)).await, 422, "validation_failed").await;
            assert_eq!(p["field"], "basket.currency");
        }
        let p = expect_problem(redeem(&app, &code, checkout(json!({"total": 2000, "currency": "US\u{0}"}), None, None)).await, 422, "validation_failed").await;
        assert!(p["field"].as_str().unwrap().contains("currency"), "{p}");
        assert_eq!(redemptions(&app).await, 0);
    }

    async fn percentage_coupons_need_no_rate(app) {
        let code = coupon_of(&app, "percentage", 1000, None).await;
        let r = redeem_ok(&app, &code, checkout(json!({"total": 990, "currency": "USD"}), None, None)).await;
        assert_eq!(r["discount"]["amount"], 99);
        assert!(r["discount"].get("conversion").is_none());
        // A percentage pool with a currency too, unless it has a bill limit in that currency.
        customer(&app, "ana", json!({})).await;
        let p = pool(&app, json!({"name": "P", "source": "generated", "pattern": "PCT-######",
                                  "discount_type": "percentage", "value": 1000, "currency": "EUR"})).await;
        let code = issue_ok(&app, p, "ana").await["code"].as_str().unwrap().to_string();
        let r = redeem_ok(&app, &code, checkout(json!({"total": 1000, "currency": "JPY"}), None, None)).await;
        assert_eq!(r["discount"]["amount"], 100);
        let p = pool(&app, json!({"name": "P", "source": "generated", "pattern": "MIN-######", "discount_type": "percentage",
                                  "value": 1000, "currency": "EUR", "redemption": {"min_bill": 5000}})).await;
        let code = issue_ok(&app, p, "ana").await["code"].as_str().unwrap().to_string();
        let jpy = checkout(json!({"total": 8000, "currency": "JPY"}), None, None);
        expect_problem(redeem(&app, &code, jpy.clone()).await, 422, "no_exchange_rate").await;
        // €50.00 at 162.37 is 8118.5 yen -> 8118 (half-even): 8000 is under it, 8118 is not.
        rates(&app, &[("EUR", "JPY", "162.37", Utc::now() - Duration::minutes(1))]).await;
        let p = expect_problem(redeem(&app, &code, jpy).await, 422, "not_redeemable").await;
        assert_eq!(p["errors"][0]["code"], "below_min_bill");
        redeem_ok(&app, &code, checkout(json!({"total": 8118, "currency": "JPY"}), None, None)).await;
    }

    async fn gift_card_spends_across_currencies_debit_the_converted_amount(app) {
        // A €100 card paid in yen at 162.37: a cent is 1.6237 yen.
        rates(&app, &[("EUR", "JPY", "162.37", Utc::now() - Duration::minutes(1))]).await;
        put_ok(&app, "/v1/stores/tokyo-01", json!({"currency": "JPY"})).await;
        let code = coupon_of(&app, "gift_card", 10_000, Some("EUR")).await;
        let at_tokyo = |total: i64, amount: Option<i64>| checkout(json!({"total": total}), Some("tokyo-01"), amount);
        // ¥5000 costs 5000 / 1.6237 = 3079.3 cents, rounded up to 3080.
        let r = redeem_ok(&app, &code, at_tokyo(20_000, Some(5000))).await;
        assert_eq!((r["discount"]["amount"].as_i64(), r["discount"]["gift_card_balance_after"].as_i64()), (Some(5000), Some(6920)));
        assert_eq!((r["discount"]["conversion"]["value"].as_i64(), r["discount"]["conversion"]["converted"].as_i64()), (Some(3080), Some(5000)));
        assert_eq!(r["coupon_balance"], 6920);
        // A reversal gives back what the card paid, in its currency.
        let back = json(app.post(&format!("/v1/redemptions/{}/reverse", r["id"]), json!({})).await).await;
        assert_eq!(back["coupon_balance"], 10_000, "{back}");
        // So does a released hold: ¥1000 holds 616 cents.
        let hold = json(app.post(&format!("/v1/coupons/{code}/reserve"), at_tokyo(20_000, Some(1000))).await).await;
        assert_eq!(hold["coupon_balance"], 10_000 - 616, "{hold}");
        let released = json(app.post(&format!("/v1/reservations/{}/release", hold["id"]), json!({})).await).await;
        assert_eq!(released["coupon_balance"], 10_000);
        // More yen than the card holds is refused, not trimmed: it can pay ¥16237 (16237.0).
        let p = expect_problem(redeem(&app, &code, at_tokyo(20_000, Some(16_238))).await, 422, "not_redeemable").await;
        assert_eq!(p["errors"][0]["code"], "above_balance");
        // Paying as much as it can empties it exactly, never below zero.
        let r = redeem_ok(&app, &code, at_tokyo(20_000, None)).await;
        assert_eq!((r["discount"]["amount"].as_i64(), r["coupon_balance"].as_i64()), (Some(16_237), Some(0)));
        assert_eq!(coupon(&app, &code).await["status"], "redeemed");
    }

    async fn parallel_gift_card_spends_in_another_currency_never_overdraw(app) {
        // A €10 card; each $1.00 costs ceil(100 / 1.0837) = 93 cents, so 10 fit and 70 cents
        // (75 US cents) are left.
        rates(&app, &[("EUR", "USD", "1.0837", Utc::now() - Duration::minutes(1))]).await;
        let code = coupon_of(&app, "gift_card", 1000, Some("EUR")).await;
        let spend = || redeem(&app, &code, checkout(json!({"total": 100, "currency": "USD"}), None, Some(100)));
        let answers = join_all((0..16).map(|_| spend())).await;
        let mut paid = 0;
        for resp in answers {
            match resp.status().as_u16() {
                201 => paid += 1,
                422 => {
                    let p = json(resp).await;
                    assert_eq!(p["errors"][0]["code"], "above_balance", "{p}");
                }
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!(paid, 10);
        assert_eq!(coupon(&app, &code).await["balance"], 70);
        assert_eq!(redemptions(&app).await, 10);
    }
}
