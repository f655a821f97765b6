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
/// ("User does not exist with provided email").
pub async fn resolve<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: &CustomerIdentifier,
) -> ApiResult<customers::Model> {
    store::customers::find(db, org_id, id)
        .await?
        .ok_or_else(|| not_found(id))
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
