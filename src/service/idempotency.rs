//! Idempotency-Key handling shared by every keyed call (issue, redeem, workflow actions, and
//! any later one such as a market exchange).
//!
//! A keyed use case runs through [`once`]:
//! 1. a key already answered for the same request replays that first answer; a key used for
//!    a different request is a 409 `idempotency_key_reused`;
//! 2. otherwise the call runs, and records its answer with [`record`] inside the transaction
//!    of the change the answer reports, so a retry sees the whole change or none of it;
//! 3. when a concurrent call with the same key commits first, `record` fails with
//!    [`Error::RaceLost`], the loser's transaction rolls back, and the winner's answer is
//!    replayed instead.
//!
//! What is stored is the call's own choice (an id to read back, or the whole answer); the
//! `replay` closure given to [`once`] turns it back into the call's result.

use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::{
    service::{Error, Result},
    store,
};

/// The key, operation and request fingerprint of a keyed call; handlers build it.
pub use crate::store::idempotency::Keyed;

/// The answer of a keyed call: made now, or the first answer to its key replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Fresh(T),
    Replayed(T),
}

impl<T> Outcome<T> {
    pub fn is_replayed(&self) -> bool {
        matches!(self, Outcome::Replayed(_))
    }

    pub fn into_inner(self) -> T {
        match self {
            Outcome::Fresh(t) | Outcome::Replayed(t) => t,
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Fresh(t) => Outcome::Fresh(f(t)),
            Outcome::Replayed(t) => Outcome::Replayed(f(t)),
        }
    }
}

/// Runs `run` once per key: replays the stored answer of a key seen before (through
/// `replay`), else runs, and replays the winner's answer when `run` lost a race on the key
/// ([`Error::RaceLost`] from [`record`]). Without a key, `run` simply runs.
///
/// Plain closures returning futures rather than async closures: the futures of async
/// closures are not provably `Send` for poem's handlers.
pub async fn once<T, R, RFut, F, FFut>(
    db: &DatabaseConnection,
    key: Option<&Keyed>,
    replay: R,
    run: F,
) -> Result<Outcome<T>>
where
    R: Fn(serde_json::Value) -> RFut,
    RFut: Future<Output = Result<T>>,
    F: FnOnce() -> FFut,
    FFut: Future<Output = Result<T>>,
{
    let Some(k) = key else {
        return run().await.map(Outcome::Fresh);
    };
    if let Some(first) = stored_response(db, k).await? {
        return replay(first).await.map(Outcome::Replayed);
    }
    match run().await {
        Err(Error::RaceLost) => {
            let first = stored_response(db, k).await?.ok_or_else(|| {
                Error::internal("lost an idempotency race but no answer is stored")
            })?;
            replay(first).await.map(Outcome::Replayed)
        }
        other => other.map(Outcome::Fresh),
    }
}

/// [`once`] for a call whose every effect is in the transaction that records its answer: it
/// runs without looking the key up first, saving a round trip on every first call. A retry
/// finds the key taken when recording it (its transaction rolls back) or, when the call fails
/// this time, by looking the key up then; either way the first answer is replayed.
pub async fn once_then_check<T, R, RFut, F, FFut>(
    db: &DatabaseConnection,
    key: Option<&Keyed>,
    replay: R,
    run: F,
) -> Result<Outcome<T>>
where
    R: Fn(serde_json::Value) -> RFut,
    RFut: Future<Output = Result<T>>,
    F: FnOnce() -> FFut,
    FFut: Future<Output = Result<T>>,
{
    let failed = match (run().await, key) {
        (Ok(t), _) => return Ok(Outcome::Fresh(t)),
        (Err(err), None) => return Err(err),
        (Err(err), Some(k)) => (err, k),
    };
    match (stored_response(db, failed.1).await?, failed.0) {
        (Some(first), _) => replay(first).await.map(Outcome::Replayed),
        (None, Error::RaceLost) => Err(Error::internal(
            "lost an idempotency race but no answer is stored",
        )),
        (None, err) => Err(err),
    }
}

/// The id stored under `field` of a recorded answer.
pub fn stored_id(response: &serde_json::Value, field: &str) -> Result<i64> {
    response[field]
        .as_i64()
        .ok_or_else(|| Error::internal(format!("stored idempotent response without {field}")))
}

/// The first answer to a keyed request, if the key was used before for the same request; a
/// 409 if it was used for another.
pub async fn stored_response(
    db: &DatabaseConnection,
    k: &Keyed,
) -> Result<Option<serde_json::Value>> {
    let Some(saved) = store::idempotency::find(db, k).await? else {
        return Ok(None);
    };
    if saved.request_hash != k.request_hash {
        return Err(Error::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different request",
        ));
    }
    Ok(Some(saved.response))
}

/// Records the key in the caller's transaction; [`Error::RaceLost`] when a concurrent call
/// with the same key recorded it first.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    k: &Keyed,
    status: u16,
    response: serde_json::Value,
) -> Result<()> {
    store::idempotency::record(db, k, status, response)
        .await
        .map_err(race_or)
}

/// A unique violation on a keyed write means a concurrent call with the same key won.
pub fn race_or(e: sea_orm::DbErr) -> Error {
    if store::is_unique_violation(&e) {
        Error::RaceLost
    } else {
        e.into()
    }
}
