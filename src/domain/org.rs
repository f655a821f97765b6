//! Tenants: an org's name and the time zone its days are counted in.

use chrono_tz::Tz;

use super::Invalid;

pub fn validate_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Invalid {
            field: "name",
            reason: "must be 1 to 200 characters".into(),
        });
    }
    Ok(name.to_string())
}

/// An IANA time zone name such as `Europe/Madrid`.
pub fn parse_timezone(name: &str) -> Result<Tz, Invalid> {
    name.parse::<Tz>().map_err(|_| Invalid {
        field: "timezone",
        reason: format!("`{name}` is not an IANA time zone such as Europe/Madrid"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_iana_zones_and_refuses_others() {
        assert_eq!(
            parse_timezone("Europe/Madrid").unwrap(),
            chrono_tz::Europe::Madrid
        );
        assert_eq!(parse_timezone("UTC").unwrap(), chrono_tz::UTC);
        assert_eq!(
            parse_timezone("Mars/Olympus").unwrap_err().field,
            "timezone"
        );
    }

    #[test]
    fn names_are_trimmed_and_must_not_be_empty() {
        assert_eq!(validate_name("  Acme ").unwrap(), "Acme");
        assert_eq!(validate_name("   ").unwrap_err().field, "name");
    }
}
