//! Reading a redemption back.

use crate::store::entity::{coupons, redemptions};
use sea_orm::DatabaseConnection;

use super::coupon_by_id;
use crate::{
    service::{Error, Result},
    store,
};

/// The org's redemption `id` and the coupon it is recorded on.
pub async fn get(
    db: &DatabaseConnection,
    org_id: i64,
    id: i64,
) -> Result<(redemptions::Model, coupons::Model)> {
    let row = store::redemptions::get(db, org_id, id)
        .await?
        .ok_or_else(|| Error::not_found("redemption", id))?;
    let coupon = coupon_by_id(db, row.coupon_id).await?;
    Ok((row, coupon))
}
