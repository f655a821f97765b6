//! Finding the customer a request names, and keeping customers' profiles.

use crate::store::entity::customers;
use sea_orm::ConnectionTrait;

use crate::{
    domain::customer::{CustomerIdentifier, normalize_email, normalize_mobile},
    service::{Error, Result},
    store,
};

/// A customer's profile as the caller gives it; [`upsert`] normalizes email and mobile.
pub use store::customers::Profile;

/// Creates or replaces the customer with this external id, its email and mobile normalized.
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    external_id: &str,
    p: Profile,
) -> Result<customers::Model> {
    let external_id = external_id.trim();
    if external_id.is_empty() || external_id.len() > 200 {
        return Err(Error::invalid("external_id", "must be 1 to 200 characters"));
    }
    let profile = Profile {
        email: p.email.as_deref().map(normalize_email).transpose()?,
        mobile: p.mobile.as_deref().map(normalize_mobile).transpose()?,
        ..p
    };
    Ok(store::customers::upsert(db, org_id, external_id, profile).await?)
}

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
        return Err(ambiguous(id));
    }
    found.pop().ok_or_else(|| not_found(id))
}

/// The customer a list row names, or the row's issue (code and reason) when it names nobody
/// or several; only a database failure is an error.
pub async fn resolve_row<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: &CustomerIdentifier,
) -> Result<std::result::Result<customers::Model, RowIssue>> {
    match resolve(db, org_id, id).await {
        Ok(customer) => Ok(Ok(customer)),
        Err(Error::Conflict { .. }) => Ok(Err(ambiguous_row(id))),
        Err(Error::Rejected { .. }) => Ok(Err(not_found_row(id))),
        Err(other) => Err(other),
    }
}

/// An issue row's code and reason.
pub type RowIssue = (&'static str, String);

pub fn ambiguous_row(id: &CustomerIdentifier) -> RowIssue {
    ("ambiguous_customer", ambiguous(id).to_string())
}

pub fn not_found_row(id: &CustomerIdentifier) -> RowIssue {
    ("invalid_customer", id.not_found_message().to_string())
}

/// The customer a path's external id names (404 when the org does not know it).
pub async fn by_external_id<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    external_id: &str,
) -> Result<customers::Model> {
    store::customers::by_external_id(db, org_id, external_id)
        .await?
        .ok_or_else(|| Error::NotFound {
            code: "customer_not_found".into(),
            detail: CustomerIdentifier::ExternalId(String::new())
                .not_found_message()
                .into(),
        })
}

/// The holder of a coupon, which must exist.
pub async fn holder<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    customer_id: i64,
) -> Result<customers::Model> {
    store::customers::by_id(db, org_id, customer_id)
        .await?
        .ok_or_else(|| Error::internal(format!("customer {customer_id} of a coupon is gone")))
}

fn ambiguous(id: &CustomerIdentifier) -> Error {
    Error::conflict(
        "ambiguous_customer",
        format!(
            "more than one customer has this {}: name the customer by external_id or user_id",
            id.kind()
        ),
    )
}

pub fn not_found(id: &CustomerIdentifier) -> Error {
    Error::rejected(
        format!("customer.{}", id.kind()),
        "customer_not_found",
        id.not_found_message(),
    )
}
