//! Idempotency keys: the first answer to a keyed request, replayed for its retries. A key is
//! recorded in the same transaction as the change it answers, so a retry either sees the whole
//! change or none of it.

use crate::store::entity::idempotency_keys;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
};
use sha2::{Digest, Sha256};

/// A keyed request: who sent it, to which operation, with which key and body.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub org_id: i64,
    pub operation: &'static str,
    pub key: String,
    pub request_hash: String,
}

impl Keyed {
    pub fn new(
        org_id: i64,
        operation: &'static str,
        key: String,
        body: &serde_json::Value,
    ) -> Keyed {
        Keyed {
            org_id,
            operation,
            key,
            request_hash: hex::encode(Sha256::digest(body.to_string().as_bytes())),
        }
    }
}

pub async fn find<C: ConnectionTrait>(
    db: &C,
    k: &Keyed,
) -> Result<Option<idempotency_keys::Model>, DbErr> {
    idempotency_keys::Entity::find()
        .filter(idempotency_keys::Column::OrgId.eq(k.org_id))
        .filter(idempotency_keys::Column::Operation.eq(k.operation))
        .filter(idempotency_keys::Column::Key.eq(k.key.as_str()))
        .one(db)
        .await
}

/// Records the answer; a unique violation means a concurrent request with the same key won.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    k: &Keyed,
    status: u16,
    response: serde_json::Value,
) -> Result<(), DbErr> {
    idempotency_keys::ActiveModel {
        org_id: Set(k.org_id),
        operation: Set(k.operation.to_string()),
        key: Set(k.key.clone()),
        request_hash: Set(k.request_hash.clone()),
        status: Set(i32::from(status)),
        response: Set(response),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Deletes a recorded answer that no longer applies (a retry window that has passed).
pub async fn forget<C: ConnectionTrait>(db: &C, id: i64) -> Result<(), DbErr> {
    idempotency_keys::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}
