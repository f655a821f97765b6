//! Naming a customer: by the brand's external id, email, mobile number or coupond's user id.
//! Values are normalised here so a lookup matches however the caller typed them.

use poem_openapi::Object;
use serde::{Deserialize, Serialize};

use super::Invalid;

const MAX_EXTERNAL_ID_CHARS: usize = 255;
/// The longest address SMTP can carry (RFC 5321).
const MAX_EMAIL_CHARS: usize = 254;
/// E.164 numbers have at most 15 digits; shorter than 6 is a typo, not a phone.
const MOBILE_DIGITS: std::ops::RangeInclusive<usize> = 6..=15;

/// One way of naming a customer, already normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CustomerIdentifier {
    /// The brand's own id, trimmed.
    ExternalId(String),
    /// Lowercased email address.
    Email(String),
    /// Digits with an optional leading `+`.
    Mobile(String),
    /// coupond's internal id.
    UserId(i64),
}

impl CustomerIdentifier {
    /// The column and field name of this kind of identifier.
    pub fn kind(&self) -> &'static str {
        match self {
            CustomerIdentifier::ExternalId(_) => "external_id",
            CustomerIdentifier::Email(_) => "email",
            CustomerIdentifier::Mobile(_) => "mobile",
            CustomerIdentifier::UserId(_) => "user_id",
        }
    }

    /// Capillary's wording, which brands already know from their upload reports.
    pub fn not_found_message(&self) -> &'static str {
        match self {
            CustomerIdentifier::ExternalId(_) => "User does not exist with provided external id",
            CustomerIdentifier::Email(_) => "User does not exist with provided email",
            CustomerIdentifier::Mobile(_) => "User does not exist with provided mobile",
            CustomerIdentifier::UserId(_) => "User ID is not valid or is inactive",
        }
    }

    /// Parses a CSV cell found under the header `column` (`external_id`, `email`, `mobile` or
    /// `user_id`, in any case). Errors name the column, or `column` when the header is unknown.
    pub fn from_column(column: &str, value: &str) -> Result<CustomerIdentifier, Invalid> {
        let column = column.trim();
        let parse: fn(&str) -> Result<CustomerIdentifier, Invalid> = match column
            .to_ascii_lowercase()
            .as_str()
        {
            "external_id" => |v: &str| normalize_external_id(v).map(CustomerIdentifier::ExternalId),
            "email" => |v: &str| normalize_email(v).map(CustomerIdentifier::Email),
            "mobile" => |v: &str| normalize_mobile(v).map(CustomerIdentifier::Mobile),
            "user_id" => |v: &str| parse_user_id(v).map(CustomerIdentifier::UserId),
            _ => {
                return Err(Invalid {
                    field: "column",
                    reason: format!(
                        "`{column}` is not a customer identifier; use external_id, email, mobile \
                         or user_id"
                    ),
                });
            }
        };
        parse(value)
    }
}

/// Where a customer list's header names its identifier column (the first of external_id,
/// email, mobile or user_id, in any case), or why it names none.
pub fn identifier_column(header: &[String]) -> Result<usize, Invalid> {
    const NAMES: [&str; 4] = ["external_id", "email", "mobile", "user_id"];
    header
        .iter()
        .position(|name| {
            let name = name.trim().trim_start_matches('\u{feff}');
            NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
        })
        .ok_or_else(|| Invalid {
            field: "header",
            reason: format!(
                "the header `{}` names no customer identifier column; name one external_id, \
                 email, mobile or user_id",
                header.join(",")
            ),
        })
}

/// Names a customer by exactly one of its identifiers.
#[derive(Object, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[oai(skip_serializing_if_is_none)]
#[serde(default)]
pub struct CustomerRef {
    /// The brand's own id for the customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The customer's email address; case is ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The customer's mobile number, ideally with a leading + and country code; spaces, dashes,
    /// dots and parentheses are ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// coupond's internal id for the customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
}

impl CustomerRef {
    /// The one identifier given, normalised. Errors name `customer` when none or several are
    /// given, and `customer.<kind>` when the value is malformed.
    pub fn identifier(&self) -> Result<CustomerIdentifier, Invalid> {
        let given = [
            self.external_id.is_some(),
            self.email.is_some(),
            self.mobile.is_some(),
            self.user_id.is_some(),
        ]
        .into_iter()
        .filter(|&given| given)
        .count();
        if given != 1 {
            return Err(Invalid {
                field: "customer",
                reason: format!(
                    "name the customer by exactly one of external_id, email, mobile or user_id \
                     (got {given})"
                ),
            });
        }
        let in_customer = |field: &'static str| match field {
            "external_id" => "customer.external_id",
            "email" => "customer.email",
            "mobile" => "customer.mobile",
            "user_id" => "customer.user_id",
            other => other,
        };
        let identifier = if let Some(id) = &self.external_id {
            normalize_external_id(id).map(CustomerIdentifier::ExternalId)
        } else if let Some(email) = &self.email {
            normalize_email(email).map(CustomerIdentifier::Email)
        } else if let Some(mobile) = &self.mobile {
            normalize_mobile(mobile).map(CustomerIdentifier::Mobile)
        } else {
            positive_user_id(self.user_id.unwrap_or(0)).map(CustomerIdentifier::UserId)
        };
        identifier.map_err(|err| Invalid {
            field: in_customer(err.field),
            reason: err.reason,
        })
    }
}

