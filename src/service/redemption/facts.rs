//! The facts the redemption rules need, read under the redemption's locks (or, for a dry run,
//! without them), and the rules' verdict.

use std::collections::BTreeMap;

use crate::store::entity::{coupons, pools, redemptions};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::{Located, Purchase};
use crate::{
    domain::{
        currency::ExchangeRate,
        discount::{Discount, DiscountType},
        pool::PoolState,
        redemption::{self, Failure, RedemptionContext},
    },
    service::{Error, Result, exchange_rates},
    store::{
        self,
        redemptions::{Counting, Scope},
    },
};

/// The located coupon re-read under its locks.
#[derive(Debug, Clone)]
pub struct Locked {
    pub located: Located,
    /// The pool keeps the series counter (it has a series limit), and its row is locked.
    pub counted: bool,
    /// The series counter, holds that ran out given back.
    series: u64,
}

/// Whether the rules read a redeemer's history beyond the coupon row being locked, which only
/// their customer row lock keeps still: the gap since their last redemption anywhere in the
/// pool, or their count on a common code spread over the code's row and their copy. Their
/// count on a unique code needs no more than that code's row lock, which every redemption of
/// it takes.
fn per_customer(located: &Located) -> bool {
    let rules = &located.rules;
    rules.min_days_between.is_some() || (located.is_common && rules.customer_limit().is_some())
}

/// Whether the rules need a lock before the coupon row's: the redeemer's row or the pool's
/// series counter.
pub fn takes_earlier_locks(located: &Located, redeemer: Option<i64>) -> bool {
    (redeemer.is_some() && per_customer(located)) || located.rules.max_total.is_some()
}

/// [`lock`] for a coupon whose row was locked when it was found, and whose rules take no
/// earlier lock ([`takes_earlier_locks`]): only a gift card's holds that ran out remain to close.
pub async fn locked_at_once(
    txn: &DatabaseTransaction,
    mut located: Located,
    now: DateTime<Utc>,
) -> Result<Locked> {
    if located.is_gift_card() {
        close_run_out(txn, &mut located, false, now).await?;
    }
    Ok(Locked {
        located,
        counted: false,
        series: 0,
    })
}

