//! The body of Antavo's "remote" coupon source call, which coupond both receives (as a remote
//! source, answering `{"code": "..."}`) and sends (to an external source for `remote` pools):
//!
//! ```json
//! {"api_key": "...", "coupon_percentage": "20", "value": "THE COUPON VALUE",
//!  "customer": "53626328374843843", "type": "percentage"}
//! ```
//!
//! Callers are loose about types (a customer id or percentage may be a JSON number), so every
//! field takes a string or a number, and fields we do not know are ignored.

use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// What is stored of a remote source (the secret stays server-side).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, FromJsonQueryResult)]
pub struct StoredRemote {
    pub url: String,
    pub secret: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    pub timeout_ms: u32,
    pub retries: u32,
}

/// Why a remote-source body was refused, naming the field (`body` for the document as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBodyError {
    pub field: &'static str,
    pub reason: String,
}

impl RemoteBodyError {
    pub(super) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for RemoteBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for RemoteBodyError {}

/// A request for one code. Optional fields are `None` when absent, `null` or blank.
#[derive(Clone, PartialEq)]
pub struct RemoteCodeRequest {
    pub api_key: String,
    pub customer: String,
    /// The `type` field, e.g. `percentage`.
    pub kind: Option<String>,
    pub value: Option<String>,
    pub coupon_percentage: Option<String>,
}

// Written by hand so the API key never reaches a log line through `{:?}`.
impl std::fmt::Debug for RemoteCodeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCodeRequest")
            .field("api_key", &"<redacted>")
            .field("customer", &self.customer)
            .field("kind", &self.kind)
            .field("value", &self.value)
            .field("coupon_percentage", &self.coupon_percentage)
            .finish()
    }
}

impl RemoteCodeRequest {
    /// Lenient parse of a JSON body: strings or numbers (integers or decimals, rendered without
    /// exponent) are accepted for every field, surrounding whitespace is trimmed, extra fields
    /// are ignored; `api_key` and `customer` are required and non-empty.
    pub fn parse(body: &[u8]) -> Result<RemoteCodeRequest, RemoteBodyError> {
        Self::from_object(&json_object(body)?)
    }

    /// The request in a body already read as fields, from JSON or from a form.
    pub fn from_object(object: &Map<String, Value>) -> Result<RemoteCodeRequest, RemoteBodyError> {
        let required = |field: &'static str| {
            scalar(object, field)?
                .ok_or_else(|| RemoteBodyError::new(field, "is required and must not be empty"))
        };
        Ok(RemoteCodeRequest {
            api_key: required("api_key")?,
            customer: required("customer")?,
            kind: scalar(object, "type")?,
            value: scalar(object, "value")?,
            coupon_percentage: scalar(object, "coupon_percentage")?,
        })
    }

    /// The body we send to an external remote source: every field as a string, as Antavo sends
    /// them; absent optional fields are left out.
    pub fn to_json(&self) -> Value {
        let mut body = json!({"api_key": self.api_key, "customer": self.customer});
        for (name, field) in [
            ("type", &self.kind),
            ("value", &self.value),
            ("coupon_percentage", &self.coupon_percentage),
        ] {
            if let Some(v) = field {
                body[name] = Value::String(v.clone());
            }
        }
        body
    }
}

/// Parses the external source's answer `{"code": "..."}` (extra fields ignored, the code
/// trimmed): a missing, empty or non-string code is an error with a clear reason.
pub fn parse_code_response(body: &[u8]) -> Result<String, RemoteBodyError> {
    let object = json_object(body)?;
    match object.get("code") {
        None | Some(Value::Null) => Err(RemoteBodyError::new("code", "is missing")),
        Some(Value::String(code)) if code.trim().is_empty() => {
            Err(RemoteBodyError::new("code", "is empty"))
        }
        Some(Value::String(code)) => Ok(code.trim().to_string()),
        Some(other) => Err(RemoteBodyError::new(
            "code",
            format!("must be a string, got {}", json_type(other)),
        )),
    }
}

/// Basis points as the percentage Antavo's `coupon_percentage` carries: `2000` is `"20"`,
/// `1250` is `"12.5"`, `5` is `"0.05"`.
pub fn percent_text(basis_points: i64) -> String {
    let sign = if basis_points < 0 { "-" } else { "" };
    let bp = basis_points.unsigned_abs();
    let (whole, hundredths) = (bp / 100, bp % 100);
    match hundredths {
        0 => format!("{sign}{whole}"),
        h if h % 10 == 0 => format!("{sign}{whole}.{}", h / 10),
        h => format!("{sign}{whole}.{h:02}"),
    }
}

