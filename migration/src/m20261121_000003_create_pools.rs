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
                    .table(Pools::Table)
                    .col(big_pk_auto(Pools::Id))
                    .col(big_integer(Pools::OrgId))
                    .col(string(Pools::Name))
                    .col(string(Pools::Source))
                    .col(string_null(Pools::Pattern))
                    .col(string(Pools::DiscountType))
                    .col(big_integer_null(Pools::Value))
                    .col(string_null(Pools::Currency))
                    .col(big_integer_null(Pools::GiftCardMinValue))
                    .col(big_integer_null(Pools::GiftCardMinRedemption))
                    .col(big_integer_null(Pools::PurchaseMin))
                    .col(timestamp_with_time_zone_null(Pools::StartsAt))
                    .col(timestamp_with_time_zone_null(Pools::EndsAt))
                    .col(string(Pools::State))
                    .col(json(Pools::CodeOptions))
                    .col(json(Pools::Issuance))
                    .col(json(Pools::Redemption))
                    .col(json(Pools::Expiry))
                    .col(json(Pools::Reminders))
                    .col(json_null(Pools::Remote))
                    .col(boolean(Pools::Claimed).default(false))
                    .col(string_null(Pools::GenerationKey))
                    .col(big_integer(Pools::GeneratedCount).default(0))
                    .col(big_integer(Pools::IssuedCount).default(0))
                    .col(timestamp_with_time_zone(Pools::CreatedAt))
                    .col(timestamp_with_time_zone(Pools::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Pools::Table, Pools::OrgId)
                            .to(Orgs::Table, Orgs::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Each pool's pattern is unique in its org (uploaded and remote pools have none).
        manager
            .create_index(
                Index::create()
                    .name("uq_pools_org_pattern")
                    .table(Pools::Table)
                    .col(Pools::OrgId)
                    .col(Pools::Pattern)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Pools::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Pools {
    Table,
    Id,
    OrgId,
    Name,
    Source,
    Pattern,
    DiscountType,
    Value,
    Currency,
    GiftCardMinValue,
    GiftCardMinRedemption,
    PurchaseMin,
    StartsAt,
    EndsAt,
    State,
    CodeOptions,
    Issuance,
    Redemption,
    Expiry,
    Reminders,
    Remote,
    Claimed,
    GenerationKey,
    GeneratedCount,
    IssuedCount,
    CreatedAt,
    UpdatedAt,
}
