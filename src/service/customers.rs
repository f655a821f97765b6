//! Finding the customer a request names.

use entity::customers;
use sea_orm::ConnectionTrait;

use crate::{
    domain::customer::CustomerIdentifier,
    service::{Error, Result},
    store,
};

/// The customer an identifier names, or a 422 whose reason names the identifier kind
/// ("User does not exist with provided email"). An email or mobile two customers share names
/// neither: a 409 `ambiguous_customer`, since picking one could hand a coupon to a stranger.
pub async fn resolve<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: &CustomerIdentifier,
) -> Result<customers::Model> {
    let mut found = store::customers::matching(db, org_id, id, 2).await?;
    if found.len() > 1 {
        return Err(Error::conflict(
            "ambiguous_customer",
            format!(
                "more than one customer has this {}: name the customer by external_id or user_id",
                id.kind()
            ),
        ));
    }
    found.pop().ok_or_else(|| not_found(id))
}

pub fn not_found(id: &CustomerIdentifier) -> Error {
    Error::rejected(
        format!("customer.{}", id.kind()),
        "customer_not_found",
        id.not_found_message(),
    )
}
