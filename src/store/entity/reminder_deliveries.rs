use sea_orm::entity::prelude::*;

use crate::domain::message::ReminderOutcome;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reminder_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub reminder_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub coupon_id: i64,
    pub outcome: ReminderOutcome,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
