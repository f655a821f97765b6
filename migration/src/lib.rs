//! Schema migrations, one file per table, applied in order by `coupond migrate` and at start-up.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_orgs;
mod m20261121_000002_create_api_keys;
mod m20261121_000003_create_pools;
mod m20261121_000004_create_customers;
mod m20261121_000005_create_coupons;
mod m20261121_000006_create_points_ledger;
mod m20261121_000007_create_market_products;
mod m20261121_000008_create_redemptions;
mod m20261121_000009_create_coupon_events;
mod m20261121_000010_create_imports;
mod m20261121_000011_create_import_issues;
mod m20261121_000012_create_outbox;
mod m20261121_000013_create_idempotency_keys;
mod m20261121_000014_create_pool_allowed_customers;
mod m20261121_000015_create_webhooks;
mod m20261121_000020_redemption_counter;
mod m20261121_000021_redemption_detail;
mod m20261121_000022_coupon_lookup_key;
mod m20261129_000201_job_leases;
mod m20261129_000301_create_notifications;
mod m20261129_000401_market;
mod m20261129_000501_redemption_recorded_at;
mod m20261129_000601_generation_reserved;
mod m20261130_000101_create_pool_passes;
mod m20261130_000201_currencies;
mod m20261130_000301_access_groups;
mod m20261130_000401_expiring_index_dated_only;

pub use m20261121_000022_coupon_lookup_key::CODE_LOOKUP_KEY;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_orgs::Migration),
            Box::new(m20261121_000002_create_api_keys::Migration),
            Box::new(m20261121_000003_create_pools::Migration),
            Box::new(m20261121_000004_create_customers::Migration),
            Box::new(m20261121_000005_create_coupons::Migration),
            Box::new(m20261121_000006_create_points_ledger::Migration),
            Box::new(m20261121_000007_create_market_products::Migration),
            Box::new(m20261121_000008_create_redemptions::Migration),
            Box::new(m20261121_000009_create_coupon_events::Migration),
            Box::new(m20261121_000010_create_imports::Migration),
            Box::new(m20261121_000011_create_import_issues::Migration),
            Box::new(m20261121_000012_create_outbox::Migration),
            Box::new(m20261121_000013_create_idempotency_keys::Migration),
            Box::new(m20261121_000014_create_pool_allowed_customers::Migration),
            Box::new(m20261121_000015_create_webhooks::Migration),
            Box::new(m20261121_000020_redemption_counter::Migration),
            Box::new(m20261121_000021_redemption_detail::Migration),
            Box::new(m20261121_000022_coupon_lookup_key::Migration),
            Box::new(m20261129_000201_job_leases::Migration),
            Box::new(m20261129_000301_create_notifications::Migration),
            Box::new(m20261129_000401_market::Migration),
            Box::new(m20261129_000501_redemption_recorded_at::Migration),
            Box::new(m20261129_000601_generation_reserved::Migration),
            Box::new(m20261130_000101_create_pool_passes::Migration),
            Box::new(m20261130_000301_access_groups::Migration),
            Box::new(m20261130_000401_expiring_index_dated_only::Migration),
            Box::new(m20261130_000201_currencies::Migration),
        ]
    }
}
