//! Pure domain logic: no I/O, unit-tested.

pub mod api_key;
pub mod csv;
pub mod customer;
pub mod discount;
pub mod expiry;
pub mod generator;
pub mod issuance;
pub mod org;
pub mod pattern;
pub mod redemption;
pub mod remote;
pub mod signature;
