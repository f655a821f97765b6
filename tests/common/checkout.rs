//! Checkout helpers shared by the redemption and lifecycle tests: an uploaded €5-off pool,
//! issuing, redeeming and reading the refusals.

use chrono::{DateTime, Utc};
use reqwest::Response;
use serde_json::{Value, json};

use super::{
    TestApp, expect_problem,
    fixtures::{issue_ok, pool},
    json,
};

/// An uploaded €5-off pool with these codes and redemption rules, plus `extra` pool fields.
pub async fn uploaded(app: &TestApp, codes: &[&str], redemption: Value, extra: Value) -> i64 {
    let body = json!({"name": "P", "source": "uploaded", "discount_type": "amount",
                      "value": 500, "currency": "EUR", "redemption": redemption});
    let id = pool(app, with(body, extra)).await;
    let resp = app
        .post(&format!("/v1/pools/{id}/codes"), json!({"codes": codes}))
        .await;
    assert_eq!(json(resp).await["accepted"], codes.len());
    id
}

/// Issues the pool's next coupon to the customer and returns its code.
pub async fn issue(app: &TestApp, pool_id: i64, external_id: &str) -> String {
    issue_ok(app, pool_id, external_id).await["code"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `body` with the fields of `extra` set over it.
pub fn with(mut body: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

pub async fn redeem(app: &TestApp, code: &str, body: Value) -> Response {
    app.post(&format!("/v1/coupons/{code}/redeem"), body).await
}

pub async fn redeem_ok(app: &TestApp, code: &str, body: Value) -> Value {
    let resp = redeem(app, code, body).await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// The failed rules of a refused redemption (422 `not_redeemable`).
pub async fn refused(app: &TestApp, code: &str, body: Value) -> Vec<String> {
    let problem = expect_problem(redeem(app, code, body).await, 422, "not_redeemable").await;
    rule_codes(&problem["errors"])
}

pub fn rule_codes(errors: &Value) -> Vec<String> {
    errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_string())
        .collect()
}

pub async fn coupon(app: &TestApp, code: &str) -> Value {
    let resp = app.get(&format!("/v1/coupons/{code}")).await;
    assert_eq!(resp.status(), 200);
    json(resp).await
}

/// Sets a coupon's dates directly, as if time had passed.
pub async fn set_dates(
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
