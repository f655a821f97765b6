//! Finding the customer a request names.

use entity::customers;
use poem::http::StatusCode;
use sea_orm::ConnectionTrait;

use crate::{
    api::error::{ApiError, ApiResult},
    domain::customer::CustomerIdentifier,
    store,
};

/// The customer an identifier names, or a 422 whose reason names the identifier kind
/// ("User does not exist with provided email"). An email or mobile two customers share names
/// neither: a 409 `ambiguous_customer`, since picking one could hand a coupon to a stranger.
pub async fn resolve<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: &CustomerIdentifier,
) -> ApiResult<customers::Model> {
    let mut found = store::customers::matching(db, org_id, id, 2).await?;
    if found.len() > 1 {
        return Err(ApiError::conflict(
            "ambiguous_customer",
            format!(
                "more than one customer has this {}: name the customer by external_id or user_id",
                id.kind()
            ),
        ));
    }
    found.pop().ok_or_else(|| not_found(id))
}

pub fn not_found(id: &CustomerIdentifier) -> ApiError {
    let mut p = crate::api::error::problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "customer_not_found",
        id.not_found_message().to_string(),
    );
    p.field = Some(format!("customer.{}", id.kind()));
    ApiError::from_problem(p)
}
