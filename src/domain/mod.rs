//! Pure domain logic: no I/O, unit-tested.

pub mod access;
pub mod api_key;
pub mod code_file;
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

/// A JSON list stored by an earlier or later version, read leniently: items `item` does not
/// know (a scope or event name added since) are skipped, and anything but a list reads as
/// empty.
fn lenient_list<'de, D, T>(
    deserializer: D,
    item: impl Fn(&serde_json::Value) -> Option<T>,
) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
    Ok(value
        .as_array()
        .map(|items| items.iter().filter_map(item).collect())
        .unwrap_or_default())
}

/// Why a setting or request field was refused, naming the field (a 422 at the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}
