//! Tenants: an org's name and the time zone its days are counted in.

use chrono_tz::Tz;
use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Deserializer, Serialize};

use super::Invalid;

/// The addresses told about the org's pools (a limit near): a JSON list on the org's row. A
/// stored value that is not a list of strings reads as no address.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, Default, FromJsonQueryResult)]
#[serde(transparent)]
pub struct PocEmails(pub Vec<String>);

impl<'de> Deserialize<'de> for PocEmails {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PocEmails, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(PocEmails(serde_json::from_value(value).unwrap_or_default()))
    }
}

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
    fn stored_contacts_read_back_and_a_broken_list_reads_as_none() {
        let emails: PocEmails =
            serde_json::from_str(r#"["a@example.com","b@example.com"]"#).unwrap();
        assert_eq!(emails.0, ["a@example.com", "b@example.com"]);
        assert_eq!(
            serde_json::to_string(&emails).unwrap(),
            r#"["a@example.com","b@example.com"]"#
        );
        for broken in ["{}", "null", r#"["a@example.com", 7]"#] {
            assert_eq!(
                serde_json::from_str::<PocEmails>(broken).unwrap(),
                PocEmails::default()
            );
        }
    }

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
