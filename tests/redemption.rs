//! Checkout over HTTP: validating and redeeming codes against baskets under every rule family,
//! discounts, idempotency, reservations, reversals, a coupon's lifecycle, auto-redeem,
//! searching, forgiving entry, and exact limits under concurrency.

mod common;

use chrono::{DateTime, Datelike, Duration, Offset, TimeZone, Timelike, Utc};
use common::{
    TestApp,
    checkout::{coupon, issue, redeem, redeem_ok, refused, rule_codes, set_dates, uploaded, with},
    expect_problem,
    fixtures::{customer, pool},
    json,
};
use coupond::domain::coupon::CouponStatus;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

const MADRID: chrono_tz::Tz = chrono_tz::Europe::Madrid;

fn basket(total: i64) -> Value {
    json!({"total": total, "currency": "EUR"})
}

/// A checkout by `who` (None: anonymous) of a `total` basket.
fn by(who: Option<&str>, total: i64) -> Value {
    match who {
        Some(w) => json!({"customer": {"external_id": w}, "basket": basket(total)}),
        None => json!({"basket": basket(total)}),
    }
}

async fn validate(app: &TestApp, code: &str, body: Value) -> Value {
    let resp = app
        .post(&format!("/v1/coupons/{code}/validate"), body)
        .await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The failed rules a dry run reports; empty when redeemable.
async fn failing(app: &TestApp, code: &str, body: Value) -> Vec<String> {
    let v = validate(app, code, body).await;
    assert_eq!(v["redeemable"], v["errors"].as_array().unwrap().is_empty());
    rule_codes(&v["errors"])
}

async fn events(app: &TestApp, kind: &str) -> Vec<(Option<i64>, i64)> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    coupond::store::entity::coupon_events::Entity::find()
        .filter(coupond::store::entity::coupon_events::Column::Kind.eq(kind))
        .order_by_asc(coupond::store::entity::coupon_events::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.customer_id, e.coupon_id))
        .collect()
}

/// An instant 4 to 16 hours ago whose Madrid hour is 2 to 21, so the hour before it, and the
/// instant with its hour in UTC, fall on the same Madrid day and in the past.
fn recent_madrid_hour() -> DateTime<Utc> {
    let now = Utc::now();
    (4..=16)
        .map(|h| now - Duration::hours(h))
        .find(|t| (2..=21).contains(&t.with_timezone(&MADRID).hour()))
        .unwrap()
}

/// Moves a redemption's purchase time, as if it had been made then.
async fn purchased_at(app: &TestApp, id: i64, at: DateTime<Utc>) {
    use sea_orm::{ActiveModelTrait, Set};
    coupond::store::entity::redemptions::ActiveModel {
        id: Set(id),
        redeemed_at: Set(at),
        ..Default::default()
    }
    .update(&app.db)
    .await
    .unwrap();
}

/// Sets a coupon's stored status directly (for statuses no API in this test sets).
async fn force_status(app: &TestApp, coupon_id: i64, status: CouponStatus) {
    use sea_orm::{ActiveModelTrait, Set};
    coupond::store::entity::coupons::ActiveModel {
        id: Set(coupon_id),
        status: Set(status),
        ..Default::default()
    }
    .update(&app.db)
    .await
    .unwrap();
}

