use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Codes promised to generation jobs, queued, running or done: the bulk caps (1% of the
/// pattern, 100 M a pool) are taken from this counter by one conditional UPDATE when a job is
/// accepted, so jobs queued before the first one runs cannot together pass them. A job that
/// makes fewer codes than it asked for gives the rest back.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Pools::Table)
                    .add_column(big_integer(Pools::GenerationReserved).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Pools::Table)
                    .value(Pools::GenerationReserved, Expr::col(Pools::GeneratedCount))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Pools::Table)
                    .drop_column(Pools::GenerationReserved)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Pools {
    Table,
    GeneratedCount,
    GenerationReserved,
}
