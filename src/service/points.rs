//! Customers' points: every change is a ledger entry plus the same move of the cached balance,
//! in one transaction. The points endpoint, the workflow `credit_points` action and refunds of
//! market exchanges come through [`apply_in`]; an exchange debits its balance with its claim
//! and writes its ledger entry with its other rows (`store::market::exchange`), in the same
//! transaction.

use crate::store::entity::{customers, points_ledger};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use serde::{Deserialize, Serialize};

use super::{Error, Result, idempotency};
use crate::{
    domain::market,
    store::{self, idempotency::Keyed},
};

pub const INSUFFICIENT_POINTS: &str = "insufficient_points";

/// One change of a customer's points.
pub struct Change<'a> {
    pub org_id: i64,
    pub customer_id: i64,
    /// Positive credits, negative debits.
    pub delta: i64,
    pub reason: &'a str,
    pub reference: Option<&'a str>,
    /// Unique in the org: a second entry with the same key is refused (`RaceLost`).
    pub ledger_key: &'a str,
}

/// A ledger entry as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: i64,
    pub delta: i64,
    pub reason: String,
    pub reference: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<points_ledger::Model> for Entry {
    fn from(m: points_ledger::Model) -> Entry {
        Entry {
            id: m.id,
            delta: m.delta,
            reason: m.reason,
            reference: m.reference,
            created_at: m.created_at,
        }
    }
}

/// An applied change: its entry and the balance after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub entry: Entry,
    pub balance: i64,
}

/// Applies a change inside the caller's transaction. A debit beyond the balance is refused
/// by the conditional balance update itself, so it holds under any concurrency, and writes
/// nothing.
pub async fn apply_in<C: ConnectionTrait>(db: &C, c: Change<'_>) -> Result<Applied> {
    market::validate_delta(c.delta)?;
    let Some(balance) = store::points::move_balance(db, c.org_id, c.customer_id, c.delta).await?
    else {
        return Err(insufficient(-c.delta));
    };
    let entry = store::points::Entry {
        org_id: c.org_id,
        customer_id: c.customer_id,
        delta: c.delta,
        reason: c.reason,
        reference: c.reference,
        idempotency_key: c.ledger_key,
    };
    let entry = store::points::append(db, entry).await.map_err(|e| {
        if store::is_unique_violation(&e) {
            Error::RaceLost
        } else {
            e.into()
        }
    })?;
    Ok(Applied {
        entry: entry.into(),
        balance,
    })
}

/// The refusal of a debit beyond the balance: 409 `insufficient_points`.
pub fn insufficient(points: i64) -> Error {
    Error::conflict(
        INSUFFICIENT_POINTS,
        format!("the balance is too low to take {points} points"),
    )
}

/// `POST /v1/customers/{external_id}/points`.
pub struct Posting {
    pub org_id: i64,
    pub external_id: String,
    pub delta: i64,
    pub reason: String,
    pub reference: Option<String>,
    pub idempotency_key: String,
}

/// Applies a posted entry once per Idempotency-Key: a retry answers as the first call did.
pub async fn post(db: &DatabaseConnection, p: Posting) -> Result<Applied> {
    let fingerprint = serde_json::json!({
        "customer": p.external_id, "delta": p.delta, "reason": p.reason, "reference": p.reference,
    });
    let keyed = Keyed::new(
        p.org_id,
        "postPoints",
        p.idempotency_key.clone(),
        &fingerprint,
    );
    if let Some(first) = replay(db, &keyed).await? {
        return Ok(first);
    }
    market::check_text("reason", &p.reason, 200)?;
    market::check_text("reference", p.reference.as_deref().unwrap_or(""), 200)?;
    let customer = customer(db, p.org_id, &p.external_id).await?;
    let ledger_key = format!("api:{}", p.idempotency_key);
    let change = Change {
        org_id: p.org_id,
        customer_id: customer.id,
        delta: p.delta,
        reason: p.reason.trim(),
        reference: p.reference.as_deref(),
        ledger_key: &ledger_key,
    };
    let result = async {
        let txn = db.begin().await?;
        let applied = apply_in(&txn, change).await?;
        let response = serde_json::to_value(&applied).map_err(Error::internal)?;
        idempotency::record(&txn, &keyed, 201, response).await?;
        txn.commit().await?;
        Ok(applied)
    }
    .await;
    match result {
        // A concurrent request with the same key may have committed first (this one then
        // lost the key, or was refused by the state the winner left): answer as it did.
        Err(e) => replay(db, &keyed).await?.ok_or(e),
        ok => ok,
    }
}

async fn replay(db: &DatabaseConnection, keyed: &Keyed) -> Result<Option<Applied>> {
    let Some(saved) = idempotency::stored_response(db, keyed).await? else {
        return Ok(None);
    };
    serde_json::from_value(saved)
        .map(Some)
        .map_err(Error::internal)
}

/// A customer's balance and a page of entries, newest first.
#[derive(Debug, Clone)]
pub struct Statement {
    pub balance: i64,
    pub entries: Vec<Entry>,
    /// Pass as `cursor` for the next page; none on the last one.
    pub next_cursor: Option<String>,
}

pub async fn statement(
    db: &DatabaseConnection,
    org_id: i64,
    external_id: &str,
    cursor: Option<&str>,
    limit: u64,
) -> Result<Statement> {
    let customer = customer(db, org_id, external_id).await?;
    let before = parse_cursor(cursor)?;
    let entries = store::points::entries(db, customer.id, before, limit).await?;
    Ok(Statement {
        balance: store::points::cached_balance(db, customer.id).await?,
        next_cursor: next_cursor(entries.len(), limit, entries.last().map(|e| e.id)),
        entries: entries.into_iter().map(Entry::from).collect(),
    })
}

/// The customer a path's external id names (404 when the org does not know it).
pub async fn customer(
    db: &DatabaseConnection,
    org_id: i64,
    external_id: &str,
) -> Result<customers::Model> {
    super::customers::by_external_id(db, org_id, external_id).await
}

/// Cursors are the id of the last item seen, as text so they can change form later.
pub fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| Error::invalid("cursor", "not a cursor this API returned"))
        })
        .transpose()
}

/// A next cursor when the page came back full (there may be more).
pub fn next_cursor(got: usize, limit: u64, last_id: Option<i64>) -> Option<String> {
    (got as u64 == limit)
        .then_some(last_id)
        .flatten()
        .map(|id| id.to_string())
}