both_databases! {
    async fn validate_changes_nothing_and_redeem_uses_the_coupon(app) {
        customer(&app, "ana", json!({})).await;
        customer(&app, "bob", json!({})).await;
        let p = uploaded(&app, &["V1", "V2"], json!({}), json!({})).await;
        let code = issue(&app, p, "ana").await;
        let v = validate(&app, &code, by(Some("ana"), 2000)).await;
        assert_eq!((v["redeemable"].clone(), v["discount"]["amount"].clone()), (json!(true), json!(500)));
        assert_eq!(v["code"], code.as_str());
        let again = validate(&app, &code, by(Some("ana"), 2000)).await;
        assert_eq!(again["discount"], v["discount"]);
        let c = coupon(&app, &code).await;
        assert_eq!((c["status"].clone(), c["redemption_count"].clone()), (json!("issued"), json!(0)));
        assert!(events(&app, "coupon_redeem").await.is_empty());

        let r = redeem_ok(&app, &code, by(Some("ana"), 2000)).await;
        assert_eq!(r["state"], "confirmed");
        assert_eq!(r["discount"]["amount"], 500);
        assert_eq!(r["coupon_status"], "redeemed");
        assert!(r["id"].as_i64().is_some());
        let c = coupon(&app, &code).await;
        assert_eq!((c["status"].clone(), c["redemption_count"].clone()), (json!("redeemed"), json!(1)));
        assert_eq!(events(&app, "coupon_redeem").await.len(), 1);
        let v = validate(&app, &code, by(Some("ana"), 2000)).await;
        assert_eq!(v["redeemable"], false);
        assert_eq!(rule_codes(&v["errors"]), ["already_redeemed", "customer_limit"]);

        let pos = app.key_with(&["pos"]).await;
        let workflow = app.key_with(&["workflow"]).await;
        let send = |key: &str| app.request(Method::POST, &format!("/v1/coupons/{code}/validate"), Some(key))
            .json(&by(Some("ana"), 2000)).send();
        assert_eq!(send(&pos).await.unwrap().status(), 200);
        expect_problem(send(&workflow).await.unwrap(), 403, "missing_scope").await;
        expect_problem(app.post("/v1/coupons/NOPE/validate", by(None, 100)).await, 404, "coupon_not_found").await;
        let bad = app.post(&format!("/v1/coupons/{code}/validate"), json!({"basket": {"total": -1, "currency": "EUR"}})).await;
        assert_eq!(expect_problem(bad, 422, "validation_failed").await["field"], "basket.total");
    }

    async fn status_and_start_date_rules(app) {
        customer(&app, "ana", json!({})).await;
        let later = pool(&app, json!({"name": "S", "source": "generated", "pattern": "LATE####",
            "discount_type": "free_shipping",
            "expiry": {"mode": "days_from_issual", "days": 3, "redemption_starts": "days_after_issual", "start_days": 2}})).await;
        let code = issue(&app, later, "ana").await;
        assert_eq!(failing(&app, &code, by(Some("ana"), 1000)).await, ["not_yet_redeemable"]);
        // Validity is judged at the server's clock: time passes by moving the coupon's dates.
        let id = coupon(&app, &code).await["id"].as_i64().unwrap();
        let now = Utc::now();
        set_dates(&app, id, Some(now + Duration::days(1)), Some(now - Duration::days(1))).await;
        assert!(failing(&app, &code, by(Some("ana"), 1000)).await.is_empty());
        set_dates(&app, id, Some(now - Duration::minutes(1)), Some(now - Duration::days(3))).await;
        assert_eq!(failing(&app, &code, by(Some("ana"), 1000)).await, ["expired"]);

        let p = uploaded(&app, &["ST1", "ST2", "ST3"], json!({}), json!({})).await;
        let codes = [issue(&app, p, "ana").await, issue(&app, p, "ana").await, issue(&app, p, "ana").await];
        let ids: Vec<i64> = join_all(codes.iter().map(|c| coupon(&app, c))).await.iter().map(|c| c["id"].as_i64().unwrap()).collect();
        force_status(&app, ids[0], CouponStatus::Expired).await;
        force_status(&app, ids[1], CouponStatus::Revoked).await;
        assert_eq!(app.post(&format!("/v1/coupons/{}/invalidate", codes[2]), json!({})).await.status(), 200);
        assert_eq!(refused(&app, &codes[0], by(Some("ana"), 1000)).await, ["expired"]);
        assert_eq!(refused(&app, &codes[1], by(Some("ana"), 1000)).await, ["revoked"]);
        assert_eq!(refused(&app, &codes[2], by(Some("ana"), 1000)).await, ["invalidated"]);

        uploaded(&app, &["DRAFT1"], json!({"allow_anyone": true}), json!({"state": "draft"})).await;
        assert_eq!(refused(&app, "DRAFT1", by(Some("ana"), 1000)).await, ["pool_inactive"]);
    }

    async fn only_the_holder_unless_anyone_may_redeem(app) {
        let ana = customer(&app, "ana", json!({})).await;
        customer(&app, "bob", json!({})).await;
        let carl = customer(&app, "carl", json!({})).await;
        let own = uploaded(&app, &["OWN1", "OWN2"], json!({}), json!({})).await;
        let code = issue(&app, own, "ana").await;
        assert_eq!(failing(&app, &code, by(Some("bob"), 1000)).await, ["not_holder"]);
        assert_eq!(failing(&app, &code, by(None, 1000)).await, ["customer_required"]);
        let unissued = if code == "OWN1" { "OWN2" } else { "OWN1" };
        assert_eq!(failing(&app, unissued, by(Some("bob"), 1000)).await, ["not_issued"]);

        let shared = uploaded(&app, &["FAM1", "FAM2"], json!({"allow_anyone": true, "max_per_code": 3}), json!({})).await;
        let code = issue(&app, shared, "ana").await;
        let r = redeem_ok(&app, &code, by(Some("bob"), 1000)).await;
        assert_eq!(r["coupon_status"], "issued");
        let c = coupon(&app, &code).await;
        assert_eq!(c["customer_id"], ana, "still Ana's");
        // Antavo: an uploaded code redeemed before it is claimed goes to the redeemer.
        let unissued = if code == "FAM1" { "FAM2" } else { "FAM1" };
        assert_eq!(coupon(&app, unissued).await["status"], "available");
        redeem_ok(&app, unissued, by(Some("carl"), 1000)).await;
        let c = coupon(&app, unissued).await;
        assert_eq!((c["status"].clone(), c["customer_id"].clone()), (json!("issued"), json!(carl)));
        assert!(c["issued_at"].is_string());
        let carls = json(app.get("/v1/customers/carl/coupons").await).await;
        assert_eq!(carls["items"][0]["code"], unissued);
        assert_eq!(events(&app, "coupon_redeem").await.last().unwrap().0, Some(carl));
    }

    async fn the_fourteen_rows_of_the_limit_table(app) {
        for who in ["h0", "h1", "h2", "f1", "f2", "f3", "f4"] {
            customer(&app, who, json!({})).await;
        }
        for row in ROWS {
            run_row(&app, row).await;
        }
    }

    async fn stores_bills_and_the_calendar_in_the_orgs_zone(app) {
        customer(&app, "ana", json!({})).await;
        let stores = json!([{"kind": "store", "id": "s1"}, {"kind": "zone", "id": "north"},
                            {"kind": "concept", "id": "outlet"}, {"kind": "till", "id": "t9"}]);
        // `at` may only place a purchase in the past: the rules take the hour and day of one.
        let base = recent_madrid_hour();
        let local = base.with_timezone(&MADRID);
        let (weekday, hour) = (local.format("%a").to_string().to_lowercase(), local.hour());
        let p = uploaded(&app, &["CAL1"], json!({"stores": stores.clone(), "min_bill": 1000, "max_bill": 5000,
            "days_of_week": [weekday], "hours": [hour]}), json!({"purchase_min": 2000})).await;
        let code = issue(&app, p, "ana").await;
        let at = |t: DateTime<Utc>, store: Value, total: i64| with(by(Some("ana"), total), json!({"at": t.to_rfc3339(), "store": store}));
        let s1 = json!({"id": "s1"});
        assert!(failing(&app, &code, at(base, s1.clone(), 3000)).await.is_empty());
        for store in [json!({"id": "s9", "zone": "north"}), json!({"id": "s9", "concept": "outlet"}), json!({"id": "s9", "till": "t9"})] {
            assert!(failing(&app, &code, at(base, store.clone(), 3000)).await.is_empty(), "{store}");
        }
        assert_eq!(failing(&app, &code, at(base, json!({"id": "s2", "zone": "south", "concept": "north"}), 3000)).await, ["store_not_allowed"]);
        assert_eq!(failing(&app, &code, at(base, s1.clone(), 900)).await, ["below_min_bill", "below_purchase_min"]);
        assert_eq!(failing(&app, &code, at(base, s1.clone(), 1500)).await, ["below_purchase_min"]);
        assert_eq!(failing(&app, &code, at(base, s1.clone(), 5001)).await, ["above_max_bill"]);
        let hour_before = base - Duration::hours(1);
        assert_eq!(failing(&app, &code, at(hour_before, s1.clone(), 3000)).await, ["wrong_hour"]);
        // The instant whose UTC hour is the allowed one is an hour or two later in Madrid.
        let offset = i64::from(local.offset().fix().local_minus_utc()) / 3600;
        assert_eq!(failing(&app, &code, at(base + Duration::hours(offset), s1.clone(), 3000)).await, ["wrong_hour"]);
        let other_day = (local.date_naive() + Duration::days(1)).format("%a").to_string().to_lowercase();
        let p = uploaded(&app, &["CAL2"], json!({"stores": stores, "min_bill": 1000, "days_of_week": [other_day], "hours": [hour]}),
            json!({"purchase_min": 2000})).await;
        let code = issue(&app, p, "ana").await;
        assert_eq!(failing(&app, &code, at(base, s1.clone(), 3000)).await, ["wrong_day_of_week"]);
        assert_eq!(failing(&app, &code, at(hour_before, s1, 100)).await,
            ["wrong_day_of_week", "wrong_hour", "below_min_bill", "below_purchase_min"]);

        let today = local.day();
        let that_day = uploaded(&app, &["DOM1"], json!({"days_of_month": [today]}), json!({})).await;
        let code = issue(&app, that_day, "ana").await;
        assert!(failing(&app, &code, with(by(Some("ana"), 100), json!({"at": base.to_rfc3339()}))).await.is_empty());
        let another = uploaded(&app, &["DOM2"], json!({"days_of_month": [today % 28 + 1]}), json!({})).await;
        let code = issue(&app, another, "ana").await;
        assert_eq!(failing(&app, &code, with(by(Some("ana"), 100), json!({"at": base.to_rfc3339()}))).await, ["wrong_day_of_month"]);
    }

    async fn gaps_between_redemptions_and_new_customers(app) {
        customer(&app, "ana", json!({})).await;
        let gap = uploaded(&app, &["GAP1"], json!({"redeem_more_than_once": true, "max_per_customer": 5, "min_days_between": 2}), json!({})).await;
        let code = issue(&app, gap, "ana").await;
        // Calendar days in Madrid: last redeemed late yesterday is too soon, two days ago is not.
        let today = Utc::now().with_timezone(&MADRID).date_naive();
        let late_on = |days: u64| MADRID.from_local_datetime(&(today - chrono::Days::new(days)).and_hms_opt(23, 59, 0).unwrap())
            .earliest().unwrap().with_timezone(&Utc);
        let first = redeem_ok(&app, &code, by(Some("ana"), 1000)).await["id"].as_i64().unwrap();
        purchased_at(&app, first, late_on(1)).await;
        assert_eq!(refused(&app, &code, by(Some("ana"), 1000)).await, ["min_gap"]);
        purchased_at(&app, first, late_on(2)).await;
        redeem_ok(&app, &code, by(Some("ana"), 1000)).await;

        customer(&app, "old", json!({"registered_at": "2023-06-01T10:00:00Z"})).await;
        customer(&app, "new", json!({"registered_at": "2024-03-01T10:00:00Z"})).await;
        customer(&app, "busy", json!({"registered_at": "2024-03-01T10:00:00Z", "transaction_count": 5})).await;
        let fresh = uploaded(&app, &["NEW1", "NEW2", "NEW3"], json!({"new_customers": {"registered_from": "2024-01-01", "max_transactions": 0}}), json!({})).await;
        for who in ["old", "new", "busy"] {
            let code = issue(&app, fresh, who).await;
            let fails = failing(&app, &code, by(Some(who), 1000)).await;
            assert_eq!(fails.is_empty(), who == "new", "{who}: {fails:?}");
        }
    }

    async fn products_categories_and_sale_items(app) {
        customer(&app, "ana", json!({})).await;
        let p = pool(&app, json!({"name": "Shoes", "source": "uploaded", "discount_type": "percentage", "value": 1000,
            "redemption": {"categories": ["shoes"], "include_sale_items": false}})).await;
        app.post(&format!("/v1/pools/{p}/codes"), json!({"codes": ["SHOE1"]})).await;
        let code = issue(&app, p, "ana").await;
        let lines = json!([
            {"product_id": "boot", "category": "shoes", "price": 2000, "quantity": 2},
            {"product_id": "sandal", "category": "shoes", "price": 1000, "quantity": 1, "on_sale": true},
            {"product_id": "hat", "category": "hats", "price": 500, "quantity": 1}]);
        let body = json!({"customer": {"external_id": "ana"}, "basket": {"total": 6000, "currency": "EUR", "lines": lines}});
        let v = validate(&app, &code, body).await;
        assert_eq!(v["discount"]["amount"], 400);
        assert_eq!(v["discount"]["lines"], json!([{"line": 0, "product_id": "boot", "amount": 400}]));
        let hats = json!({"customer": {"external_id": "ana"}, "basket": {"total": 600, "currency": "EUR",
            "lines": [{"product_id": "hat", "category": "hats", "price": 500, "quantity": 1}]}});
        assert_eq!(failing(&app, &code, hats).await, ["no_eligible_items"]);
    }

    async fn amounts_percentages_and_free_shipping(app) {
        customer(&app, "ana", json!({})).await;
        let amount = pool(&app, json!({"name": "A", "source": "generated", "pattern": "AMT####", "discount_type": "amount", "value": 3000, "currency": "EUR"})).await;
        let code = issue(&app, amount, "ana").await;
        assert_eq!(validate(&app, &code, by(Some("ana"), 2000)).await["discount"]["amount"], 2000, "capped at the basket");
        let usd = json!({"customer": {"external_id": "ana"}, "basket": {"total": 5000, "currency": "USD"}});
        let resp = app.post(&format!("/v1/coupons/{code}/validate"), usd).await;
        expect_problem(resp, 422, "no_exchange_rate").await;

        let pct = pool(&app, json!({"name": "P", "source": "generated", "pattern": "PCT####", "discount_type": "percentage", "value": 1250})).await;
        let code = issue(&app, pct, "ana").await;
        for (total, off) in [(1005, 126), (996, 124), (1000, 125)] {
            assert_eq!(validate(&app, &code, by(Some("ana"), total)).await["discount"]["amount"], off, "12.5% of {total}, half-even");
        }
        let ship = pool(&app, json!({"name": "F", "source": "generated", "pattern": "SHIP####", "discount_type": "free_shipping"})).await;
        let code = issue(&app, ship, "ana").await;
        let r = redeem_ok(&app, &code, by(Some("ana"), 1000)).await;
        assert_eq!((r["discount"]["amount"].clone(), r["discount"]["free_shipping"].clone()), (json!(0), json!(true)));
        let amount_on_ship = with(by(Some("ana"), 1000), json!({"amount": 100}));
        assert_eq!(expect_problem(redeem(&app, &code, amount_on_ship).await, 422, "validation_failed").await["field"], "amount");
    }

    async fn gift_cards_spend_in_parts_and_void_under_their_minimum(app) {
        customer(&app, "ana", json!({})).await;
        let card = pool(&app, json!({"name": "Gift", "source": "generated", "pattern": "GIFT####", "discount_type": "gift_card",
            "value": 10000, "currency": "USD", "gift_card_min_value": 100, "gift_card_min_redemption": 1500,
            "redemption": {"redeem_more_than_once": true}})).await;
        let code = issue(&app, card, "ana").await;
        let pay = |total: i64, amount: Option<i64>| {
            let mut b = json!({"customer": {"external_id": "ana"}, "basket": {"total": total, "currency": "USD"}});
            if let Some(a) = amount { b["amount"] = json!(a); }
            b
        };
        let r = redeem_ok(&app, &code, pay(5000, Some(2000))).await;
        assert_eq!(r["discount"]["gift_card_balance_after"], 8000);
        assert_eq!((r["coupon_balance"].clone(), r["coupon_status"].clone()), (json!(8000), json!("issued")));
        assert_eq!(refused(&app, &code, pay(5000, Some(1000))).await, ["below_min_redemption"]);
        assert_eq!(refused(&app, &code, pay(5000, Some(9000))).await, ["above_balance"]);
        // $79.50 of the $80 left: $0.50 is under the $1 minimum, so the card is voided.
        let last = redeem_ok(&app, &code, pay(7950, None)).await;
        assert_eq!(last["discount"]["amount"], 7950);
        assert_eq!(last["discount"]["gift_card_voided"], true);
        assert_eq!((last["coupon_balance"].clone(), last["coupon_status"].clone()), (json!(50), json!("redeemed")));
        assert!(refused(&app, &code, pay(5000, None)).await.contains(&"already_redeemed".to_string()));
        let id = last["id"].as_i64().unwrap();
        let back = json(app.post(&format!("/v1/redemptions/{id}/reverse"), json!({})).await).await;
        assert_eq!((back["coupon_balance"].clone(), back["coupon_status"].clone()), (json!(8000), json!("issued")));
    }

    async fn a_keyed_redeem_is_made_once(app) {
        customer(&app, "ana", json!({})).await;
        uploaded(&app, &["KEY1"], json!({"allow_anyone": true, "redeem_more_than_once": true}), json!({})).await;
        let send = |total: i64| app.request(Method::POST, "/v1/coupons/KEY1/redeem", Some(&app.key))
            .header("Idempotency-Key", "till-4/receipt-99").json(&by(Some("ana"), total)).send();
        let first = send(2000).await.unwrap();
        assert_eq!(first.status(), 201);
        let first = json(first).await;
        let again = send(2000).await.unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(json(again).await["id"], first["id"]);
        expect_problem(send(3000).await.unwrap(), 409, "idempotency_key_reused").await;
        assert_eq!(coupon(&app, "KEY1").await["redemption_count"], 1);
        // Retries racing each other: one redemption, every answer names it.
        let racing = (0..8).map(|_| app.request(Method::POST, "/v1/coupons/KEY1/redeem", Some(&app.key))
            .header("Idempotency-Key", "till-4/receipt-100").json(&by(Some("ana"), 2000)).send());
        let answers = join_all(racing).await;
        let mut ids = Vec::new();
        for resp in answers {
            let resp = resp.unwrap();
            assert!(resp.status() == 201 || resp.status() == 200, "{}", resp.status());
            ids.push(json(resp).await["id"].clone());
        }
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert_eq!(coupon(&app, "KEY1").await["redemption_count"], 2);
    }
}

