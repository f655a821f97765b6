use sea_orm_migration::{prelude::*, schema::*};

use crate::{
    m20261121_000004_create_customers::Customers, m20261121_000005_create_coupons::Coupons,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The loyalty market: product terms, the exchanges made, each customer's balance and the
/// reference a ledger entry carries. SQLite alters one column per statement, hence one
/// `alter_table` per column.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            text_null(MarketProducts::Description),
            big_integer_null(MarketProducts::MaxPerCustomer),
            timestamp_with_time_zone_null(MarketProducts::StartsAt),
            timestamp_with_time_zone_null(MarketProducts::EndsAt),
            boolean(MarketProducts::RefundOnRevoke)
                .default(false)
                .to_owned(),
            boolean(MarketProducts::Archived).default(false).to_owned(),
        ] {
            add_column(manager, MarketProducts::Table, column).await?;
        }
        add_column(
            manager,
            PointsLedger::Table,
            string_null(PointsLedger::Reference),
        )
        .await?;
        create_balances(manager).await?;
        create_exchanges(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MarketExchanges::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PointsBalances::Table).to_owned())
            .await
    }
}

async fn add_column(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    mut column: ColumnDef,
) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(table)
                .add_column(&mut column)
                .to_owned(),
        )
        .await
}

/// One row per customer holding points: the ledger's sum, kept in the transaction of every
/// entry so a debit is one conditional UPDATE. The CHECK is the last line of defence.
async fn create_balances(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(PointsBalances::Table)
                .col(big_integer(PointsBalances::CustomerId).primary_key())
                .col(big_integer(PointsBalances::OrgId))
                .col(
                    big_integer(PointsBalances::Balance)
                        .check(Expr::col(PointsBalances::Balance).gte(0)),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(PointsBalances::Table, PointsBalances::CustomerId)
                        .to(Customers::Table, Customers::Id),
                )
                .to_owned(),
        )
        .await?;
    // Entries written before this table existed.
    manager
        .get_connection()
        .execute_unprepared(
            "INSERT INTO points_balances (customer_id, org_id, balance) \
             SELECT customer_id, MIN(org_id), CAST(SUM(delta) AS BIGINT) FROM points_ledger \
             GROUP BY customer_id HAVING SUM(delta) >= 0",
        )
        .await?;
    Ok(())
}

async fn create_exchanges(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(MarketExchanges::Table)
                .col(big_pk_auto(MarketExchanges::Id))
                .col(big_integer(MarketExchanges::OrgId))
                .col(big_integer(MarketExchanges::ProductId))
                .col(big_integer(MarketExchanges::CustomerId))
                .col(big_integer(MarketExchanges::CouponId).unique_key())
                .col(big_integer(MarketExchanges::Points))
                .col(timestamp_with_time_zone_null(MarketExchanges::RefundedAt))
                .col(timestamp_with_time_zone(MarketExchanges::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(MarketExchanges::Table, MarketExchanges::ProductId)
                        .to(MarketProducts::Table, MarketProducts::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(MarketExchanges::Table, MarketExchanges::CustomerId)
                        .to(Customers::Table, Customers::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(MarketExchanges::Table, MarketExchanges::CouponId)
                        .to(Coupons::Table, Coupons::Id),
                )
                .to_owned(),
        )
        .await?;
    for (name, columns) in [
        (
            "idx_market_exchanges_customer",
            [MarketExchanges::CustomerId, MarketExchanges::Id],
        ),
        (
            "idx_market_exchanges_product_customer",
            [MarketExchanges::ProductId, MarketExchanges::CustomerId],
        ),
    ] {
        manager
            .create_index(
                Index::create()
                    .name(name)
                    .table(MarketExchanges::Table)
                    .col(columns[0])
                    .col(columns[1])
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

#[derive(DeriveIden)]
enum MarketProducts {
    Table,
    Id,
    Description,
    MaxPerCustomer,
    StartsAt,
    EndsAt,
    RefundOnRevoke,
    Archived,
}

#[derive(DeriveIden)]
enum PointsLedger {
    Table,
    Reference,
}

#[derive(DeriveIden)]
enum PointsBalances {
    Table,
    CustomerId,
    OrgId,
    Balance,
}

#[derive(DeriveIden, Clone, Copy)]
enum MarketExchanges {
    Table,
    Id,
    OrgId,
    ProductId,
    CustomerId,
    CouponId,
    Points,
    RefundedAt,
    CreatedAt,
}
