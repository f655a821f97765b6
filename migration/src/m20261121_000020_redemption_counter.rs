use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The series-level redemption limit is enforced on a counter in the pool's row, taken under
/// that row's lock, so the limit costs one row update instead of a count over every redemption
/// of the series. Holds count too; a hold that runs out is given back when the counter is full.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Pools::Table)
                    .add_column(big_integer(Pools::RedeemedCount).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Pools::Table)
                    .drop_column(Pools::RedeemedCount)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Pools {
    Table,
    RedeemedCount,
}
