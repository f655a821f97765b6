use sea_orm::entity::prelude::*;

use crate::domain::job::{JobKind, JobState};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "imports")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub pool_id: Option<i64>,
    pub kind: JobKind,
    pub state: JobState,
    pub total: i64,
    pub done: i64,
    pub accepted: i64,
    pub skipped: i64,
    pub rejected: i64,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// The worker that holds the job while `lease_until` is ahead.
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    /// How many times a worker claimed the job.
    pub attempts: i32,
    /// Rows of the input consumed by committed work: where a resumed job continues.
    pub checkpoint: i64,
    pub params: Option<Json>,
    /// The stable code of a failure (`error` is its sentence).
    pub error_code: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
