//! Validating and redeeming a code at checkout, two-step redemptions (holds) and reversals.
//!
//! A redemption is one transaction. Locks are taken in one order everywhere: the redeemer's
//! customer row (when a per-customer rule reads beyond the coupon row), the pool row (when it
//! keeps the series counter), then the coupon rows (the code's own row before a customer's
//! copy of a common code). Issuing takes customer, pool, coupon too, and claims codes with
//! `SKIP LOCKED`, so the two never wait on each other in a cycle. Under those locks the counts the rules need are
//! read, the rules evaluated and the redemption written, so no limit can be overshot by
//! concurrent checkouts.
//!
//! Holds (reservations) are redemption rows with `reserved_until` set. They count against every
//! limit until they run out, and take their gift card amount off the balance at once. Counts
//! leave out holds that ran out, and those keeping something (gift card money, a place in the
//! series counter) are closed and give it back the next time their coupon is redeemed, or their
//! pool when its counter is full, or else by housekeeping (`sweep`).

mod facts;
mod holds;
mod lookup;
mod reverse;
mod settle;
mod sweep;

use std::collections::HashSet;

use crate::store::entity::{coupons, customers, pools, redemptions};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};

use facts::Locked;

pub use holds::{confirm, release};
pub use lookup::get;
pub use reverse::reverse;
pub use sweep::close_run_out;

use crate::{
    domain::{
        access::PoolAccess,
        coupon::{self, CouponStatus},
        discount::{Basket, Discount, DiscountType},
        pool::PoolSource,
        redemption::{self, Failure, RedemptionRules, StoreFacts},
    },
    service::{
        Error, Result,
        error::{self, Refusal},
        idempotency,
    },
    store::{
        self,
        coupons::{PoolOf, WithPool},
        idempotency::Keyed,
        redemptions::NewRedemption,
    },
};

/// A checkout as the till describes it.
#[derive(Debug, Clone)]
pub struct Purchase {
    /// The customer redeeming; `None` for an anonymous checkout.
    pub customer: Option<customers::Model>,
    pub basket: Basket,
    pub store: StoreFacts,
    /// When the purchase was made, by the till's clock (bounded by
    /// [`redemption::check_purchase_time`]): calendar rules and gaps are checked at it, validity
    /// at the server's clock.
    pub at: DateTime<Utc>,
    /// Gift cards: how much to pay with the card.
    pub amount: Option<i64>,
}

impl Purchase {
    pub fn redeemer(&self) -> Option<i64> {
        self.customer.as_ref().map(|c| c.id)
    }
}

/// The coupon a typed code names, seen by one redeemer.
#[derive(Debug, Clone)]
pub struct Located {
    pub pool: pools::Model,
    /// The org's time zone, in which days and hours are counted.
    pub tz: chrono_tz::Tz,
    pub rules: RedemptionRules,
    pub is_common: bool,
    /// The code's own row (share key 0).
    pub code_row: coupons::Model,
    /// The redeemer's copy of a common code: their redemptions are recorded on it.
    pub copy: Option<coupons::Model>,
}

impl Located {
    /// The row a redemption is recorded on.
    pub fn target(&self) -> &coupons::Model {
        self.copy.as_ref().unwrap_or(&self.code_row)
    }

    fn is_gift_card(&self) -> bool {
        self.pool.discount_type == DiscountType::GiftCard
    }

    /// The status the rules see. A common code withdrawn or used up as a whole (its own row)
    /// is so for every copy.
    fn status(&self) -> CouponStatus {
        let code = self.code_row.status;
        match &self.copy {
            Some(copy) if matches!(code, CouponStatus::Available | CouponStatus::Issued) => {
                copy.status
            }
            _ => code,
        }
    }

    /// Where the code's redemptions are counted: a common code is its pool's only code.
    fn code_scope(&self) -> store::redemptions::Scope {
        if self.is_common {
            store::redemptions::Scope::Pool(self.pool.id)
        } else {
            store::redemptions::Scope::Coupon(self.target().id)
        }
    }
}

