//! Imports and background jobs: one row each with progress, outcome counters and the lease of
//! the worker running it, plus one row per problem in the uploaded file.
//!
//! A job row is claimable while it is `running` and its lease has lapsed. Every chunk of work
//! commits its counters and its checkpoint through [`record`], which is fenced by the lease: a
//! worker that lost its lease cannot commit, so a row is never worked twice.

use crate::domain::text;
use crate::store::entity::{import_issues, imports, job_files};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
    TransactionTrait,
    sea_query::{Expr, ExprTrait},
};

use crate::domain::job::{JobKind, JobState};

/// A worker's hold on a job row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: i64,
    pub owner: String,
}

/// A job to create.
pub struct NewJob<'a> {
    pub org_id: i64,
    pub pool_id: Option<i64>,
    pub kind: JobKind,
    pub total: i64,
    /// The job's input besides its file (a generation's count).
    pub params: Option<serde_json::Value>,
    /// The file the job reads, kept until it ends.
    pub file: Option<Vec<u8>>,
    /// Some when the creator runs the job itself and holds it until then; None leaves it for
    /// the job runner to claim at once.
    pub holder: Option<(&'a str, DateTime<Utc>)>,
}

/// Creates the job row (and its file) in one transaction.
pub async fn create(db: &DatabaseConnection, job: NewJob<'_>) -> Result<imports::Model, DbErr> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let row = imports::ActiveModel {
        org_id: Set(job.org_id),
        pool_id: Set(job.pool_id),
        kind: Set(job.kind),
        state: Set(JobState::Running),
        total: Set(job.total),
        done: Set(0),
        accepted: Set(0),
        skipped: Set(0),
        rejected: Set(0),
        error: Set(None),
        created_at: Set(now),
        finished_at: Set(None),
        lease_owner: Set(job.holder.map(|(owner, _)| owner.to_string())),
        lease_until: Set(Some(job.holder.map_or(now, |(_, until)| until))),
        attempts: Set(i32::from(job.holder.is_some())),
        checkpoint: Set(0),
        params: Set(job.params),
        error_code: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    if let Some(content) = job.file {
        job_files::ActiveModel {
            import_id: Set(row.id),
            content: Set(content),
        }
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(row)
}

/// Claims the job whose lease lapsed longest ago, in one statement. PostgreSQL skips rows
/// another worker is claiming (`FOR UPDATE SKIP LOCKED`); SQLite has one writer at a time, so
/// the same statement without the lock clause is its twin.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<imports::Model>, DbErr> {
    let backend = db.get_database_backend();
    let lock = if backend == DbBackend::Postgres {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE imports SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
         WHERE id = (SELECT id FROM imports WHERE state = $3 AND lease_until <= $4 \
         ORDER BY lease_until, id LIMIT 1 {lock}) RETURNING *"
    );
    let stmt = Statement::from_sql_and_values(
        backend,
        sql,
        [
            owner.into(),
            until.into(),
            JobState::Running.into(),
            now.into(),
        ],
    );
    match db.query_one_raw(stmt).await? {
        Some(row) => Ok(Some(imports::Model::from_query_result(&row, "")?)),
        None => Ok(None),
    }
}

pub(super) fn held(lease: &Lease) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(imports::Column::Id.eq(lease.job_id))
        .add(imports::Column::LeaseOwner.eq(lease.owner.clone()))
        .add(imports::Column::State.eq(JobState::Running))
}

/// Extends a lease; false when the worker no longer holds the job.
pub async fn renew<C: ConnectionTrait>(
    db: &C,
    lease: &Lease,
    until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = imports::Entity::update_many()
        .col_expr(imports::Column::LeaseUntil, Expr::value(until))
        .filter(held(lease))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Gives a job back unfinished so the next worker claims it at once.
pub async fn release<C: ConnectionTrait>(db: &C, lease: &Lease) -> Result<(), DbErr> {
    imports::Entity::update_many()
        .col_expr(imports::Column::LeaseOwner, Expr::value(None::<String>))
        .col_expr(imports::Column::LeaseUntil, Expr::value(Utc::now()))
        .filter(held(lease))
        .exec(db)
        .await?;
    Ok(())
}

/// One problem row of an import, as reported in its issues CSV.
pub struct Issue {
    pub row_number: i64,
    pub value: String,
    pub code: &'static str,
    pub reason: String,
}

/// Progress made by one chunk of work.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: i64,
    pub accepted: i64,
    pub skipped: i64,
    pub rejected: i64,
}

