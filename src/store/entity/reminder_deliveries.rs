use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reminder_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub reminder_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub coupon_id: i64,
    /// `queued`, or why nothing was queued (`no_address`).
    pub outcome: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