/// Finds the coupon a typed code names: the exact code first (one indexed look-up), then, if
/// there is none, the forgiving-entry key for pools that allow it. A code not stored as typed
/// whose check character is wrong for one of the org's patterns is a 422
/// `invalid_check_character` before the forgiving look-up; a stored code is never refused as
/// mistyped, and the common path (a stored code) does not read the org's patterns. A common
/// code resolves to the redeemer's copy when they hold one.
pub async fn locate<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    code: &str,
    redeemer: Option<i64>,
) -> Result<Located> {
    let share_keys: Vec<i64> = std::iter::once(0).chain(redeemer).collect();
    let mut rows = store::coupons::by_code(db, org_id, code, &share_keys).await?;
    if rows.is_empty() {
        crate::service::check_char::refuse_mistyped(db, org_id, code).await?;
        rows = forgiving(db, org_id, code, &share_keys).await?;
    }
    let (code_row, pool) = rows
        .iter()
        .find(|(row, _)| row.share_key == 0)
        .cloned()
        .ok_or_else(|| coupon_not_found(code))?;
    let copy = rows
        .into_iter()
        .map(|(row, _)| row)
        .find(|r| r.share_key != 0);
    located(code_row, copy, pool)
}

/// [`locate`] for a caller limited to `access`: a coupon of a pool out of its reach is as
/// absent as an unknown code.
pub async fn locate_within<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    access: &PoolAccess,
    code: &str,
) -> Result<Located> {
    let located = locate(db, org_id, code, None).await?;
    if access.reaches(located.pool.group_id) {
        Ok(located)
    } else {
        Err(coupon_not_found(code))
    }
}

/// The coupon a redemption row is recorded on: its own row, and the code's row if it is a
/// customer's copy of a common code.
async fn locate_by_id<C: ConnectionTrait>(db: &C, coupon_id: i64) -> Result<Located> {
    let (coupon, pool) = store::coupons::by_id(db, coupon_id)
        .await?
        .ok_or_else(|| Error::internal("redemption without its coupon"))?;
    if coupon.share_key == 0 {
        return located(coupon, None, pool);
    }
    let (code_row, pool) = store::coupons::by_code(db, coupon.org_id, &coupon.code, &[0])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("common code without its own row"))?;
    located(code_row, Some(coupon), pool)
}

fn located(code_row: coupons::Model, copy: Option<coupons::Model>, of: PoolOf) -> Result<Located> {
    let pool = of.pool;
    Ok(Located {
        tz: crate::service::org_tz(&of.timezone)?,
        rules: RedemptionRules::for_type(pool.redemption.clone(), pool.discount_type),
        is_common: pool.source == PoolSource::Common,
        pool,
        code_row,
        copy,
    })
}

/// Rows whose code matches `code` ignoring case and separators, in pools with forgiving entry.
/// Two different codes matching (`AB-12` and `ab12`, both stored) is a 409: guessing between
/// them could redeem someone else's coupon.
async fn forgiving<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    code: &str,
    share_keys: &[i64],
) -> Result<Vec<WithPool>> {
    let Some(key) = coupon::lookup_key(code) else {
        return Ok(Vec::new());
    };
    let mut kept = Vec::new();
    for (row, of) in store::coupons::by_lookup_key(db, org_id, &key, share_keys).await? {
        // The database upper-cases by its locale; only what the Rust key agrees with counts.
        let same_key = coupon::lookup_key(&row.code).as_deref() == Some(key.as_str());
        if same_key && of.pool.code_options.case_insensitive {
            kept.push((row, of));
        }
    }
    let codes: HashSet<&str> = kept.iter().map(|(r, _)| r.code.as_str()).collect();
    if codes.len() > 1 {
        return Err(Error::conflict(
            "ambiguous_code",
            format!(
                "{code} matches {} different codes when case and separators are ignored; \
                 type it exactly",
                codes.len()
            ),
        ));
    }
    Ok(kept)
}

fn coupon_not_found(code: &str) -> Error {
    Error::NotFound {
        code: "coupon_not_found".into(),
        detail: format!("no coupon has the code {code}"),
    }
}

/// `amount` says how much of a gift card to spend; on another coupon it would be ignored, which
/// a till would take for a payment.
fn check_amount(located: &Located, purchase: &Purchase) -> Result<()> {
    if purchase.amount.is_some() && !located.is_gift_card() {
        return Err(Error::invalid(
            "amount",
            "only gift card coupons are paid with an amount",
        ));
    }
    Ok(())
}

