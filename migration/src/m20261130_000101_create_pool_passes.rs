use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000003_create_pools::Pools;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A pool's wallet pass template (Antavo's "Pass template"): its wording, colours, barcode and
/// fields as one JSON document, and the uploaded logo. Pools without a row get a default pass.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PoolPasses::Table)
                    .col(big_integer(PoolPasses::PoolId).primary_key())
                    .col(big_integer(PoolPasses::OrgId))
                    .col(json(PoolPasses::Template))
                    .col(blob_null(PoolPasses::Logo))
                    .col(timestamp_with_time_zone(PoolPasses::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PoolPasses::Table, PoolPasses::PoolId)
                            .to(Pools::Table, Pools::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PoolPasses::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PoolPasses {
    Table,
    PoolId,
    OrgId,
    Template,
    Logo,
    UpdatedAt,
}
