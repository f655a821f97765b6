//! Pure domain logic: no I/O, unit-tested.

pub mod api_key;
pub mod org;
