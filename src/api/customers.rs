//! `/v1/customers`: the org's customers and their coupons.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{Object, OpenApi, param::Path, payload::Json};

use super::{auth::ApiKeyAuth, error::ApiResult, state::AppState, tags::ApiTags};
pub use crate::service::coupons::{CustomerCoupon, coupon_view};
use crate::{domain::api_key::Scope, service};

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
        let p = body.0;
        let profile = service::customers::Profile {
            email: p.email,
            mobile: p.mobile,
            level: p.level,
            registered_at: p.registered_at,
            transaction_count: p.transaction_count.min(i32::MAX as u32) as i32,
            attributes: p.attributes,
        };
        let row =
            service::customers::upsert(&state.db, auth.0.org_id, &external_id.0, profile).await?;
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
        let row =
            service::customers::by_external_id(&state.db, auth.0.org_id, &external_id.0).await?;
        Ok(Json(customer_view(row)))
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
        let rows =
            service::coupon_views::of_customer(&state.db, auth.0.org_id, &external_id.0).await?;
        let items = rows
            .into_iter()
            .map(|c| coupon_view(c.row, c.is_reversed))
            .collect();
        Ok(Json(CustomerCouponList { items }))
    }
}
