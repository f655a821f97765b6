//! Checkout and lifecycle defects of issue 10 (items 1 to 15): the till's clock, gift cards,
//! expiry on reads and transitions, hostile input, size limits, the event history, lapsed
//! holds, pool sanity, zero discounts, line identities, keyed checkouts and a strict spec.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{
    TestApp, expect_problem,
    fixtures::{customer, issue_ok, pool},
    json,
};
use reqwest::{Method, Response};
use serde_json::{Value, json};

/// An uploaded €5-off pool with these codes and redemption rules.
async fn uploaded(app: &TestApp, codes: &[&str], redemption: Value) -> i64 {
    let id = pool(
        app,
        json!({"name": "P", "source": "uploaded", "discount_type": "amount", "value": 500,
               "currency": "EUR", "redemption": redemption}),
    )
    .await;
    let resp = app
        .post(&format!("/v1/pools/{id}/codes"), json!({"codes": codes}))
        .await;
    assert_eq!(json(resp).await["accepted"], codes.len());
    id
}

/// A generated gift card pool worth 100.00 EUR.
async fn gift_cards(app: &TestApp, pattern: &str, extra: Value) -> i64 {
    let mut body = json!({"name": "Gift", "source": "generated", "pattern": pattern,
        "discount_type": "gift_card", "value": 10000, "currency": "EUR"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    pool(app, body).await
}

async fn issue(app: &TestApp, pool_id: i64, who: &str) -> String {
    issue_ok(app, pool_id, who).await["code"]
        .as_str()
        .unwrap()
        .to_string()
}

fn by(who: &str, total: i64) -> Value {
    json!({"customer": {"external_id": who}, "basket": {"total": total, "currency": "EUR"}})
}

fn with(mut body: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
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

/// The failed rules of a refused redemption.
async fn refused(app: &TestApp, code: &str, body: Value) -> Vec<String> {
    let problem = expect_problem(redeem(app, code, body).await, 422, "not_redeemable").await;
    rule_codes(&problem["errors"])
}

fn rule_codes(errors: &Value) -> Vec<String> {
    errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_string())
        .collect()
}

async fn coupon(app: &TestApp, code: &str) -> Value {
    let resp = app.get(&format!("/v1/coupons/{code}")).await;
    assert_eq!(resp.status(), 200);
    json(resp).await
}

/// Sets a coupon's dates directly, as if time had passed.
async fn set_dates(
    app: &TestApp,
    id: i64,
    expires_at: Option<DateTime<Utc>>,
    from: Option<DateTime<Utc>>,
) {
    use sea_orm::{ActiveModelTrait, Set};
    coupond::store::entity::coupons::ActiveModel {
        id: Set(id),
        expires_at: Set(expires_at),
        redeemable_from: Set(from),
        ..Default::default()
    }
    .update(&app.db)
    .await
    .unwrap();
}

fn rfc(at: DateTime<Utc>) -> Value {
    json!(at.to_rfc3339())
}

/// The instant a JSON field names.
fn instant(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

both_databases! {
    async fn validity_is_judged_at_the_servers_clock(app) {
        customer(&app, "ana", json!({})).await;
        let p = uploaded(&app, &["AT1", "AT2", "AT3"], json!({"redeem_more_than_once": true, "max_per_customer": 9})).await;
        let now = Utc::now();
        let expired = issue(&app, p, "ana").await;
        let id = coupon(&app, &expired).await["id"].as_i64().unwrap();
        set_dates(&app, id, Some(now - Duration::hours(1)), None).await;
        // A purchase placed before expiry does not bring an expired coupon back.
        assert_eq!(refused(&app, &expired, with(by("ana", 1000), json!({"at": rfc(now - Duration::hours(2))}))).await, ["expired"]);
        let later = issue(&app, p, "ana").await;
        let id = coupon(&app, &later).await["id"].as_i64().unwrap();
        set_dates(&app, id, None, Some(now + Duration::days(2))).await;
        assert_eq!(refused(&app, &later, by("ana", 1000)).await, ["not_yet_redeemable"]);
        // Sending `at` past the start does not bring the start forward.
        let resp = redeem(&app, &later, with(by("ana", 1000), json!({"at": rfc(now + Duration::days(3))}))).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "at");

        let code = issue(&app, p, "ana").await;
        for at in [json!("9999-12-31T00:00:00Z"), rfc(now + Duration::hours(1)), rfc(now - Duration::hours(25))] {
            let resp = redeem(&app, &code, with(by("ana", 1000), json!({"at": at}))).await;
            assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "at", "{at}");
        }
        // An offline till syncing within the skew: the purchase time and the server's are both kept.
        let offline = now - Duration::hours(20);
        let r = redeem_ok(&app, &code, with(by("ana", 1000), json!({"at": rfc(offline)}))).await;
        assert_eq!(instant(&r["redeemed_at"]).timestamp(), offline.timestamp());
        let recorded = instant(&r["recorded_at"]);
        assert!((recorded - Utc::now()).num_seconds().abs() < 60, "{recorded}");
        let r = redeem_ok(&app, &code, by("ana", 1000)).await;
        assert!((instant(&r["redeemed_at"]) - instant(&r["recorded_at"])).num_seconds().abs() < 2);
    }

    async fn gift_cards_are_spent_over_several_checkouts_by_default(app) {
        customer(&app, "ana", json!({})).await;
        let card = gift_cards(&app, "GC####", json!({})).await;
        let code = issue(&app, card, "ana").await;
        let first = redeem_ok(&app, &code, by("ana", 3000)).await;
        assert_eq!((first["coupon_balance"].clone(), first["coupon_status"].clone()), (json!(7000), json!("issued")));
        let second = redeem_ok(&app, &code, by("ana", 3000)).await;
        assert_eq!(second["coupon_balance"], 4000);
        let last = redeem_ok(&app, &code, by("ana", 9000)).await;
        assert_eq!((last["coupon_balance"].clone(), last["coupon_status"].clone()), (json!(0), json!("redeemed")));
    }

    async fn reads_show_a_coupon_past_its_expiry_as_expired(app) {
        customer(&app, "ana", json!({})).await;
        let p = uploaded(&app, &["EX1", "EX2", "EX3"], json!({})).await;
        let old = issue(&app, p, "ana").await;
        issue(&app, p, "ana").await;
        let id = coupon(&app, &old).await["id"].as_i64().unwrap();
        set_dates(&app, id, Some(Utc::now() - Duration::minutes(1)), None).await;
        assert_eq!(coupon(&app, &old).await["status"], "expired");
        let mine = json(app.get("/v1/customers/ana/coupons").await).await;
        let statuses: Vec<&str> = mine["items"].as_array().unwrap().iter().map(|c| c["status"].as_str().unwrap()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == "expired").count(), 1, "{mine}");
        let expired = json(app.get("/v1/coupons?status=expired").await).await;
        assert_eq!((expired["total"].clone(), expired["items"][0]["code"].clone()), (json!(1), json!(old)));
        assert_eq!(json(app.get("/v1/coupons?status=issued").await).await["total"], 1);
        let stats = json(app.get(&format!("/v1/pools/{p}/stats")).await).await;
        assert_eq!((stats["expired"].clone(), stats["issued"].clone(), stats["available"].clone()), (json!(1), json!(1), json!(1)), "{stats}");
    }

    async fn expired_coupons_are_neither_reversed_nor_invalidated(app) {
        customer(&app, "ana", json!({})).await;
        let p = uploaded(&app, &["XR1", "XR2"], json!({})).await;
        let used = issue(&app, p, "ana").await;
        let r = redeem_ok(&app, &used, by("ana", 1000)).await;
        let unused = issue(&app, p, "ana").await;
        for code in [&used, &unused] {
            let id = coupon(&app, code).await["id"].as_i64().unwrap();
            set_dates(&app, id, Some(Utc::now() - Duration::minutes(1)), None).await;
        }
        let rid = r["id"].as_i64().unwrap();
        expect_problem(app.post(&format!("/v1/redemptions/{rid}/reverse"), json!({})).await, 409, "invalid_transition").await;
        expect_problem(app.post(&format!("/v1/coupons/{unused}/invalidate"), json!({})).await, 409, "invalid_transition").await;
        assert_eq!(coupon(&app, &used).await["redemption_count"], 1);
    }

    async fn control_characters_are_refused_naming_the_field(app) {
        customer(&app, "ana", json!({})).await;
        uploaded(&app, &["NUL1"], json!({"allow_anyone": true})).await;
        let resp = app.post("/v1/coupons/AB%00/validate", by("ana", 100)).await;
        assert_eq!(resp.status(), 400);
        let p = json(resp).await;
        assert_eq!(p["field"], "code", "{p}");
        let resp = app.post("/v1/coupons/NUL1/redeem", with(by("ana", 100), json!({"store": {"id": "s\u{0000}"}}))).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "store.id");
        let resp = app.request(Method::PUT, "/v1/customers/bob", Some(&app.key)).json(&json!({"email": "b\u{0007}@x.es"})).send().await.unwrap();
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "email");
        let resp = app.post("/v1/pools", json!({"name": "Bell\u{0007}name", "source": "uploaded", "discount_type": "free_shipping"})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "name");
        assert_eq!(coupon(&app, "NUL1").await["redemption_count"], 0);
    }

    async fn bodies_and_baskets_have_size_limits(app) {
        customer(&app, "ana", json!({})).await;
        uploaded(&app, &["BIG1"], json!({"allow_anyone": true})).await;
        let padding = "x".repeat(1024 * 1024 + 1);
        let resp = redeem(&app, "BIG1", with(by("ana", 100), json!({"pos": padding}))).await;
        expect_problem(resp, 413, "payload_too_large").await;
        let lines: Vec<Value> = (0..1001).map(|i| json!({"product_id": format!("p{i}"), "price": 1, "quantity": 1})).collect();
        let body = json!({"customer": {"external_id": "ana"}, "basket": {"total": 5000, "currency": "EUR", "lines": lines}});
        assert_eq!(expect_problem(redeem(&app, "BIG1", body).await, 422, "validation_failed").await["field"], "basket.lines");
        assert_eq!(coupon(&app, "BIG1").await["redemption_count"], 0);
    }

    async fn customer_and_coupon_histories_are_served(app) {
        customer(&app, "ana", json!({})).await;
        customer(&app, "bob", json!({})).await;
        let p = uploaded(&app, &["H1", "H2"], json!({})).await;
        let a = issue(&app, p, "ana").await;
        let b = issue(&app, p, "ana").await;
        let r = redeem_ok(&app, &a, by("ana", 1000)).await;
        app.post(&format!("/v1/redemptions/{}/reverse", r["id"]), json!({})).await;
        app.post(&format!("/v1/coupons/{b}/transfer"), json!({"customer": {"external_id": "bob"}})).await;
        let all = json(app.get("/v1/customers/ana/events").await).await;
        let kinds: Vec<&str> = all["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["coupon_transfer", "coupon_unredeem", "coupon_redeem", "coupon_issue", "coupon_issue"], "{all}");
        assert_eq!(all["total"], 5);
        assert_eq!(all["items"][0]["code"], b.as_str());
        let page = json(app.get("/v1/customers/ana/events?kind=coupon_issue&per_page=1&page=2").await).await;
        assert_eq!((page["total"].clone(), page["items"].as_array().unwrap().len()), (json!(2), 1));
        assert_eq!(page["items"][0]["code"], a.as_str());
        let bobs = json(app.get("/v1/customers/bob/events").await).await;
        assert_eq!(bobs["items"][0]["kind"], "coupon_receive");
        let history = json(app.get(&format!("/v1/coupons/{a}/events")).await).await;
        let kinds: Vec<&str> = history["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["coupon_unredeem", "coupon_redeem", "coupon_issue"]);
        expect_problem(app.get("/v1/customers/nobody/events").await, 404, "customer_not_found").await;
        expect_problem(app.get("/v1/customers/ana/events?kind=coupon_party").await, 422, "validation_failed").await;
    }

    async fn a_lapsed_gift_card_hold_shows_the_balance_validate_uses(app) {
        customer(&app, "ana", json!({})).await;
        let card = gift_cards(&app, "LH####", json!({})).await;
        let code = issue(&app, card, "ana").await;
        let resp = app.post(&format!("/v1/coupons/{code}/reserve"), with(by("ana", 7000), json!({"ttl_seconds": 1}))).await;
        assert_eq!(resp.status(), 201);
        assert_eq!(coupon(&app, &code).await["balance"], 3000);
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(coupon(&app, &code).await["balance"], 10000);
        let mine = json(app.get("/v1/customers/ana/coupons").await).await;
        assert_eq!(mine["items"][0]["balance"], 10000);
    }

    async fn pool_rules_that_cannot_apply_are_refused(app) {
        let body = |redemption: Value| json!({"name": "P", "source": "uploaded", "discount_type": "amount", "value": 500,
            "currency": "EUR", "redemption": redemption});
        // Decided: a gap between redemptions needs codes a customer may redeem more than once.
        let resp = app.post("/v1/pools", body(json!({"min_days_between": 2}))).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "redemption.min_days_between");
        let remote = json!({"name": "R", "source": "remote", "discount_type": "amount", "value": 500, "currency": "EUR",
            "remote": {"url": "http://127.0.0.1:9/codes"}, "redemption": {"allow_anyone": true}});
        assert_eq!(expect_problem(app.post("/v1/pools", remote).await, 422, "validation_failed").await["field"], "redemption.allow_anyone");
        let card = |extra: Value| with(json!({"name": "G", "source": "generated", "pattern": "GS####",
            "discount_type": "gift_card", "value": 1000, "currency": "EUR"}), extra);
        for (extra, field) in [(json!({"gift_card_min_value": 1001}), "gift_card_min_value"),
                               (json!({"gift_card_min_redemption": 1500}), "gift_card_min_redemption")] {
            let resp = app.post("/v1/pools", card(extra)).await;
            assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], field);
        }
    }

    async fn a_card_left_under_its_minimum_redemption_is_voided(app) {
        customer(&app, "ana", json!({})).await;
        let card = gift_cards(&app, "MR####", json!({"gift_card_min_redemption": 1500})).await;
        let code = issue(&app, card, "ana").await;
        let r = redeem_ok(&app, &code, with(by("ana", 9000), json!({"amount": 9000}))).await;
        assert_eq!(r["discount"]["gift_card_voided"], true);
        assert_eq!((r["coupon_balance"].clone(), r["coupon_status"].clone()), (json!(1000), json!("redeemed")));
    }

    async fn a_discount_of_nothing_uses_no_redemption(app) {
        customer(&app, "ana", json!({})).await;
        let p = uploaded(&app, &["ZERO1"], json!({"allow_anyone": true})).await;
        assert_eq!(refused(&app, "ZERO1", by("ana", 0)).await, ["nothing_to_discount"]);
        let c = coupon(&app, "ZERO1").await;
        assert_eq!((c["redemption_count"].clone(), c["status"].clone()), (json!(0), json!("available")));
        let stats = json(app.get(&format!("/v1/pools/{p}/stats")).await).await;
        assert_eq!(stats["redeemed"], 0);
    }

    async fn line_discounts_name_their_line(app) {
        customer(&app, "ana", json!({})).await;
        let p = pool(&app, json!({"name": "Ten", "source": "uploaded", "discount_type": "percentage", "value": 1000,
            "redemption": {"allow_anyone": true, "products": ["boot"]}})).await;
        app.post(&format!("/v1/pools/{p}/codes"), json!({"codes": ["LINE1"]})).await;
        let lines = json!([
            {"product_id": "hat", "price": 500, "quantity": 1},
            {"product_id": "boot", "price": 2000, "quantity": 1, "line_id": "a"},
            {"product_id": "boot", "price": 3000, "quantity": 1, "line_id": "b"}]);
        let body = json!({"customer": {"external_id": "ana"}, "basket": {"total": 5500, "currency": "EUR", "lines": lines}});
        let r = redeem_ok(&app, "LINE1", body).await;
        let got: Vec<(Value, Value, Value)> = r["discount"]["lines"].as_array().unwrap().iter()
            .map(|l| (l["line"].clone(), l["line_id"].clone(), l["amount"].clone())).collect();
        assert_eq!(got, [(json!(1), json!("a"), json!(200)), (json!(2), json!("b"), json!(300))]);
    }

    async fn a_checkout_key_reused_for_another_body_is_a_conflict(app) {
        customer(&app, "ana", json!({})).await;
        uploaded(&app, &["CK1"], json!({"allow_anyone": true, "redeem_more_than_once": true})).await;
        let send = |total: i64| app.request(Method::POST, "/v1/checkouts", Some(&app.key))
            .header("Idempotency-Key", "order-1")
            .json(&with(by("ana", total), json!({"codes": ["CK1"]}))).send();
        assert_eq!(send(2000).await.unwrap().status(), 200);
        assert_eq!(send(2000).await.unwrap().status(), 200);
        expect_problem(send(3000).await.unwrap(), 409, "idempotency_key_reused").await;
        assert_eq!(coupon(&app, "CK1").await["redemption_count"], 1);
    }

    async fn the_served_spec_has_no_duplicate_keys(app) {
        let text = app.client.get(format!("{}/openapi.json", app.base)).send().await.unwrap().text().await.unwrap();
        let spec: strict::Strict = serde_json::from_str(&text).expect("strict JSON");
        assert!(spec.0.contains_key("paths"));
        let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml")).unwrap();
        serde_yaml::from_str::<strict::Strict>(&yaml).expect("strict YAML");
    }
}

/// A document parsed refusing any object with a key given twice.
mod strict {
    use std::collections::BTreeMap;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    #[derive(Debug)]
    pub struct Strict(pub BTreeMap<String, Strict>);

    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
            d.deserialize_any(StrictVisitor)
        }
    }

    struct StrictVisitor;

    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Strict;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON or YAML value")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
            let mut seen = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if seen.contains_key(&key) {
                    return Err(de::Error::custom(format!("duplicate key `{key}`")));
                }
                let value = map.next_value::<Strict>()?;
                seen.insert(key, value);
            }
            Ok(Strict(seen))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
            while seq.next_element::<Strict>()?.is_some() {}
            Ok(Strict(BTreeMap::new()))
        }

        fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
            Ok(Strict(BTreeMap::new()))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
            Ok(Strict(BTreeMap::new()))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
            Ok(Strict(BTreeMap::new()))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
            Ok(Strict(BTreeMap::new()))
        }
        fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
            Ok(Strict(BTreeMap::new()))
        }
        fn visit_unit<E>(self) -> Result<Strict, E> {
            Ok(Strict(BTreeMap::new()))
        }
    }
}