/// A dry run: every rule checked as a redemption would, nothing locked or written.
pub async fn validate(
    db: &DatabaseConnection,
    located: &Located,
    purchase: &Purchase,
) -> Result<Result<Discount, Vec<Failure>>> {
    check_amount(located, purchase)?;
    facts::dry_run(db, located, purchase).await
}

/// Redeem at once, or hold until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Redeem,
    Reserve { until: DateTime<Utc> },
}

/// A redemption or hold made (or found again by its idempotency key).
#[derive(Debug, Clone)]
pub struct Consumed {
    pub redemption: redemptions::Model,
    pub coupon: coupons::Model,
    pub pool: pools::Model,
    /// Answered from the idempotency key, not made now.
    pub replayed: bool,
}

/// One checkout's redemption (or hold) as the till asked for it.
#[derive(Debug, Clone, Copy)]
pub struct Redeeming<'a> {
    pub org_id: i64,
    pub purchase: &'a Purchase,
    pub mode: Mode,
    /// With a key, a retry gets the first answer back.
    pub keyed: Option<&'a Keyed>,
}

/// Finds the code and redeems or holds it, as [`locate`] then [`consume`] would. A unique
/// code whose rules take no lock before its row's (the redeemer's, the series counter's) is
/// found and locked by one statement inside the transaction; any other code is found in
/// the transaction and locked in the usual order.
pub async fn redeem_code(
    db: &DatabaseConnection,
    code: &str,
    asked: &Redeeming<'_>,
) -> Result<Consumed> {
    let attempt = redeem_code_once(db, code, asked).await;
    answer_race(db, asked, attempt).await
}

async fn redeem_code_once(
    db: &DatabaseConnection,
    code: &str,
    asked: &Redeeming<'_>,
) -> Result<Consumed> {
    let txn = db.begin().await?;
    let now = Utc::now();
    let (org_id, purchase) = (asked.org_id, asked.purchase);
    let redeemer = purchase.redeemer();
    let locked = match store::coupons::unique_locked(&txn, org_id, code).await? {
        Some((row, of)) => {
            let located = located(row, None, of)?;
            if facts::takes_earlier_locks(&located, redeemer) {
                // Its row's lock came too early for this pool's rules: start again in order.
                txn.rollback().await?;
                check_amount(&located, purchase)?;
                return consume_once(db, &located, asked).await;
            }
            facts::locked_at_once(&txn, located, now).await?
        }
        None => {
            let located = locate(&txn, org_id, code, redeemer).await?;
            facts::lock(&txn, &located, redeemer, now).await?
        }
    };
    check_amount(&locked.located, purchase)?;
    finish(txn, &locked, asked, now).await
}

/// Redeems or holds the located coupon. A refusal is a 422 `not_redeemable` whose `errors` are
/// every rule that failed.
pub async fn consume(
    db: &DatabaseConnection,
    located: &Located,
    asked: &Redeeming<'_>,
) -> Result<Consumed> {
    check_amount(located, asked.purchase)?;
    let attempt = consume_once(db, located, asked).await;
    answer_race(db, asked, attempt).await
}

/// A concurrent request with the same key committed first: answer as it did.
async fn answer_race(
    db: &DatabaseConnection,
    asked: &Redeeming<'_>,
    attempt: Result<Consumed>,
) -> Result<Consumed> {
    match attempt {
        Err(e @ Error::RaceLost) => {
            let k = asked.keyed.ok_or(e)?;
            replay(db, asked.org_id, k)
                .await?
                .ok_or_else(|| Error::internal("lost key race but no key"))
        }
        other => other,
    }
}

/// The redemption a keyed request already made, if any.
pub async fn replay(db: &DatabaseConnection, org_id: i64, k: &Keyed) -> Result<Option<Consumed>> {
    let Some(first) = idempotency::stored_response(db, k).await? else {
        return Ok(None);
    };
    let id = idempotency::stored_id(&first, "redemption_id")?;
    let redemption = store::redemptions::get(db, org_id, id)
        .await?
        .ok_or_else(|| Error::internal("keyed redemption vanished"))?;
    let located = locate_by_id(db, redemption.coupon_id).await?;
    Ok(Some(Consumed {
        coupon: located.target().clone(),
        pool: located.pool,
        redemption,
        replayed: true,
    }))
}

