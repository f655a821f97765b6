//! Use cases that span several store calls and transactions (streamed uploads, background
//! jobs). Handlers call these; these call `domain` for decisions and `store` for data.

pub mod api_keys;
pub mod backlog;
pub mod batch_issue;
pub mod cache;
pub mod check_char;
pub mod checkout;
pub mod codes;
pub mod coupon_views;
pub mod coupons;
pub mod customer_lists;
pub mod customers;
pub mod error;
pub mod exchange_rates;
pub mod expiry_sweep;
pub mod generation;
pub mod groups;
pub mod health;
pub mod history;
pub mod housekeeping;
pub mod idempotency;
pub mod imports;
pub mod issuance;
pub mod issue_at_once;
pub mod jobs;
pub mod lifecycle;
pub mod limit_watch;
pub mod market;
pub mod notifications;
pub mod org;
pub mod outbound;
pub mod points;
pub mod pools;
pub mod redemption;
pub mod reminders;
pub mod remote_callback;
pub mod remote_source;
pub mod revocation;
pub mod signed;
pub mod stores;
pub mod subscriptions;
pub mod tagged_codes;
pub mod wallet;
pub mod webhooks;
pub mod workflow;

pub use error::{Error, Result};

/// An org's stored time zone. It was checked when written, so one that no longer parses is a
/// server fault, never silently UTC.
pub fn org_tz(name: &str) -> Result<chrono_tz::Tz> {
    name.parse()
        .map_err(|_| Error::internal(format!("stored time zone `{name}` does not parse")))
}
