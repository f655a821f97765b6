use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000001_create_orgs::Orgs;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Customers::Table)
                    .col(big_pk_auto(Customers::Id))
                    .col(big_integer(Customers::OrgId))
                    .col(string(Customers::ExternalId))
                    .col(string_null(Customers::Email))
                    .col(string_null(Customers::Mobile))
                    .col(string_null(Customers::Level))
                    .col(timestamp_with_time_zone_null(Customers::RegisteredAt))
                    .col(integer(Customers::TransactionCount).default(0))
                    .col(json_null(Customers::Attributes))
                    .col(timestamp_with_time_zone(Customers::CreatedAt))
                    .col(timestamp_with_time_zone(Customers::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Customers::Table, Customers::OrgId)
                            .to(Orgs::Table, Orgs::Id),
                    )
                    .to_owned(),
            )
            .await?;
        let lookups = [
            ("uq_customers_org_external_id", Customers::ExternalId, true),
            ("idx_customers_org_email", Customers::Email, false),
            ("idx_customers_org_mobile", Customers::Mobile, false),
        ];
        for (name, col, unique) in lookups {
            let mut index = Index::create();
            index
                .name(name)
                .table(Customers::Table)
                .col(Customers::OrgId)
                .col(col);
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Customers::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Customers {
    Table,
    Id,
    OrgId,
    ExternalId,
    Email,
    Mobile,
    Level,
    RegisteredAt,
    TransactionCount,
    Attributes,
    CreatedAt,
    UpdatedAt,
}
