//! Finding the customer a request names.

use entity::customers;
use sea_orm::ConnectionTrait;

use crate::{
    domain::customer::CustomerIdentifier,
    service::{Error, Result},
    store,
};

/// The customer an identifier names, or a 422 whose reason names the identifier kind
/// ("User does not exist with provided email").
pub async fn resolve<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: &CustomerIdentifier,
) -> Result<customers::Model> {
    store::customers::find(db, org_id, id)
        .await?
        .ok_or_else(|| not_found(id))
}

pub fn not_found(id: &CustomerIdentifier) -> Error {
    Error::rejected(
        format!("customer.{}", id.kind()),
        "customer_not_found",
        id.not_found_message(),
    )
}
