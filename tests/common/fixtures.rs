//! Pools, customers and issues for tests that need them as a starting point.

use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use super::{TestApp, json};

/// Creates a pool and returns its id.
pub async fn pool(app: &TestApp, body: Value) -> i64 {
    let resp = app.post("/v1/pools", body).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// An uploaded amount pool with `n` codes `P<id>C<i>` and these issuance rules.
pub async fn uploaded_pool(app: &TestApp, n: usize, issuance: Value) -> i64 {
    let id = pool(
        app,
        json!({"name": "P", "source": "uploaded", "discount_type": "amount", "value": 500,
               "currency": "EUR", "issuance": issuance}),
    )
    .await;
    let codes: Vec<String> = (0..n).map(|i| format!("P{id}C{i:05}")).collect();
    let resp = app
        .post(&format!("/v1/pools/{id}/codes"), json!({"codes": codes}))
        .await;
    assert_eq!(json(resp).await["accepted"], n);
    id
}

/// Creates or replaces a customer.
pub async fn customer(app: &TestApp, external_id: &str, body: Value) -> i64 {
    let resp = app
        .request(
            Method::PUT,
            &format!("/v1/customers/{external_id}"),
            Some(&app.key),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    json(resp).await["id"].as_i64().unwrap()
}

/// Issues a coupon through `/issue` and returns it.
pub async fn issue_ok(app: &TestApp, pool_id: i64, external_id: &str) -> Value {
    let resp = app
        .post(
            &format!("/v1/pools/{pool_id}/issue"),
            json!({"customer": {"external_id": external_id}}),
        )
        .await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Coupon events of this kind, in every org.
pub async fn events(app: &TestApp, kind: &str) -> u64 {
    coupond::store::entity::coupon_events::Entity::find()
        .filter(coupond::store::entity::coupon_events::Column::Kind.eq(kind))
        .count(&app.db)
        .await
        .unwrap()
}

/// Outbox rows of a channel, oldest first.
pub async fn outbox(app: &TestApp, channel: &str) -> Vec<coupond::store::entity::outbox::Model> {
    use sea_orm::QueryOrder;
    coupond::store::entity::outbox::Entity::find()
        .filter(coupond::store::entity::outbox::Column::Channel.eq(channel))
        .order_by_asc(coupond::store::entity::outbox::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
}
