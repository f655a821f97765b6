//! Issuing a customer list: one coupon per row, every row issued or rejected with the rule that
//! refused it, so re-uploading a file never issues beyond the limits.
//!
//! On PostgreSQL, pools whose codes wait in stock (uploaded, bulk) are issued set-based: per
//! chunk the customers are resolved, locked and their history read in a few statements, the
//! rules run in memory row by row (so duplicates within the file count), and the codes are
//! claimed by one `UPDATE ... FROM unnest(...)` statement. Other pools, and SQLite, issue row by
//! row through the single-issue path inside savepoints.

use std::collections::{HashMap, HashSet};

use crate::store::entity::{coupons, customers, imports, orgs, pools};
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, TransactionTrait};
use serde_json::Value;

use super::{
    Error, Result,
    customer_lists::{self, Row, run_list},
    issuance::{CustomerFacts, Fetched, context, issual_limit_near},
    jobs::{Outcome, Run},
    webhooks,
};
use crate::{
    domain::{
        customer::CustomerIdentifier,
        expiry,
        issuance::{self, Decision, IssuanceRules, RefusalCode},
        job::JobKind,
        pool::PoolSource,
        webhook::WebhookEvent,
    },
    store::{
        self,
        customers::Named,
        imports::{Issue, Progress},
        issuance::{History, Stamp},
    },
};

/// Rows per transaction on the set-based path.
const BULK_CHUNK: usize = 5_000;
/// Rows per transaction on the row-by-row path.
const ROW_CHUNK: usize = 1_000;

/// Stores the list with a new job for the job runner and returns its record.
pub async fn start(
    db: &DatabaseConnection,
    pool: &pools::Model,
    file: Vec<u8>,
) -> Result<imports::Model> {
    customer_lists::create_job(db, pool, JobKind::IssueBatch, file, None).await
}

/// The batch-issue job's work, from its checkpoint to the end of the list.
pub async fn run(run: &Run) -> Result<Outcome> {
    let org = store::orgs::get(&run.db, run.job.org_id)
        .await?
        .ok_or_else(|| Error::internal("the org of a batch issue is gone"))?;
    let pool_id = run.job.pool_id.unwrap_or_default();
    let pool = store::pools::get(&run.db, org.id, pool_id)
        .await?
        .ok_or_else(|| Error::internal("the pool of a batch issue is gone"))?;
    let bulk = run.db.get_database_backend() == DbBackend::Postgres
        && matches!(pool.source, PoolSource::Uploaded | PoolSource::Bulk);
    // Each chunk's work owns its copies, so its future borrows only the transaction.
    let models = move || (org.clone(), pool.clone());
    if bulk {
        run_list(run, BULK_CHUNK, |txn, chunk| {
            let (org, pool) = models();
            Box::pin(async move { issue_chunk_in_bulk(txn, &org, &pool, chunk).await })
        })
        .await
    } else {
        run_list(run, ROW_CHUNK, |txn, chunk| {
            let (org, pool) = models();
            Box::pin(async move { issue_chunk_by_row(txn, &org, &pool, chunk).await })
        })
        .await
    }
}

type Refused = (&'static str, String);

fn reject(progress: &mut Progress, issues: &mut Vec<Issue>, row: Row, (code, reason): Refused) {
    progress.rejected += 1;
    issues.push(Issue {
        row_number: row.number,
        value: row.value,
        code,
        reason,
    });
}

async fn issue_chunk_by_row(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    rows: Vec<Row>,
) -> Result<(Progress, Vec<Issue>)> {
    let mut progress = Progress {
        done: rows.len() as i64,
        ..Progress::default()
    };
    let mut issues = Vec::new();
    for row in rows {
        match issue_row(txn, org, pool, &row).await? {
            Ok(()) => progress.accepted += 1,
            Err(refused) => reject(&mut progress, &mut issues, row, refused),
        }
    }
    Ok((progress, issues))
}

/// One row inside a savepoint, so a refused row leaves nothing behind. The outer error is a
/// failure of the job; the inner one the row's refusal.
async fn issue_row(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    row: &Row,
) -> Result<std::result::Result<(), Refused>> {
    let identifier = match &row.identifier {
        Ok(id) => id,
        Err(e) => return Ok(Err(("invalid_customer", e.reason.clone()))),
    };
    let customer = match super::customers::resolve_row(txn, pool.org_id, identifier).await? {
        Ok(customer) => customer,
        Err(issue) => return Ok(Err(issue)),
    };
    let savepoint = txn.begin().await?;
    let mut nothing_fetched = Fetched::default();
    let issued = super::issuance::issue_in(
        &savepoint,
        org,
        pool,
        &customer,
        Utc::now(),
        &mut nothing_fetched,
    )
    .await;
    match issued {
        Ok(_) => {
            savepoint.commit().await?;
            Ok(Ok(()))
        }
        Err(err) => {
            savepoint.rollback().await?;
            match refusal_of(err) {
                Ok((code, detail)) => Ok(Err((refusal_code(&code), detail))),
                Err(other) => Err(other),
            }
        }
    }
}

/// A rule's refusal of one row (or the row's own bad input), or the failure that stops the job.
fn refusal_of(err: Error) -> Result<(String, String)> {
    match err {
        Error::Refused(_) | Error::Rejected { .. } | Error::Invalid { .. } => {
            Ok((err.code().to_string(), err.public_detail()))
        }
        other => Err(other),
    }
}

/// The refusal codes as static strings for the issue rows.
fn refusal_code(code: &str) -> &'static str {
    RefusalCode::ALL
        .iter()
        .map(|c| c.as_str())
        .find(|c| *c == code)
        .unwrap_or("refused")
}