both_databases! {
    async fn reservations_hold_until_confirmed_released_or_run_out(app) {
        customer(&app, "ana", json!({})).await;
        let p = uploaded(&app, &["HOLD1", "HOLD2", "HOLD3"], json!({}), json!({})).await;
        let (a, b, c) = (issue(&app, p, "ana").await, issue(&app, p, "ana").await, issue(&app, p, "ana").await);
        let hold = reserve(&app, &a, by(Some("ana"), 1000)).await;
        assert_eq!(hold["state"], "reserved");
        let until: DateTime<Utc> = hold["reserved_until"].as_str().unwrap().parse().unwrap();
        let ttl = until - Utc::now();
        assert!(ttl > Duration::minutes(14) && ttl <= Duration::minutes(15), "{ttl}");
        // The hold counts against the single-use code.
        assert_eq!(failing(&app, &a, by(Some("ana"), 1000)).await, ["customer_limit"]);
        assert_eq!(coupon(&app, &a).await["status"], "issued");
        let id = hold["id"].as_i64().unwrap();
        let confirmed = json(app.post(&format!("/v1/reservations/{id}/confirm"), json!({})).await).await;
        assert_eq!((confirmed["state"].clone(), confirmed["coupon_status"].clone()), (json!("confirmed"), json!("redeemed")));
        assert!(confirmed["reserved_until"].is_null());
        let again = app.post(&format!("/v1/reservations/{id}/confirm"), json!({})).await;
        assert_eq!(again.status(), 200, "confirming twice is harmless");
        assert_eq!(events(&app, "coupon_redeem").await.len(), 1);
        expect_problem(app.post(&format!("/v1/reservations/{id}/release"), json!({})).await, 409, "already_confirmed").await;

        let hold = reserve(&app, &b, by(Some("ana"), 1000)).await;
        let id = hold["id"].as_i64().unwrap();
        let released = json(app.post(&format!("/v1/reservations/{id}/release"), json!({})).await).await;
        assert_eq!(released["state"], "released");
        assert_eq!(app.post(&format!("/v1/reservations/{id}/release"), json!({})).await.status(), 200);
        assert!(failing(&app, &b, by(Some("ana"), 1000)).await.is_empty());
        expect_problem(app.post(&format!("/v1/reservations/{id}/confirm"), json!({})).await, 409, "reservation_released").await;
        expect_problem(app.post(&format!("/v1/redemptions/{id}/reverse"), json!({})).await, 409, "not_confirmed").await;

        let hold = reserve(&app, &c, with(by(Some("ana"), 1000), json!({"ttl_seconds": 1}))).await;
        let id = hold["id"].as_i64().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        assert!(failing(&app, &c, by(Some("ana"), 1000)).await.is_empty(), "a hold that ran out counts no more");
        expect_problem(app.post(&format!("/v1/reservations/{id}/confirm"), json!({})).await, 409, "reservation_expired").await;
        let gone = json(app.post(&format!("/v1/reservations/{id}/release"), json!({})).await).await;
        assert_eq!(gone["state"], "expired");
        redeem_ok(&app, &c, by(Some("ana"), 1000)).await;
        expect_problem(app.post("/v1/reservations/999999/confirm", json!({})).await, 404, "not_found").await;
        let zero = app.post(&format!("/v1/coupons/{c}/reserve"), with(by(Some("ana"), 1000), json!({"ttl_seconds": 0}))).await;
        assert_eq!(zero.status(), 400);
    }

    async fn holds_set_gift_card_money_and_series_places_aside(app) {
        customer(&app, "ana", json!({})).await;
        let card = pool(&app, json!({"name": "Gift", "source": "generated", "pattern": "HG####", "discount_type": "gift_card",
            "value": 10000, "currency": "EUR", "redemption": {"redeem_more_than_once": true}})).await;
        let code = issue(&app, card, "ana").await;
        let hold = reserve(&app, &code, with(by(Some("ana"), 3000), json!({"amount": 3000}))).await;
        assert_eq!(hold["coupon_balance"], 7000);
        assert_eq!(validate(&app, &code, by(Some("ana"), 9000)).await["discount"]["amount"], 7000);
        let id = hold["id"].as_i64().unwrap();
        let released = json(app.post(&format!("/v1/reservations/{id}/release"), json!({})).await).await;
        assert_eq!(released["coupon_balance"], 10000);
        let short = reserve(&app, &code, with(by(Some("ana"), 3000), json!({"amount": 2500, "ttl_seconds": 1}))).await;
        assert_eq!(short["coupon_balance"], 7500);
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        assert_eq!(validate(&app, &code, by(Some("ana"), 20000)).await["discount"]["amount"], 10000, "a dry run adds a run-out hold back");
        let r = redeem_ok(&app, &code, with(by(Some("ana"), 1000), json!({"amount": 1000}))).await;
        assert_eq!(r["coupon_balance"], 9000, "the run-out hold was given back first");

        uploaded(&app, &["SER1", "SER2"], json!({"allow_anyone": true, "max_total": 1}), json!({})).await;
        reserve(&app, "SER1", with(by(Some("ana"), 1000), json!({"ttl_seconds": 1}))).await;
        assert_eq!(failing(&app, "SER2", by(Some("ana"), 1000)).await, ["series_limit"]);
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        assert!(failing(&app, "SER2", by(Some("ana"), 1000)).await.is_empty());
        redeem_ok(&app, "SER2", by(Some("ana"), 1000)).await;
        assert_eq!(refused(&app, "SER1", by(Some("ana"), 1000)).await, ["series_limit"]);
    }

    async fn a_reversal_reinstates_the_coupon(app) {
        let ana = customer(&app, "ana", json!({})).await;
        let p = uploaded(&app, &["REV1", "REV2"], json!({"max_total": 1}), json!({})).await;
        let code = issue(&app, p, "ana").await;
        let other = issue(&app, p, "ana").await;
        let r = redeem_ok(&app, &code, by(Some("ana"), 1000)).await;
        let before = coupon(&app, &code).await;
        assert_eq!(refused(&app, &other, by(Some("ana"), 1000)).await, ["series_limit"]);
        let id = r["id"].as_i64().unwrap();
        let reversed = json(app.post(&format!("/v1/redemptions/{id}/reverse"), json!({})).await).await;
        assert_eq!((reversed["state"].clone(), reversed["coupon_status"].clone()), (json!("reversed"), json!("issued")));
        assert!(reversed["reversed_at"].is_string());
        let after = coupon(&app, &code).await;
        assert_eq!((after["status"].clone(), after["is_reversed"].clone(), after["redemption_count"].clone()), (json!("issued"), json!(true), json!(0)));
        assert!(after["last_status_change_at"].as_str() > before["last_status_change_at"].as_str());
        let listed = json(app.get("/v1/customers/ana/coupons").await).await;
        assert!(listed["items"].as_array().unwrap().iter().any(|c| c["code"] == code.as_str() && c["is_reversed"] == true));
        assert_eq!(events(&app, "coupon_unredeem").await, [(Some(ana), after["id"].as_i64().unwrap())]);
        let again = app.post(&format!("/v1/redemptions/{id}/reverse"), json!({})).await;
        assert_eq!(again.status(), 200);
        assert_eq!(events(&app, "coupon_unredeem").await.len(), 1, "a second reverse changes nothing");
        // The series place came back too.
        redeem_ok(&app, &other, by(Some("ana"), 1000)).await;
        assert_eq!(json(app.get(&format!("/v1/redemptions/{id}")).await).await["state"], "reversed");

        let last = json(app.get("/v1/customers/ana/coupons").await).await;
        let other_id = last["items"].as_array().unwrap().iter().find(|c| c["code"] == other.as_str()).unwrap()["id"].as_i64().unwrap();
        let other_redemption = events(&app, "coupon_redeem").await.len();
        assert_eq!(other_redemption, 2);
        force_status(&app, other_id, CouponStatus::Revoked).await;
        let rid = redemption_of(&app, other_id).await;
        let problem = expect_problem(app.post(&format!("/v1/redemptions/{rid}/reverse"), json!({})).await, 409, "invalid_transition").await;
        assert!(problem["detail"].as_str().unwrap().contains("revoked"), "{problem}");
        expect_problem(app.post("/v1/redemptions/999999/reverse", json!({})).await, 404, "not_found").await;
    }

    async fn invalidate_unassign_and_transfer(app) {
        let ana = customer(&app, "ana", json!({})).await;
        let bob = customer(&app, "bob", json!({})).await;
        let p = uploaded(&app, &["LIFE1", "LIFE2"], json!({}), json!({})).await;
        let code = issue(&app, p, "ana").await;
        let moved = json(app.post(&format!("/v1/coupons/{code}/transfer"), json!({"customer": {"external_id": "bob"}})).await).await;
        assert_eq!((moved["customer_id"].clone(), moved["status"].clone()), (json!(bob), json!("issued")));
        let id = moved["id"].as_i64().unwrap();
        assert_eq!(events(&app, "coupon_transfer").await, [(Some(ana), id)]);
        assert_eq!(events(&app, "coupon_receive").await, [(Some(bob), id)]);
        expect_problem(app.post(&format!("/v1/coupons/{code}/transfer"), json!({"customer": {"external_id": "bob"}})).await, 422, "same_customer").await;
        expect_problem(app.post(&format!("/v1/coupons/{code}/transfer"), json!({"customer": {"external_id": "nobody"}})).await, 422, "customer_not_found").await;
        assert_eq!(failing(&app, &code, by(Some("ana"), 1000)).await, ["not_holder"]);

        let back = json(app.post(&format!("/v1/coupons/{code}/unassign"), json!({})).await).await;
        assert_eq!(back["status"], "available");
        assert!(back["customer_id"].is_null() && back["issued_at"].is_null());
        assert_eq!(events(&app, "coupon_unassign").await, [(Some(bob), id)]);
        let problem = expect_problem(app.post(&format!("/v1/coupons/{code}/unassign"), json!({})).await, 409, "invalid_transition").await;
        assert!(problem["detail"].as_str().unwrap().contains("available"), "{problem}");
        expect_problem(app.post(&format!("/v1/coupons/{code}/transfer"), json!({"customer": {"external_id": "ana"}})).await, 409, "invalid_transition").await;

        let gone = json(app.post(&format!("/v1/coupons/{code}/invalidate"), json!({})).await).await;
        assert_eq!(gone["status"], "invalidated");
        assert_eq!(events(&app, "coupon_invalidate").await, [(None, id)]);
        let problem = expect_problem(app.post(&format!("/v1/coupons/{code}/invalidate"), json!({})).await, 409, "invalid_transition").await;
        assert!(problem["detail"].as_str().unwrap().contains("invalidated"), "{problem}");

        let used = issue(&app, p, "ana").await;
        redeem_ok(&app, &used, by(Some("ana"), 1000)).await;
        for action in ["invalidate", "unassign"] {
            let problem = expect_problem(app.post(&format!("/v1/coupons/{used}/{action}"), json!({})).await, 409, "invalid_transition").await;
            assert!(problem["detail"].as_str().unwrap().contains("redeemed"), "{problem}");
        }
        let pos = app.key_with(&["pos"]).await;
        let resp = app.request(Method::POST, &format!("/v1/coupons/{used}/invalidate"), Some(&pos)).send().await.unwrap();
        expect_problem(resp, 403, "missing_scope").await;
        let common = pool(&app, json!({"name": "C", "source": "common", "pattern": "EVERYONE10", "discount_type": "free_shipping"})).await;
        issue(&app, common, "ana").await;
        assert_eq!(coupon(&app, "EVERYONE10").await["status"], "available", "the code's own row");
    }

    async fn checkouts_redeem_every_good_code_in_order(app) {
        customer(&app, "ana", json!({})).await;
        uploaded(&app, &["TENOFF"], json!({"allow_anyone": true}), json!({"value": 1000})).await;
        let pct = pool(&app, json!({"name": "P", "source": "uploaded", "discount_type": "percentage", "value": 1000,
            "redemption": {"allow_anyone": true}})).await;
        app.post(&format!("/v1/pools/{pct}/codes"), json!({"codes": ["PCT10"]})).await;
        uploaded(&app, &["BIGBILL"], json!({"allow_anyone": true, "min_bill": 50000}), json!({})).await;
        let body = json!({"customer": {"external_id": "ana"}, "basket": basket(10000),
                          "codes": ["TENOFF", "NOSUCH", "BIGBILL", "PCT10", "TENOFF"]});
        let resp = app.post("/v1/checkouts", body).await;
        assert_eq!(resp.status(), 200);
        let out = json(resp).await;
        let results = out["results"].as_array().unwrap();
        let summary: Vec<(bool, i64, Vec<String>)> = results.iter()
            .map(|r| (r["redeemed"].as_bool().unwrap(), r["redemption"]["discount"]["amount"].as_i64().unwrap_or(0), rule_codes(&r["errors"])))
            .collect();
        assert_eq!(summary, [
            (true, 1000, vec![]),
            (false, 0, vec!["coupon_not_found".to_string()]),
            (false, 0, vec!["below_min_bill".to_string()]),
            (true, 900, vec![]),
            (false, 0, vec!["duplicate_code".to_string()]),
        ]);
        assert_eq!((out["total_discount"].clone(), out["remaining_total"].clone()), (json!(1900), json!(8100)));
        assert_eq!(coupon(&app, "TENOFF").await["redemption_count"], 1);

        let keyed = |codes: Value| app.request(Method::POST, "/v1/checkouts", Some(&app.key))
            .header("Idempotency-Key", "order-77")
            .json(&json!({"customer": {"external_id": "ana"}, "basket": basket(5000), "codes": codes})).send();
        uploaded(&app, &["MULTI"], json!({"allow_anyone": true, "redeem_more_than_once": true}), json!({})).await;
        let first = json(keyed(json!(["MULTI"])).await.unwrap()).await;
        let again = json(keyed(json!(["MULTI"])).await.unwrap()).await;
        assert_eq!(first["results"][0]["redemption"]["id"], again["results"][0]["redemption"]["id"]);
        assert_eq!(coupon(&app, "MULTI").await["redemption_count"], 1);
        let none = app.post("/v1/checkouts", json!({"basket": basket(100), "codes": []})).await;
        assert_eq!(none.status(), 400);
    }

    async fn coupons_are_searched_by_pool_status_holder_and_place(app) {
        customer(&app, "ana", json!({})).await;
        customer(&app, "bob", json!({})).await;
        let p = uploaded(&app, &["L1", "L2", "L3", "L4"], json!({}), json!({})).await;
        let other = uploaded(&app, &["M1"], json!({}), json!({})).await;
        let a1 = issue(&app, p, "ana").await;
        let a2 = issue(&app, p, "ana").await;
        let b1 = issue(&app, p, "bob").await;
        let at = |store: Value| with(by(Some("ana"), 1000), json!({"store": store}));
        redeem_ok(&app, &a1, at(json!({"id": "s1", "zone": "north", "concept": "outlet"}))).await;
        redeem_ok(&app, &a2, at(json!({"id": "s2", "zone": "south", "concept": "outlet"}))).await;
        let held = reserve(&app, &b1, with(by(Some("bob"), 1000), json!({"store": {"id": "s1"}}))).await;
        assert_eq!(held["state"], "reserved");
        let list = |query: &str| listed(&app, query.to_string());
        assert_eq!(list("store=s1").await, (vec![a1.clone()], 1), "a hold is not a redemption");
        assert_eq!(list("zone=south").await, (vec![a2.clone()], 1));
        assert_eq!(list("concept=outlet").await.1, 2);
        assert_eq!(list("status=redeemed").await.1, 2);
        assert_eq!(list(&format!("pool={p}&status=available")).await, (vec!["L4".to_string()], 1));
        assert_eq!(list("customer=bob").await, (vec![b1.clone()], 1));
        assert_eq!(list("customer=nobody").await.1, 0);
        assert_eq!(list(&format!("pool={other}")).await.1, 1);
        let (page, total) = list(&format!("pool={p}&per_page=1&page=2")).await;
        assert_eq!((page.len(), total), (1, 4));
        let problem = expect_problem(app.get("/v1/coupons?store=s1&zone=north").await, 422, "validation_failed").await;
        assert_eq!(problem["field"], "zone");
        assert_eq!(app.get("/v1/coupons?per_page=201").await.status(), 400);
    }

    async fn forgiving_entry_ignores_case_and_separators(app) {
        customer(&app, "ana", json!({})).await;
        uploaded(&app, &["ABCD1234"], json!({"allow_anyone": true}), json!({"case_insensitive": true})).await;
        uploaded(&app, &["WXYZ9876"], json!({"allow_anyone": true}), json!({})).await;
        let v = validate(&app, "abcd-1234", by(Some("ana"), 1000)).await;
        assert_eq!((v["redeemable"].clone(), v["code"].clone()), (json!(true), json!("ABCD1234")));
        assert_eq!(coupon(&app, "ab.cd 12_34").await["code"], "ABCD1234");
        let r = redeem_ok(&app, "abcd-1234", by(Some("ana"), 1000)).await;
        assert_eq!(r["code"], "ABCD1234");
        expect_problem(app.post("/v1/coupons/wxyz-9876/validate", by(Some("ana"), 1000)).await, 404, "coupon_not_found").await;
        assert_eq!(validate(&app, "WXYZ9876", by(Some("ana"), 1000)).await["redeemable"], true);

        let forgiving = uploaded(&app, &["AB-12"], json!({"allow_anyone": true}), json!({"case_insensitive": true})).await;
        let twins = json(app.post(&format!("/v1/pools/{forgiving}/codes"), json!({"codes": ["ab12", "Ab_12"]})).await).await;
        assert_eq!((twins["accepted"].as_i64(), twins["skipped"].as_i64()), (Some(0), Some(2)), "{twins}");
        uploaded(&app, &["ab12"], json!({"allow_anyone": true}), json!({})).await;
        assert_eq!(validate(&app, "ab12", by(Some("ana"), 1000)).await["code"], "ab12", "an exact match wins");
        assert_eq!(validate(&app, "Ab 12", by(Some("ana"), 1000)).await["code"], "AB-12", "only forgiving pools match loosely");

        assert!(lookup_plan(&app).await.contains("idx_coupons_org_lookup_key"));
    }

    async fn concurrent_redeems_stop_exactly_at_the_code_limit(app) {
        uploaded(&app, &["RUSH"], json!({"allow_anyone": true, "redeem_more_than_once": true, "max_per_code": 10}), json!({})).await;
        let results = join_all((0..64).map(|_| async {
            let resp = redeem(&app, "RUSH", by(None, 1000)).await;
            (resp.status().as_u16(), json(resp).await)
        })).await;
        assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 10);
        for (status, body) in results.iter().filter(|(s, _)| *s != 201) {
            assert_eq!(*status, 422, "{body}");
            let rules = rule_codes(&body["errors"]);
            assert!(rules == ["already_redeemed"] || rules == ["code_limit"], "{rules:?}");
        }
        let c = coupon(&app, "RUSH").await;
        assert_eq!((c["redemption_count"].clone(), c["status"].clone()), (json!(10), json!("redeemed")));
    }

    async fn concurrent_redeems_by_one_customer_stop_at_their_limits(app) {
        customer(&app, "ana", json!({})).await;
        let burst = |code: String| {
            let app = &app;
            async move {
                let sent = (0..16).map(|_| redeem(app, &code, by(Some("ana"), 1000)));
                join_all(sent).await.iter().filter(|r| r.status() == 201).count()
            }
        };
        // A shared code: twice per customer, guarded by the code's row lock.
        uploaded(&app, &["TWICE"], json!({"allow_anyone": true, "redeem_more_than_once": true, "max_per_customer": 2}), json!({})).await;
        assert_eq!(burst("TWICE".into()).await, 2);
        // A common code held as a copy: twice per customer, guarded by the customer's row lock.
        let common = pool(&app, json!({"name": "C", "source": "common", "pattern": "ALLOFUS", "discount_type": "free_shipping",
            "redemption": {"redeem_more_than_once": true, "max_per_customer": 2}})).await;
        issue(&app, common, "ana").await;
        assert_eq!(burst("ALLOFUS".into()).await, 2);
        // One redemption a day across a pool's codes.
        let codes: Vec<String> = (0..64).map(|i| format!("DAY{i}")).collect();
        let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
        uploaded(&app, &refs, json!({"allow_anyone": true, "redeem_more_than_once": true, "min_days_between": 1}), json!({})).await;
        let sent = codes.iter().map(|c| redeem(&app, c, by(Some("ana"), 1000)));
        assert_eq!(join_all(sent).await.iter().filter(|r| r.status() == 201).count(), 1);
    }

    async fn concurrent_gift_card_spends_never_overdraw(app) {
        customer(&app, "ana", json!({})).await;
        let card = pool(&app, json!({"name": "Gift", "source": "generated", "pattern": "RUSHG####", "discount_type": "gift_card",
            "value": 1000, "currency": "EUR", "redemption": {"redeem_more_than_once": true}})).await;
        let code = issue(&app, card, "ana").await;
        let results = join_all((0..20).map(|_| async {
            let resp = redeem(&app, &code, with(by(Some("ana"), 500), json!({"amount": 100}))).await;
            resp.status().as_u16()
        })).await;
        assert_eq!(results.iter().filter(|s| **s == 201).count(), 10, "{results:?}");
        assert!(results.iter().all(|s| *s == 201 || *s == 422));
        let c = coupon(&app, &code).await;
        assert_eq!((c["balance"].clone(), c["status"].clone(), c["redemption_count"].clone()), (json!(0), json!("redeemed"), json!(10)));
    }
}

