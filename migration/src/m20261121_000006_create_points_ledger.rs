use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000004_create_customers::Customers;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PointsLedger::Table)
                    .col(big_pk_auto(PointsLedger::Id))
                    .col(big_integer(PointsLedger::OrgId))
                    .col(big_integer(PointsLedger::CustomerId))
                    .col(big_integer(PointsLedger::Delta))
                    .col(string(PointsLedger::Reason))
                    .col(string_null(PointsLedger::IdempotencyKey))
                    .col(timestamp_with_time_zone(PointsLedger::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PointsLedger::Table, PointsLedger::CustomerId)
                            .to(Customers::Table, Customers::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_points_ledger_customer")
                    .table(PointsLedger::Table)
                    .col(PointsLedger::CustomerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_points_ledger_idempotency")
                    .table(PointsLedger::Table)
                    .col(PointsLedger::OrgId)
                    .col(PointsLedger::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PointsLedger::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PointsLedger {
    Table,
    Id,
    OrgId,
    CustomerId,
    Delta,
    Reason,
    IdempotencyKey,
    CreatedAt,
}
