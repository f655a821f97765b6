//! Pure domain logic: no I/O, unit-tested.

pub mod access;
pub mod api_key;
pub mod coupon;
pub mod csv;
pub mod currency;
pub mod customer;
pub mod discount;
pub mod expiry;
pub mod generator;
pub mod issuance;
pub mod job;
pub mod market;
pub mod message;
pub mod org;
pub mod pattern;
pub mod pool;
pub mod redemption;
pub mod remote;
pub mod remote_call;
pub mod signature;
pub mod stores;
pub mod text;
pub mod url_policy;
pub mod wallet;
pub mod webhook;

/// Why a setting or request field was refused, naming the field (a 422 at the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}