/// The query plan of a forgiving-entry look-up, which must use the expression index. The test
/// table is tiny, so PostgreSQL is told not to prefer a sequential scan.
async fn lookup_plan(app: &TestApp) -> String {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
    let backend = app.db.get_database_backend();
    // The shape of the store's look-up: the coupon joined to its pool and org.
    let select = format!(
        "SELECT coupons.id, pools.id, orgs.timezone FROM coupons \
         JOIN pools ON coupons.pool_id = pools.id JOIN orgs ON pools.org_id = orgs.id \
         WHERE coupons.org_id = 1 AND {} = 'ABCD1234'",
        migration::CODE_LOOKUP_KEY
    );
    let (explain, column) = match app.backend {
        common::Backend::Sqlite => (format!("EXPLAIN QUERY PLAN {select}"), "detail"),
        common::Backend::Postgres => (format!("EXPLAIN {select}"), "QUERY PLAN"),
    };
    let txn = app.db.begin().await.unwrap();
    if app.backend == common::Backend::Postgres {
        txn.execute_unprepared("SET LOCAL enable_seqscan = off")
            .await
            .unwrap();
    }
    let rows = txn
        .query_all_raw(Statement::from_string(backend, explain))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", column).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The codes on the first page of `/v1/coupons?{query}` and the total matching.
async fn listed(app: &TestApp, query: String) -> (Vec<String>, u64) {
    let path = format!("/v1/coupons?{query}");
    let resp = app.get(&path).await;
    assert_eq!(resp.status(), 200, "{path}");
    let body = json(resp).await;
    let codes = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect();
    (codes, body["total"].as_u64().unwrap())
}

async fn reserve(app: &TestApp, code: &str, body: Value) -> Value {
    let resp = app.post(&format!("/v1/coupons/{code}/reserve"), body).await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// The id of the coupon's latest redemption.
async fn redemption_of(app: &TestApp, coupon_id: i64) -> i64 {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    coupond::store::entity::redemptions::Entity::find()
        .filter(coupond::store::entity::redemptions::Column::CouponId.eq(coupon_id))
        .order_by_desc(coupond::store::entity::redemptions::Column::Id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// One row of Capillary's redemption limit table, scaled down (code limits of 2 or 3, series
/// limits of 2 or 3) so each is driven through its limits.
struct Row {
    n: u8,
    source: &'static str,
    anyone: bool,
    code: Option<u32>,
    customer: Option<u32>,
    series: Option<u64>,
    /// (redeemer, coupon index, "ok" or a failed rule it must report). Coupons 0 to 2 are
    /// issued to h0 to h2; uploaded pools keep coupon 3 unissued; a common pool has one code.
    steps: &'static [(&'static str, usize, &'static str)],
}

const ROWS: &[Row] = &[
    Row {
        n: 1,
        source: "generated",
        anyone: true,
        code: Some(3),
        customer: Some(1),
        series: None,
        steps: &[
            ("f1", 0, "ok"),
            ("f1", 0, "customer_limit"),
            ("f2", 0, "ok"),
            ("h0", 0, "ok"),
            ("f3", 0, "already_redeemed"),
            ("f1", 1, "ok"),
        ],
    },
    Row {
        n: 2,
        source: "generated",
        anyone: true,
        code: Some(2),
        customer: None,
        series: Some(3),
        steps: &[
            ("f1", 0, "ok"),
            ("f1", 0, "ok"),
            ("f1", 0, "already_redeemed"),
            ("f2", 1, "ok"),
            ("f2", 1, "series_limit"),
        ],
    },
    Row {
        n: 3,
        source: "generated",
        anyone: true,
        code: Some(2),
        customer: Some(1),
        series: Some(3),
        steps: &[
            ("f1", 0, "ok"),
            ("f1", 0, "customer_limit"),
            ("f2", 0, "ok"),
            ("f3", 0, "already_redeemed"),
            ("f3", 1, "ok"),
            ("f4", 1, "series_limit"),
        ],
    },
    Row {
        n: 4,
        source: "generated",
        anyone: true,
        code: Some(2),
        customer: None,
        series: None,
        steps: &[
            ("f1", 0, "ok"),
            ("f1", 0, "ok"),
            ("f2", 0, "already_redeemed"),
            ("f2", 1, "ok"),
        ],
    },
    Row {
        n: 5,
        source: "generated",
        anyone: true,
        code: None,
        customer: Some(1),
        series: Some(3),
        steps: &[
            ("f1", 0, "ok"),
            ("f1", 0, "customer_limit"),
            ("f2", 0, "ok"),
            ("f3", 0, "ok"),
            ("f4", 0, "series_limit"),
        ],
    },
    Row {
        n: 6,
        source: "generated",
        anyone: false,
        code: None,
        customer: Some(1),
        series: Some(2),
        steps: &[
            ("f1", 0, "not_holder"),
            ("h0", 0, "ok"),
            ("h0", 0, "already_redeemed"),
            ("h1", 1, "ok"),
            ("h2", 2, "series_limit"),
        ],
    },
    Row {
        n: 7,
        source: "common",
        anyone: true,
        code: None,
        customer: Some(2),
        series: Some(3),
        steps: &[
            ("h0", 0, "ok"),
            ("h0", 0, "ok"),
            ("h0", 0, "customer_limit"),
            ("f1", 0, "ok"),
            ("f2", 0, "series_limit"),
        ],
    },
    Row {
        n: 8,
        source: "uploaded",
        anyone: true,
        code: Some(2),
        customer: Some(1),
        series: Some(3),
        steps: &[
            ("f1", 3, "ok"),
            ("f1", 0, "ok"),
            ("f1", 0, "customer_limit"),
            ("f2", 0, "ok"),
            ("f3", 1, "series_limit"),
        ],
    },
    Row {
        n: 9,
        source: "uploaded",
        anyone: true,
        code: Some(2),
        customer: Some(1),
        series: None,
        steps: &[
            ("f1", 0, "ok"),
            ("f1", 0, "customer_limit"),
            ("f2", 0, "ok"),
            ("f3", 0, "already_redeemed"),
        ],
    },
    Row {
        n: 10,
        source: "uploaded",
        anyone: true,
        code: Some(2),
        customer: None,
        series: Some(3),
        steps: &[
            ("f1", 0, "ok"),
            ("f1", 0, "ok"),
            ("f1", 0, "already_redeemed"),
            ("f1", 1, "ok"),
            ("f1", 1, "series_limit"),
        ],
    },
    Row {
        n: 11,
        source: "uploaded",
        anyone: true,
        code: Some(2),
        customer: None,
        series: None,
        steps: &[
            ("f1", 0, "ok"),
            ("f1", 0, "ok"),
            ("f2", 0, "already_redeemed"),
        ],
    },
    Row {
        n: 12,
        source: "uploaded",
        anyone: true,
        code: None,
        customer: Some(2),
        series: Some(3),
        steps: &[
            ("f1", 0, "ok"),
            ("f1", 0, "ok"),
            ("f1", 0, "customer_limit"),
            ("f2", 0, "ok"),
            ("f3", 0, "series_limit"),
        ],
    },
    Row {
        n: 13,
        source: "uploaded",
        anyone: false,
        code: None,
        customer: Some(1),
        series: Some(2),
        steps: &[
            ("f1", 3, "not_issued"),
            ("f1", 0, "not_holder"),
            ("h0", 0, "ok"),
            ("h0", 0, "already_redeemed"),
            ("h1", 1, "ok"),
            ("h2", 2, "series_limit"),
        ],
    },
    // Third-party codes: only the holder, so the code limit equals the customer limit (2 here).
    Row {
        n: 14,
        source: "uploaded",
        anyone: false,
        code: None,
        customer: Some(2),
        series: Some(3),
        steps: &[
            ("h0", 0, "ok"),
            ("h0", 0, "ok"),
            ("h0", 0, "already_redeemed"),
            ("h1", 1, "ok"),
            ("h2", 2, "series_limit"),
        ],
    },
];

async fn run_row(app: &TestApp, row: &Row) {
    let n = row.n;
    let mut body = json!({"name": format!("Row {n}"), "source": row.source, "discount_type": "free_shipping",
        "redemption": {"allow_anyone": row.anyone, "redeem_more_than_once": row.customer != Some(1),
                       "max_per_code": row.code, "max_per_customer": row.customer, "max_total": row.series}});
    match row.source {
        "generated" => body["pattern"] = json!(format!("R{n}G####")),
        "common" => body["pattern"] = json!(format!("ROW{n}COMMON")),
        _ => {}
    }
    let id = pool(app, body).await;
    if row.source == "uploaded" {
        let codes: Vec<String> = (0..4).map(|i| format!("R{n}U{i}")).collect();
        app.post(&format!("/v1/pools/{id}/codes"), json!({"codes": codes}))
            .await;
    }
    let mut codes = Vec::new();
    for holder in ["h0", "h1", "h2"] {
        codes.push(issue(app, id, holder).await);
    }
    if row.source == "uploaded" {
        codes.push(format!("R{n}U3"));
    }
    for (i, (who, coupon, expected)) in row.steps.iter().enumerate() {
        let resp = redeem(app, &codes[*coupon], by(Some(who), 1000)).await;
        let status = resp.status().as_u16();
        let body = json(resp).await;
        let context = format!("row {n}, step {i}: {who} redeems coupon {coupon}: {body}");
        if *expected == "ok" {
            assert_eq!(status, 201, "{context}");
        } else {
            assert_eq!(status, 422, "{context}");
            assert!(
                rule_codes(&body["errors"]).contains(&expected.to_string()),
                "{context}"
            );
        }
    }
}
