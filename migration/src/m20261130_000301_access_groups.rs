use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000001_create_orgs::Orgs;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Access groups (Antavo's "User group"): a pool belongs to one group or none, and an admin
/// key bound to groups manages only their pools. A key's groups are a JSON list on its row, so
/// authenticating a request stays one look-up.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Groups::Table)
                    .col(big_pk_auto(Groups::Id))
                    .col(big_integer(Groups::OrgId))
                    .col(string(Groups::Name))
                    .col(timestamp_with_time_zone(Groups::CreatedAt))
                    .col(timestamp_with_time_zone(Groups::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Groups::Table, Groups::OrgId)
                            .to(Orgs::Table, Orgs::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_groups_org_name")
                    .table(Groups::Table)
                    .col(Groups::OrgId)
                    .col(Groups::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Pools::Table)
                    .add_column(big_integer_null(Pools::GroupId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_pools_group")
                    .table(Pools::Table)
                    .col(Pools::GroupId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(json_null(ApiKeys::GroupIds))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .drop_column(ApiKeys::GroupIds)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_pools_group")
                    .table(Pools::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Pools::Table)
                    .drop_column(Pools::GroupId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Groups::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Groups {
    Table,
    Id,
    OrgId,
    Name,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Pools {
    Table,
    GroupId,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    GroupIds,
}
