//! The org's exchange rates: rows are only added, so every rate ever in force stays readable.

use crate::store::entity::exchange_rates;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

/// A rate to record.
#[derive(Debug, Clone)]
pub struct NewRate {
    pub from: String,
    pub to: String,
    pub rate: String,
    pub effective_at: DateTime<Utc>,
}

pub async fn insert<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    rate: NewRate,
) -> Result<exchange_rates::Model, DbErr> {
    exchange_rates::ActiveModel {
        org_id: Set(org_id),
        from_currency: Set(rate.from),
        to_currency: Set(rate.to),
        rate: Set(rate.rate),
        effective_at: Set(rate.effective_at),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// The pair's rate in force at `at`: the latest to take effect at or before it, the latest
/// recorded of those taking effect at the same instant.
pub async fn in_force<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    from: &str,
    to: &str,
    at: DateTime<Utc>,
) -> Result<Option<exchange_rates::Model>, DbErr> {
    exchange_rates::Entity::find()
        .filter(pair(org_id, Some(from), Some(to)))
        .filter(exchange_rates::Column::EffectiveAt.lte(at))
        .order_by_desc(exchange_rates::Column::EffectiveAt)
        .order_by_desc(exchange_rates::Column::Id)
        .limit(1)
        .one(db)
        .await
}

/// The org's rates, of one pair or all pairs from or to a currency, latest first.
pub async fn history<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    from: Option<&str>,
    to: Option<&str>,
    limit: u64,
) -> Result<Vec<exchange_rates::Model>, DbErr> {
    exchange_rates::Entity::find()
        .filter(pair(org_id, from, to))
        .order_by_desc(exchange_rates::Column::EffectiveAt)
        .order_by_desc(exchange_rates::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

fn pair(org_id: i64, from: Option<&str>, to: Option<&str>) -> Condition {
    let mut condition = Condition::all().add(exchange_rates::Column::OrgId.eq(org_id));
    if let Some(from) = from {
        condition = condition.add(exchange_rates::Column::FromCurrency.eq(from));
    }
    if let Some(to) = to {
        condition = condition.add(exchange_rates::Column::ToCurrency.eq(to));
    }
    condition
}
