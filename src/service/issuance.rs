//! Issuing a coupon to a customer: rules, limits and the claim in one transaction.
//!
//! Order of locks, the same everywhere: customer row, then the pool's series counter, then a
//! coupon row. The customer lock makes per-customer limits exact; the counter makes the total
//! limit exact; the claim statement makes a code go to one customer only.
//!
//! Remote pools get their code from an HTTP call, which is made before the transaction opens
//! (see [`prefetch`]) so no transaction waits on a remote source.
//!
//! A pool whose rules read nothing (no history, list, exclusion or total limit) skips all of
//! that: [`issue_at_once`] writes the whole issue in one statement.

use std::collections::VecDeque;

use crate::store::entity::{coupons, customers, orgs, pools};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use serde_json::json;

use crate::{
    domain::{
        customer::CustomerIdentifier,
        expiry,
        issuance::{self, Decision, IssuanceRules, IssueContext, RefusalCode},
        message::OutboxChannel,
        pool::{PoolSource, PoolState},
        webhook::WebhookEvent,
    },
    service::{
        Error, Result,
        cache::Caches,
        generation::pool_pattern,
        idempotency::{self, Outcome},
        issue_at_once::{self, Attempt, Holder},
        remote_source, webhooks,
    },
    store::{
        self,
        idempotency::Keyed,
        issuance::{History, Stamp},
        issue_at_once::{Answer, KeyRecord},
        outbox,
    },
};

/// The result of an issue: the coupon, and whether it was made now or is one the customer
/// already had (aggregated pools, "resend existing").
#[derive(Debug, Clone)]
pub struct Issued {
    pub coupon: coupons::Model,
    pub existing: bool,
}

/// Who is issuing: the caller's org, and whether its scopes reach pools not claimed for
/// workflows.
#[derive(Debug, Clone, Copy)]
pub struct Issuer {
    pub org_id: i64,
    pub reaches_unclaimed: bool,
}

/// Issues one coupon of the org's pool `pool_id` to the customer `who` names. With a `key`,
/// the call runs once: a retry with the same request gets the coupon of the first call back
/// (as `Replayed`), another request under the key is a 409. A caller whose scopes do not
/// reach unclaimed pools (a workflow key) gets the workflow action's 422 `pool_not_claimed`
/// for a pool not claimed for workflows.
///
/// Every effect of an issue is in its transaction, except a remote pool's call to its source:
/// so only remote pools look the key up before the call ([`idempotency::once`]); the others
/// find a retry out when recording the key ([`idempotency::once_then_check`]).
pub async fn issue_one(
    db: &DatabaseConnection,
    caches: &Caches,
    issuer: Issuer,
    pool_id: i64,
    who: &CustomerIdentifier,
    key: Option<String>,
) -> Result<Outcome<Issued>> {
    let Issuer {
        org_id,
        reaches_unclaimed,
    } = issuer;
    let keyed = key.map(|key| {
        let fingerprint = json!({"pool": pool_id, "customer": format!("{who:?}")});
        Keyed::new(org_id, "issueCoupon", key, &fingerprint)
    });
    let replay = |first: serde_json::Value| async move {
        let id = idempotency::stored_id(&first, "coupon_id")?;
        let coupon = store::issuance::get(db, id)
            .await?
            .ok_or_else(|| Error::internal("keyed coupon vanished"))?;
        Ok(Issued {
            coupon,
            existing: true,
        })
    };
    let found = caches.pool_and_org(db, org_id, pool_id).await?;
    let remote = found
        .as_ref()
        .is_some_and(|(_, pool)| pool.source == PoolSource::Remote);
    let run = || async {
        let (org, pool) = found.ok_or_else(|| Error::not_found("pool", pool_id))?;
        if !pool.claimed && !reaches_unclaimed {
            return Err(not_claimed(pool.id));
        }
        issue_to(db, &org, &pool, who, keyed.as_ref()).await
    };
    if remote {
        idempotency::once(db, keyed.as_ref(), replay, run).await
    } else {
        idempotency::once_then_check(db, keyed.as_ref(), replay, run).await
    }
}

