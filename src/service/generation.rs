//! Generation of a pool's codes from its pattern, as a job the job runner claims.
//!
//! Each chunk takes its range of generator positions from the pool's cursor and commits the
//! codes, the cursor and the job's progress in one transaction (COPY on PostgreSQL), so two
//! jobs on one pool never make the same codes and a job resumed after a crash continues at
//! the position it persisted. Codes are unique by construction of the keyed permutation; the
//! rare clash with a code uploaded elsewhere in the org is skipped, and the job makes more.

use crate::store::entity::{imports, pools};
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::{
    domain::{
        generator::Generator,
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
        generation::Committed,
        imports::{Lease, NewJob},
    },
};

/// Codes made and written per chunk. Each chunk is sorted before it goes in, so its inserts
/// sweep the indexes in order; a quarter million keeps the server near 150 MB (a million took
/// it to 500 MB for little gain).
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

/// The generation job's work: chunks until the asked count is in (counting what earlier
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
    let generator = Generator::new(&pattern, key.as_bytes());
    let mut made = run.job.accepted as u64;
    while made < count {
        if run.stopping() {
            return Ok(Outcome::Stopped);
        }
        let want = CHUNK.min((count - made) as usize);
        match make_chunk(&run.db, &run.lease, &pool, &generator, want).await? {
            Some(Committed::Inserted(n)) => made += n,
            Some(Committed::LeaseLost) => return Ok(Outcome::Stopped),
            Some(Committed::CursorMoved) => {}
            None => break,
        }
    }
    // The pattern ran out before the count: give back the room the job will not use.
    store::pools::release_generation(&run.db, pool.id, count - made).await?;
    Ok(Outcome::Finished)
}

/// Makes the next `want` codes from the pool's cursor and commits them; None when the pattern
/// is used up.
async fn make_chunk(
    db: &DatabaseConnection,
    lease: &Lease,
    pool: &pools::Model,
    generator: &Generator,
    want: usize,
) -> Result<Option<Committed>> {
    let cursor = store::pools::generator_cursor(db, pool.id).await?;
    let mut codes = Vec::with_capacity(want);
    let mut next = cursor;
    for (code, after) in generator.codes_from(cursor).take(want) {
        codes.push(code);
        next = after;
    }
    if codes.is_empty() {
        return Ok(None);
    }
    // Sorted input keeps index inserts local, which is most of the cost of a bulk load.
    codes.sort_unstable();
    let committed =
        store::generation::commit_chunk(db, lease, new_codes(pool), &codes, (cursor, next)).await?;
    Ok(Some(committed))
}
