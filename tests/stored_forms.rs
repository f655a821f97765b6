//! Typed columns keep the stored forms rows had when they were strings, small integers and
//! untyped JSON: rows written now hold the old values, and rows in the old forms (including
//! JSON written before a field existed) read back as their domain types.

mod common;

use common::{
    TestApp,
    fixtures::{customer, issue_ok, pool},
    json,
};
use coupond::{
    domain::{
        api_key::Scope,
        coupon::CouponStatus,
        discount::DiscountType,
        expiry::ExpiryMode,
        pool::{PoolSource, PoolState},
        webhook::WebhookEvent,
    },
    store::{self, entity},
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use serde_json::{Value, json};

/// One row of `sql`, each column read as text (JSON columns as their text).
async fn texts(app: &TestApp, sql: &str, columns: &[&str]) -> Vec<String> {
    let backend = app.db.get_database_backend();
    let row = app
        .db
        .query_one_raw(Statement::from_string(backend, sql.to_string()))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no row: {sql}"));
    columns
        .iter()
        .map(|c| row.try_get::<String>("", c).unwrap())
        .collect()
}

async fn run(app: &TestApp, sql: &str) {
    let backend = app.db.get_database_backend();
    app.db
        .execute_raw(Statement::from_string(backend, sql.to_string()))
        .await
        .unwrap();
}

both_databases! {
    async fn rows_written_now_hold_the_old_values(app) {
        customer(&app, "ana", json!({})).await;
        let p = pool(&app, json!({"name": "Gen", "source": "generated", "pattern": "ST-####",
            "discount_type": "gift_card", "value": 5000, "currency": "EUR", "state": "active",
            "issuance": {"max_per_customer": 2}, "expiry": {"mode": "days_from_issual", "days": 30},
            "reminders": [{"days_before": 3, "channel": "email", "time": "09:30"}]})).await;
        let resp = app.post("/v1/webhooks", json!({"url": "https://example.com/h",
            "events": ["coupon.issued", "coupon.redeemed"]})).await;
        assert_eq!(resp.status(), 201);
        let coupon = issue_ok(&app, p, "ana").await;

        let pool_row = texts(&app, &format!("SELECT source, discount_type, state, \
            CAST(issuance AS TEXT) AS issuance, CAST(expiry AS TEXT) AS expiry, \
            CAST(reminders AS TEXT) AS reminders FROM pools WHERE id = {p}"),
            &["source", "discount_type", "state", "issuance", "expiry", "reminders"]).await;
        assert_eq!(pool_row[..3], ["generated", "gift_card", "active"]);
        let issuance: Value = serde_json::from_str(&pool_row[3]).unwrap();
        assert_eq!(issuance["max_per_customer"], 2, "{issuance}");
        let expiry: Value = serde_json::from_str(&pool_row[4]).unwrap();
        assert_eq!((expiry["mode"].as_str(), expiry["days"].as_i64()), (Some("days_from_issual"), Some(30)));
        let reminders: Value = serde_json::from_str(&pool_row[5]).unwrap();
        assert_eq!(reminders, json!([{"days_before": 3, "channel": "email", "time": "09:30"}]));

        let id = coupon["id"].as_i64().unwrap();
        let backend = app.db.get_database_backend();
        let status = app.db
            .query_one_raw(Statement::from_string(backend, format!("SELECT status FROM coupons WHERE id = {id}")))
            .await.unwrap().unwrap()
            .try_get::<i16>("", "status").unwrap();
        assert_eq!(status, 1, "issued is stored as 1");

        let event = texts(&app, &format!("SELECT kind FROM coupon_events WHERE coupon_id = {id}"), &["kind"]).await;
        assert_eq!(event, ["coupon_issue"]);
        let outbox = texts(&app, "SELECT channel FROM outbox", &["channel"]).await;
        assert_eq!(outbox, ["webhook"]);
        let hook = texts(&app, "SELECT CAST(events AS TEXT) AS events FROM webhooks", &["events"]).await;
        assert_eq!(serde_json::from_str::<Value>(&hook[0]).unwrap(), json!(["coupon.issued", "coupon.redeemed"]));

        app.key_with(&["pos", "workflow"]).await;
        let key = texts(&app, "SELECT CAST(scopes AS TEXT) AS scopes FROM api_keys ORDER BY id DESC", &["scopes"]).await;
        assert_eq!(serde_json::from_str::<Value>(&key[0]).unwrap(), json!(["pos", "workflow"]));

        let resp = app.post(&format!("/v1/pools/{p}/generate"), json!({"count": 10})).await;
        let job = json(resp).await;
        app.wait_for_job(job["id"].as_i64().unwrap()).await;
        let job_row = texts(&app, &format!("SELECT kind, state FROM imports WHERE id = {}", job["id"]), &["kind", "state"]).await;
        assert_eq!(job_row, ["generate", "done"]);
    }

    async fn rows_in_the_old_forms_read_back_typed(app) {
        let p = pool(&app, json!({"name": "Up", "source": "uploaded", "discount_type": "amount",
            "value": 500, "currency": "EUR"})).await;
        // Rule sets as earlier versions wrote them: the market's bare `{}` and `[]`, fields
        // left out, and a remote source saved before it had an `api_key`.
        run(&app, &format!("UPDATE pools SET source = 'remote', discount_type = 'percentage', \
            value = 1500, currency = NULL, state = 'draft', code_options = '{{}}', \
            issuance = '{{\"max_total\": 100}}', redemption = '{{}}', \
            expiry = '{{\"mode\": \"days_from_issual\", \"days\": 7}}', reminders = '[]', \
            remote = '{{\"url\": \"https://codes.example.com\", \"secret\": null, \"timeout_ms\": 2000, \"retries\": 2}}' \
            WHERE id = {p}")).await;
        let row = store::pools::get(&app.db, app.org_id, p).await.unwrap().unwrap();
        assert_eq!((row.source, row.discount_type, row.state),
            (PoolSource::Remote, DiscountType::Percentage, PoolState::Draft));
        assert_eq!(row.code_options, Default::default());
        assert_eq!((row.issuance.max_total, row.issuance.max_per_customer), (Some(100), None));
        assert_eq!(row.redemption, Default::default());
        assert_eq!((row.expiry.mode, row.expiry.days), (ExpiryMode::DaysFromIssual, Some(7)));
        assert!(row.reminders.is_empty());
        let remote = row.remote.unwrap();
        assert_eq!((remote.url.as_str(), remote.api_key, remote.timeout_ms), ("https://codes.example.com", None, 2000));
        let view = json(app.get(&format!("/v1/pools/{p}")).await).await;
        assert_eq!((view["source"].as_str(), view["state"].as_str(), view["issuance"]["max_total"].as_i64()),
            (Some("remote"), Some("draft"), Some(100)), "{view}");

        // Coupon statuses by number.
        let u = pool(&app, json!({"name": "U2", "source": "uploaded", "discount_type": "amount",
            "value": 500, "currency": "EUR"})).await;
        let resp = app.post(&format!("/v1/pools/{u}/codes"), json!({"codes": ["OLD-1"]})).await;
        assert_eq!(json(resp).await["accepted"], 1);
        run(&app, "UPDATE coupons SET status = 4 WHERE code = 'OLD-1'").await;
        let stats = json(app.get(&format!("/v1/pools/{u}/stats")).await).await;
        assert_eq!((stats["invalidated"].as_i64(), stats["available"].as_i64()), (Some(1), Some(0)), "{stats}");
        let found = entity::coupons::Entity::find()
            .filter(entity::coupons::Column::PoolId.eq(u))
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(found[0].status, CouponStatus::Invalidated);

        // Lists of names: names a newer version added are skipped, as before.
        let resp = app.post("/v1/webhooks", json!({"url": "https://example.com/h", "events": ["coupon.issued"]})).await;
        assert_eq!(resp.status(), 201);
        run(&app, "UPDATE webhooks SET events = '[\"coupon.redeemed\", \"coupon.a_later_event\"]'").await;
        let hooks = store::webhooks::list(&app.db, app.org_id).await.unwrap();
        assert_eq!(hooks[0].events.0, [WebhookEvent::CouponRedeemed]);
        run(&app, &format!("UPDATE orgs SET poc_emails = '[\"ops@example.com\"]' WHERE id = {}", app.org_id)).await;
        let org = store::orgs::get(&app.db, app.org_id).await.unwrap().unwrap();
        assert_eq!(org.poc_emails.0, ["ops@example.com"]);
        // Last: the test's own key loses its admin scope here.
        run(&app, "UPDATE api_keys SET scopes = '[\"pos\", \"a_later_scope\"]', group_ids = '[4, \"x\"]'").await;
        let keys = store::api_keys::list(&app.db, app.org_id).await.unwrap();
        assert_eq!(keys[0].scopes.0, [Scope::Pos]);
        assert_eq!(keys[0].group_ids.as_ref().unwrap().0, [4]);
    }
}
