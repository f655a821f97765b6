//! Revoking a pool's coupons (Capillary's "Revoke coupons"): all unredeemed ones (issued and
//! unissued), only unissued ones, or the active coupons of listed customers. Revoked coupons
//! can never be redeemed or reversed; redeemed coupons are never revoked.

use std::collections::HashMap;

use crate::store::entity::{coupons, imports, pools};
use chrono::Utc;
use poem_openapi::Enum;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use crate::{
    domain::{coupon::CouponStatus, job::JobKind},
    service::{
        Result,
        customer_lists::{self, CHUNK, Row},
        jobs::{self, Outcome, Run},
    },
    store::{
        self,
        imports::{Issue, Progress},
        revocation::Target,
    },
};

/// Coupons revoked per statement and transaction.
const BATCH: u64 = 2_000;

/// The revocations that need no list.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum BulkScope {
    /// Every coupon not redeemed: issued and unissued.
    AllUnredeemed,
    /// Only coupons nobody was issued.
    UnissuedOnly,
}

/// How many coupons a revocation took.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub issued: u64,
    pub unissued: u64,
}

pub async fn revoke_bulk(
    db: &DatabaseConnection,
    pool: &pools::Model,
    scope: BulkScope,
) -> Result<Counts> {
    let unissued = revoke_all(db, pool.id, CouponStatus::Available).await?;
    let issued = match scope {
        BulkScope::AllUnredeemed => revoke_all(db, pool.id, CouponStatus::Issued).await?,
        BulkScope::UnissuedOnly => 0,
    };
    Ok(Counts { issued, unissued })
}

/// Revokes every coupon of the pool in `status`, a batch per transaction.
async fn revoke_all(db: &DatabaseConnection, pool_id: i64, status: CouponStatus) -> Result<u64> {
    let target = Target {
        pool_id,
        status,
        customers: None,
    };
    let mut total = 0;
    loop {
        let txn = db.begin().await?;
        let batch = store::revocation::revoke_batch(&txn, target, BATCH, Utc::now()).await?;
        super::market::exchange::refund_withdrawn(&txn, &batch).await?;
        txn.commit().await?;
        total += batch.len() as u64;
        if (batch.len() as u64) < BATCH {
            return Ok(total);
        }
    }
}

/// Revokes the active (issued) coupons these customers hold in the pool, in the caller's
/// transaction, and returns them.
pub async fn revoke_customers_in<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    customer_ids: &[i64],
) -> std::result::Result<Vec<coupons::Model>, DbErr> {
    if customer_ids.is_empty() {
        return Ok(Vec::new());
    }
    let target = Target {
        pool_id,
        status: CouponStatus::Issued,
        customers: Some(customer_ids),
    };
    let mut revoked = Vec::new();
    loop {
        let batch = store::revocation::revoke_batch(db, target, BATCH, Utc::now()).await?;
        super::market::exchange::refund_withdrawn(db, &batch).await?;
        let done = (batch.len() as u64) < BATCH;
        revoked.extend(batch);
        if done {
            return Ok(revoked);
        }
    }
}

/// Revokes the active coupons of every customer in a list (CSV, header naming the identifier
/// column), answering when done. Unknown customers are rejected and customers without active
/// coupons skipped, each with an issue row. The list is stored with its job, so a crash
/// midway leaves a job the runner finishes.
pub async fn revoke_listed(
    db: &DatabaseConnection,
    pool: &pools::Model,
    file: Vec<u8>,
) -> Result<imports::Model> {
    let owner = jobs::new_owner();
    let job = customer_lists::create_job(db, pool, JobKind::Revocation, file, Some(&owner)).await?;
    jobs::run_inline(db, job, owner, |run| async move { revoke_list(&run).await }).await
}

/// The revocation-list job's work.
pub async fn revoke_list(run: &Run) -> Result<Outcome> {
    let (org_id, pool_id) = (run.job.org_id, run.job.pool_id.unwrap_or_default());
    customer_lists::run_list(run, CHUNK, |txn, chunk| {
        Box::pin(revoke_chunk(txn, org_id, pool_id, chunk))
    })
    .await
}

async fn revoke_chunk<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    pool_id: i64,
    chunk: Vec<Row>,
) -> Result<(Progress, Vec<Issue>)> {
    let mut found = Vec::with_capacity(chunk.len());
    for row in &chunk {
        let customer = match &row.identifier {
            Ok(id) => super::customers::resolve_row(db, org_id, id).await?,
            Err(e) => Err(("invalid_customer", e.reason.clone())),
        };
        found.push(customer.map(|c| c.id));
    }
    let ids: Vec<i64> = found
        .iter()
        .filter_map(|c| c.as_ref().ok().copied())
        .collect();
    let mut per_customer: HashMap<i64, usize> = HashMap::new();
    for coupon in revoke_customers_in(db, pool_id, &ids).await? {
        *per_customer
            .entry(coupon.customer_id.unwrap_or_default())
            .or_default() += 1;
    }
    let mut progress = Progress {
        done: chunk.len() as i64,
        ..Progress::default()
    };
    let mut issues = Vec::new();
    for (row, customer) in chunk.into_iter().zip(found) {
        let issue = |code, reason: String| Issue {
            row_number: row.number,
            value: row.value.clone(),
            code,
            reason,
        };
        match customer {
            Ok(id) if per_customer.remove(&id).is_some() => progress.accepted += 1,
            Ok(_) => {
                progress.skipped += 1;
                issues.push(issue(
                    "no_active_coupons",
                    "the customer holds no active coupon of this pool".into(),
                ));
            }
            Err((code, reason)) => {
                progress.rejected += 1;
                issues.push(issue(code, reason));
            }
        }
    }
    Ok((progress, issues))
}
