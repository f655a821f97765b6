//! Reversing a redemption (a return, a cancelled order): the coupon is reinstated.

use chrono::Utc;
use sea_orm::{DatabaseConnection, TransactionTrait};

use super::{
    facts,
    holds::{Settled, find, reread},
    invalid_transition, locate_by_id, settle, state_of,
};
use crate::service::webhooks;
use crate::{
    domain::{coupon::Change, redemption::RedemptionState},
    service::{Error, Result},
    store::{self, events::EventKind},
};

/// Marks the redemption reversed and gives everything it used back: the code's, customer's and
/// series' counts, the gift card amount and the coupon's status. Reversing a reversed
/// redemption answers with it as it is; a coupon that has since expired, been invalidated or
/// revoked stays so (409 naming its status).
pub async fn reverse(db: &DatabaseConnection, org_id: i64, id: i64) -> Result<Settled> {
    let row = find(db, org_id, id, "redemption").await?;
    let located = locate_by_id(db, row.coupon_id).await?;
    let txn = db.begin().await?;
    let now = Utc::now();
    let locked = facts::lock(&txn, &located, None, now).await?;
    let row = reread(&txn, org_id, id).await?;
    match state_of(&row) {
        RedemptionState::Confirmed => {}
        RedemptionState::Reversed => return Ok((row, locked.located.target().clone())),
        _ => {
            return Err(Error::conflict(
                "not_confirmed",
                "a reservation is released, not reversed",
            ));
        }
    }
    let located = &locked.located;
    Change::Reverse
        .check_at(located.status(), located.target().expires_at, now)
        .map_err(invalid_transition)?;
    let closed = store::redemptions::close(&txn, id, now).await?;
    let coupon = settle::unsettle(&txn, located, &closed, now).await?;
    if locked.counted {
        store::redemptions::add_to_counter(&txn, located.pool.id, -1).await?;
    }
    let detail = serde_json::json!({ "redemption_id": id, "discount": closed.discount });
    let happened = webhooks::Happened {
        coupon: &coupon,
        customer_id: closed.customer_id.or(coupon.customer_id),
        kind: EventKind::Unredeem,
        occurrence: format!("redemption-{id}-reversed"),
        detail: Some(detail),
    };
    webhooks::record(&txn, happened).await?;
    txn.commit().await?;
    Ok((closed, coupon))
}
