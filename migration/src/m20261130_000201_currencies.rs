use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000001_create_orgs::Orgs;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Multi-currency values (Capillary): stores with their default currency, the org's exchange
/// rates (appended, never overwritten, so the rate in force at any past time can be read), and
/// on each redemption the rate it was converted at and what it took in the coupon's currency
/// (for a gift card, what came off the balance, which a reversal gives back).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Stores::Table)
                    .col(big_pk_auto(Stores::Id))
                    .col(big_integer(Stores::OrgId))
                    .col(string(Stores::ExternalId))
                    .col(string_null(Stores::Name))
                    .col(string(Stores::Currency))
                    .col(string_null(Stores::Zone))
                    .col(string_null(Stores::Concept))
                    .col(timestamp_with_time_zone(Stores::CreatedAt))
                    .col(timestamp_with_time_zone(Stores::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Stores::Table, Stores::OrgId)
                            .to(Orgs::Table, Orgs::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_stores_org_external_id")
                    .table(Stores::Table)
                    .col(Stores::OrgId)
                    .col(Stores::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ExchangeRates::Table)
                    .col(big_pk_auto(ExchangeRates::Id))
                    .col(big_integer(ExchangeRates::OrgId))
                    .col(string(ExchangeRates::FromCurrency))
                    .col(string(ExchangeRates::ToCurrency))
                    .col(string(ExchangeRates::Rate))
                    .col(timestamp_with_time_zone(ExchangeRates::EffectiveAt))
                    .col(timestamp_with_time_zone(ExchangeRates::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ExchangeRates::Table, ExchangeRates::OrgId)
                            .to(Orgs::Table, Orgs::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // The rate in force is the pair's latest row at or before an instant: one index seek.
        manager
            .create_index(
                Index::create()
                    .name("idx_exchange_rates_pair")
                    .table(ExchangeRates::Table)
                    .col(ExchangeRates::OrgId)
                    .col(ExchangeRates::FromCurrency)
                    .col(ExchangeRates::ToCurrency)
                    .col(ExchangeRates::EffectiveAt)
                    .to_owned(),
            )
            .await?;
        let columns = [
            string_null(Redemptions::CouponCurrency),
            big_integer_null(Redemptions::CouponAmount),
            string_null(Redemptions::ExchangeRate),
            timestamp_with_time_zone_null(Redemptions::RateEffectiveAt),
        ];
        // SQLite adds one column per statement.
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Redemptions::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Redemptions::RateEffectiveAt,
            Redemptions::ExchangeRate,
            Redemptions::CouponAmount,
            Redemptions::CouponCurrency,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Redemptions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(ExchangeRates::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Stores::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Stores {
    Table,
    Id,
    OrgId,
    ExternalId,
    Name,
    Currency,
    Zone,
    Concept,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ExchangeRates {
    Table,
    Id,
    OrgId,
    FromCurrency,
    ToCurrency,
    Rate,
    EffectiveAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Redemptions {
    Table,
    CouponCurrency,
    CouponAmount,
    ExchangeRate,
    RateEffectiveAt,
}
