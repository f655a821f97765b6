//! A program manager's changes to a coupon: invalidate, unassign, transfer (Antavo's coupon
//! list actions). Each is one transaction under the coupon's lock, with the events it writes
//! to the customers' histories. A code is changed through its own row: for a common code that
//! is the code itself (available, so it can be invalidated for everyone but not unassigned or
//! transferred); customers' copies follow its status. Each answers with the coupon as it
//! now reads.

use crate::store::entity::coupons;
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, Set, TransactionTrait};

use crate::{
    domain::{
        coupon::{Change, CouponStatus},
        customer::CustomerIdentifier,
    },
    service::{Error, Result},
    service::{coupon_views::Shown, redemption::invalid_transition, webhooks},
    store::{self, events::EventKind},
};

/// The fields a change writes and the events it records (customer, kind, detail).
struct Edit {
    row: coupons::ActiveModel,
    events: Vec<(Option<i64>, EventKind, Option<serde_json::Value>)>,
}

fn with_status(
    c: &coupons::Model,
    status: CouponStatus,
    now: DateTime<Utc>,
) -> coupons::ActiveModel {
    coupons::ActiveModel {
        id: Set(c.id),
        status: Set(status),
        last_status_change_at: Set(now),
        ..Default::default()
    }
}

/// Available or issued only; the holder, if any, gets `coupon_invalidate`.
pub async fn invalidate(db: &DatabaseConnection, coupon: &coupons::Model) -> Result<Shown> {
    change(db, coupon.id, Change::Invalidate, |c, now| {
        Ok(Edit {
            row: with_status(c, CouponStatus::Invalidated, now),
            events: vec![(c.customer_id, EventKind::Invalidate, None)],
        })
    })
    .await
}

/// Issued only: back to available, holder and dates cleared (the next issue stamps them
/// afresh); the old holder gets `coupon_unassign`. A coupon bought with points is the buyer's:
/// it is invalidated or revoked (refunded as its product says), never put back on sale.
pub async fn unassign(db: &DatabaseConnection, coupon: &coupons::Model) -> Result<Shown> {
    change(db, coupon.id, Change::Unassign, |c, now| {
        let mut row = with_status(c, CouponStatus::Available, now);
        row.customer_id = Set(None);
        row.issued_at = Set(None);
        row.expires_at = Set(None);
        row.redeemable_from = Set(None);
        Ok(Edit {
            row,
            events: vec![(c.customer_id, EventKind::Unassign, None)],
        })
    })
    .await
}

/// Issued only: the coupon changes hands as it is, to the org's customer `to` names;
/// `coupon_transfer` for the old holder, `coupon_receive` for the new one.
pub async fn transfer(
    db: &DatabaseConnection,
    org_id: i64,
    coupon: &coupons::Model,
    to: &CustomerIdentifier,
) -> Result<Shown> {
    let to = super::customers::resolve(db, org_id, to).await?;
    change(db, coupon.id, Change::Transfer, |c, _| {
        if c.customer_id == Some(to.id) {
            return Err(Error::refused(
                "same_customer",
                "the coupon already belongs to this customer",
            ));
        }
        Ok(Edit {
            row: coupons::ActiveModel {
                id: Set(c.id),
                customer_id: Set(Some(to.id)),
                ..Default::default()
            },
            events: vec![
                (
                    c.customer_id,
                    EventKind::Transfer,
                    Some(serde_json::json!({ "to": to.id })),
                ),
                (
                    Some(to.id),
                    EventKind::Receive,
                    Some(serde_json::json!({ "from": c.customer_id })),
                ),
            ],
        })
    })
    .await
}

async fn change(
    db: &DatabaseConnection,
    id: i64,
    change: Change,
    edit: impl FnOnce(&coupons::Model, DateTime<Utc>) -> Result<Edit>,
) -> Result<Shown> {
    let txn = db.begin().await?;
    let now = Utc::now();
    let current = store::coupons::lock(&txn, id)
        .await?
        .ok_or_else(|| Error::internal("coupon vanished"))?;
    change
        .check_at(current.status, current.expires_at, now)
        .map_err(invalid_transition)?;
    if change == Change::Unassign && store::market::sold(&txn, id).await? {
        return Err(Error::conflict(
            "exchanged_coupon",
            "the coupon was bought with points; invalidate or revoke it instead",
        ));
    }
    let Edit { row, events } = edit(&current, now)?;
    let saved = store::coupons::save(&txn, row).await?;
    super::market::exchange::refund_withdrawn(&txn, std::slice::from_ref(&saved)).await?;
    for (customer, kind, detail) in events {
        let happened = webhooks::Happened {
            coupon: &saved,
            customer_id: customer,
            kind,
            occurrence: format!(
                "coupon-{}-{}-{}",
                saved.id,
                kind.as_str(),
                now.timestamp_micros()
            ),
            detail,
        };
        webhooks::record(&txn, happened).await?;
    }
    txn.commit().await?;
    super::coupon_views::one(db, saved).await
}
