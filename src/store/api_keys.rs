//! API keys: stored as SHA-256 hashes, looked up by hash, revoked by timestamp.

use crate::store::entity::api_keys;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};

use crate::domain::{
    access::GroupIds,
    api_key::{NewKey, Scope, Scopes, hash_matches, hash_secret},
};

pub struct NewApiKey {
    pub org_id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub pool_id: Option<i64>,
    pub signing_secret: Option<String>,
    /// The access groups an admin key is limited to; empty for every pool.
    pub groups: Vec<i64>,
}

/// Inserts a key and returns the row and the secret, which exists nowhere else afterwards.
pub async fn create<C: ConnectionTrait>(
    db: &C,
    new: NewApiKey,
) -> Result<(api_keys::Model, String), DbErr> {
    let key = NewKey::generate();
    let row = api_keys::ActiveModel {
        org_id: Set(new.org_id),
        name: Set(new.name),
        key_hash: Set(key.hash),
        key_hint: Set(key.hint),
        scopes: Set(Scopes(new.scopes)),
        pool_id: Set(new.pool_id),
        signing_secret: Set(new.signing_secret),
        group_ids: Set((!new.groups.is_empty()).then_some(GroupIds(new.groups))),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok((row, key.secret))
}

/// The live key whose secret this is, if any. The row is found by its hash and the hash then
/// compared again in constant time.
pub async fn find_by_secret<C: ConnectionTrait>(
    db: &C,
    secret: &str,
) -> Result<Option<api_keys::Model>, DbErr> {
    let row = api_keys::Entity::find()
        .filter(api_keys::Column::KeyHash.eq(hash_secret(secret)))
        .filter(api_keys::Column::RevokedAt.is_null())
        .one(db)
        .await?;
    Ok(row.filter(|r| hash_matches(secret, &r.key_hash)))
}

pub async fn list<C: ConnectionTrait>(db: &C, org_id: i64) -> Result<Vec<api_keys::Model>, DbErr> {
    api_keys::Entity::find()
        .filter(api_keys::Column::OrgId.eq(org_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .order_by_asc(api_keys::Column::Id)
        .all(db)
        .await
}

/// Revokes one of the org's live keys; false when there is no such key.
pub async fn revoke<C: ConnectionTrait>(db: &C, org_id: i64, id: i64) -> Result<bool, DbErr> {
    let result = api_keys::Entity::update_many()
        .col_expr(
            api_keys::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(api_keys::Column::Id.eq(id))
        .filter(api_keys::Column::OrgId.eq(org_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
