use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Orgs::Table)
                    .col(big_pk_auto(Orgs::Id))
                    .col(string(Orgs::Name))
                    .col(string(Orgs::Timezone))
                    .col(string_null(Orgs::CodePrefix))
                    .col(string_null(Orgs::CodeSuffix))
                    .col(json(Orgs::PocEmails))
                    .col(timestamp_with_time_zone(Orgs::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Orgs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Orgs {
    Table,
    Id,
    Name,
    Timezone,
    CodePrefix,
    CodeSuffix,
    PocEmails,
    CreatedAt,
}
