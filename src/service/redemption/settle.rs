//! What a redemption does to the coupon rows: counts, gift card balance, status, assignment and
//! the customer's event, written under the coupon's lock.

use crate::store::entity::{coupons, redemptions};
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{DatabaseTransaction, Set};

use super::Located;
use crate::service::webhooks;
use crate::{
    domain::{
        coupon::{self, CouponStatus},
        discount::Discount,
        redemption::{self, Confirmed},
    },
    service::Result,
    store::{
        self,
        events::EventKind,
        redemptions::{Counting, Scope},
    },
};

/// When a redemption's gift card amount comes off the balance.
#[derive(Debug, Clone, Copy)]
pub enum Spent<'a> {
    /// Now, leaving what the discount says.
    Now(&'a Discount),
    /// Already, when the hold was made.
    Held,
}

/// Records a confirmed redemption on the coupon: one more use, the balance after it, `redeemed`
/// once used up, and an unissued code handed to the customer who redeemed it (Antavo: an
/// uploaded coupon redeemed before it is claimed gets assigned to the redeemer).
pub async fn settle(
    txn: &DatabaseTransaction,
    located: &Located,
    redemption: &redemptions::Model,
    spent: Spent<'_>,
    now: DateTime<Utc>,
) -> Result<coupons::Model> {
    // The row is written from here, not read back: its times as the database keeps them.
    let now = now.trunc_subsecs(6);
    let target = located.target();
    let redeemer = redemption.customer_id;
    let confirmed = confirmed_after(txn, located).await?;
    let balance = match spent {
        Spent::Now(d) if located.is_gift_card() => d.gift_card_balance_after.or(target.balance),
        _ => target.balance,
    };
    let card_done = located.is_gift_card()
        && balance.is_some_and(|b| {
            let pool = &located.pool;
            redemption::card_used_up(b, pool.gift_card_min_value, pool.gift_card_min_redemption)
        });
    let used_up =
        card_done || redemption::limit_reached(&located.rules, located.is_common, confirmed);
    let before = target.status;
    let assign = before == CouponStatus::Available && !located.is_common && redeemer.is_some();
    let after = match (used_up, assign) {
        (true, _) => CouponStatus::Redeemed,
        (false, true) => CouponStatus::Issued,
        (false, false) => before,
    };
    let mut coupon = coupons::Model {
        redemption_count: target.redemption_count + 1,
        balance,
        ..target.clone()
    };
    if assign {
        coupon.customer_id = redeemer;
        coupon.issued_at = Some(now);
    }
    if after != before {
        coupon.status = after;
        coupon.last_status_change_at = now;
    }
    if located.copy.is_some() {
        close_common_code(txn, located, confirmed.code, now).await?;
    }
    let detail =
        serde_json::json!({ "redemption_id": redemption.id, "discount": redemption.discount });
    let redeemed = webhooks::Happened {
        coupon: &coupon,
        customer_id: redeemer.or(coupon.customer_id),
        kind: EventKind::Redeem,
        occurrence: format!("redemption-{}", redemption.id),
        detail: Some(detail),
    };
    webhooks::save_redeemed(txn, redeemed).await?;
    Ok(coupon)
}

/// Confirmed redemptions once this one counts: the row's own count, or for a common code with
/// a code limit, the whole pool's.
async fn confirmed_after(txn: &DatabaseTransaction, located: &Located) -> Result<Confirmed> {
    let own = u64::try_from(located.target().redemption_count).unwrap_or(0) + 1;
    let code = if located.is_common && located.rules.code_limit(true).is_some() {
        let pool = Scope::Pool(located.pool.id);
        store::redemptions::count(txn, pool, None, Counting::Confirmed).await?
    } else {
        own
    };
    Ok(Confirmed {
        code,
        copy: located.copy.as_ref().map(|_| own),
    })
}

/// A common code whose code limit is reached is used up for everyone: its own row says so.
async fn close_common_code(
    txn: &DatabaseTransaction,
    located: &Located,
    code_confirmed: u64,
    now: DateTime<Utc>,
) -> Result<()> {
    let reached = located
        .rules
        .code_limit(true)
        .is_some_and(|max| code_confirmed >= max);
    let before = located.code_row.status;
    if reached && before != CouponStatus::Redeemed {
        let mut row = coupons::ActiveModel {
            id: Set(located.code_row.id),
            ..Default::default()
        };
        set_status(&mut row, before, CouponStatus::Redeemed, now);
        store::coupons::save(txn, row).await?;
    }
    Ok(())
}

/// A hold takes its gift card amount off the balance at once, so a second checkout cannot
/// spend it; nothing else about the coupon changes until it is confirmed.
pub async fn hold(
    txn: &DatabaseTransaction,
    located: &Located,
    discount: &Discount,
) -> Result<coupons::Model> {
    let target = located.target();
    if !located.is_gift_card() {
        return Ok(target.clone());
    }
    let row = coupons::ActiveModel {
        id: Set(target.id),
        balance: Set(discount.gift_card_balance_after.or(target.balance)),
        ..Default::default()
    };
    Ok(store::coupons::save(txn, row).await?)
}

/// Undoes a confirmed redemption on the coupon: one use fewer, the gift card amount back, and a
/// used-up coupon reinstated (a common code's own row too).
pub async fn unsettle(
    txn: &DatabaseTransaction,
    located: &Located,
    redemption: &redemptions::Model,
    now: DateTime<Utc>,
) -> Result<coupons::Model> {
    let target = located.target();
    let before = target.status;
    let after = coupon::status_after_reversal(before, target.customer_id);
    let mut row = coupons::ActiveModel {
        id: Set(target.id),
        redemption_count: Set((target.redemption_count - 1).max(0)),
        ..Default::default()
    };
    if located.is_gift_card() {
        row.balance = Set(target
            .balance
            .map(|b| b + store::redemptions::card_debit(redemption)));
    }
    set_status(&mut row, before, after, now);
    let coupon = store::coupons::save(txn, row).await?;
    if located.copy.is_some() {
        let code_before = located.code_row.status;
        let code_after = coupon::status_after_reversal(code_before, None);
        if code_after != code_before {
            let mut code_row = coupons::ActiveModel {
                id: Set(located.code_row.id),
                ..Default::default()
            };
            set_status(&mut code_row, code_before, code_after, now);
            store::coupons::save(txn, code_row).await?;
        }
    }
    Ok(coupon)
}

fn set_status(
    row: &mut coupons::ActiveModel,
    before: CouponStatus,
    after: CouponStatus,
    now: DateTime<Utc>,
) {
    if after != before {
        row.status = Set(after);
        row.last_status_change_at = Set(now);
    }
}
