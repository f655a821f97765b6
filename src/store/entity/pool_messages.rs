use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pool_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub pool_id: i64,
    pub org_id: i64,
    #[sea_orm(column_type = "Text")]
    pub resend_template: String,
    pub resend_subject: Option<String>,
    pub allow_unicode: bool,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
