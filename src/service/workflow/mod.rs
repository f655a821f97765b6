//! The workflow plugin's actions. Each runs once per Idempotency-Key: the answer is recorded in
//! the transaction of the change it reports, and a rule's refusal is recorded as `skipped`, so
//! a retried step always gets the first answer. Failures (caller errors) are not recorded: they
//! changed nothing, and the step may be retried once the cause is fixed.

mod io;

use chrono::Utc;
use entity::{coupons, customers, orgs, pools};
use poem_openapi::types::{ParseFromJSON, ToJSON};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};
use serde_json::{Value, json};

pub use io::{
    ActionReason, ActionResult, ActionStatus, CreditPointsInput, IssueCouponInput, PointsCredit,
    ResendChannel, ResendCouponInput, RevokeCouponsInput,
};

use crate::{
    domain::customer::CustomerRef,
    service::{
        Error, Result,
        coupons::IssuedCoupon,
        idempotency::{self, Outcome},
        issuance::{self, Fetched},
        revocation, webhooks,
    },
    store::{self, idempotency::Keyed, outbox},
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
            Ok(issued) => {
                savepoint.commit().await?;
                result.coupons.push(view(issued.coupon, issued.existing)?);
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
        let coupons = revoked
            .into_iter()
            .map(|c| view(c, true))
            .collect::<Result<_>>()?;
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
        let (_, pool) = claimed_pool(db, step.org_id(), input.pool_id).await?;
        let customer = customer(db, step.org_id(), &input.customer).await?;
        let coupon = active_coupon(db, &pool, &customer).await?.ok_or_else(|| {
            skip(
                NO_ACTIVE_COUPON,
                "the customer holds no active coupon of this pool",
            )
        })?;
        let (channel, to) = address(&customer, input.channel).ok_or_else(|| {
            skip(
                NO_CHANNEL,
                "the customer has no email address or mobile number for this channel",
            )
        })?;
        let mut message = webhooks::coupon_data(&coupon, Some(&customer));
        message["template"] = json!("coupon_resend");
        message["to"] = json!(to);
        let dedup_key = format!("resend:{}:{}", step.org_id(), step.keyed.key);
        let txn = db.begin().await?;
        outbox::push(&txn, step.org_id(), channel, dedup_key, message).await?;
        let result = ActionResult::done(ActionStatus::Resent, vec![view(coupon, true)?]);
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
        let txn = db.begin().await?;
        store::customers::lock(&txn, customer.id).await?;
        let balance = store::points::balance(&txn, customer.id).await?;
        let after = balance
            .checked_add(input.points)
            .ok_or_else(|| Error::invalid("points", "is too large"))?;
        if after < 0 {
            return Err(skip(
                INSUFFICIENT_POINTS,
                &format!(
                    "the balance is {balance} points; {} cannot be taken",
                    -input.points
                ),
            ));
        }
        let ledger_key = format!("workflow:{}", step.keyed.key);
        let entry = store::points::Entry {
            org_id: step.org_id(),
            customer_id: customer.id,
            delta: input.points,
            reason: input.reason.trim(),
            idempotency_key: &ledger_key,
        };
        let entry = store::points::append(&txn, entry)
            .await
            .map_err(idempotency::race_or)?;
        let result = ActionResult {
            points: Some(PointsCredit {
                entry_id: entry.id,
                points: entry.delta,
                balance: after,
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
        return Err(Error::rejected(
            "pool_id",
            "pool_not_claimed",
            format!("pool {pool_id} is not claimed for workflows: POST /v1/pools/{pool_id}/claim"),
        ));
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

/// The outbox channel and address to resend on: the one asked for, else email, else SMS.
fn address(
    customer: &customers::Model,
    asked: Option<ResendChannel>,
) -> Option<(&'static str, String)> {
    let email = || customer.email.clone().map(|to| (outbox::EMAIL, to));
    let sms = || customer.mobile.clone().map(|to| (outbox::SMS, to));
    match asked {
        Some(ResendChannel::Email) => email(),
        Some(ResendChannel::Sms) => sms(),
        None => email().or_else(sms),
    }
}

fn view(coupon: coupons::Model, existing: bool) -> Result<IssuedCoupon> {
    IssuedCoupon::new(coupon, existing)
}