/// Issues to the customer `who` names. A customer named by external id is read by the
/// claiming statement itself when the pool allows an issue at once.
async fn issue_to(
    db: &DatabaseConnection,
    org: &orgs::Model,
    pool: &pools::Model,
    who: &CustomerIdentifier,
    keyed: Option<&Keyed>,
) -> Result<Issued> {
    let at_once = match who {
        CustomerIdentifier::ExternalId(external_id) => {
            let holder = Holder::ExternalId {
                org_id: org.id,
                external_id,
                create: false,
            };
            issue_at_once::try_issue(db, org, pool, holder, key_record(keyed)).await?
        }
        _ => Attempt::NotApplicable,
    };
    if let Attempt::Issued(issued) = at_once {
        return Ok(issued);
    }
    let customer = super::customers::resolve(db, org.id, who).await?;
    match at_once {
        Attempt::NotClaimed => issue_in_transaction(db, org, pool, &customer, keyed).await,
        _ => issue(db, org, pool, &customer, keyed).await,
    }
}

/// What a keyed issue records for its retries.
fn key_record(keyed: Option<&Keyed>) -> Option<KeyRecord<'_>> {
    keyed.map(|keyed| KeyRecord {
        keyed,
        status: 201,
        answer: Answer::CouponId,
    })
}

/// A pool a workflow-only caller may not use.
pub fn not_claimed(pool_id: i64) -> Error {
    Error::rejected(
        "pool_id",
        "pool_not_claimed",
        format!("pool {pool_id} is not claimed for workflows: POST /v1/pools/{pool_id}/claim"),
    )
}

/// The org's pool and the org, read together.
pub async fn pool_and_org(
    db: &DatabaseConnection,
    org_id: i64,
    pool_id: i64,
) -> Result<(orgs::Model, pools::Model)> {
    let (pool, org) = store::pools::get_with_org(db, org_id, pool_id)
        .await?
        .ok_or_else(|| Error::not_found("pool", pool_id))?;
    Ok((org, pool))
}

/// Issues one coupon of `pool` to `customer`, recording `keyed` (if any) in the same
/// transaction so a retry with the same key gets this coupon back.
pub async fn issue(
    db: &DatabaseConnection,
    org: &orgs::Model,
    pool: &pools::Model,
    customer: &customers::Model,
    keyed: Option<&Keyed>,
) -> Result<Issued> {
    let holder = Holder::Customer(customer);
    let record = key_record(keyed);
    if let Attempt::Issued(issued) = issue_at_once::try_issue(db, org, pool, holder, record).await?
    {
        return Ok(issued);
    }
    issue_in_transaction(db, org, pool, customer, keyed).await
}

/// [`issue`] without trying [`issue_at_once`] first.
async fn issue_in_transaction(
    db: &DatabaseConnection,
    org: &orgs::Model,
    pool: &pools::Model,
    customer: &customers::Model,
    keyed: Option<&Keyed>,
) -> Result<Issued> {
    let mut fetched = prefetch(db, org, pool, customer, 1).await?;
    let txn = db.begin().await?;
    let issued = issue_in(&txn, org, pool, customer, Utc::now(), &mut fetched).await?;
    if let Some(k) = keyed {
        let response =
            serde_json::json!({ "coupon_id": issued.coupon.id, "existing": issued.existing });
        idempotency::record(&txn, k, 201, response).await?;
    }
    txn.commit().await?;
    Ok(issued)
}

/// Codes fetched from a remote pool's source before the issuing transaction began, used in
/// order. The source may have bound a code to the customer it was fetched for, so codes left
/// unused (the rules changed their answer meanwhile) are logged when dropped, never reused.
#[derive(Debug, Default)]
pub struct Fetched {
    pool_id: i64,
    codes: VecDeque<String>,
}

impl Fetched {
    fn next(&mut self) -> Option<String> {
        self.codes.pop_front()
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        if !self.codes.is_empty() {
            tracing::warn!(
                pool = self.pool_id,
                codes = ?self.codes,
                "codes fetched from a remote source were not issued"
            );
        }
    }
}

/// Batch issues run many issues in one transaction, which must not wait on HTTP calls; remote
/// pools issue one request at a time.
pub fn check_batchable(pool: &pools::Model) -> Result<()> {
    if pool.source == PoolSource::Remote {
        return Err(Error::conflict(
            "remote_source",
            "a remote pool fetches each code from its source: issue one at a time with /issue",
        ));
    }
    Ok(())
}

