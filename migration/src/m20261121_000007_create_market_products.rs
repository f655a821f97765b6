use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000003_create_pools::Pools;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A product has no stock column: its stock is the pool's available coupons.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MarketProducts::Table)
                    .col(big_pk_auto(MarketProducts::Id))
                    .col(big_integer(MarketProducts::OrgId))
                    .col(big_integer(MarketProducts::PoolId))
                    .col(string(MarketProducts::Name))
                    .col(string_null(MarketProducts::Category))
                    .col(big_integer(MarketProducts::PricePoints))
                    .col(boolean(MarketProducts::Visible).default(false))
                    .col(json(MarketProducts::AllowedLevels))
                    .col(timestamp_with_time_zone(MarketProducts::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MarketProducts::Table, MarketProducts::PoolId)
                            .to(Pools::Table, Pools::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_market_products_org")
                    .table(MarketProducts::Table)
                    .col(MarketProducts::OrgId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MarketProducts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MarketProducts {
    Table,
    Id,
    OrgId,
    PoolId,
    Name,
    Category,
    PricePoints,
    Visible,
    AllowedLevels,
    CreatedAt,
}
