//! Generation of a pool's codes from its pattern, as a job the job runner claims.
//!
//! A job takes a round of generator positions from the pool's cursor (recorded on the job in
//! the same transaction), makes and sorts their codes in memory, and commits them in sorted
//! chunks with the job's progress (COPY on PostgreSQL). Two jobs on one pool never make the
//! same codes, and a job resumed after a crash makes its round again and continues after the
//! last chunk it committed. Codes are unique by construction of the keyed permutation; the
//! rare clash with a code uploaded elsewhere in the org is skipped, and the job makes more.

use std::sync::Arc;

use crate::store::entity::{imports, pools};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    domain::{
        generator::{Generator, SortedCodes},
        job::JobKind,
        pattern::{self, Pattern},
        pool::{PoolSource, PoolState},
    },
    service::{
        Error, Result,
        codes::new_codes,
        jobs::{Outcome, Run},
        pools::parse_pattern,
    },
    store::{
        self,
        generation::{Committed, Taken},
        imports::NewJob,
    },
};

/// Codes a job makes and sorts at a time: five million 15-character codes take about 115 MB.
/// Committed in sorted order, a round's inserts sweep each index once, in order; chunks of a
/// few thousand each written in random places cost several times as much.
const ROUND: usize = 5_000_000;
/// Sorted codes committed per transaction: the progress a crash keeps.
const CHUNK: usize = 250_000;

/// Checks the request and queues the job; the returned record is followed at `/v1/jobs/{id}`.
pub async fn start(
    db: &DatabaseConnection,
    pool: &pools::Model,
    count: u64,
) -> Result<imports::Model> {
    let source = pool.source;
    if !matches!(source, PoolSource::Generated | PoolSource::Bulk) {
        return Err(Error::conflict(
            "wrong_source",
            format!(
                "codes are generated only for `generated` and `bulk` pools; this one is `{}`",
                source.as_str()
            ),
        ));
    }
    if pool.state == PoolState::Archived {
        return Err(Error::conflict("pool_archived", "the pool is archived"));
    }
    let pattern = pool_pattern(pool)?;
    let bulk = source == PoolSource::Bulk;
    let already = pool.generated_count.max(pool.generation_reserved) as u64;
    if bulk {
        pattern::check_bulk_batch(&pattern, already, count)
            .map_err(|e| Error::refused(e.code, e.message))?;
    } else if u128::from(already + count) > pattern.combinations() {
        return Err(pattern_exhausted(&pattern, already, count));
    }
    // The checks above read the pool as it was; this takes the room for real, so jobs queued
    // before the first one finishes cannot together pass the pool's cap.
    let capacity = pattern::generation_capacity(&pattern, bulk);
    if !store::pools::reserve_generation(db, pool.id, count, capacity).await? {
        return Err(if bulk {
            Error::refused(
                "bulk_too_large",
                format!(
                    "a batch of {count} on top of the codes other jobs of this pool generate or \
                     have generated exceeds the {capacity} codes this bulk pool may have"
                ),
            )
        } else {
            pattern_exhausted(&pattern, pool.generation_reserved as u64, count)
        });
    }
    let job = NewJob {
        org_id: pool.org_id,
        pool_id: Some(pool.id),
        kind: JobKind::Generate,
        total: count as i64,
        params: Some(json!({ "count": count })),
        file: None,
        holder: None,
    };
    match store::imports::create(db, job).await {
        Ok(job) => Ok(job),
        Err(err) => {
            store::pools::release_generation(db, pool.id, count).await?;
            Err(err.into())
        }
    }
}

fn pattern_exhausted(pattern: &Pattern, already: u64, count: u64) -> Error {
    Error::refused(
        "pattern_exhausted",
        format!(
            "the pattern has {} combinations and {already} are used or promised to jobs; {count} \
             more do not fit",
            pattern.combinations()
        ),
    )
}

pub fn pool_pattern(pool: &pools::Model) -> Result<Pattern> {
    let codes = &pool.code_options;
    let text = pool
        .pattern
        .as_deref()
        .ok_or_else(|| Error::internal("pool without pattern"))?;
    parse_pattern(text, codes)
}

