//! The org's exchange rates: recorded in batches, never overwritten, and read as the rate in
//! force at an instant (the latest to take effect at or before it).

use crate::store::entity::exchange_rates;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

use crate::{
    domain::currency::{Currency, ExchangeRate, Rate, RateInput},
    service::{Error, Result},
    store::{self, exchange_rates::NewRate},
};

/// Records every rate of the batch, or none when one is invalid (the error names it by its
/// position, e.g. `rates[2].rate`).
pub async fn record(
    db: &DatabaseConnection,
    org_id: i64,
    rates: &[RateInput],
) -> Result<Vec<exchange_rates::Model>> {
    let now = Utc::now();
    let valid = rates
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.validate(now)
                .map_err(|e| Error::invalid(format!("rates[{i}].{}", e.field), e.reason))
        })
        .collect::<Result<Vec<_>>>()?;
    let txn = db.begin().await?;
    let mut rows = Vec::with_capacity(valid.len());
    for rate in valid {
        let new = NewRate {
            from: rate.from.code.to_string(),
            to: rate.to.code.to_string(),
            rate: rate.rate.as_string(),
            effective_at: rate.effective_at,
        };
        rows.push(store::exchange_rates::insert(&txn, org_id, new).await?);
    }
    txn.commit().await?;
    Ok(rows)
}

/// The rate from `from` to `to` in force at `at`, or a 422 `no_exchange_rate`. Only the
/// direction asked for counts: the org's B->A rate is not inverted.
pub async fn in_force<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    from: &str,
    to: &str,
    at: DateTime<Utc>,
) -> Result<ExchangeRate> {
    let row = store::exchange_rates::in_force(db, org_id, from, to, at)
        .await?
        .ok_or_else(|| {
            Error::refused(
                "no_exchange_rate",
                format!("the org has no rate from {from} to {to} in force at {at}"),
            )
        })?;
    parse(&row)
}

/// A stored rate as the domain's; it was checked when recorded.
pub fn parse(row: &exchange_rates::Model) -> Result<ExchangeRate> {
    let stored = |e: crate::domain::Invalid| {
        Error::internal(format!(
            "exchange rate {}: {}: {}",
            row.id, e.field, e.reason
        ))
    };
    Ok(ExchangeRate {
        from: Currency::parse(&row.from_currency, "from").map_err(stored)?,
        to: Currency::parse(&row.to_currency, "to").map_err(stored)?,
        rate: Rate::parse(&row.rate).map_err(stored)?,
        effective_at: row.effective_at,
    })
}

/// The org's rates as asked for: the pair's rate in force at `at` (when both currencies are
/// named) and the history, latest first, of the pair or of every pair from or to a currency.
#[derive(Debug, Clone)]
pub struct Rates {
    pub in_force: Option<exchange_rates::Model>,
    pub history: Vec<exchange_rates::Model>,
}

/// What the filter of a rates query names.
#[derive(Debug, Clone, Default)]
pub struct RatesQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub at: Option<DateTime<Utc>>,
    pub limit: u64,
}

pub async fn list<C: ConnectionTrait>(db: &C, org_id: i64, query: RatesQuery) -> Result<Rates> {
    let from = known(query.from.as_deref(), "from")?;
    let to = known(query.to.as_deref(), "to")?;
    let in_force = match (from, to) {
        (Some(from), Some(to)) => {
            let at = query.at.unwrap_or_else(Utc::now);
            store::exchange_rates::in_force(db, org_id, from, to, at).await?
        }
        _ => None,
    };
    let history = store::exchange_rates::history(db, org_id, from, to, query.limit).await?;
    Ok(Rates { in_force, history })
}

fn known<'a>(code: Option<&'a str>, field: &'static str) -> Result<Option<&'a str>> {
    code.map(|c| Currency::parse(c, field).map(|_| c))
        .transpose()
        .map_err(Error::from)
}