/// Takes the locks in the service's order and closes the coupon's holds that ran out, so the
/// rows, balance and counter read afterwards are the ones this transaction will write.
pub async fn lock(
    txn: &DatabaseTransaction,
    located: &Located,
    redeemer: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Locked> {
    if let Some(id) = redeemer
        && per_customer(located)
    {
        store::customers::lock(txn, id).await?;
    }
    let series = lock_series(txn, located, now).await?;
    let mut fresh = lock_rows(txn, located).await?;
    // Counts leave run-out holds out already; closing them matters only where they keep
    // something: gift card money or a place in the series counter.
    if fresh.is_gift_card() || series.is_some() {
        close_run_out(txn, &mut fresh, series.is_some(), now).await?;
    }
    Ok(Locked {
        located: fresh,
        counted: series.is_some(),
        series: series.unwrap_or(0),
    })
}

async fn close_run_out(
    txn: &DatabaseTransaction,
    located: &mut Located,
    counted: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let scope = Scope::Coupon(located.target().id);
    let closed = store::redemptions::expire_holds(txn, scope, now).await?;
    give_back(txn, &located.pool, &closed, counted).await?;
    if located.is_gift_card() {
        let back: i64 = closed.iter().map(store::redemptions::card_debit).sum();
        let target = located.copy.as_mut().unwrap_or(&mut located.code_row);
        target.balance = target.balance.map(|b| b + back);
    }
    Ok(())
}

/// The series counter under the pool row's lock, when the pool has a series limit. A full
/// counter first gives back the pool's holds that ran out.
async fn lock_series(
    txn: &DatabaseTransaction,
    located: &Located,
    now: DateTime<Utc>,
) -> Result<Option<u64>> {
    let Some(max) = located.rules.max_total else {
        return Ok(None);
    };
    let pool = &located.pool;
    let n = store::redemptions::lock_counter(txn, pool.id).await?;
    if n < max {
        return Ok(Some(n));
    }
    let closed = store::redemptions::expire_holds(txn, Scope::Pool(pool.id), now).await?;
    give_back(txn, pool, &closed, true).await?;
    Ok(Some(n.saturating_sub(closed.len() as u64)))
}

/// The code's own row is locked unless the redemption goes on a customer's copy of a common
/// code without a code limit: then nothing counted on the code's row can change the verdict,
/// and thousands of customers redeeming one common code do not queue on it.
async fn lock_rows(txn: &DatabaseTransaction, located: &Located) -> Result<Located> {
    let mut fresh = located.clone();
    let code_limited = located.rules.code_limit(located.is_common).is_some();
    if located.copy.is_none() || code_limited {
        fresh.code_row = locked_row(txn, located.code_row.id).await?;
    }
    if let Some(copy) = &located.copy {
        fresh.copy = Some(locked_row(txn, copy.id).await?);
    }
    Ok(fresh)
}

async fn locked_row(txn: &DatabaseTransaction, id: i64) -> Result<coupons::Model> {
    store::coupons::lock(txn, id)
        .await?
        .ok_or_else(|| Error::internal("coupon vanished under its lock"))
}

/// Gives back what closed holds kept: their gift card amounts (coupons in id order, so two
/// sweeps lock them alike) and their places in the series counter.
pub async fn give_back(
    txn: &DatabaseTransaction,
    pool: &pools::Model,
    closed: &[redemptions::Model],
    counted: bool,
) -> Result<(), DbErr> {
    if closed.is_empty() {
        return Ok(());
    }
    if pool.discount_type == DiscountType::GiftCard {
        let mut per_coupon: BTreeMap<i64, i64> = BTreeMap::new();
        for r in closed {
            *per_coupon.entry(r.coupon_id).or_default() += store::redemptions::card_debit(r);
        }
        for (coupon_id, amount) in per_coupon {
            store::coupons::add_balance(txn, coupon_id, amount).await?;
        }
    }
    if counted {
        store::redemptions::add_to_counter(txn, pool.id, -(closed.len() as i64)).await?;
    }
    Ok(())
}

/// The verdict under the locks.
pub async fn evaluate(
    txn: &DatabaseTransaction,
    locked: &Locked,
    purchase: &Purchase,
    now: DateTime<Utc>,
) -> Result<Result<Discount, Vec<Failure>>> {
    let located = &locked.located;
    let exchange = exchange(txn, located, purchase, now).await?;
    let counts = gather(txn, located, purchase.redeemer(), now, locked.series).await?;
    let facts = Facts {
        counts,
        balance: located.target().balance,
        exchange,
    };
    verdict(located, purchase, facts, now)
}

/// The verdict without locks or writes: holds that ran out but are not closed yet are left out
/// of the counter and added back to the balance, as a redemption would close them.
pub async fn dry_run<C: ConnectionTrait>(
    db: &C,
    located: &Located,
    purchase: &Purchase,
) -> Result<Result<Discount, Vec<Failure>>> {
    let now = Utc::now();
    let pool_id = located.pool.id;
    let series = match located.rules.max_total {
        Some(max) => {
            let n = store::redemptions::read_counter(db, pool_id).await?;
            if n < max {
                n
            } else {
                n.saturating_sub(store::redemptions::run_out_count(db, pool_id, now).await?)
            }
        }
        None => 0,
    };
    let exchange = exchange(db, located, purchase, now).await?;
    let counts = gather(db, located, purchase.redeemer(), now, series).await?;
    let target = located.target();
    let balance = match target.balance {
        Some(b) if located.is_gift_card() => {
            Some(b + store::redemptions::run_out_total(db, target.id, now).await?)
        }
        other => other,
    };
    let facts = Facts {
        counts,
        balance,
        exchange,
    };
    verdict(located, purchase, facts, now)
}

/// The org's rate from the pool's currency to the basket's in force at the server's `now`,
/// when the basket is in another currency and the pool has amounts to convert; a 422
/// `no_exchange_rate` when the org has none.
async fn exchange<C: ConnectionTrait>(
    db: &C,
    located: &Located,
    purchase: &Purchase,
    now: DateTime<Utc>,
) -> Result<Option<ExchangeRate>> {
    let pool = &located.pool;
    let (Some(from), Some(to)) = (&pool.currency, &purchase.basket.currency) else {
        return Ok(None);
    };
    let discount_type = pool.discount_type;
    if from == to || !redemption::converts(&located.rules, discount_type, pool.purchase_min) {
        return Ok(None);
    }
    exchange_rates::in_force(db, pool.org_id, from, to, now)
        .await
        .map(Some)
}

/// What the rules are checked against besides the coupon and the purchase.
struct Facts {
    counts: Counts,
    /// The gift card's balance, holds that ran out given back.
    balance: Option<i64>,
    exchange: Option<ExchangeRate>,
}

/// Counts the rules compare with their limits, live holds included.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    code: u64,
    customer_code: u64,
    series: u64,
    customer_last: Option<DateTime<Utc>>,
}