/// Everything the rules need about a chunk's customers, read in a few statements (also for
/// uploaded codes tagged with their customers).
pub(super) struct ChunkFacts {
    pub(super) customers: Named,
    pub(super) histories: HashMap<i64, History>,
    pub(super) excluded: HashSet<i64>,
    pub(super) allowed: HashSet<i64>,
    pub(super) pool_issued: u64,
}

impl ChunkFacts {
    /// The rules' decision on issuing `pool` at `now` to the customer `id` names, with that
    /// customer's id, or the row's issue when `id` names nobody or several. A new issue is
    /// counted at once, so the chunk's later rows see it.
    pub(super) fn decide(
        &mut self,
        pool: &pools::Model,
        tz: chrono_tz::Tz,
        now: DateTime<Utc>,
        id: &CustomerIdentifier,
    ) -> std::result::Result<(i64, Decision), super::customers::RowIssue> {
        if self.customers.ambiguous.contains(id) {
            return Err(super::customers::ambiguous_row(id));
        }
        let customer = self
            .customers
            .customers
            .get(id)
            .ok_or_else(|| super::customers::not_found_row(id))?;
        let facts = CustomerFacts {
            level: customer.level.as_deref(),
            history: self.histories.entry(customer.id).or_default(),
            on_allow_list: self.allowed.contains(&customer.id),
            excluded_recently: self.excluded.contains(&customer.id),
        };
        let ctx = context(pool, tz, now, &facts, self.pool_issued);
        let (customer_id, decision) = (customer.id, issuance::decide(&pool.issuance, &ctx));
        if decision == Decision::IssueNew {
            self.count_issue(customer_id, now);
        }
        Ok((customer_id, decision))
    }

    /// Counts an issue the chunk decided on, so later rows of the same customer, and the pool's
    /// total, see it; its coupon id is not known yet, and only its existence matters to the rules.
    fn count_issue(&mut self, customer_id: i64, now: DateTime<Utc>) {
        let history = self.histories.entry(customer_id).or_default();
        history.issued_count += 1;
        history.last_issued_at = Some(now);
        history.valid_coupon = history.valid_coupon.or(Some(0));
        self.pool_issued += 1;
    }
}

