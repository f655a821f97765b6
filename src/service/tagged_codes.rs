//! Uploaded codes that name the customer each was already given to (Capillary's "coupons with
//! customer details", for brands moving codes handed out elsewhere). Each goes in issued to its
//! customer now, with the expiry an issue of the pool would give it and a `coupon_issue`
//! event, under the pool's issuance rules: Capillary reports the same per-customer limit, gap
//! and total-limit errors for these uploads as for issuing to a customer list, so a refused
//! row is an issue row and its code is not added at all. Done set-based per chunk, like a
//! customer list issued on PostgreSQL: the chunk's customers are locked and read once, the
//! rules run row by row in memory (so a file's later rows see its earlier ones), and the
//! codes go in with one statement.

use crate::store::entity::{orgs, pools};
use chrono::Utc;
use sea_orm::DatabaseTransaction;

use super::{
    Result,
    batch_issue::{announce, chunk_stamp, read_facts},
    codes::{DUPLICATE, Report, new_codes},
    org_tz,
};
use crate::{
    domain::{
        code_file::Holder,
        customer::CustomerIdentifier,
        issuance::{Decision, RefusalCode},
    },
    store,
};

/// A well-formed code of the file and the customer its row names.
pub struct Tagged {
    pub line: i64,
    pub code: String,
    pub holder: Holder,
}

/// Issues each code to its customer in the chunk's transaction, adding what happened to each
/// row to `report`. The codes are new to the file (earlier rows keep theirs).
pub async fn issue(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    rows: Vec<Tagged>,
    report: &mut Report,
) -> Result<()> {
    let mut named = Vec::with_capacity(rows.len());
    for row in rows {
        match &row.holder.identifier {
            Ok(id) => named.push((id.clone(), row)),
            Err(e) => {
                let reason = format!("the customer's {} {}", e.field, e.reason);
                report.reject(row.line, row.code, "invalid_customer", reason);
            }
        }
    }
    if named.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let rules = &pool.issuance;
    let tz = org_tz(&org.timezone)?;
    let identifiers: Vec<CustomerIdentifier> = named.iter().map(|(id, _)| id.clone()).collect();
    let mut facts = read_facts(txn, pool, rules, &identifiers, now).await?;
    // Read under the customers' locks: an upload giving one of these codes to one of these
    // customers has committed by now, and its code shows as taken.
    let codes: Vec<String> = named.iter().map(|(_, r)| r.code.clone()).collect();
    let taken = store::coupons::taken_codes(txn, org.id, &codes).await?;
    let issued_before = facts.pool_issued;
    let mut wanted = Vec::new();
    for (id, row) in named {
        if taken.contains(&row.code) {
            report.duplicate(row.line, row.code, DUPLICATE.into());
            continue;
        }
        match facts.decide(pool, tz, now, &id) {
            Err((code, reason)) => {
                let reason = format!("{reason} (`{}`)", row.holder.value);
                report.reject(row.line, row.code, code, reason);
            }
            Ok((_, Decision::Refuse(r))) => {
                report.reject(row.line, row.code, r.code.as_str(), r.reason)
            }
            // The pool hands such a customer the coupon they hold; this code would be a second.
            Ok((_, Decision::ReturnExisting(_))) => report.reject(
                row.line,
                row.code,
                RefusalCode::AlreadyIssued.as_str(),
                "the customer holds a valid coupon of this pool, which the pool gives again \
                 instead of another"
                    .into(),
            ),
            Ok((customer_id, Decision::IssueNew)) => wanted.push((row, customer_id)),
        }
    }
    let stamp = chunk_stamp(pool, tz, now);
    let holders: Vec<(String, i64)> = wanted
        .iter()
        .map(|(row, customer_id)| (row.code.clone(), *customer_id))
        .collect();
    let issued = store::issuance::insert_issued_many(txn, new_codes(pool), &holders, stamp).await?;
    if rules.max_total.is_some() {
        store::issuance::add_to_series_counter(txn, pool.id, issued.len() as i64).await?;
    }
    store::events::record_issues(txn, &issued).await?;
    announce(txn, org, pool, rules, &facts, issued_before, &issued).await?;
    report.accept(issued.len() as i64);
    if issued.len() < wanted.len() {
        // A code another upload (of codes without customers) put in meanwhile; the rules
        // counted it for this chunk's later rows, which can only have made them stricter.
        let went_in: std::collections::HashSet<&str> =
            issued.iter().map(|c| c.code.as_str()).collect();
        let lost: Vec<(i64, String)> = wanted
            .iter()
            .filter(|(row, _)| !went_in.contains(row.code.as_str()))
            .map(|(row, _)| (row.line, row.code.clone()))
            .collect();
        for (line, code) in lost {
            report.duplicate(line, code, DUPLICATE.into());
        }
    }
    Ok(())
}