/// Reads only the counts some rule of the pool looks at.
async fn gather<C: ConnectionTrait>(
    db: &C,
    located: &Located,
    redeemer: Option<i64>,
    now: DateTime<Utc>,
    series: u64,
) -> Result<Counts, DbErr> {
    let rules = &located.rules;
    let live = Counting::Live(now);
    let scope = located.code_scope();
    let mut counts = Counts {
        series,
        ..Counts::default()
    };
    let code_limited = rules.code_limit(located.is_common).is_some();
    let customer_limited = redeemer.is_some() && rules.customer_limit().is_some();
    match (code_limited, redeemer) {
        (true, Some(customer)) if customer_limited => {
            (counts.code, counts.customer_code) =
                store::redemptions::count_with_customer(db, scope, customer, live).await?;
        }
        (true, _) => counts.code = store::redemptions::count(db, scope, None, live).await?,
        (false, Some(customer)) if customer_limited => {
            counts.customer_code =
                store::redemptions::count(db, scope, Some(customer), live).await?;
        }
        (false, _) => {}
    }
    let Some(customer) = redeemer else {
        return Ok(counts);
    };
    if rules.min_days_between.is_some() {
        counts.customer_last =
            store::redemptions::last_live_at(db, located.pool.id, customer, now).await?;
    }
    Ok(counts)
}

fn verdict(
    located: &Located,
    purchase: &Purchase,
    facts: Facts,
    now: DateTime<Utc>,
) -> Result<Result<Discount, Vec<Failure>>> {
    let ctx = context(located, purchase, facts, now)?;
    let mut failures = pool_failures(&located.pool);
    let rules = &located.rules;
    Ok(
        match redemption::evaluate(rules, &ctx, &purchase.basket, &purchase.store) {
            Ok(discount) if failures.is_empty() => Ok(discount),
            Ok(_) => Err(failures),
            Err(more) => {
                failures.extend(more);
                Err(failures)
            }
        },
    )
}

/// A draft pool is still being set up: its codes are not redeemable yet.
fn pool_failures(pool: &pools::Model) -> Vec<Failure> {
    if pool.state == PoolState::Draft {
        return vec![Failure {
            code: "pool_inactive",
            detail: "The offer is still a draft.".into(),
        }];
    }
    Vec::new()
}

fn context(
    located: &Located,
    purchase: &Purchase,
    facts: Facts,
    now: DateTime<Utc>,
) -> Result<RedemptionContext> {
    let Facts {
        counts,
        balance,
        exchange,
    } = facts;
    let target = located.target();
    let pool = &located.pool;
    let customer = purchase.customer.as_ref();
    Ok(RedemptionContext {
        now: purchase.at,
        clock: now,
        tz: located.tz,
        coupon_status: located.status(),
        // An unissued code carries no dates of its own; the offer's window bounds it.
        expires_at: earliest(target.expires_at, pool.ends_at),
        redeemable_from: latest(target.redeemable_from, pool.starts_at),
        holder: target.customer_id,
        redeemer: purchase.redeemer(),
        code_redemptions: counts.code,
        customer_code_redemptions: counts.customer_code,
        pool_redemptions: counts.series,
        customer_last_redemption_at: counts.customer_last,
        customer_registered_at: customer.and_then(|c| c.registered_at),
        customer_transactions: customer.map(|c| u32::try_from(c.transaction_count).unwrap_or(0)),
        is_common: located.is_common,
        discount_type: pool.discount_type,
        value: target.value,
        currency: pool.currency.clone(),
        exchange,
        purchase_min: pool.purchase_min,
        gift_card_balance: balance,
        gift_card_min_value: pool.gift_card_min_value,
        gift_card_min_redemption: pool.gift_card_min_redemption,
        requested_amount: purchase.amount,
    })
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn latest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