pub async fn coupon_by_id<C: ConnectionTrait>(db: &C, id: i64) -> Result<coupons::Model> {
    store::issuance::get(db, id)
        .await?
        .ok_or_else(|| Error::internal("redemption without its coupon"))
}

async fn consume_once(
    db: &DatabaseConnection,
    located: &Located,
    asked: &Redeeming<'_>,
) -> Result<Consumed> {
    let txn = db.begin().await?;
    let now = Utc::now();
    let locked = facts::lock(&txn, located, asked.purchase.redeemer(), now).await?;
    finish(txn, &locked, asked, now).await
}

/// The redemption under its locks: the verdict, the rows, the key's answer and the commit.
async fn finish(
    txn: DatabaseTransaction,
    locked: &Locked,
    asked: &Redeeming<'_>,
    now: DateTime<Utc>,
) -> Result<Consumed> {
    let (redemption, coupon) = match consume_in(&txn, locked, asked, now).await? {
        Ok(done) => done,
        Err(failures) => return Err(not_redeemable(&failures)),
    };
    if let Some(k) = asked.keyed {
        let response = serde_json::json!({ "redemption_id": redemption.id });
        idempotency::record(&txn, k, 201, response).await?;
    }
    txn.commit().await?;
    Ok(Consumed {
        redemption,
        coupon,
        pool: locked.located.pool.clone(),
        replayed: false,
    })
}

type Made = (redemptions::Model, coupons::Model);

async fn consume_in(
    txn: &DatabaseTransaction,
    locked: &Locked,
    asked: &Redeeming<'_>,
    now: DateTime<Utc>,
) -> Result<Result<Made, Vec<Failure>>> {
    let Redeeming {
        org_id,
        purchase,
        mode,
        ..
    } = *asked;
    let discount = match facts::evaluate(txn, locked, purchase, now).await? {
        Ok(d) => d,
        Err(failures) => return Ok(Err(failures)),
    };
    let redemption = store::redemptions::insert(
        txn,
        NewRedemption {
            org_id,
            coupon_id: locked.located.target().id,
            pool_id: locked.located.pool.id,
            customer_id: purchase.redeemer(),
            store: &purchase.store,
            basket_total: purchase.basket.total,
            currency: purchase.basket.currency.as_deref(),
            discount: &discount,
            redeemed_at: purchase.at,
            recorded_at: now,
            reserved_until: match mode {
                Mode::Redeem => None,
                Mode::Reserve { until } => Some(until),
            },
        },
    )
    .await?;
    if locked.counted {
        store::redemptions::add_to_counter(txn, locked.located.pool.id, 1).await?;
    }
    let coupon = match mode {
        Mode::Redeem => {
            let spent = settle::Spent::Now(&discount);
            settle::settle(txn, &locked.located, &redemption, spent, now).await?
        }
        Mode::Reserve { .. } => settle::hold(txn, &locked.located, &discount).await?,
    };
    Ok(Ok((redemption, coupon)))
}

/// The 422 a refused redemption answers with: every failed rule in `errors`.
fn not_redeemable(failures: &[Failure]) -> Error {
    let detail = failures
        .iter()
        .map(|f| f.detail.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Error::Refused(Refusal {
        code: "not_redeemable".into(),
        detail: format!("The coupon cannot be redeemed. {detail}"),
        failures: failures
            .iter()
            .map(|f| error::Failure {
                code: f.code.to_string().into(),
                detail: f.detail.clone(),
            })
            .collect(),
    })
}

/// A 409 for a change the coupon's status does not allow; the detail names the status.
pub fn invalid_transition(detail: String) -> Error {
    Error::conflict("invalid_transition", detail)
}

/// The discount a redemption row recorded.
pub fn recorded_discount(row: &redemptions::Model) -> Discount {
    match &row.detail {
        Some(detail) => detail.clone(),
        None => Discount {
            amount: row.discount,
            ..Discount::default()
        },
    }
}

/// Where a redemption row stands now.
pub fn state_of(row: &redemptions::Model) -> redemption::RedemptionState {
    redemption::state(row.active, row.reserved_until, row.reversed_at, Utc::now())
}
