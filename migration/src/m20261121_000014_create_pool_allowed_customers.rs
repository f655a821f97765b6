use sea_orm_migration::{prelude::*, schema::*};

use crate::{m20261121_000003_create_pools::Pools, m20261121_000004_create_customers::Customers};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// "Issue to specific customers only": the customers a pool may issue to, uploaded as CSV.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PoolAllowedCustomers::Table)
                    .col(big_integer(PoolAllowedCustomers::PoolId))
                    .col(big_integer(PoolAllowedCustomers::CustomerId))
                    .primary_key(
                        Index::create()
                            .col(PoolAllowedCustomers::PoolId)
                            .col(PoolAllowedCustomers::CustomerId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PoolAllowedCustomers::Table, PoolAllowedCustomers::PoolId)
                            .to(Pools::Table, Pools::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                PoolAllowedCustomers::Table,
                                PoolAllowedCustomers::CustomerId,
                            )
                            .to(Customers::Table, Customers::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PoolAllowedCustomers::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PoolAllowedCustomers {
    Table,
    PoolId,
    CustomerId,
}
