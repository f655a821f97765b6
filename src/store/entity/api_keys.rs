use sea_orm::entity::prelude::*;

use crate::domain::{access::GroupIds, api_key::Scopes};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    #[sea_orm(unique)]
    pub key_hash: String,
    pub key_hint: String,
    pub scopes: Scopes,
    pub pool_id: Option<i64>,
    pub signing_secret: Option<String>,
    /// The access groups an admin key is limited to; none for a key that reaches every pool.
    pub group_ids: Option<GroupIds>,
    pub created_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
