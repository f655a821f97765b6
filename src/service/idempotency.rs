//! Idempotency-Key handling shared by keyed operations: replay what the key answered first,
//! refuse the key for a different request, and spot the loser of a race on a new key.

use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::{
    api::error::{ApiError, ApiResult},
    store::{self, idempotency::Keyed},
};

/// Problem code for "a concurrent request with this key committed first"; callers replay.
pub const RACE_LOST: &str = "idempotency_race_lost";

/// The coupon a keyed request already produced, if the key was used before for the same
/// request; a 409 if it was used for another.
pub async fn replay(db: &DatabaseConnection, k: &Keyed) -> ApiResult<Option<i64>> {
    replay_id(db, k, "coupon_id").await
}

/// The id a keyed request recorded under `field`, if the key was used before for the same
/// request; a 409 if it was used for another.
pub async fn replay_id(db: &DatabaseConnection, k: &Keyed, field: &str) -> ApiResult<Option<i64>> {
    let Some(response) = stored_response(db, k).await? else {
        return Ok(None);
    };
    response[field]
        .as_i64()
        .map(Some)
        .ok_or_else(|| ApiError::internal(format!("stored idempotent response without {field}")))
}

/// The first answer to a keyed request, if the key was used before for the same request; a
/// 409 if it was used for another.
pub async fn stored_response(
    db: &DatabaseConnection,
    k: &Keyed,
) -> ApiResult<Option<serde_json::Value>> {
    let Some(saved) = store::idempotency::find(db, k).await? else {
        return Ok(None);
    };
    if saved.request_hash != k.request_hash {
        return Err(ApiError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different request",
        ));
    }
    Ok(Some(saved.response))
}

/// Records the key in the caller's transaction.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    k: &Keyed,
    status: u16,
    response: serde_json::Value,
) -> ApiResult<()> {
    store::idempotency::record(db, k, status, response)
        .await
        .map_err(|e| {
            if store::is_unique_violation(&e) {
                ApiError::conflict(
                    RACE_LOST,
                    "a concurrent request with this Idempotency-Key finished first",
                )
            } else {
                e.into()
            }
        })
}
