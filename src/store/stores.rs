//! The org's stores, by the caller's id for each, with the currency their tills charge in.

use crate::store::entity::stores;
use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set,
    sea_query::OnConflict,
};

/// What a store is saved with; the caller's id is the key.
#[derive(Debug, Clone)]
pub struct StoreFields {
    pub name: Option<String>,
    pub currency: String,
    pub zone: Option<String>,
    pub concept: Option<String>,
}

/// Creates or replaces the store with this id, in one statement.
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    external_id: &str,
    fields: StoreFields,
) -> Result<stores::Model, DbErr> {
    let now = Utc::now();
    let row = stores::ActiveModel {
        org_id: Set(org_id),
        external_id: Set(external_id.to_string()),
        name: Set(fields.name),
        currency: Set(fields.currency),
        zone: Set(fields.zone),
        concept: Set(fields.concept),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    stores::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([stores::Column::OrgId, stores::Column::ExternalId])
                .update_columns([
                    stores::Column::Name,
                    stores::Column::Currency,
                    stores::Column::Zone,
                    stores::Column::Concept,
                    stores::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_with_returning(db)
        .await
}

pub async fn get<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    external_id: &str,
) -> Result<Option<stores::Model>, DbErr> {
    stores::Entity::find()
        .filter(stores::Column::OrgId.eq(org_id))
        .filter(stores::Column::ExternalId.eq(external_id))
        .one(db)
        .await
}

/// The org's stores by their ids.
pub async fn list<C: ConnectionTrait>(db: &C, org_id: i64) -> Result<Vec<stores::Model>, DbErr> {
    stores::Entity::find()
        .filter(stores::Column::OrgId.eq(org_id))
        .order_by_asc(stores::Column::ExternalId)
        .all(db)
        .await
}
