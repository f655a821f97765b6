//! The workflow plugin's actions. Each runs once per Idempotency-Key: the answer is recorded in
//! the transaction of the change it reports, and a rule's refusal is recorded as `skipped`, so
//! a retried step always gets the first answer. Failures (caller errors) are not recorded: they
//! changed nothing, and the step may be retried once the cause is fixed.

mod io;

use crate::store::entity::{coupons, customers, orgs, pools};
use chrono::Utc;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};
use serde_json::Value;

pub use io::{
    ActionReason, ActionResult, ActionStatus, CreditPointsInput, IssueCouponInput, PointsCredit,
    ResendChannel, ResendCouponInput, RevokeCouponsInput,
};

use crate::{
    domain::{customer::CustomerRef, message::Channel},
    service::{
        Error, Result,
        coupons::IssuedCoupon,
        idempotency::{self, Outcome},
        issuance::{self, Fetched},
        notifications, points, revocation,
    },
    store::{self, idempotency::Keyed},
};

/// Refusals of the workflow actions themselves, beside the issuance rules' codes.
const NO_ACTIVE_COUPONS: &str = "no_active_coupons";
const NO_ACTIVE_COUPON: &str = "no_active_coupon";
const NO_CHANNEL: &str = "no_channel";
const INSUFFICIENT_POINTS: &str = "insufficient_points";

/// One call of an action: who made it, and its Idempotency-Key and body.
pub struct Step {
    keyed: Keyed,
}

impl Step {
    pub fn new(org_id: i64, operation: &'static str, key: String, body: &Value) -> Step {
        Step {
            keyed: Keyed::new(org_id, operation, key, body),
        }
    }

    fn org_id(&self) -> i64 {
        self.keyed.org_id
    }
}

pub async fn issue_coupon(
    db: &DatabaseConnection,
    step: &Step,
    input: &IssueCouponInput,
) -> Result<ActionResult> {
    once(db, step, || async {
        let (org, pool) = claimed_pool(db, step.org_id(), input.pool_id).await?;
        let customer = customer(db, step.org_id(), &input.customer).await?;
        let count = input.count.unwrap_or(1);
        let mut fetched = issuance::prefetch(db, &org, &pool, &customer, count).await?;
        let txn = db.begin().await?;
        let result = issue_many(&txn, &org, &pool, &customer, count, &mut fetched).await?;
        record(&txn, step, &result).await?;
        txn.commit().await?;
        Ok(result)
    })
    .await
}

