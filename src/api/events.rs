//! The coupon history (Antavo's customer events `coupon_issue`, `coupon_redeem`, ...): a
//! customer's, and a code's.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{ApiTags, AppState, auth::ApiKeyAuth, error::ApiResult};
use crate::{domain::api_key::Scope, service};

/// Something that happened to a coupon.
#[derive(Object)]
pub struct CouponEvent {
    pub id: i64,
    /// `coupon_issue`, `coupon_redeem`, `coupon_unredeem`, `coupon_transfer`,
    /// `coupon_receive`, `coupon_invalidate`, `coupon_unassign`, `coupon_expire` or
    /// `coupon_revoke`.
    pub kind: String,
    pub coupon_id: i64,
    pub code: String,
    pub pool_id: i64,
    /// The customer (user id) whose history it is in.
    pub customer_id: Option<i64>,
    /// What the event carries, e.g. the redemption id and discount, or a transfer's other party.
    pub detail: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Object)]
pub struct CouponEventList {
    /// Newest first.
    pub items: Vec<CouponEvent>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

pub struct EventsApi;

#[OpenApi(tag = "ApiTags::Customers")]
impl EventsApi {
    /// A customer's coupon history, newest first; `kind` keeps one kind of event.
    #[oai(
        path = "/v1/customers/:external_id/events",
        method = "get",
        operation_id = "listCustomerEvents"
    )]
    async fn customer_events(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        external_id: Path<String>,
        kind: Query<Option<String>>,
        #[oai(
            default = "first_page",
            validator(minimum(value = "1"), maximum(value = "1000000"))
        )]
        page: Query<u64>,
        #[oai(
            default = "default_per_page",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        per_page: Query<u64>,
    ) -> ApiResult<Json<CouponEventList>> {
        auth.0
            .require_any(&[Scope::Pos, Scope::Workflow, Scope::Market])?;
        let window = window(kind.0, page.0, per_page.0);
        let found =
            service::history::of_customer(&state.db, auth.0.org_id, &external_id.0, window).await?;
        Ok(Json(list(found, page.0, per_page.0)))
    }

    /// Everything that happened to a code, newest first (for a common code, to every
    /// customer's copy); `kind` keeps one kind of event.
    #[oai(
        path = "/v1/coupons/:code/events",
        method = "get",
        operation_id = "listCouponEvents"
    )]
    async fn coupon_events(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        code: Path<String>,
        kind: Query<Option<String>>,
        #[oai(
            default = "first_page",
            validator(minimum(value = "1"), maximum(value = "1000000"))
        )]
        page: Query<u64>,
        #[oai(
            default = "default_per_page",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        per_page: Query<u64>,
    ) -> ApiResult<Json<CouponEventList>> {
        auth.0.require_in_pools(Scope::Pos)?;
        let located = auth.0.coupon(&state.db, &code.0).await?;
        let code = located.code_row.code.as_str();
        let window = window(kind.0, page.0, per_page.0);
        let found = service::history::of_code(&state.db, auth.0.org_id, code, window).await?;
        Ok(Json(list(found, page.0, per_page.0)))
    }
}

fn window(kind: Option<String>, page: u64, per_page: u64) -> service::history::Window {
    service::history::Window {
        kind,
        page,
        per_page,
    }
}

fn list((rows, total): service::history::Page, page: u64, per_page: u64) -> CouponEventList {
    let items = rows
        .into_iter()
        .map(|(e, code)| CouponEvent {
            id: e.id,
            kind: e.kind.as_str().to_string(),
            coupon_id: e.coupon_id,
            code,
            pool_id: e.pool_id,
            customer_id: e.customer_id,
            detail: e.detail,
            created_at: e.created_at,
        })
        .collect();
    CouponEventList {
        items,
        page,
        per_page,
        total,
    }
}

fn first_page() -> u64 {
    1
}

fn default_per_page() -> u64 {
    50
}
