use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261121_000003_create_pools::Pools;

/// Coupon statuses that can still expire: available (0) and issued (1).
const EXPIRABLE: [i16; 2] = [0, 1];

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Expiry reminders and resend templates of pools, the reminders already given to each coupon,
/// whether a pool's codes are below its notification threshold (and how many times they fell
/// there), and the scheduler's record of its runs (its lease: a run is claimed by moving `last_run_ms`).
/// A partial index finds coupons that can still expire by expiry time, for the sweep and the
/// reminders, without reading the redeemed and expired bulk of the table; another finds open
/// holds by when they run out, for housekeeping.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_coupons_expiring")
                    .table(Coupons::Table)
                    .col(Coupons::ExpiresAt)
                    .and_where(Expr::col(Coupons::Status).is_in(EXPIRABLE))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_redemptions_open_holds")
                    .table(Redemptions::Table)
                    .col(Redemptions::ReservedUntil)
                    .and_where(Expr::col(Redemptions::Active).eq(true))
                    .and_where(Expr::col(Redemptions::ReservedUntil).is_not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PoolReminders::Table)
                    .col(big_pk_auto(PoolReminders::Id))
                    .col(big_integer(PoolReminders::OrgId))
                    .col(big_integer(PoolReminders::PoolId))
                    .col(integer(PoolReminders::DaysBefore))
                    .col(string_len(PoolReminders::AtTime, 5))
                    .col(string(PoolReminders::Channel))
                    .col(string_null(PoolReminders::Subject))
                    .col(text(PoolReminders::Template))
                    .col(boolean(PoolReminders::AllowUnicode))
                    .col(timestamp_with_time_zone(PoolReminders::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PoolReminders::Table, PoolReminders::PoolId)
                            .to(Pools::Table, Pools::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_pool_reminders_pool")
                    .table(PoolReminders::Table)
                    .col(PoolReminders::PoolId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReminderDeliveries::Table)
                    .col(big_integer(ReminderDeliveries::ReminderId))
                    .col(big_integer(ReminderDeliveries::CouponId))
                    .col(string(ReminderDeliveries::Outcome))
                    .col(timestamp_with_time_zone(ReminderDeliveries::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(ReminderDeliveries::ReminderId)
                            .col(ReminderDeliveries::CouponId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PoolMessages::Table)
                    .col(big_integer(PoolMessages::PoolId).primary_key())
                    .col(big_integer(PoolMessages::OrgId))
                    .col(text(PoolMessages::ResendTemplate))
                    .col(string_null(PoolMessages::ResendSubject))
                    .col(boolean(PoolMessages::AllowUnicode))
                    .col(timestamp_with_time_zone(PoolMessages::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PoolMessages::Table, PoolMessages::PoolId)
                            .to(Pools::Table, Pools::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PoolLimitAlerts::Table)
                    .col(big_integer(PoolLimitAlerts::PoolId).primary_key())
                    .col(boolean(PoolLimitAlerts::Below))
                    .col(integer(PoolLimitAlerts::Crossings))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PoolLimitAlerts::Table, PoolLimitAlerts::PoolId)
                            .to(Pools::Table, Pools::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SchedulerRuns::Table)
                    .col(string(SchedulerRuns::Name).primary_key())
                    .col(big_integer(SchedulerRuns::LastRunMs))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SchedulerRuns::Table.into_iden(),
            PoolLimitAlerts::Table.into_iden(),
            PoolMessages::Table.into_iden(),
            ReminderDeliveries::Table.into_iden(),
            PoolReminders::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_redemptions_open_holds")
                    .table(Redemptions::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_coupons_expiring")
                    .table(Coupons::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum PoolReminders {
    Table,
    Id,
    OrgId,
    PoolId,
    DaysBefore,
    AtTime,
    Channel,
    Subject,
    Template,
    AllowUnicode,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ReminderDeliveries {
    Table,
    ReminderId,
    CouponId,
    Outcome,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PoolMessages {
    Table,
    PoolId,
    OrgId,
    ResendTemplate,
    ResendSubject,
    AllowUnicode,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SchedulerRuns {
    Table,
    Name,
    LastRunMs,
}

#[derive(DeriveIden)]
enum Coupons {
    Table,
    Status,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Redemptions {
    Table,
    Active,
    ReservedUntil,
}

#[derive(DeriveIden)]
enum PoolLimitAlerts {
    Table,
    PoolId,
    Below,
    Crossings,
}
