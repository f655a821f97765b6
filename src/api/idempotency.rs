//! The `Idempotency-Key` header: 1 to 255 printable ASCII characters on every endpoint that
//! takes one, so that a key always fits the unique index it is stored under (PostgreSQL refuses
//! index rows over ~2.7 KB) and a malformed one is refused (400) before any look-up.

use std::borrow::Cow;

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromParameter, ParseResult, Type},
};

pub const HEADER: &str = "Idempotency-Key";
pub const MAX_LEN: usize = 255;
const PATTERN: &str = "^[ -~]+$";

/// A key as the client sent it, known to be well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

/// Whether a header value is a usable key.
pub fn is_valid(value: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&value.len()) && value.iter().all(|b| (b' '..=b'~').contains(b))
}

pub fn rule() -> String {
    format!("`{HEADER}` must be 1 to {MAX_LEN} printable ASCII characters")
}

impl Type for IdempotencyKey {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "IdempotencyKey".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            min_length: Some(1),
            max_length: Some(MAX_LEN),
            pattern: Some(PATTERN.into()),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromParameter for IdempotencyKey {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        if is_valid(value.as_bytes()) {
            Ok(IdempotencyKey(value.to_string()))
        } else {
            Err(ParseError::custom(rule()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_printable_ascii() {
        assert!(is_valid(b"run-7/step-2"));
        assert!(is_valid(&[b'k'; MAX_LEN]));
        assert!(!is_valid(b""));
        assert!(!is_valid(&[b'k'; MAX_LEN + 1]));
        assert!(!is_valid(b"tab\there"));
        assert!(!is_valid("caf\u{e9}".as_bytes()));
    }
}
