//! Imports and background jobs: one row each with progress and outcome counters, plus one row
//! per problem in the uploaded file.

use chrono::Utc;
use entity::{import_issues, imports};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
    sea_query::{Expr, ExprTrait},
};

pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

pub async fn create<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    pool_id: Option<i64>,
    kind: &str,
    total: i64,
) -> Result<imports::Model, DbErr> {
    imports::ActiveModel {
        org_id: Set(org_id),
        pool_id: Set(pool_id),
        kind: Set(kind.to_string()),
        state: Set(RUNNING.to_string()),
        total: Set(total),
        done: Set(0),
        accepted: Set(0),
        skipped: Set(0),
        rejected: Set(0),
        error: Set(None),
        created_at: Set(Utc::now()),
        finished_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
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

/// Adds a chunk's counts and its issue rows; called in the chunk's own transaction so counters
/// and rows never disagree.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    import_id: i64,
    progress: Progress,
    issues: Vec<Issue>,
) -> Result<(), DbErr> {
    imports::Entity::update_many()
        .col_expr(
            imports::Column::Done,
            Expr::col(imports::Column::Done).add(progress.done),
        )
        .col_expr(
            imports::Column::Accepted,
            Expr::col(imports::Column::Accepted).add(progress.accepted),
        )
        .col_expr(
            imports::Column::Skipped,
            Expr::col(imports::Column::Skipped).add(progress.skipped),
        )
        .col_expr(
            imports::Column::Rejected,
            Expr::col(imports::Column::Rejected).add(progress.rejected),
        )
        .filter(imports::Column::Id.eq(import_id))
        .exec(db)
        .await?;
    if issues.is_empty() {
        return Ok(());
    }
    let rows = issues.into_iter().map(|i| import_issues::ActiveModel {
        import_id: Set(import_id),
        row_number: Set(i.row_number),
        value: Set(i.value),
        code: Set(i.code.to_string()),
        reason: Set(i.reason),
        ..Default::default()
    });
    import_issues::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

/// Marks an import finished; `total` is fixed now for streamed uploads whose size was unknown.
pub async fn finish<C: ConnectionTrait>(
    db: &C,
    import_id: i64,
    error: Option<String>,
) -> Result<(), DbErr> {
    let state = if error.is_some() { FAILED } else { DONE };
    let mut update = imports::Entity::update_many()
        .col_expr(imports::Column::State, Expr::value(state))
        .col_expr(imports::Column::Error, Expr::value(error))
        .col_expr(imports::Column::FinishedAt, Expr::value(Utc::now()));
    if state == DONE {
        update = update.col_expr(imports::Column::Total, Expr::col(imports::Column::Done));
    }
    update
        .filter(imports::Column::Id.eq(import_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Marks an import finished with the outcome of its work and returns its final record;
/// the work's error, if any, is both recorded and returned.
pub async fn conclude<C: ConnectionTrait>(
    db: &C,
    import: &imports::Model,
    outcome: Result<(), DbErr>,
) -> Result<imports::Model, DbErr> {
    finish(db, import.id, outcome.as_ref().err().map(|e| e.to_string())).await?;
    outcome?;
    get(db, import.org_id, import.id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("import {}", import.id)))
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

/// The issues of an import in row order, a page at a time (for streaming the CSV).
pub async fn issues_after<C: ConnectionTrait>(
    db: &C,
    import_id: i64,
    after_id: i64,
    limit: u64,
) -> Result<Vec<import_issues::Model>, DbErr> {
    use sea_orm::QuerySelect;
    import_issues::Entity::find()
        .filter(import_issues::Column::ImportId.eq(import_id))
        .filter(import_issues::Column::Id.gt(after_id))
        .order_by_asc(import_issues::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
