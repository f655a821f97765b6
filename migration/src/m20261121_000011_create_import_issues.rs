use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000010_create_imports::Imports;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One row per problem in an import, downloadable as CSV ("Download Issues").
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ImportIssues::Table)
                    .col(big_pk_auto(ImportIssues::Id))
                    .col(big_integer(ImportIssues::ImportId))
                    .col(big_integer(ImportIssues::RowNumber))
                    .col(string(ImportIssues::Value))
                    .col(string(ImportIssues::Code))
                    .col(string(ImportIssues::Reason))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ImportIssues::Table, ImportIssues::ImportId)
                            .to(Imports::Table, Imports::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_import_issues_import")
                    .table(ImportIssues::Table)
                    .col(ImportIssues::ImportId)
                    .col(ImportIssues::RowNumber)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ImportIssues::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ImportIssues {
    Table,
    Id,
    ImportId,
    RowNumber,
    Value,
    Code,
    Reason,
}
