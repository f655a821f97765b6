use sea_orm::entity::prelude::*;

use crate::domain::wallet::PassTemplate;

/// A pool's wallet pass template and logo.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pool_passes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub pool_id: i64,
    pub org_id: i64,
    /// Title, description, colours, barcode format and fields, as checked when saved.
    pub template: PassTemplate,
    /// The uploaded PNG logo, if any.
    pub logo: Option<Vec<u8>>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