/// Trims; external ids are otherwise kept exactly, as brands may treat case as significant.
fn normalize_external_id(s: &str) -> Result<String, Invalid> {
    let id = s.trim();
    let invalid = |reason: &str| Invalid {
        field: "external_id",
        reason: reason.into(),
    };
    if id.is_empty() {
        return Err(invalid("is empty"));
    }
    if id.chars().count() > MAX_EXTERNAL_ID_CHARS {
        return Err(invalid("must be at most 255 characters"));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(id.to_string())
}

/// Trims and lowercases; requires one `@` with text on both sides and no spaces.
pub fn normalize_email(s: &str) -> Result<String, Invalid> {
    let email = s.trim().to_lowercase();
    let invalid = |reason: String| Invalid {
        field: "email",
        reason,
    };
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(invalid(format!(
            "must be at most {MAX_EMAIL_CHARS} characters"
        )));
    }
    let well_formed = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !well_formed {
        return Err(invalid(format!(
            "`{}` is not an email address such as ana@example.com",
            s.trim()
        )));
    }
    Ok(email)
}

/// Keeps a leading `+` and the digits, dropping the spaces, dashes, dots and parentheses people
/// write numbers with; requires 6 to 15 digits.
pub fn normalize_mobile(s: &str) -> Result<String, Invalid> {
    let mut mobile = String::new();
    let mut digits = 0;
    for c in s.trim().chars() {
        match c {
            '0'..='9' => {
                mobile.push(c);
                digits += 1;
            }
            '+' if mobile.is_empty() => mobile.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => {
                return Err(Invalid {
                    field: "mobile",
                    reason: format!(
                        "`{}` may contain only digits, a leading +, spaces, dashes, dots and \
                         parentheses",
                        s.trim()
                    ),
                });
            }
        }
    }
    if !MOBILE_DIGITS.contains(&digits) {
        return Err(Invalid {
            field: "mobile",
            reason: format!(
                "`{}` must have {} to {} digits",
                s.trim(),
                MOBILE_DIGITS.start(),
                MOBILE_DIGITS.end()
            ),
        });
    }
    Ok(mobile)
}

fn parse_user_id(s: &str) -> Result<i64, Invalid> {
    let id = s.trim().parse::<i64>().map_err(|_| Invalid {
        field: "user_id",
        reason: format!("`{}` is not a whole number", s.trim()),
    })?;
    positive_user_id(id)
}

