//! `/v1/customers`: the org's customers and their coupons.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{Object, OpenApi, param::Path, payload::Json};

use super::{
    auth::ApiKeyAuth,
    error::{ApiError, ApiResult},
    state::AppState,
    tags::ApiTags,
};
pub use crate::service::coupons::{CustomerCoupon, coupon_view};
use crate::{
    domain::{
        api_key::Scope,
        customer::{normalize_email, normalize_mobile},
    },
    service, store,
};

/// A customer's profile; the external id (the loyalty platform's id) is the key.
#[derive(Object)]
pub struct CustomerProfile {
    pub email: Option<String>,
    pub mobile: Option<String>,
    /// Loyalty level (tier), for level-restricted pools.
    pub level: Option<String>,
    /// When the customer registered, for new-customer rules.
    pub registered_at: Option<DateTime<Utc>>,
    /// Purchases so far, for new-customer rules.
    #[oai(default)]
    pub transaction_count: u32,
    /// Free-form attributes kept with the customer.
    pub attributes: Option<serde_json::Value>,
}

#[derive(Object)]
pub struct Customer {
    /// Internal user id; any request may name the customer by it as `user_id`.
    pub id: i64,
    pub external_id: String,
    #[oai(flatten)]
    pub profile: CustomerProfile,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Object)]
pub struct CustomerCouponList {
    pub items: Vec<CustomerCoupon>,
}

pub fn customer_view(m: crate::store::entity::customers::Model) -> Customer {
    Customer {
        id: m.id,
        external_id: m.external_id,
        profile: CustomerProfile {
            email: m.email,
            mobile: m.mobile,
            level: m.level,
            registered_at: m.registered_at,
            transaction_count: m.transaction_count.max(0) as u32,
            attributes: m.attributes,
        },
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

pub struct CustomersApi;

#[OpenApi(prefix_path = "/v1/customers", tag = "ApiTags::Customers")]
impl CustomersApi {
    /// Creates or replaces a customer by external id.
    #[oai(
        path = "/:external_id",
        method = "put",
        operation_id = "upsertCustomer"
    )]
    async fn upsert(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        external_id: Path<String>,
        body: Json<CustomerProfile>,
    ) -> ApiResult<Json<Customer>> {
        auth.0.require(Scope::Admin)?;
        let external_id = external_id.0.trim().to_string();
        if external_id.is_empty() || external_id.len() > 200 {
            return Err(ApiError::invalid(
                "external_id",
                "must be 1 to 200 characters",
            ));
        }
        let p = body.0;
        let profile = store::customers::Profile {
            email: p.email.as_deref().map(normalize_email).transpose()?,
            mobile: p.mobile.as_deref().map(normalize_mobile).transpose()?,
            level: p.level,
            registered_at: p.registered_at,
            transaction_count: p.transaction_count.min(i32::MAX as u32) as i32,
            attributes: p.attributes,
        };
        let row = store::customers::upsert(&state.db, auth.0.org_id, &external_id, profile).await?;
        Ok(Json(customer_view(row)))
    }

    #[oai(path = "/:external_id", method = "get", operation_id = "getCustomer")]
    async fn get(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        external_id: Path<String>,
    ) -> ApiResult<Json<Customer>> {
        auth.0
            .require_any(&[Scope::Pos, Scope::Workflow, Scope::Market])?;
        Ok(Json(customer_view(
            find(&state, auth.0.org_id, external_id.0).await?,
        )))
    }

    /// The customer's coupons, newest first, with their status, expiry and reversal flag.
    #[oai(
        path = "/:external_id/coupons",
        method = "get",
        operation_id = "listCustomerCoupons"
    )]
    async fn coupons(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        external_id: Path<String>,
    ) -> ApiResult<Json<CustomerCouponList>> {
        auth.0
            .require_any(&[Scope::Pos, Scope::Workflow, Scope::Market])?;
        let customer = find(&state, auth.0.org_id, external_id.0).await?;
        let mut rows = store::coupons::of_customer(&state.db, customer.id).await?;
        with_lapsed_holds(&state.db, &mut rows).await?;
        let reversed =
            store::coupons::reversed_among(&state.db, rows.iter().map(|c| c.id).collect()).await?;
        let items = rows
            .into_iter()
            .map(|c| {
                let r = reversed.contains(&c.id);
                coupon_view(c, r)
            })
            .collect();
        Ok(Json(CustomerCouponList { items }))
    }
}

/// Gift card balances as a redemption would find them: what holds that ran out still keep
/// off is added back, as validate does.
pub async fn with_lapsed_holds(
    db: &sea_orm::DatabaseConnection,
    rows: &mut [crate::store::entity::coupons::Model],
) -> ApiResult<()> {
    let cards: Vec<i64> = rows
        .iter()
        .filter(|c| c.balance.is_some())
        .map(|c| c.id)
        .collect();
    if cards.is_empty() {
        return Ok(());
    }
    let lapsed = store::redemptions::run_out_totals(db, &cards, Utc::now()).await?;
    for row in rows {
        if let (Some(balance), Some(back)) = (row.balance, lapsed.get(&row.id)) {
            row.balance = Some(balance + back);
        }
    }
    Ok(())
}

async fn find(
    state: &AppState,
    org_id: i64,
    external_id: String,
) -> ApiResult<crate::store::entity::customers::Model> {
    Ok(service::customers::by_external_id(&state.db, org_id, &external_id).await?)
}
