use sea_orm::entity::prelude::*;

/// One rate the org gave for a currency pair, in force from `effective_at` until a later one.
/// Rows are only ever added.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "exchange_rates")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub from_currency: String,
    pub to_currency: String,
    /// Units of `to_currency` one unit of `from_currency` buys, as an exact decimal string.
    pub rate: String,
    pub effective_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
