//! Background generation of a pool's codes from its pattern.
//!
//! Each chunk first claims its range of generator positions with a compare-and-set on the pool's
//! cursor, so two jobs on one pool never make the same codes; then it writes the codes (COPY on
//! PostgreSQL) and its progress. Codes are unique by construction of the keyed permutation; the
//! rare clash with a code uploaded elsewhere in the org is skipped, and the job makes more.

use entity::{imports, pools};
use sea_orm::{DatabaseConnection, DbErr};

use crate::{
    domain::{
        generator::Generator,
        pattern::{self, Pattern},
        pool::{PoolSource, PoolState},
    },
    service::{Error, Result},
    service::{codes::new_codes, pools::parse_pattern},
    store::{self, imports::Progress},
};

/// Codes made and written per chunk. Each chunk is sorted before it goes in, so its inserts
/// sweep the indexes in order; a quarter million keeps the server near 150 MB (a million took
/// it to 500 MB for little gain).
const CHUNK: usize = 250_000;

/// Checks the request and starts the job; the returned job record is followed at `/v1/jobs/{id}`.
pub async fn start(
    db: &DatabaseConnection,
    pool: pools::Model,
    count: u64,
) -> Result<imports::Model> {
    let source = PoolSource::parse(&pool.source);
    if !matches!(source, Some(PoolSource::Generated | PoolSource::Bulk)) {
        return Err(Error::conflict(
            "wrong_source",
            format!(
                "codes are generated only for `generated` and `bulk` pools; this one is `{}`",
                pool.source
            ),
        ));
    }
    if pool.state == PoolState::Archived.as_str() {
        return Err(Error::conflict("pool_archived", "the pool is archived"));
    }
    let pattern = pool_pattern(&pool)?;
    let already = pool.generated_count as u64;
    if source == Some(PoolSource::Bulk) {
        pattern::check_bulk_batch(&pattern, already, count)?;
    } else if u128::from(already + count) > pattern.combinations() {
        return Err(Error::refused(
            "pattern_exhausted",
            format!(
                "the pattern has {} combinations and {already} are used; {count} more do not fit",
                pattern.combinations()
            ),
        ));
    }
    let job =
        store::imports::create(db, pool.org_id, Some(pool.id), "generate", count as i64).await?;
    let (db, job_id) = (db.clone(), job.id);
    tokio::spawn(async move {
        let outcome = run(&db, &pool, &pattern, job_id, count).await;
        if let Err(err) = &outcome {
            tracing::error!(pool = pool.id, job = job_id, %err, "code generation failed");
        }
        let error = outcome.err().map(|e| e.to_string());
        if let Err(err) = store::imports::finish(&db, job_id, error).await {
            tracing::error!(job = job_id, %err, "could not record the end of a generation job");
        }
    });
    Ok(job)
}

pub fn pool_pattern(pool: &pools::Model) -> Result<Pattern> {
    let codes = super::stored(&pool.code_options)?;
    let text = pool
        .pattern
        .as_deref()
        .ok_or_else(|| Error::internal("pool without pattern"))?;
    parse_pattern(text, &codes)
}

async fn run(
    db: &DatabaseConnection,
    pool: &pools::Model,
    pattern: &Pattern,
    job_id: i64,
    count: u64,
) -> Result<(), DbErr> {
    let key = pool.generation_key.clone().unwrap_or_default();
    let generator = Generator::new(pattern, key.as_bytes());
    let mut made = 0u64;
    while made < count {
        let want = CHUNK.min((count - made) as usize);
        let Some(mut codes) = claim_chunk(db, pool.id, &generator, want).await? else {
            break;
        };
        // Sorted input keeps index inserts local, which is most of the cost of a bulk load.
        codes.sort_unstable();
        let inserted = store::coupons::bulk_insert_available(db, new_codes(pool), &codes).await?;
        let progress = Progress {
            done: inserted as i64,
            accepted: inserted as i64,
            skipped: (codes.len() as u64 - inserted) as i64,
            rejected: 0,
        };
        store::imports::record(db, job_id, progress, Vec::new()).await?;
        made += inserted;
    }
    Ok(())
}

/// Takes the next `want` codes from the generator and moves the pool's cursor past them, if no
/// other job moved it first (then it tries again from where that job stopped). None when the
/// pattern is used up.
async fn claim_chunk(
    db: &DatabaseConnection,
    pool_id: i64,
    generator: &Generator,
    want: usize,
) -> Result<Option<Vec<String>>, DbErr> {
    loop {
        let cursor = store::pools::generator_cursor(db, pool_id).await?;
        let mut codes = Vec::with_capacity(want);
        let mut next = cursor;
        for (code, after) in generator.codes_from(cursor).take(want) {
            codes.push(code);
            next = after;
        }
        if codes.is_empty() {
            return Ok(None);
        }
        if store::pools::advance_generator_cursor(db, pool_id, cursor, next).await? {
            return Ok(Some(codes));
        }
    }
}
