//! `/v1/coupons`: looking coupons up and searching them, and a program manager's changes to
//! one: invalidate, unassign, transfer.

use poem::web::Data;
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{
    auth::ApiKeyAuth,
    customers::{CustomerCoupon, coupon_view},
    error::ApiResult,
    state::AppState,
    tags::ApiTags,
};
use crate::{
    domain::{api_key::Scope, coupon::CouponStatus, customer::CustomerRef},
    service::{self, coupon_views::Shown},
};

/// A coupon as a program manager or a till sees it.
#[derive(Object)]
pub struct Coupon {
    #[oai(flatten)]
    pub coupon: CustomerCoupon,
    /// The holder's user id; none while the coupon is available.
    pub customer_id: Option<i64>,
    /// Minor units or basis points, as the coupon was made (pool edits may not reach it).
    pub value: Option<i64>,
}

#[derive(Object)]
pub struct CouponList {
    pub items: Vec<Coupon>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

#[derive(Object)]
pub struct TransferRequest {
    /// The customer receiving the coupon, by exactly one identifier.
    pub customer: CustomerRef,
}

pub struct CouponsApi;

#[OpenApi(prefix_path = "/v1/coupons", tag = "ApiTags::Coupons")]
impl CouponsApi {
    /// Searches the org's coupons, newest first. `store`, `zone` and `concept` find coupons
    /// redeemed there (confirmed, unreversed redemptions); as in Capillary's API only one of
    /// them may be given at a time.
    #[oai(path = "/", method = "get", operation_id = "listCoupons")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        /// Only coupons of this pool.
        pool: Query<Option<i64>>,
        status: Query<Option<CouponStatus>>,
        /// Only coupons held by this customer (external id).
        customer: Query<Option<String>>,
        /// Only coupons redeemed at this store.
        store: Query<Option<String>>,
        /// Only coupons redeemed in this zone.
        zone: Query<Option<String>>,
        /// Only coupons redeemed at stores of this concept.
        concept: Query<Option<String>>,
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
    ) -> ApiResult<Json<CouponList>> {
        auth.0.require_in_pools(Scope::Admin)?;
        let search = service::coupon_views::Search {
            pool_id: pool.0,
            status: status.0,
            customer: customer.0,
            store: store.0,
            zone: zone.0,
            concept: concept.0,
            access: auth.0.access.clone(),
        };
        let (rows, total) =
            service::coupon_views::search(&state.db, auth.0.org_id, search, page.0, per_page.0)
                .await?;
        Ok(Json(CouponList {
            items: rows.into_iter().map(view).collect(),
            page: page.0,
            per_page: per_page.0,
            total,
        }))
    }

    /// A coupon by its code (forgiving entry applies), with whether its last redemption was
    /// reversed.
    #[oai(path = "/:code", method = "get", operation_id = "getCoupon")]
    async fn get(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        code: Path<String>,
    ) -> ApiResult<Json<Coupon>> {
        auth.0.require_in_pools(Scope::Pos)?;
        let located = auth.0.coupon(&state.db, &code.0).await?;
        let shown = service::coupon_views::one(&state.db, located.code_row).await?;
        Ok(Json(view(shown)))
    }

    /// Invalidates an available or issued coupon; the holder gets `coupon_invalidate`. Any
    /// other status is a 409 `invalid_transition` naming it.
    #[oai(
        path = "/:code/invalidate",
        method = "post",
        operation_id = "invalidateCoupon"
    )]
    async fn invalidate(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        code: Path<String>,
    ) -> ApiResult<Json<Coupon>> {
        auth.0.require_in_pools(Scope::Admin)?;
        let located = auth.0.coupon(&state.db, &code.0).await?;
        let shown = service::lifecycle::invalidate(&state.db, &located.code_row).await?;
        Ok(Json(view(shown)))
    }

    /// Takes an issued coupon back from its holder: available again, holder and dates cleared,
    /// `coupon_unassign` for the holder. Any other status is a 409 `invalid_transition`; a
    /// coupon bought with points is a 409 `exchanged_coupon` (invalidate or revoke it instead).
    #[oai(
        path = "/:code/unassign",
        method = "post",
        operation_id = "unassignCoupon"
    )]
    async fn unassign(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        code: Path<String>,
    ) -> ApiResult<Json<Coupon>> {
        auth.0.require_in_pools(Scope::Admin)?;
        let located = auth.0.coupon(&state.db, &code.0).await?;
        let shown = service::lifecycle::unassign(&state.db, &located.code_row).await?;
        Ok(Json(view(shown)))
    }

    /// Hands an issued coupon to another customer: `coupon_transfer` for the old holder,
    /// `coupon_receive` for the new one. Any other status is a 409 `invalid_transition`.
    #[oai(
        path = "/:code/transfer",
        method = "post",
        operation_id = "transferCoupon"
    )]
    async fn transfer(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        code: Path<String>,
        body: Json<TransferRequest>,
    ) -> ApiResult<Json<Coupon>> {
        auth.0.require_in_pools(Scope::Admin)?;
        let located = auth.0.coupon(&state.db, &code.0).await?;
        let to = body.0.customer.identifier()?;
        let shown =
            service::lifecycle::transfer(&state.db, auth.0.org_id, &located.code_row, &to).await?;
        Ok(Json(view(shown)))
    }
}

fn first_page() -> u64 {
    1
}

fn default_per_page() -> u64 {
    50
}

/// A coupon as a program manager or a till sees it.
fn view(shown: Shown) -> Coupon {
    let (customer_id, value) = (shown.row.customer_id, shown.row.value);
    Coupon {
        coupon: coupon_view(shown.row, shown.is_reversed),
        customer_id,
        value,
    }
}