pub(super) fn json_object(body: &[u8]) -> Result<Map<String, Value>, RemoteBodyError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(RemoteBodyError::new(
            "body",
            format!("must be a JSON object, got {}", json_type(&other)),
        )),
        Err(e) => Err(RemoteBodyError::new(
            "body",
            format!("is not valid JSON: {e}"),
        )),
    }
}

/// A field as text: `None` when absent, `null` or blank.
pub(super) fn scalar(
    object: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, RemoteBodyError> {
    let text = match object.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => number_text(n).ok_or_else(|| {
            RemoteBodyError::new(
                field,
                "is a number too large to read exactly; send it as a string",
            )
        })?,
        Some(other) => {
            return Err(RemoteBodyError::new(
                field,
                format!("must be a string or a number, got {}", json_type(other)),
            ));
        }
    };
    Ok((!text.is_empty()).then_some(text))
}

/// Integers exactly as written; decimals in plain notation (`f64`'s `Display` never uses an
/// exponent, unlike serde_json's). `None` when the number did not survive parsing exactly.
fn number_text(n: &serde_json::Number) -> Option<String> {
    if let Some(i) = n.as_u64() {
        return Some(i.to_string());
    }
    if let Some(i) = n.as_i64() {
        return Some(i.to_string());
    }
    let f = n.as_f64()?;
    // Integers beyond 64 bits arrive as floats; past 2^53 their last digits are already lost, and
    // a customer id that is off by one names someone else.
    const EXACT_LIMIT: f64 = (1u64 << 53) as f64;
    if f.fract() == 0.0 && f.abs() >= EXACT_LIMIT {
        return None;
    }
    Some(f.to_string())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> RemoteBodyError {
        RemoteCodeRequest::parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn parses_the_antavo_sample() {
        let body = br#"{"api_key": "...", "coupon_percentage": "20", "value": "THE COUPON VALUE", "customer": "53626328374843843", "type": "percentage"}"#;
        assert_eq!(
            RemoteCodeRequest::parse(body).unwrap(),
            RemoteCodeRequest {
                api_key: "...".into(),
                customer: "53626328374843843".into(),
                kind: Some("percentage".into()),
                value: Some("THE COUPON VALUE".into()),
                coupon_percentage: Some("20".into()),
            }
        );
    }

    #[test]
    fn numbers_are_read_as_text() {
        let req = RemoteCodeRequest::parse(
            br#"{"api_key": 42, "customer": 53626328374843843, "coupon_percentage": 20, "value": 12.5}"#,
        )
        .unwrap();
        assert_eq!(req.api_key, "42");
        assert_eq!(req.customer, "53626328374843843");
        assert_eq!(req.coupon_percentage.as_deref(), Some("20"));
        assert_eq!(req.value.as_deref(), Some("12.5"));

        let req = RemoteCodeRequest::parse(
            br#"{"api_key": "k", "customer": -7, "value": 1e-7, "coupon_percentage": 2.5E1}"#,
        )
        .unwrap();
        assert_eq!(req.customer, "-7");
        assert_eq!(req.value.as_deref(), Some("0.0000001"));
        assert_eq!(req.coupon_percentage.as_deref(), Some("25"));
        // Largest 64-bit integer still exact.
        let req =
            RemoteCodeRequest::parse(br#"{"api_key": "k", "customer": 18446744073709551615}"#)
                .unwrap();
        assert_eq!(req.customer, "18446744073709551615");
    }

    #[test]
    fn numbers_that_lost_digits_are_refused() {
        let e = err(r#"{"api_key": "k", "customer": 123456789012345678901234}"#);
        assert_eq!(e.field, "customer");
        assert!(e.reason.contains("send it as a string"), "{e}");
    }

    #[test]
    fn extra_fields_are_ignored_and_optional_ones_may_be_absent() {
        let req = RemoteCodeRequest::parse(
            br#"{"api_key": "k", "customer": "c", "type": null, "value": "  ", "campaign": {"id": 1}, "tags": [1, 2]}"#,
        )
        .unwrap();
        assert_eq!(
            req,
            RemoteCodeRequest {
                api_key: "k".into(),
                customer: "c".into(),
                kind: None,
                value: None,
                coupon_percentage: None,
            }
        );
    }

    #[test]
    fn required_fields_must_be_present_and_non_empty() {
        assert_eq!(err(r#"{"customer": "c"}"#).field, "api_key");
        assert_eq!(
            err(r#"{"api_key": null, "customer": "c"}"#).field,
            "api_key"
        );
        let e = err(r#"{"api_key": "k", "customer": ""}"#);
        assert_eq!(e.field, "customer");
        assert!(e.reason.contains("must not be empty"));
        assert_eq!(
            err(r#"{"api_key": "k", "customer": "  "}"#).field,
            "customer"
        );
    }

    #[test]
    fn values_are_trimmed() {
        let req = RemoteCodeRequest::parse(br#"{"api_key": " k ", "customer": "\tc\n"}"#).unwrap();
        assert_eq!((req.api_key.as_str(), req.customer.as_str()), ("k", "c"));
    }

    #[test]
    fn other_json_types_are_refused() {
        let e = err(r#"{"api_key": "k", "customer": "c", "type": true}"#);
        assert_eq!(e.field, "type");
        assert_eq!(e.reason, "must be a string or a number, got a boolean");
        assert_eq!(
            err(r#"{"api_key": ["k"], "customer": "c"}"#).field,
            "api_key"
        );
    }

    #[test]
    fn malformed_json_is_refused() {
        for body in ["", "{", r#"{"api_key": "k",}"#, "not json"] {
            let e = err(body);
            assert_eq!(e.field, "body", "{body:?}");
            assert!(e.reason.starts_with("is not valid JSON"), "{e}");
        }
        assert_eq!(err("[1]").reason, "must be a JSON object, got an array");
    }

    #[test]
    fn serialises_for_an_external_source() {
        let full = RemoteCodeRequest {
            api_key: "k".into(),
            customer: "53626328374843843".into(),
            kind: Some("percentage".into()),
            value: Some("V".into()),
            coupon_percentage: Some("20".into()),
        };
        assert_eq!(
            full.to_json(),
            json!({"api_key": "k", "customer": "53626328374843843", "type": "percentage",
                   "value": "V", "coupon_percentage": "20"})
        );
        let round_trip = RemoteCodeRequest::parse(full.to_json().to_string().as_bytes()).unwrap();
        assert_eq!(round_trip, full);

        let minimal = RemoteCodeRequest {
            kind: None,
            value: None,
            coupon_percentage: None,
            ..full
        };
        assert_eq!(
            minimal.to_json(),
            json!({"api_key": "k", "customer": "53626328374843843"})
        );
    }

    #[test]
    fn debug_output_hides_the_api_key() {
        let req =
            RemoteCodeRequest::parse(br#"{"api_key": "secret-key", "customer": "c"}"#).unwrap();
        let debug = format!("{req:?}");
        assert!(!debug.contains("secret-key"), "{debug}");
        assert!(debug.contains("\"c\""), "{debug}");
    }

    #[test]
    fn basis_points_read_as_percentages() {
        let cases = [
            (2000, "20"),
            (1250, "12.5"),
            (1205, "12.05"),
            (5, "0.05"),
            (0, "0"),
            (10000, "100"),
            (-150, "-1.5"),
        ];
        for (bp, text) in cases {
            assert_eq!(percent_text(bp), text, "{bp}");
        }
    }

    #[test]
    fn reads_the_code_from_a_response() {
        assert_eq!(
            parse_code_response(br#"{"code": "SUMMER-AB12"}"#).unwrap(),
            "SUMMER-AB12"
        );
        assert_eq!(
            parse_code_response(br#"{"code": " X1 \n", "ttl": 3}"#).unwrap(),
            "X1"
        );
    }

    #[test]
    fn bad_responses_say_what_is_wrong() {
        let e = |body: &str| parse_code_response(body.as_bytes()).unwrap_err();
        assert_eq!(
            e(r#"{"code": ""}"#),
            RemoteBodyError::new("code", "is empty")
        );
        assert_eq!(e(r#"{"code": "   "}"#).reason, "is empty");
        assert_eq!(
            e(r#"{"coupon": "X"}"#),
            RemoteBodyError::new("code", "is missing")
        );
        assert_eq!(e(r#"{"code": null}"#).reason, "is missing");
        assert_eq!(
            e(r#"{"code": 123}"#),
            RemoteBodyError::new("code", "must be a string, got a number")
        );
        let not_json = e("<html>Bad Gateway</html>");
        assert_eq!(not_json.field, "body");
        assert!(
            not_json.reason.starts_with("is not valid JSON"),
            "{not_json}"
        );
        assert_eq!(e(r#""CODE""#).reason, "must be a JSON object, got a string");
    }
}