/// The generation job's work: rounds until the asked count is in (counting what earlier
/// holders of the job committed), the pattern is used up, or the job is stopped.
pub async fn run(run: &Run) -> Result<Outcome> {
    let count = run.job.params.as_ref().and_then(|p| p["count"].as_u64());
    let count = count.ok_or_else(|| Error::internal("generation job without a count"))?;
    let pool_id = run.job.pool_id.unwrap_or_default();
    let pool = store::pools::get(&run.db, run.job.org_id, pool_id)
        .await?
        .ok_or_else(|| Error::internal("the pool of a generation job is gone"))?;
    let pattern = pool_pattern(&pool)?;
    let key = pool.generation_key.clone().unwrap_or_default();
    let generator = Arc::new(Generator::new(&pattern, key.as_bytes()));
    let mut accepted = run.job.accepted as u64;
    let checkpoint = run.job.checkpoint as usize;
    let mut resumed = Round::of(&run.job).filter(|round| checkpoint < round.codes);
    loop {
        let (codes, from) = match resumed.take() {
            Some(round) => (made_again(&generator, round).await?, checkpoint),
            None if accepted >= count => break,
            None => match next_round(run, &pool, &generator, count, count - accepted).await? {
                Next::Codes(codes) => (codes, 0),
                Next::Exhausted => break,
                Next::Stopped => return Ok(Outcome::Stopped),
            },
        };
        match commit_round(run, &pool, &codes, from).await? {
            Some(inserted) => accepted += inserted,
            None => return Ok(Outcome::Stopped),
        }
    }
    // The pattern ran out before the count: give back the room the job will not use.
    store::pools::release_generation(&run.db, pool.id, count - accepted).await?;
    super::codes::after_load(&run.db).await;
    Ok(Outcome::Finished)
}

/// The generator positions a job took for itself, kept in its params so that a resumed job
/// makes the same codes in the same order and continues after its checkpoint (the number of
/// the round's sorted codes already in).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Round {
    from: u64,
    to: u64,
    codes: usize,
}

impl Round {
    fn of(job: &imports::Model) -> Option<Round> {
        let round = job.params.as_ref()?.get("round")?.clone();
        serde_json::from_value(round).ok()
    }
}

enum Next {
    Codes(SortedCodes),
    Exhausted,
    Stopped,
}

/// Takes the next round of up to `want` codes (at most [`ROUND`]) from the pool's cursor.
async fn next_round(
    run: &Run,
    pool: &pools::Model,
    generator: &Arc<Generator>,
    count: u64,
    want: u64,
) -> Result<Next> {
    let want = ROUND.min(want as usize);
    loop {
        if run.stopping() {
            return Ok(Next::Stopped);
        }
        let from = store::pools::generator_cursor(&run.db, pool.id).await?;
        let made = Arc::clone(generator);
        let (codes, to) = off_the_runtime(move || made.sorted_batch(from, want)).await?;
        if codes.is_empty() {
            return Ok(Next::Exhausted);
        }
        let round = Round {
            from,
            to,
            codes: codes.len(),
        };
        let params = json!({ "count": count, "round": round });
        match store::generation::take_round(&run.db, &run.lease, pool.id, (from, to), params)
            .await?
        {
            Taken::Taken => return Ok(Next::Codes(codes)),
            Taken::CursorMoved => {}
            Taken::LeaseLost => return Ok(Next::Stopped),
        }
    }
}

async fn made_again(generator: &Arc<Generator>, round: Round) -> Result<SortedCodes> {
    let made = Arc::clone(generator);
    off_the_runtime(move || made.sorted_between(round.from, round.to)).await
}

/// Making and sorting millions of codes takes seconds of CPU: not on the async workers.
async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("code generation failed: {e}")))
}

/// Commits a round's sorted codes from the `from`-th on, a chunk at a time; the codes written,
/// or None when the job stopped or lost its lease (its checkpoint says how far it got).
async fn commit_round(
    run: &Run,
    pool: &pools::Model,
    codes: &SortedCodes,
    from: usize,
) -> Result<Option<u64>> {
    let mut inserted = 0;
    let mut done = from;
    for chunk in codes.chunks(from, CHUNK) {
        if run.stopping() {
            return Ok(None);
        }
        done += chunk.len();
        let new = new_codes(pool);
        match store::generation::commit_chunk(&run.db, &run.lease, new, &chunk, done as u64).await?
        {
            Committed::Inserted(n) => inserted += n,
            Committed::LeaseLost => return Ok(None),
        }
    }
    Ok(Some(inserted))
}
