use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The customer's coupon history, written in the transaction of the change it records.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CouponEvents::Table)
                    .col(big_pk_auto(CouponEvents::Id))
                    .col(big_integer(CouponEvents::OrgId))
                    .col(big_integer(CouponEvents::CouponId))
                    .col(big_integer(CouponEvents::PoolId))
                    .col(big_integer_null(CouponEvents::CustomerId))
                    .col(string(CouponEvents::Kind))
                    .col(json_null(CouponEvents::Detail))
                    .col(timestamp_with_time_zone(CouponEvents::CreatedAt))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_coupon_events_customer", CouponEvents::CustomerId),
            ("idx_coupon_events_coupon", CouponEvents::CouponId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(CouponEvents::Table)
                        .col(col)
                        .col(CouponEvents::Id)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CouponEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum CouponEvents {
    Table,
    Id,
    OrgId,
    CouponId,
    PoolId,
    CustomerId,
    Kind,
    Detail,
    CreatedAt,
}