fn positive_user_id(id: i64) -> Result<i64, Invalid> {
    if id <= 0 {
        return Err(Invalid {
            field: "user_id",
            reason: "must be a positive number".into(),
        });
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_list_header_must_name_an_identifier_column() {
        let header = |h: &str| h.split(',').map(String::from).collect::<Vec<_>>();
        assert_eq!(identifier_column(&header("external_id")), Ok(0));
        assert_eq!(identifier_column(&header("name, Email ")), Ok(1));
        assert_eq!(identifier_column(&header("\u{feff}mobile,name")), Ok(0));
        let none = identifier_column(&header("name,city")).unwrap_err();
        assert_eq!(none.field, "header");
        assert!(none.reason.contains("name,city"));
        assert!(identifier_column(&[]).is_err());
    }

    #[test]
    fn kinds_and_capillary_not_found_messages() {
        let cases = [
            (
                CustomerIdentifier::ExternalId("C-1".into()),
                "external_id",
                "User does not exist with provided external id",
            ),
            (
                CustomerIdentifier::Email("a@b.c".into()),
                "email",
                "User does not exist with provided email",
            ),
            (
                CustomerIdentifier::Mobile("+34600111222".into()),
                "mobile",
                "User does not exist with provided mobile",
            ),
            (
                CustomerIdentifier::UserId(7),
                "user_id",
                "User ID is not valid or is inactive",
            ),
        ];
        for (identifier, kind, message) in cases {
            assert_eq!(identifier.kind(), kind);
            assert_eq!(identifier.not_found_message(), message);
        }
    }

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  Ana.Perez@Example.COM ").unwrap(),
            "ana.perez@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "ana",
            "@example.com",
            "ana@",
            "ana@@example.com",
            "ana@ex@ample.com",
            "ana perez@example.com",
        ] {
            assert_eq!(normalize_email(bad).unwrap_err().field, "email", "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(normalize_email(&long).is_err());
    }

    #[test]
    fn mobiles_keep_a_leading_plus_and_digits() {
        assert_eq!(
            normalize_mobile(" +34 600-111 222 ").unwrap(),
            "+34600111222"
        );
        assert_eq!(normalize_mobile("(555) 123-4567").unwrap(), "5551234567");
        assert_eq!(normalize_mobile("06.12.34.56.78").unwrap(), "0612345678");
        assert_eq!(normalize_mobile("(+1) 555 0100").unwrap(), "+15550100");
    }

    #[test]
    fn malformed_mobiles_are_refused() {
        for bad in [
            "",
            "12345",
            "1234567890123456",
            "+34 600 ABC 222",
            "600+111222",
            "++34600111222",
            "600111222 ext 4",
        ] {
            assert_eq!(normalize_mobile(bad).unwrap_err().field, "mobile", "{bad}");
        }
        assert!(normalize_mobile("123456").is_ok());
        assert!(normalize_mobile("+123456789012345").is_ok());
    }

    #[test]
    fn csv_columns_are_matched_case_insensitively_and_values_normalised() {
        assert_eq!(
            CustomerIdentifier::from_column("External_ID", " C-001 ").unwrap(),
            CustomerIdentifier::ExternalId("C-001".into())
        );
        assert_eq!(
            CustomerIdentifier::from_column(" EMAIL ", "Ana@Example.com").unwrap(),
            CustomerIdentifier::Email("ana@example.com".into())
        );
        assert_eq!(
            CustomerIdentifier::from_column("mobile", "+34 600 111 222").unwrap(),
            CustomerIdentifier::Mobile("+34600111222".into())
        );
        assert_eq!(
            CustomerIdentifier::from_column("USER_ID", " 42 ").unwrap(),
            CustomerIdentifier::UserId(42)
        );
    }

    #[test]
    fn bad_csv_cells_name_their_column() {
        let field = |column: &str, value: &str| {
            CustomerIdentifier::from_column(column, value)
                .unwrap_err()
                .field
        };
        assert_eq!(field("phone", "600111222"), "column");
        assert_eq!(field("external_id", "   "), "external_id");
        assert_eq!(field("external_id", &"x".repeat(256)), "external_id");
        assert_eq!(field("external_id", "a\tb"), "external_id");
        assert_eq!(field("email", "nobody"), "email");
        assert_eq!(field("mobile", "12"), "mobile");
        assert_eq!(field("user_id", "abc"), "user_id");
        assert_eq!(field("user_id", "0"), "user_id");
        assert_eq!(field("user_id", "-3"), "user_id");
    }

    #[test]
    fn a_reference_names_exactly_one_identifier() {
        let by_email = CustomerRef {
            email: Some(" Ana@Example.com".into()),
            ..CustomerRef::default()
        };
        assert_eq!(
            by_email.identifier().unwrap(),
            CustomerIdentifier::Email("ana@example.com".into())
        );
        let by_user = CustomerRef {
            user_id: Some(9),
            ..CustomerRef::default()
        };
        assert_eq!(by_user.identifier().unwrap(), CustomerIdentifier::UserId(9));

        assert_eq!(
            CustomerRef::default().identifier().unwrap_err().field,
            "customer"
        );
        let both = CustomerRef {
            external_id: Some("C-1".into()),
            ..by_email
        };
        assert_eq!(both.identifier().unwrap_err().field, "customer");
    }

    #[test]
    fn a_malformed_reference_names_the_field_inside_customer() {
        let field = |customer: CustomerRef| customer.identifier().unwrap_err().field;
        assert_eq!(
            field(CustomerRef {
                external_id: Some(" ".into()),
                ..CustomerRef::default()
            }),
            "customer.external_id"
        );
        assert_eq!(
            field(CustomerRef {
                email: Some("nobody".into()),
                ..CustomerRef::default()
            }),
            "customer.email"
        );
        assert_eq!(
            field(CustomerRef {
                mobile: Some("12".into()),
                ..CustomerRef::default()
            }),
            "customer.mobile"
        );
        assert_eq!(
            field(CustomerRef {
                user_id: Some(0),
                ..CustomerRef::default()
            }),
            "customer.user_id"
        );
    }

    #[test]
    fn references_serialise_only_the_identifier_given() {
        let customer: CustomerRef = serde_json::from_str(r#"{"mobile":"+34600111222"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&customer).unwrap(),
            r#"{"mobile":"+34600111222"}"#
        );
    }
}
