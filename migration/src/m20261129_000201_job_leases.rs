use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Background jobs become rows that workers claim by lease. An import row is the job: a worker
/// owns it while `lease_until` is ahead, renews it while it works, and commits `checkpoint`
/// (rows of the input consumed) with each chunk of work, so whoever claims the row after a
/// crash resumes there. `params` holds the job's input (a generation's count), `job_files`
/// the uploaded file a job reads, and `error_code` the stable code of a failure.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        let columns = [
            string_null(Imports::LeaseOwner),
            timestamp_with_time_zone_null(Imports::LeaseUntil),
            integer(Imports::Attempts).default(0).to_owned(),
            big_integer(Imports::Checkpoint).default(0).to_owned(),
            json_null(Imports::Params),
            string_null(Imports::ErrorCode),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Imports::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Rows left `running` by an older version are claimed at once (and, having no input
        // to resume from, end as interrupted).
        let stale = Query::update()
            .table(Imports::Table)
            .value(Imports::LeaseUntil, Expr::col(Imports::CreatedAt))
            .and_where(Expr::col(Imports::State).eq("running"))
            .to_owned();
        manager.exec_stmt(stale).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_imports_claimable")
                    .table(Imports::Table)
                    .col(Imports::State)
                    .col(Imports::LeaseUntil)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JobFiles::Table)
                    .col(big_integer(JobFiles::ImportId).primary_key())
                    .col(blob(JobFiles::Content))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(JobFiles::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_imports_claimable")
                    .table(Imports::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Imports::LeaseOwner,
            Imports::LeaseUntil,
            Imports::Attempts,
            Imports::Checkpoint,
            Imports::Params,
            Imports::ErrorCode,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Imports::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Imports {
    Table,
    State,
    CreatedAt,
    LeaseOwner,
    LeaseUntil,
    Attempts,
    Checkpoint,
    Params,
    ErrorCode,
}

#[derive(DeriveIden)]
enum JobFiles {
    Table,
    ImportId,
    Content,
}
