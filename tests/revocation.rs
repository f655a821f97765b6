//! Revoking coupons: all unredeemed, only unissued, or listed customers' active coupons.

mod common;

use common::{
    TestApp, expect_problem,
    fixtures::{customer, events, issue_ok, pool, uploaded_pool},
    json,
};
use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

async fn revoke(app: &TestApp, pool_id: i64, scope: &str) -> Value {
    let resp = app
        .post(
            &format!("/v1/pools/{pool_id}/revoke"),
            json!({"scope": scope}),
        )
        .await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn stats(app: &TestApp, pool_id: i64) -> Value {
    json(app.get(&format!("/v1/pools/{pool_id}/stats")).await).await
}

/// Marks a coupon redeemed, as a checkout would.
async fn redeem(app: &TestApp, code: &str) {
    coupond::store::entity::coupons::Entity::update_many()
        .col_expr(
            coupond::store::entity::coupons::Column::Status,
            Expr::value(2i16),
        )
        .filter(coupond::store::entity::coupons::Column::Code.eq(code))
        .exec(&app.db)
        .await
        .unwrap();
}

async fn status_of(app: &TestApp, external_id: &str) -> Vec<String> {
    let list = json(
        app.get(&format!("/v1/customers/{external_id}/coupons"))
            .await,
    )
    .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_string())
        .collect()
}

both_databases! {
    async fn all_unredeemed_takes_issued_and_unissued_but_never_redeemed(app) {
        let p = uploaded_pool(&app, 2_050, json!({})).await;
        for who in ["ana", "bob"] {
            customer(&app, who, json!({})).await;
        }
        issue_ok(&app, p, "ana").await;
        let bob = issue_ok(&app, p, "bob").await;
        redeem(&app, bob["code"].as_str().unwrap()).await;

        assert_eq!(revoke(&app, p, "all_unredeemed").await, json!({"issued": 1, "unissued": 2_048}));
        let s = stats(&app, p).await;
        assert_eq!((s["revoked"].as_i64(), s["redeemed"].as_i64(), s["available"].as_i64()), (Some(2_049), Some(1), Some(0)));
        assert_eq!(status_of(&app, "ana").await, ["revoked"]);
        assert_eq!(status_of(&app, "bob").await, ["redeemed"]);
        assert_eq!(events(&app, "coupon_revoke").await, 1);
        let again = app.post(&format!("/v1/pools/{p}/issue"), json!({"customer": {"external_id": "ana"}})).await;
        assert_eq!(json(again).await["code"], "pool_exhausted");
        assert_eq!(revoke(&app, p, "all_unredeemed").await, json!({"issued": 0, "unissued": 0}));
    }

    async fn a_revoked_coupon_is_never_redeemed_or_reversed(app) {
        let p = pool(&app, json!({"name": "Multi", "source": "uploaded", "discount_type": "amount", "value": 500,
                                  "currency": "EUR", "redemption": {"redeem_more_than_once": true}})).await;
        app.post(&format!("/v1/pools/{p}/codes"), json!({"codes": ["MULTI-1"]})).await;
        customer(&app, "ana", json!({})).await;
        issue_ok(&app, p, "ana").await;
        let checkout = json!({"customer": {"external_id": "ana"}, "basket": {"total": 2000, "currency": "EUR"}});
        let first = json(app.post("/v1/coupons/MULTI-1/redeem", checkout.clone()).await).await;
        assert_eq!(first["coupon_status"], "issued", "{first}");
        assert_eq!(revoke(&app, p, "all_unredeemed").await, json!({"issued": 1, "unissued": 0}));
        let refused = expect_problem(app.post("/v1/coupons/MULTI-1/redeem", checkout).await, 422, "not_redeemable").await;
        assert!(refused["errors"].as_array().unwrap().iter().any(|e| e["code"] == "revoked"), "{refused}");
        let id = first["id"].as_i64().unwrap();
        expect_problem(app.post(&format!("/v1/redemptions/{id}/reverse"), json!({})).await, 409, "invalid_transition").await;
        assert_eq!(status_of(&app, "ana").await, ["revoked"]);
    }

    async fn unissued_only_leaves_issued_coupons_alone(app) {
        let p = uploaded_pool(&app, 4, json!({})).await;
        customer(&app, "ana", json!({})).await;
        issue_ok(&app, p, "ana").await;
        assert_eq!(revoke(&app, p, "unissued_only").await, json!({"issued": 0, "unissued": 3}));
        assert_eq!(status_of(&app, "ana").await, ["issued"]);
        assert_eq!(events(&app, "coupon_revoke").await, 0);
        let bad = app.post(&format!("/v1/pools/{p}/revoke"), json!({"scope": "customers"})).await;
        assert_eq!(bad.status(), 400);
    }

    async fn a_customer_list_revokes_their_active_coupons_and_reports_the_rest(app) {
        let p = uploaded_pool(&app, 6, json!({})).await;
        for who in ["ana", "bob", "carl"] {
            customer(&app, who, json!({})).await;
        }
        issue_ok(&app, p, "ana").await;
        issue_ok(&app, p, "ana").await;
        let bob = issue_ok(&app, p, "bob").await;
        issue_ok(&app, p, "carl").await;
        redeem(&app, bob["code"].as_str().unwrap()).await;
        let csv = "external_id\nana\nbob\nnobody\nana\n\n";
        let resp = app.request(Method::POST, &format!("/v1/pools/{p}/revoke"), Some(&app.key))
            .header("content-type", "text/csv").body(csv).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        let import = json(resp).await;
        assert_eq!(import["kind"], "revocation");
        assert_eq!((import["accepted"].as_i64(), import["skipped"].as_i64(), import["rejected"].as_i64()), (Some(1), Some(2), Some(1)));
        let issues = app.get(import["issues_url"].as_str().unwrap()).await.text().await.unwrap();
        assert_eq!(issues, "row,value,code,reason\n\
            3,bob,no_active_coupons,the customer holds no active coupon of this pool\n\
            4,nobody,invalid_customer,User does not exist with provided external id\n\
            5,ana,no_active_coupons,the customer holds no active coupon of this pool\n");
        assert_eq!(status_of(&app, "ana").await, ["revoked", "revoked"]);
        assert_eq!(status_of(&app, "bob").await, ["redeemed"]);
        assert_eq!(status_of(&app, "carl").await, ["issued"]);
        assert_eq!(events(&app, "coupon_revoke").await, 2);
    }
}
