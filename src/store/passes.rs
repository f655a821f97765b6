//! Pools' wallet pass templates and logos.

use crate::store::entity::pool_passes;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, sea_query::OnConflict};

use crate::domain::wallet::PassTemplate;

pub async fn get<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
) -> Result<Option<pool_passes::Model>, DbErr> {
    pool_passes::Entity::find_by_id(pool_id).one(db).await
}

/// Saves the template, keeping the logo.
pub async fn put_template<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    pool_id: i64,
    template: PassTemplate,
) -> Result<(), DbErr> {
    upsert(
        db,
        org_id,
        pool_id,
        template,
        None,
        pool_passes::Column::Template,
    )
    .await
}

/// Saves the logo, keeping the template (an empty one when there is none yet).
pub async fn put_logo<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    pool_id: i64,
    logo: Vec<u8>,
) -> Result<(), DbErr> {
    upsert(
        db,
        org_id,
        pool_id,
        PassTemplate::default(),
        Some(logo),
        pool_passes::Column::Logo,
    )
    .await
}

/// Inserts the pool's row, or updates only `column` of an existing one.
async fn upsert<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    pool_id: i64,
    template: PassTemplate,
    logo: Option<Vec<u8>>,
    column: pool_passes::Column,
) -> Result<(), DbErr> {
    let row = pool_passes::ActiveModel {
        pool_id: Set(pool_id),
        org_id: Set(org_id),
        template: Set(template),
        logo: Set(logo),
        updated_at: Set(chrono::Utc::now()),
    };
    pool_passes::Entity::insert(row)
        .on_conflict(
            OnConflict::column(pool_passes::Column::PoolId)
                .update_columns([column, pool_passes::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}
