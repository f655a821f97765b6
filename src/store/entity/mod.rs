//! sea-orm entities, one module per table. They live in the main crate so their columns can
//! name domain types (enums stored as text or numbers, rule sets stored as JSON).

pub mod prelude;

pub mod api_keys;
pub mod coupon_events;
pub mod coupons;
pub mod customers;
pub mod exchange_rates;
pub mod groups;
pub mod idempotency_keys;
pub mod import_issues;
pub mod imports;
pub mod job_files;
pub mod market_exchanges;
pub mod market_products;
pub mod orgs;
pub mod outbox;
pub mod points_balances;
pub mod points_ledger;
pub mod pool_allowed_customers;
pub mod pool_limit_alerts;
pub mod pool_messages;
pub mod pool_passes;
pub mod pool_reminders;
pub mod pools;
pub mod redemptions;
pub mod reminder_deliveries;
pub mod scheduler_runs;
pub mod stores;
pub mod webhooks;