/// Issues up to `count` coupons, each in a savepoint: the first refusal stops issuing, keeps
/// what was issued and becomes the result's reason (or the refusal itself if nothing was).
async fn issue_many(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    customer: &customers::Model,
    count: u32,
    fetched: &mut Fetched,
) -> Result<ActionResult> {
    let mut result = ActionResult::done(ActionStatus::Issued, Vec::new());
    for _ in 0..count {
        let savepoint = txn.begin().await?;
        match issuance::issue_in(&savepoint, org, pool, customer, Utc::now(), fetched).await {
            // The coupon issued a moment ago, handed back by `resend_existing`: listing (and
            // resending) it again would tell the workflow it got two.
            Ok(issued)
                if issued.existing
                    && result
                        .coupons
                        .iter()
                        .any(|c| c.coupon.code == issued.coupon.code) =>
            {
                savepoint.rollback().await?;
                break;
            }
            Ok(issued) => {
                savepoint.commit().await?;
                result.coupons.push(view(issued.coupon, issued.existing));
                // The same coupon would come back again.
                if issued.existing {
                    break;
                }
            }
            Err(e @ Error::Refused(_)) if !result.coupons.is_empty() => {
                savepoint.rollback().await?;
                result.reason = ActionResult::from_error(ActionStatus::Issued, &e).reason;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(result)
}

pub async fn revoke_coupons(
    db: &DatabaseConnection,
    step: &Step,
    input: &RevokeCouponsInput,
) -> Result<ActionResult> {
    once(db, step, || async {
        let (_, pool) = claimed_pool(db, step.org_id(), input.pool_id).await?;
        let customer = customer(db, step.org_id(), &input.customer).await?;
        let txn = db.begin().await?;
        store::customers::lock(&txn, customer.id).await?;
        let revoked = revocation::revoke_customers_in(&txn, pool.id, &[customer.id]).await?;
        if revoked.is_empty() {
            return Err(skip(
                NO_ACTIVE_COUPONS,
                "the customer holds no active coupon of this pool",
            ));
        }
        let coupons = revoked.into_iter().map(|c| view(c, true)).collect();
        let result = ActionResult::done(ActionStatus::Revoked, coupons);
        record(&txn, step, &result).await?;
        txn.commit().await?;
        Ok(result)
    })
    .await
}

pub async fn resend_coupon(
    db: &DatabaseConnection,
    step: &Step,
    input: &ResendCouponInput,
) -> Result<ActionResult> {
    once(db, step, || async {
        let (org, pool) = claimed_pool(db, step.org_id(), input.pool_id).await?;
        let customer = customer(db, step.org_id(), &input.customer).await?;
        let coupon = active_coupon(db, &pool, &customer).await?.ok_or_else(|| {
            skip(
                NO_ACTIVE_COUPON,
                "the customer holds no active coupon of this pool",
            )
        })?;
        let channel = address(&customer, input.channel).ok_or_else(|| {
            skip(
                NO_CHANNEL,
                "the customer has no email address or mobile number for this channel",
            )
        })?;
        let dedup_key = format!("resend:{}:{}", step.org_id(), step.keyed.key);
        let tz = super::org_tz(&org.timezone)?;
        let txn = db.begin().await?;
        notifications::queue_resend(
            &txn,
            &pool,
            tz,
            &coupon,
            &customer,
            Some(channel),
            dedup_key,
        )
        .await?;
        let result = ActionResult::done(ActionStatus::Resent, vec![view(coupon, true)]);
        record(&txn, step, &result).await?;
        txn.commit().await?;
        Ok(result)
    })
    .await
}

pub async fn credit_points(
    db: &DatabaseConnection,
    step: &Step,
    input: &CreditPointsInput,
) -> Result<ActionResult> {
    once(db, step, || async {
        if input.points == 0 {
            return Err(Error::invalid("points", "must not be zero"));
        }
        let customer = customer(db, step.org_id(), &input.customer).await?;
        let ledger_key = format!("workflow:{}", step.keyed.key);
        let change = points::Change {
            org_id: step.org_id(),
            customer_id: customer.id,
            delta: input.points,
            reason: input.reason.trim(),
            reference: None,
            ledger_key: &ledger_key,
        };
        let txn = db.begin().await?;
        // A debit beyond the balance is a rule saying no: the step is `skipped`.
        let applied = points::apply_in(&txn, change)
            .await
            .map_err(|e| match e.code() {
                INSUFFICIENT_POINTS => skip(INSUFFICIENT_POINTS, &e.to_string()),
                _ => e,
            })?;
        let result = ActionResult {
            points: Some(PointsCredit {
                entry_id: applied.entry.id,
                points: applied.entry.delta,
                balance: applied.balance,
            }),
            ..ActionResult::done(ActionStatus::Credited, Vec::new())
        };
        record(&txn, step, &result).await?;
        txn.commit().await?;
        Ok(result)
    })
    .await
}

/// Runs an action once per key (see [`idempotency::once`]). A rule's refusal is recorded as
/// `skipped`, so a retried step gets the same answer.
async fn once<F, Fut>(db: &DatabaseConnection, step: &Step, run: F) -> Result<ActionResult>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<ActionResult>>,
{
    let replay = |saved: Value| async move {
        ActionResult::parse_from_json(Some(saved)).map_err(|e| Error::internal(e.into_message()))
    };
    let outcome = idempotency::once(db, Some(&step.keyed), replay, || async {
        match run().await {
            Err(e @ Error::Refused(_)) => {
                let skipped = ActionResult::from_error(ActionStatus::Skipped, &e);
                record(db, step, &skipped).await?;
                Ok(skipped)
            }
            other => other,
        }
    })
    .await?;
    Ok(Outcome::into_inner(outcome))
}

async fn record<C: ConnectionTrait>(db: &C, step: &Step, result: &ActionResult) -> Result<()> {
    let response = result.to_json().unwrap_or(Value::Null);
    idempotency::record(db, &step.keyed, 200, response).await
}

fn skip(code: &'static str, detail: &str) -> Error {
    Error::refused(code, detail)
}

/// The org's pool, if claimed for workflows, and the org.
async fn claimed_pool(
    db: &DatabaseConnection,
    org_id: i64,
    pool_id: i64,
) -> Result<(orgs::Model, pools::Model)> {
    let (org, pool) = issuance::pool_and_org(db, org_id, pool_id).await?;
    if !pool.claimed {
        return Err(issuance::not_claimed(pool_id));
    }
    Ok((org, pool))
}

async fn customer(
    db: &DatabaseConnection,
    org_id: i64,
    who: &CustomerRef,
) -> Result<customers::Model> {
    super::customers::resolve(db, org_id, &who.identifier()?).await
}

/// The customer's issued, unexpired coupon of the pool.
async fn active_coupon(
    db: &DatabaseConnection,
    pool: &pools::Model,
    customer: &customers::Model,
) -> Result<Option<coupons::Model>> {
    let history = store::issuance::history(db, pool.id, customer.id, Utc::now()).await?;
    match history.valid_coupon {
        Some(id) => Ok(store::issuance::get(db, id).await?),
        None => Ok(None),
    }
}

/// The channel to resend on: the one asked for, else SMS, else email; None when the customer
/// has no address for it.
fn address(customer: &customers::Model, asked: Option<ResendChannel>) -> Option<Channel> {
    let email = || customer.email.as_ref().map(|_| Channel::Email);
    let sms = || customer.mobile.as_ref().map(|_| Channel::Sms);
    match asked {
        Some(ResendChannel::Email) => email(),
        Some(ResendChannel::Sms) => sms(),
        None => sms().or_else(email),
    }
}

fn view(coupon: coupons::Model, existing: bool) -> IssuedCoupon {
    IssuedCoupon::new(coupon, existing)
}