/// For a remote pool, fetches `count` codes from its source, but only when the rules read now
/// say a new coupon would be issued (a refusal is returned at once). Other pools need nothing.
pub async fn prefetch(
    db: &DatabaseConnection,
    org: &orgs::Model,
    pool: &pools::Model,
    customer: &customers::Model,
    count: u32,
) -> Result<Fetched> {
    let mut fetched = Fetched {
        pool_id: pool.id,
        codes: VecDeque::new(),
    };
    if pool.source != PoolSource::Remote {
        return Ok(fetched);
    }
    let rules = &pool.issuance;
    let ctx = read_context(db, org, pool, rules, customer, Utc::now()).await?;
    match issuance::decide(rules, &ctx) {
        Decision::Refuse(r) => Err(Error::refused(r.code.as_str(), r.reason)),
        Decision::ReturnExisting(_) => Ok(fetched),
        Decision::IssueNew => {
            fetched.codes = remote_source::fetch(pool, customer, count).await?.into();
            Ok(fetched)
        }
    }
}

/// The issue itself, inside the caller's transaction (batch jobs issue many in one). Remote
/// pools take their code from `fetched`.
pub async fn issue_in(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    customer: &customers::Model,
    now: DateTime<Utc>,
    fetched: &mut Fetched,
) -> Result<Issued> {
    let rules = &pool.issuance;
    if rules.depends_on_history() {
        store::customers::lock(txn, customer.id).await?;
    }
    let issued = take_in(txn, org, pool, rules, customer, now, fetched).await?;
    if !issued.existing {
        webhooks::record_issue(txn, &issued.coupon, customer).await?;
    }
    Ok(issued)
}

/// [`issue_in`] without its records: decides under the pool's `rules` and takes the code, but
/// writes neither the `coupon_issue` event nor the `coupon.issued` webhook (the caller writes
/// them with its own rows: see [`announce_issued`]). The caller holds the customer's row lock
/// when the rules depend on the customer's history.
pub async fn take_in(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    rules: &IssuanceRules,
    customer: &customers::Model,
    now: DateTime<Utc>,
    fetched: &mut Fetched,
) -> Result<Issued> {
    match decide_in(txn, org, pool, rules, customer, now).await? {
        Verdict::Existing(id) => existing(txn, id).await,
        Verdict::New(stamp) => {
            let coupon = claim(txn, pool, stamp, fetched).await?;
            Ok(Issued {
                coupon,
                existing: false,
            })
        }
    }
}

/// What the rules said about an issue.
#[derive(Debug, Clone, Copy)]
pub enum Verdict {
    /// Hand back the coupon with this id, which the customer holds.
    Existing(i64),
    /// Issue a new coupon stamped so; a slot of the pool's total issual limit is taken.
    New(Stamp),
}

/// The rules' decision for an issue of `pool` to `customer`, inside the issuing transaction:
/// a refusal is an error; a new coupon takes its slot of the pool's total issual limit here (the
/// pool's series counter, locked to the end of the transaction). The caller holds the
/// customer's row lock when the rules depend on the customer's history.
pub async fn decide_in(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    rules: &IssuanceRules,
    customer: &customers::Model,
    now: DateTime<Utc>,
) -> Result<Verdict> {
    let ctx = read_context(txn, org, pool, rules, customer, now).await?;
    match issuance::decide(rules, &ctx) {
        Decision::Refuse(r) => return Err(Error::refused(r.code.as_str(), r.reason)),
        Decision::ReturnExisting(id) => return Ok(Verdict::Existing(id)),
        Decision::IssueNew => {}
    }
    if let Some(max) = rules.max_total {
        take_series_slot(txn, org, pool, rules, max).await?;
    }
    Ok(Verdict::New(stamp(pool, customer, now, ctx.tz)))
}

/// What a new coupon of `pool` issued to `customer` at `now` is stamped with.
pub fn stamp(
    pool: &pools::Model,
    customer: &customers::Model,
    now: DateTime<Utc>,
    tz: Tz,
) -> Stamp {
    let (expires_at, redeemable_from) = dates(pool, now, tz);
    Stamp {
        customer_id: customer.id,
        now,
        expires_at,
        redeemable_from,
    }
}