/// Adds a chunk's counts and issue rows and moves the checkpoint to `checkpoint`, in the
/// chunk's own transaction so counters, rows and the work never disagree. False (and nothing
/// written) when the lease is no longer the caller's: the caller rolls back and stops.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    lease: &Lease,
    progress: Progress,
    issues: Vec<Issue>,
    checkpoint: i64,
) -> Result<bool, DbErr> {
    let add = |col: imports::Column, n: i64| (col, Expr::col(col).add(n));
    let mut update = imports::Entity::update_many()
        .col_expr(imports::Column::Checkpoint, Expr::value(checkpoint));
    for (col, expr) in [
        add(imports::Column::Done, progress.done),
        add(imports::Column::Accepted, progress.accepted),
        add(imports::Column::Skipped, progress.skipped),
        add(imports::Column::Rejected, progress.rejected),
    ] {
        update = update.col_expr(col, expr);
    }
    if update.filter(held(lease)).exec(db).await?.rows_affected != 1 {
        return Ok(false);
    }
    if issues.is_empty() {
        return Ok(true);
    }
    let rows = issues.into_iter().map(|i| import_issues::ActiveModel {
        import_id: Set(lease.job_id),
        row_number: Set(i.row_number),
        value: Set(text::quoted(&i.value)),
        code: Set(i.code.to_string()),
        reason: Set(text::quoted(&i.reason)),
        ..Default::default()
    });
    for chunk in rows.collect::<Vec<_>>().chunks(1_000) {
        import_issues::Entity::insert_many(chunk.to_vec())
            .exec(db)
            .await?;
    }
    Ok(true)
}

/// How a job ended: done, or failed with a stable code and a sentence for the caller.
pub type Outcome<'a> = Result<(), (&'a str, &'a str)>;

/// Marks a job finished and drops its file; `total` is fixed now for streamed uploads whose
/// size was unknown. Does nothing when the lease is no longer the caller's.
pub async fn finish(
    db: &DatabaseConnection,
    lease: &Lease,
    outcome: Outcome<'_>,
) -> Result<(), DbErr> {
    let (state, code, error) = match outcome {
        Ok(()) => (JobState::Done, None, None),
        Err((code, sentence)) => (
            JobState::Failed,
            Some(code.to_string()),
            Some(sentence.to_string()),
        ),
    };
    let txn = db.begin().await?;
    let mut update = imports::Entity::update_many()
        .col_expr(imports::Column::State, Expr::value(state))
        .col_expr(imports::Column::ErrorCode, Expr::value(code))
        .col_expr(imports::Column::Error, Expr::value(error))
        .col_expr(imports::Column::FinishedAt, Expr::value(Utc::now()))
        .col_expr(imports::Column::LeaseOwner, Expr::value(None::<String>));
    if state == JobState::Done {
        update = update.col_expr(imports::Column::Total, Expr::col(imports::Column::Done));
    }
    let result = update.filter(held(lease)).exec(&txn).await?;
    if result.rows_affected == 1 {
        job_files::Entity::delete_by_id(lease.job_id)
            .exec(&txn)
            .await?;
    }
    txn.commit().await
}

/// The file a job reads, if it has one.
pub async fn file<C: ConnectionTrait>(db: &C, job_id: i64) -> Result<Option<Vec<u8>>, DbErr> {
    Ok(job_files::Entity::find_by_id(job_id)
        .one(db)
        .await?
        .map(|f| f.content))
}

pub async fn get<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: i64,
) -> Result<Option<imports::Model>, DbErr> {
    imports::Entity::find_by_id(id)
        .filter(imports::Column::OrgId.eq(org_id))
        .one(db)
        .await
}

/// Job rows by state, for the gauges on `/metrics`.
pub async fn count_by_state<C: ConnectionTrait>(db: &C) -> Result<Vec<(JobState, i64)>, DbErr> {
    imports::Entity::find()
        .select_only()
        .column(imports::Column::State)
        .column_as(imports::Column::Id.count(), "n")
        .group_by(imports::Column::State)
        .into_tuple()
        .all(db)
        .await
}

/// The issues of an import in row order, a page at a time (for streaming the CSV).
pub async fn issues_after<C: ConnectionTrait>(
    db: &C,
    import_id: i64,
    after_id: i64,
    limit: u64,
) -> Result<Vec<import_issues::Model>, DbErr> {
    import_issues::Entity::find()
        .filter(import_issues::Column::ImportId.eq(import_id))
        .filter(import_issues::Column::Id.gt(after_id))
        .order_by_asc(import_issues::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
