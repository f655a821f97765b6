use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "market_products")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub pool_id: i64,
    pub name: String,
    pub category: Option<String>,
    pub price_points: i64,
    pub visible: bool,
    pub allowed_levels: Json,
    pub created_at: DateTimeUtc,
    pub description: Option<String>,
    pub max_per_customer: Option<i64>,
    pub starts_at: Option<DateTimeUtc>,
    pub ends_at: Option<DateTimeUtc>,
    pub refund_on_revoke: bool,
    pub archived: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
