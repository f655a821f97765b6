use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Uploaded files and background jobs (code uploads, customer lists, revocations, generation):
/// `done`/`total` is the progress, the three counters the outcome.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Imports::Table)
                    .col(big_pk_auto(Imports::Id))
                    .col(big_integer(Imports::OrgId))
                    .col(big_integer_null(Imports::PoolId))
                    .col(string(Imports::Kind))
                    .col(string(Imports::State))
                    .col(big_integer(Imports::Total).default(0))
                    .col(big_integer(Imports::Done).default(0))
                    .col(big_integer(Imports::Accepted).default(0))
                    .col(big_integer(Imports::Skipped).default(0))
                    .col(big_integer(Imports::Rejected).default(0))
                    .col(string_null(Imports::Error))
                    .col(timestamp_with_time_zone(Imports::CreatedAt))
                    .col(timestamp_with_time_zone_null(Imports::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_imports_org")
                    .table(Imports::Table)
                    .col(Imports::OrgId)
                    .col(Imports::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Imports::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Imports {
    Table,
    Id,
    OrgId,
    PoolId,
    Kind,
    State,
    Total,
    Done,
    Accepted,
    Skipped,
    Rejected,
    Error,
    CreatedAt,
    FinishedAt,
}
