//! The second step of a two-step redemption: confirming a hold into a redemption, or releasing
//! it. Both are safe to repeat: confirming a confirmed hold or releasing a released one answers
//! with it as it is.

use crate::store::entity::{coupons, redemptions};
use chrono::Utc;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};

use super::{Located, coupon_by_id, facts, invalid_transition, locate_by_id, settle, state_of};
use crate::{
    domain::{coupon::Change, redemption::RedemptionState},
    service::{Error, Result},
    store,
};

/// A redemption row and the coupon it is recorded on.
pub type Settled = (redemptions::Model, coupons::Model);

/// Turns a live hold into a redemption. A hold that ran out or was released is a 409.
pub async fn confirm(db: &DatabaseConnection, org_id: i64, id: i64) -> Result<Settled> {
    let located = hold_coupon(db, org_id, id).await?;
    let txn = db.begin().await?;
    let now = Utc::now();
    let locked = facts::lock(&txn, &located, None, now).await?;
    let row = reread(&txn, org_id, id).await?;
    match state_of(&row) {
        RedemptionState::Confirmed => return Ok((row, locked.located.target().clone())),
        RedemptionState::Reserved => {}
        other => return Err(not_live(other)),
    }
    let target = locked.located.target();
    Change::Confirm
        .check_at(locked.located.status(), target.expires_at, now)
        .map_err(invalid_transition)?;
    let row = store::redemptions::confirm(&txn, id).await?;
    let coupon = settle::settle(&txn, &locked.located, &row, settle::Spent::Held, now).await?;
    txn.commit().await?;
    Ok((row, coupon))
}

/// Gives a hold back: it stops counting against the limits and its gift card amount returns to
/// the balance. A confirmed one is a 409 (reverse the redemption instead).
pub async fn release(db: &DatabaseConnection, org_id: i64, id: i64) -> Result<Settled> {
    let located = hold_coupon(db, org_id, id).await?;
    let txn = db.begin().await?;
    let now = Utc::now();
    // Locking closes the coupon's holds that ran out, this one too if it did.
    let locked = facts::lock(&txn, &located, None, now).await?;
    let row = reread(&txn, org_id, id).await?;
    let row = match state_of(&row) {
        RedemptionState::Reserved => {
            let closed = store::redemptions::close(&txn, id, now).await?;
            let pool = &locked.located.pool;
            facts::give_back(&txn, pool, std::slice::from_ref(&closed), locked.counted).await?;
            closed
        }
        RedemptionState::Released | RedemptionState::Expired => row,
        RedemptionState::Confirmed => {
            return Err(Error::conflict(
                "already_confirmed",
                "the reservation was confirmed; reverse the redemption instead",
            ));
        }
        RedemptionState::Reversed => return Err(not_live(RedemptionState::Reversed)),
    };
    let coupon = coupon_by_id(&txn, row.coupon_id).await?;
    txn.commit().await?;
    Ok((row, coupon))
}

async fn hold_coupon(db: &DatabaseConnection, org_id: i64, id: i64) -> Result<Located> {
    let row = find(db, org_id, id, "reservation").await?;
    locate_by_id(db, row.coupon_id).await
}

/// The org's redemption row, or a 404 naming what the caller asked for.
pub async fn find(
    db: &DatabaseConnection,
    org_id: i64,
    id: i64,
    what: &str,
) -> Result<redemptions::Model> {
    store::redemptions::get(db, org_id, id)
        .await?
        .ok_or_else(|| Error::not_found(what, id))
}

/// The row again, now that its coupon is locked: every change to it happens under that lock.
pub async fn reread(txn: &DatabaseTransaction, org_id: i64, id: i64) -> Result<redemptions::Model> {
    store::redemptions::get(txn, org_id, id)
        .await?
        .ok_or_else(|| Error::internal("redemption vanished under its coupon's lock"))
}

fn not_live(state: RedemptionState) -> Error {
    let (code, detail) = match state {
        RedemptionState::Expired => ("reservation_expired", "the reservation ran out"),
        RedemptionState::Released => ("reservation_released", "the reservation was released"),
        _ => ("redemption_reversed", "the redemption was reversed"),
    };
    Error::conflict(code, detail)
}
