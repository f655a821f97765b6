use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `detail` keeps the whole discount (per-line amounts, free shipping, gift card balance after),
/// so a confirmed hold or a replayed request answers with what the checkout was told. The
/// indexes serve the hold sweep and the coupon search by the store, zone or concept of a
/// redemption.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Redemptions::Table)
                    .add_column(json_null(Redemptions::Detail))
                    .to_owned(),
            )
            .await?;
        // Only live holds are ever swept, so the index holds nothing else.
        manager
            .create_index(
                Index::create()
                    .name("idx_redemptions_pool_holds")
                    .table(Redemptions::Table)
                    .col(Redemptions::PoolId)
                    .col(Redemptions::ReservedUntil)
                    .and_where(Expr::col(Redemptions::ReservedUntil).is_not_null())
                    .and_where(Expr::col(Redemptions::Active).eq(true))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_redemptions_org_store", Redemptions::StoreId),
            ("idx_redemptions_org_zone", Redemptions::Zone),
            ("idx_redemptions_org_concept", Redemptions::Concept),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Redemptions::Table)
                        .col(Redemptions::OrgId)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "idx_redemptions_org_concept",
            "idx_redemptions_org_zone",
            "idx_redemptions_org_store",
            "idx_redemptions_pool_holds",
        ] {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(Redemptions::Table)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Redemptions::Table)
                    .drop_column(Redemptions::Detail)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Redemptions {
    Table,
    OrgId,
    PoolId,
    StoreId,
    Zone,
    Concept,
    Active,
    ReservedUntil,
    Detail,
}