/// When a coupon of `pool` issued at `now` expires, and from when it is redeemable.
pub fn dates(
    pool: &pools::Model,
    now: DateTime<Utc>,
    tz: Tz,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let expiry_rules = &pool.expiry;
    (
        expiry::expires_at(expiry_rules, now, tz, pool.ends_at),
        Some(expiry::redeemable_from(expiry_rules, now, tz)),
    )
}

/// Queues the `coupon.issued` webhook of a new coupon for these subscriptions of its org.
pub async fn announce_issued<C: ConnectionTrait>(
    db: &C,
    coupon: &coupons::Model,
    customer: &customers::Model,
    subscribed: &[i64],
) -> Result<(), DbErr> {
    webhooks::enqueue_to(
        db,
        coupon.org_id,
        subscribed,
        WebhookEvent::CouponIssued,
        vec![(
            webhooks::issue_occurrence(coupon),
            webhooks::coupon_data(coupon, Some(customer)),
        )],
    )
    .await
}

/// The rules' view of an issue as `db` sees it now; the customer's history is read only when
/// a rule depends on it.
async fn read_context<C: ConnectionTrait>(
    db: &C,
    org: &orgs::Model,
    pool: &pools::Model,
    rules: &IssuanceRules,
    customer: &customers::Model,
    now: DateTime<Utc>,
) -> Result<IssueContext> {
    let tz = super::org_tz(&org.timezone)?;
    // A common code needs no history either: its unique index refuses a second copy.
    let history = if rules.depends_on_history() {
        store::issuance::history(db, pool.id, customer.id, now).await?
    } else {
        History::default()
    };
    let facts = CustomerFacts {
        level: customer.level.as_deref(),
        history: &history,
        on_allow_list: rules.specific_customers_only
            && store::issuance::on_allow_list(db, pool.id, customer.id).await?,
        excluded_recently: store::issuance::issued_from_since(
            db,
            customer.id,
            &rules.exclude_if_issued_from,
            issuance::six_months_before(now),
        )
        .await?,
    };
    Ok(context(pool, tz, now, &facts, pool.issued_count as u64))
}

/// Takes a slot of the pool's total issual limit and, when that brings the remaining issuals
/// down to the notification threshold, says so.
async fn take_series_slot(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    rules: &IssuanceRules,
    max_total: u64,
) -> Result<()> {
    let Some(total) = store::issuance::take_series_slot(txn, pool.id, max_total).await? else {
        return Err(refusal(
            RefusalCode::SeriesLimit,
            "the pool has reached its total issual limit",
        ));
    };
    if issuance::limit_notification_due(rules, total) {
        issual_limit_near(txn, org, pool, max_total, total).await?;
    }
    Ok(())
}

/// The pool's remaining issuals dropped to its threshold: tell subscribers and email the org's
/// POCs, once for this crossing.
pub async fn issual_limit_near<C: ConnectionTrait>(
    db: &C,
    org: &orgs::Model,
    pool: &pools::Model,
    max_total: u64,
    issued: u64,
) -> Result<(), DbErr> {
    let data = json!({
        "pool_id": pool.id,
        "pool_name": pool.name,
        "max_total": max_total,
        "issued": issued,
        "remaining": max_total.saturating_sub(issued),
    });
    let occurrence = format!("pool-{}-issued-{issued}", pool.id);
    webhooks::enqueue(
        db,
        org.id,
        WebhookEvent::PoolIssualLimitNear,
        &occurrence,
        data.clone(),
    )
    .await?;
    let to = &org.poc_emails.0;
    if !to.is_empty() {
        let mut email = data;
        email["template"] = json!("pool_issual_limit_near");
        email["to"] = json!(to);
        outbox::push(
            db,
            org.id,
            OutboxChannel::Email,
            format!("email:{occurrence}"),
            email,
        )
        .await?;
    }
    Ok(())
}

/// What the issuance rules see of one customer.
pub struct CustomerFacts<'a> {
    pub level: Option<&'a str>,
    pub history: &'a History,
    pub on_allow_list: bool,
    pub excluded_recently: bool,
}

