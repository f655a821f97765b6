use sea_orm::entity::prelude::*;

use crate::domain::message::Channel;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pool_reminders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub pool_id: i64,
    pub days_before: i32,
    /// `HH:MM` in the org's time zone.
    pub at_time: String,
    pub channel: Channel,
    pub subject: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub template: String,
    pub allow_unicode: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