/// The dates every coupon of a chunk issued at `now` gets (the holder is set per coupon).
pub(super) fn chunk_stamp(pool: &pools::Model, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Stamp {
    Stamp {
        customer_id: 0,
        now,
        expires_at: expiry::expires_at(&pool.expiry, now, tz, pool.ends_at),
        redeemable_from: Some(expiry::redeemable_from(&pool.expiry, now, tz)),
    }
}

/// Finds the customers these identifiers name; when a rule reads what they received, locks
/// them and reads their facts. With a total limit, also locks the pool's series counter (the
/// lock order of every issue).
pub(super) async fn read_facts(
    txn: &DatabaseTransaction,
    pool: &pools::Model,
    rules: &IssuanceRules,
    identifiers: &[CustomerIdentifier],
    now: DateTime<Utc>,
) -> std::result::Result<ChunkFacts, DbErr> {
    let customers = store::customers::find_many(txn, pool.org_id, identifiers).await?;
    // With no such rule, nothing read about a customer can change the decision, so locking
    // thousands of rows would only write their locks.
    let mut ids: Vec<i64> = if rules.reads_customer_facts() {
        customers.customers.values().map(|c| c.id).collect()
    } else {
        Vec::new()
    };
    ids.sort_unstable();
    ids.dedup();
    store::customers::lock_many(txn, &ids).await?;
    let pool_issued = match rules.max_total {
        Some(_) => store::issuance::lock_series_counter(txn, pool.id).await?,
        None => 0,
    };
    Ok(ChunkFacts {
        histories: store::issuance::histories(txn, pool.id, &ids, now).await?,
        excluded: store::issuance::issued_from_since_many(
            txn,
            &ids,
            &rules.exclude_if_issued_from,
            issuance::six_months_before(now),
        )
        .await?,
        allowed: if rules.specific_customers_only {
            store::issuance::allowed_many(txn, pool.id, &ids).await?
        } else {
            HashSet::new()
        },
        customers,
        pool_issued,
    })
}

async fn issue_chunk_in_bulk(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    rows: Vec<Row>,
) -> Result<(Progress, Vec<Issue>)> {
    let now = Utc::now();
    let rules = &pool.issuance;
    let tz = crate::service::org_tz(&org.timezone)?;
    let identifiers: Vec<CustomerIdentifier> = rows
        .iter()
        .filter_map(|r| r.identifier.clone().ok())
        .collect();
    let mut facts = read_facts(txn, pool, rules, &identifiers, now).await?;
    let issued_before = facts.pool_issued;
    let mut progress = Progress {
        done: rows.len() as i64,
        ..Progress::default()
    };
    let mut issues = Vec::new();
    let mut wanted: Vec<(Row, i64)> = Vec::new();
    for row in rows {
        let decided = match &row.identifier {
            Ok(id) => facts.decide(pool, tz, now, id),
            Err(e) => Err(("invalid_customer", e.reason.clone())),
        };
        match decided {
            Err(refused) => reject(&mut progress, &mut issues, row, refused),
            Ok((_, Decision::Refuse(r))) => {
                reject(&mut progress, &mut issues, row, (r.code.as_str(), r.reason))
            }
            Ok((_, Decision::ReturnExisting(_))) => progress.accepted += 1,
            Ok((customer_id, Decision::IssueNew)) => wanted.push((row, customer_id)),
        }
    }
    let stamp = chunk_stamp(pool, tz, now);
    let customer_ids: Vec<i64> = wanted.iter().map(|(_, c)| *c).collect();
    let claimed = store::issuance::claim_many(txn, pool.id, &customer_ids, stamp).await?;
    if rules.max_total.is_some() {
        store::issuance::add_to_series_counter(txn, pool.id, claimed.len() as i64).await?;
    }
    announce(txn, org, pool, rules, &facts, issued_before, &claimed).await?;
    progress.accepted += claimed.len() as i64;
    for (row, _) in wanted.into_iter().skip(claimed.len()) {
        let reason = issuance::Refusal::pool_exhausted().reason;
        reject(
            &mut progress,
            &mut issues,
            row,
            (RefusalCode::PoolExhausted.as_str(), reason),
        );
    }
    issues.sort_by_key(|i| i.row_number);
    Ok((progress, issues))
}

/// Queues `coupon.issued` for the chunk's coupons, and the issual-limit notification when the
/// chunk took the pool's remaining issuals down to its threshold.
pub(super) async fn announce(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    rules: &IssuanceRules,
    facts: &ChunkFacts,
    issued_before: u64,
    claimed: &[coupons::Model],
) -> std::result::Result<(), DbErr> {
    // With no subscriber, the chunk's thousands of webhook bodies are not built at all.
    let subscribed = webhooks::subscribed(txn, org.id, WebhookEvent::CouponIssued).await?;
    if !subscribed.is_empty() {
        let occurrences = issued_occurrences(facts, claimed);
        let event = WebhookEvent::CouponIssued;
        webhooks::enqueue_to(txn, org.id, &subscribed, event, occurrences).await?;
    }
    let issued_after = issued_before + claimed.len() as u64;
    let crossed = (issued_before + 1..=issued_after)
        .find(|&total| issuance::limit_notification_due(rules, total));
    if let (Some(max_total), Some(total)) = (rules.max_total, crossed) {
        issual_limit_near(txn, org, pool, max_total, total).await?;
    }
    Ok(())
}

/// Each claimed coupon's `coupon.issued` occurrence and webhook data, with its holder.
fn issued_occurrences(facts: &ChunkFacts, claimed: &[coupons::Model]) -> Vec<(String, Value)> {
    let holders: HashMap<i64, &customers::Model> = facts
        .customers
        .customers
        .values()
        .map(|c| (c.id, c))
        .collect();
    claimed
        .iter()
        .map(|c| {
            let holder = c.customer_id.and_then(|id| holders.get(&id).copied());
            (
                webhooks::issue_occurrence(c),
                webhooks::coupon_data(c, holder),
            )
        })
        .collect()
}