/// The rules' view of an issue of `pool` to a customer at `now`.
pub fn context(
    pool: &pools::Model,
    tz: Tz,
    now: DateTime<Utc>,
    facts: &CustomerFacts,
    pool_issued: u64,
) -> IssueContext {
    IssueContext {
        now,
        tz,
        pool_active: pool.state == PoolState::Active,
        pool_starts_at: pool.starts_at,
        pool_ends_at: pool.ends_at,
        is_common: pool.source == PoolSource::Common,
        customer_level: facts.level.map(str::to_string),
        on_allow_list: facts.on_allow_list,
        customer_issued_count: facts.history.issued_count,
        customer_last_issued_at: facts.history.last_issued_at,
        existing_valid_coupon: facts.history.valid_coupon,
        issued_from_excluded_recently: facts.excluded_recently,
        pool_issued_total: pool_issued,
    }
}

/// Takes a code for the customer the way the pool's source makes codes.
async fn claim(
    txn: &DatabaseTransaction,
    pool: &pools::Model,
    stamp: Stamp,
    fetched: &mut Fetched,
) -> Result<coupons::Model> {
    match pool.source {
        PoolSource::Common => {
            let code = pool_pattern(pool)?
                .common_code()
                .ok_or_else(|| Error::internal("common pool without a code"))?;
            store::issuance::insert_issued(txn, pool, code, stamp.customer_id, stamp)
                .await?
                .ok_or_else(|| {
                    refusal(
                        RefusalCode::AlreadyIssued,
                        "Generic coupon code has already been issued to this customer",
                    )
                })
        }
        PoolSource::Remote => {
            let code = fetched.next().ok_or_else(|| {
                Error::conflict(
                    "remote_code_missing",
                    "the customer's coupons changed while the remote source was asked; retry",
                )
            })?;
            store::issuance::insert_issued(txn, pool, code.clone(), 0, stamp)
                .await?
                .ok_or_else(|| remote_source::duplicate(&code))
        }
        _ => {
            if let Some(c) = store::issuance::claim_available(txn, pool.id, stamp).await? {
                return Ok(c);
            }
            mint_or_exhausted(txn, pool, stamp).await
        }
    }
}

/// When a pool of unique codes has none available: a new code, if the pool makes codes on
/// issue, or `pool_exhausted`.
pub async fn mint_or_exhausted(
    txn: &DatabaseTransaction,
    pool: &pools::Model,
    stamp: Stamp,
) -> Result<coupons::Model> {
    if pool.source.mints_on_issue() {
        mint(txn, pool, stamp).await
    } else {
        Err(exhausted())
    }
}

/// Makes the pool's next code from its pattern and issues it at once.
async fn mint(
    txn: &DatabaseTransaction,
    pool: &pools::Model,
    stamp: Stamp,
) -> Result<coupons::Model> {
    let pattern = pool_pattern(pool)?;
    let key = pool.generation_key.clone().unwrap_or_default();
    let generator = crate::domain::generator::Generator::new(&pattern, key.as_bytes());
    // A clash with a code uploaded elsewhere in the org moves on to the next one.
    for _ in 0..16 {
        let cursor = store::pools::generator_cursor(txn, pool.id).await?;
        let Some((code, next)) = generator.codes_from(cursor).next() else {
            return Err(exhausted());
        };
        if !store::pools::advance_generator_cursor(txn, pool.id, cursor, next).await? {
            continue;
        }
        if let Some(c) = store::issuance::insert_issued(txn, pool, code, 0, stamp).await? {
            return Ok(c);
        }
    }
    Err(Error::internal("could not mint a free code in 16 attempts"))
}

async fn existing(txn: &DatabaseTransaction, id: i64) -> Result<Issued> {
    let coupon = store::issuance::get(txn, id)
        .await?
        .ok_or_else(|| Error::internal("existing coupon vanished"))?;
    Ok(Issued {
        coupon,
        existing: true,
    })
}

fn exhausted() -> Error {
    refusal(
        RefusalCode::PoolExhausted,
        "the pool has no codes left to issue",
    )
}

fn refusal(code: RefusalCode, reason: &str) -> Error {
    Error::refused(code.as_str(), reason)
}
