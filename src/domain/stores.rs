//! A store's settings (Capillary's stores, zones and concepts): the currency its tills charge
//! in, which a coupon's value is converted to, and the zone and concept a pool's store scope
//! may name.

use poem_openapi::Object;

use super::{Invalid, currency::Currency};

/// How a store is registered.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// A name for people.
    #[oai(validator(max_length = 200))]
    pub name: Option<String>,
    /// The store's default currency (ISO 4217, e.g. `EUR`): a basket that names none is in it.
    #[oai(validator(max_length = 16))]
    pub currency: String,
    /// The zone (region) the store belongs to.
    #[oai(validator(max_length = 100))]
    pub zone: Option<String>,
    /// The store's concept (brand or format).
    #[oai(validator(max_length = 100))]
    pub concept: Option<String>,
}

/// The longest store id: ids are the caller's, like a till's or an order's.
const MAX_ID_CHARS: usize = 100;

impl StoreSettings {
    /// The settings with text trimmed; an empty name, zone or concept is none.
    pub fn validate(self) -> Result<(StoreSettings, Currency), Invalid> {
        let currency = Currency::parse(&self.currency, "currency")?;
        let trimmed = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Ok((
            StoreSettings {
                name: trimmed(self.name),
                currency: currency.code.to_string(),
                zone: trimmed(self.zone),
                concept: trimmed(self.concept),
            },
            currency,
        ))
    }
}

/// A store id from a path: not blank, at most [`MAX_ID_CHARS`] characters.
pub fn validate_id(id: &str) -> Result<&str, Invalid> {
    if id.trim().is_empty() || id.trim() != id || id.chars().count() > MAX_ID_CHARS {
        return Err(Invalid {
            field: "id",
            reason: format!(
                "a store id is 1 to {MAX_ID_CHARS} characters without surrounding spaces"
            ),
        });
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(currency: &str) -> StoreSettings {
        StoreSettings {
            name: Some("  Gran Vía ".into()),
            currency: currency.into(),
            zone: Some(" ".into()),
            concept: None,
        }
    }

    #[test]
    fn settings_are_trimmed_and_the_currency_known() {
        let (s, currency) = settings("JPY").validate().unwrap();
        assert_eq!(
            (s.name.as_deref(), s.zone, currency.decimals),
            (Some("Gran Vía"), None, 0)
        );
        assert_eq!(settings("EURO").validate().unwrap_err().field, "currency");
        assert_eq!(settings("usd").validate().unwrap_err().field, "currency");
    }

    #[test]
    fn ids_are_not_blank_nor_padded_nor_huge() {
        assert_eq!(validate_id("madrid-01"), Ok("madrid-01"));
        for bad in ["", "  ", " x", &"s".repeat(101)] {
            assert_eq!(validate_id(bad).unwrap_err().field, "id");
        }
    }
}
