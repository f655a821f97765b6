use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000003_create_pools::Pools;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Coupons are the one table that reaches 100M rows a pool: narrow rows, a small-integer status,
/// bigint keys, and no foreign key to customers (checked by the store) to keep bulk loads fast.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Coupons::Table)
                    .col(big_pk_auto(Coupons::Id))
                    .col(big_integer(Coupons::OrgId))
                    .col(big_integer(Coupons::PoolId))
                    .col(string(Coupons::Code))
                    .col(big_integer(Coupons::ShareKey).default(0))
                    .col(small_integer(Coupons::Status))
                    .col(big_integer_null(Coupons::CustomerId))
                    .col(big_integer_null(Coupons::Value))
                    .col(big_integer_null(Coupons::Balance))
                    .col(integer(Coupons::RedemptionCount).default(0))
                    .col(timestamp_with_time_zone_null(Coupons::IssuedAt))
                    .col(timestamp_with_time_zone_null(Coupons::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Coupons::RedeemableFrom))
                    .col(timestamp_with_time_zone(Coupons::LastStatusChangeAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Coupons::Table, Coupons::PoolId)
                            .to(Pools::Table, Pools::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // A code lives once in an org (codes are case-sensitive). The one exception is a common
        // code, handed to many customers: its pool keeps the code itself at share key 0 (so no
        // other pool can take it) and each customer's copy at share key = customer id, which
        // also makes "a common code at most once per customer" a constraint.
        manager
            .create_index(
                Index::create()
                    .name("uq_coupons_org_code")
                    .table(Coupons::Table)
                    .col(Coupons::OrgId)
                    .col(Coupons::Code)
                    .col(Coupons::ShareKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // "Next available coupon of pool P" is a seek on (pool, status) in code order; the same
        // index answers the per-status counts of pool stats without touching the table. Claims
        // take codes in code order, not id order, on purpose: ordered by id, PostgreSQL prefers
        // walking the primary key past every coupon already claimed.
        manager
            .create_index(
                Index::create()
                    .name("idx_coupons_pool_status")
                    .table(Coupons::Table)
                    .col(Coupons::PoolId)
                    .col(Coupons::Status)
                    .col(Coupons::Code)
                    .to_owned(),
            )
            .await?;
        // A customer's coupons, and per-customer limits inside a pool.
        manager
            .create_index(
                Index::create()
                    .name("idx_coupons_customer_pool")
                    .table(Coupons::Table)
                    .col(Coupons::CustomerId)
                    .col(Coupons::PoolId)
                    .and_where(Expr::col(Coupons::CustomerId).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Coupons::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Coupons {
    Table,
    Id,
    OrgId,
    PoolId,
    Code,
    ShareKey,
    Status,
    CustomerId,
    Value,
    Balance,
    RedemptionCount,
    IssuedAt,
    ExpiresAt,
    RedeemableFrom,
    LastStatusChangeAt,
}
