use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000001_create_orgs::Orgs;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Webhook subscriptions: where an org wants which events delivered, and the secret they are
/// signed with (Standard Webhooks). Deliveries themselves are outbox rows.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(big_pk_auto(Webhooks::Id))
                    .col(big_integer(Webhooks::OrgId))
                    .col(string(Webhooks::Url))
                    .col(json(Webhooks::Events))
                    .col(string(Webhooks::Secret))
                    .col(timestamp_with_time_zone(Webhooks::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Webhooks::Table, Webhooks::OrgId)
                            .to(Orgs::Table, Orgs::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhooks_org")
                    .table(Webhooks::Table)
                    .col(Webhooks::OrgId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Webhooks::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    OrgId,
    Url,
    Events,
    Secret,
    CreatedAt,
}
