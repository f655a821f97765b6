use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `recorded_at` is the server's time of a redemption; `redeemed_at` stays the purchase time a
/// till sent (an offline till may sync it later). Rows made before keep their purchase time.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Redemptions::Table)
                    .add_column(timestamp_with_time_zone_null(Redemptions::RecordedAt))
                    .to_owned(),
            )
            .await?;
        let backfill = Query::update()
            .table(Redemptions::Table)
            .value(Redemptions::RecordedAt, Expr::col(Redemptions::RedeemedAt))
            .to_owned();
        manager.exec_stmt(backfill).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Redemptions::Table)
                    .drop_column(Redemptions::RecordedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Redemptions {
    Table,
    RedeemedAt,
    RecordedAt,
}
