use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000005_create_coupons::Coupons;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A redemption is active until reversed; a row with `reserved_until` set is a two-step hold that
/// counts against every limit until it is confirmed, released or runs out.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Redemptions::Table)
                    .col(big_pk_auto(Redemptions::Id))
                    .col(big_integer(Redemptions::OrgId))
                    .col(big_integer(Redemptions::CouponId))
                    .col(big_integer(Redemptions::PoolId))
                    .col(big_integer_null(Redemptions::CustomerId))
                    .col(string_null(Redemptions::StoreId))
                    .col(string_null(Redemptions::Zone))
                    .col(string_null(Redemptions::Concept))
                    .col(string_null(Redemptions::Till))
                    .col(big_integer(Redemptions::BasketTotal))
                    .col(string_null(Redemptions::Currency))
                    .col(big_integer(Redemptions::Discount))
                    .col(boolean(Redemptions::Active))
                    .col(timestamp_with_time_zone_null(Redemptions::ReservedUntil))
                    .col(timestamp_with_time_zone(Redemptions::RedeemedAt))
                    .col(timestamp_with_time_zone_null(Redemptions::ReversedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Redemptions::Table, Redemptions::CouponId)
                            .to(Coupons::Table, Coupons::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_redemptions_coupon")
                    .table(Redemptions::Table)
                    .col(Redemptions::CouponId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_redemptions_pool_customer")
                    .table(Redemptions::Table)
                    .col(Redemptions::PoolId)
                    .col(Redemptions::CustomerId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Redemptions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Redemptions {
    Table,
    Id,
    OrgId,
    CouponId,
    PoolId,
    CustomerId,
    StoreId,
    Zone,
    Concept,
    Till,
    BasketTotal,
    Currency,
    Discount,
    Active,
    ReservedUntil,
    RedeemedAt,
    ReversedAt,
}
