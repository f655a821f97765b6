//! A call to coupond's remote-code callback as a whole: its body read as JSON or as a form
//! (Antavo documents the request as a PHP array, which platforms post either way), what makes
//! a call a retry of an earlier one, and whether it agrees with the pool its key is bound to.
//!
//! Retries: a call the platform marks (an `Idempotency-Key` or `webhook-id` header, or an
//! `idempotency_key` or `request_id` field) is a retry exactly when an earlier call carried the
//! same mark. An unmarked call is a retry when an earlier one within the retry window was
//! identical in every field; any difference (another value, another reward id) is a new request.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{
    discount::DiscountType,
    remote::{RemoteBodyError, RemoteCodeRequest, json_object, scalar},
};

/// Body fields a platform may use to mark its retries.
const MARK_FIELDS: [&str; 2] = ["idempotency_key", "request_id"];
/// A mark is stored in an index, as every idempotency key is: it must stay short.
const MAX_MARK_LEN: usize = 255;

/// How a call is recognised when it comes again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// The platform's own mark: the same mark is the same request, whenever it comes.
    Marked(String),
    /// A digest of every field: the same digest within the retry window is a retry.
    Identical(String),
}

impl Retry {
    /// A key naming this request among the pool's callback calls.
    pub fn key(&self) -> String {
        match self {
            Retry::Marked(mark) => format!("mark:{mark}"),
            Retry::Identical(digest) => format!("same:{digest}"),
        }
    }

    /// Whether an earlier call with this key still answers this one, given whether that call
    /// came within the retry window.
    pub fn replays(&self, within_window: bool) -> bool {
        matches!(self, Retry::Marked(_)) || within_window
    }
}

#[derive(Debug, Clone)]
pub struct RemoteCall {
    pub request: RemoteCodeRequest,
    pub retry: Retry,
    /// A digest of every field, to tell a reused mark from a retry.
    pub digest: String,
}

impl RemoteCall {
    /// Reads a body posted as `application/x-www-form-urlencoded` when the content type says
    /// so, as JSON otherwise (platforms often send none). `marked` is a retry mark sent as a
    /// header.
    pub fn parse(
        content_type: Option<&str>,
        body: &[u8],
        marked: Option<&str>,
    ) -> Result<RemoteCall, RemoteBodyError> {
        let is_form = content_type.is_some_and(|t| {
            t.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
        let object = if is_form {
            form_object(body)?
        } else {
            json_object(body)?
        };
        let request = RemoteCodeRequest::from_object(&object)?;
        let digest = digest(&object);
        let mut mark = marked
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(String::from);
        for field in MARK_FIELDS {
            if mark.is_none() {
                mark = scalar(&object, field)?;
            }
        }
        if mark
            .as_ref()
            .is_some_and(|m| m.chars().count() > MAX_MARK_LEN)
        {
            return Err(RemoteBodyError::new(
                "idempotency_key",
                "is longer than 255 characters",
            ));
        }
        let retry = match mark {
            Some(mark) => Retry::Marked(mark),
            None => Retry::Identical(digest.clone()),
        };
        Ok(RemoteCall {
            request,
            retry,
            digest,
        })
    }
}

/// A form body as fields; a name given twice keeps its last value, as PHP reads it.
fn form_object(body: &[u8]) -> Result<Map<String, Value>, RemoteBodyError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| RemoteBodyError::new("body", "is not valid UTF-8"))?;
    let mut object = Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        object.insert(form_decode(name)?, Value::String(form_decode(value)?));
    }
    Ok(object)
}

/// `+` is a space and `%XX` a byte; the bytes must be UTF-8.
fn form_decode(text: &str) -> Result<String, RemoteBodyError> {
    let bad = || RemoteBodyError::new("body", "is not valid form encoding");
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(b) = input.next() {
        bytes.push(match b {
            b'+' => b' ',
            b'%' => {
                let hex = [input.next().ok_or_else(bad)?, input.next().ok_or_else(bad)?];
                let hex = std::str::from_utf8(&hex).map_err(|_| bad())?;
                u8::from_str_radix(hex, 16).map_err(|_| bad())?
            }
            other => other,
        });
    }
    String::from_utf8(bytes).map_err(|_| bad())
}

/// Every field, scalars as the text they are read as (so `20` and `"20"` are the same call),
/// in name order.
fn digest(object: &Map<String, Value>) -> String {
    let canonical: BTreeMap<&str, String> = object
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.trim().to_string(),
                other => other.to_string(),
            };
            (name.as_str(), text)
        })
        .collect();
    let mut hasher = Sha256::new();
    for (name, text) in canonical {
        hasher.update(name.len().to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(text.len().to_le_bytes());
        hasher.update(text.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Why a request disagrees with its pool: the field and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub field: &'static str,
    pub reason: String,
}

/// Whether the request's `type`, `coupon_percentage` and `value` agree with the pool it is bound
/// to (`discount_type`, `value` in minor units or basis points). Absent fields agree. A
/// percentage pool is checked on `coupon_percentage` (Antavo's `value` then carries no
/// number); an amount or gift card pool on `value`, read as minor units (as coupond sends
/// it) or as major units with two decimals.
pub fn check_agrees(
    request: &RemoteCodeRequest,
    discount_type: DiscountType,
    pool_value: Option<i64>,
) -> Result<(), Mismatch> {
    if let Some(kind) = &request.kind
        && !kind.eq_ignore_ascii_case(discount_type.as_str())
    {
        return Err(Mismatch {
            field: "type",
            reason: format!(
                "the request is for a `{kind}` coupon; the pool gives `{}` coupons",
                discount_type.as_str()
            ),
        });
    }
    let percentage = discount_type == DiscountType::Percentage;
    if let Some(p) = &request.coupon_percentage
        && !(percentage && hundredths(p).is_some() && hundredths(p) == pool_value)
    {
        return Err(Mismatch {
            field: "coupon_percentage",
            reason: format!(
                "the request asks for {p}%; the pool gives {}",
                shown(discount_type, pool_value)
            ),
        });
    }
    if let Some(v) = &request.value
        && matches!(discount_type, DiscountType::Amount | DiscountType::GiftCard)
    {
        let as_minor = hundredths(v).map(|h| h / 100).filter(|_| !v.contains('.'));
        let agrees =
            pool_value.is_some() && (as_minor == pool_value || hundredths(v) == pool_value);
        if !agrees {
            return Err(Mismatch {
                field: "value",
                reason: format!(
                    "the request asks for a value of {v}; the pool gives {}",
                    shown(discount_type, pool_value)
                ),
            });
        }
    }
    Ok(())
}

fn shown(discount_type: DiscountType, value: Option<i64>) -> String {
    match (discount_type, value) {
        (DiscountType::Percentage, Some(bp)) => format!("{}%", super::remote::percent_text(bp)),
        (_, Some(v)) => format!("{v} (minor units)"),
        (kind, None) => format!("`{}` coupons", kind.as_str()),
    }
}

/// A decimal number times 100, when it has at most two decimals (`12.5` is 1250, `20` is
/// 2000); None for anything else.
fn hundredths(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let fraction = fraction.trim_end_matches('0');
    let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !numeric(whole) || !numeric(fraction) || fraction.len() > 2 {
        return None;
    }
    let cents: i64 = format!("{fraction:0<2}").parse().ok()?;
    let value = whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)?;
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(content_type: Option<&str>, body: &str) -> RemoteCall {
        RemoteCall::parse(content_type, body.as_bytes(), None).unwrap()
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=utf-8");

    #[test]
    fn a_form_body_has_the_same_fields_as_json() {
        let json = call(
            None,
            r#"{"api_key": "k", "customer": "53 6", "type": "percentage", "coupon_percentage": "20"}"#,
        );
        let form = call(
            FORM,
            "api_key=k&customer=53+6&type=percentage&coupon_percentage=20",
        );
        assert_eq!(form.request, json.request);
        assert_eq!(form.digest, json.digest);
        let escaped = call(FORM, "api_key=k%2Fx&customer=%C3%A9");
        assert_eq!(
            (
                escaped.request.api_key.as_str(),
                escaped.request.customer.as_str()
            ),
            ("k/x", "é")
        );
        let e = RemoteCall::parse(FORM, b"api_key=k&customer=%zz", None).unwrap_err();
        assert_eq!(e.field, "body");
        let e = RemoteCall::parse(FORM, b"api_key=k", None).unwrap_err();
        assert_eq!(e.field, "customer");
    }

    #[test]
    fn a_retry_is_what_the_platform_marks_or_an_identical_call() {
        let plain = call(None, r#"{"api_key": "k", "customer": "c", "value": 5}"#);
        let same = call(None, r#"{"customer": "c", "value": "5", "api_key": "k"}"#);
        let other = call(
            None,
            r#"{"api_key": "k", "customer": "c", "value": 5, "reward": 2}"#,
        );
        assert_eq!(plain.retry, same.retry);
        assert_ne!(plain.retry, other.retry);
        assert!(matches!(plain.retry, Retry::Identical(_)));
        assert!(plain.retry.replays(true) && !plain.retry.replays(false));

        let marked = call(
            None,
            r#"{"api_key": "k", "customer": "c", "request_id": "r-1"}"#,
        );
        assert_eq!(marked.retry, Retry::Marked("r-1".into()));
        assert!(marked.retry.replays(false));
        let by_header = RemoteCall::parse(
            None,
            br#"{"api_key": "k", "customer": "c", "request_id": "r-1"}"#,
            Some("h-1"),
        )
        .unwrap();
        assert_eq!(by_header.retry, Retry::Marked("h-1".into()));
        assert_ne!(marked.retry.key(), plain.retry.key());
    }

    #[test]
    fn a_mark_too_long_to_store_is_refused() {
        let long = format!(
            r#"{{"api_key": "k", "customer": "c", "request_id": "{}"}}"#,
            "r".repeat(256)
        );
        assert!(RemoteCall::parse(None, long.as_bytes(), None).is_err());
        // The limit is in characters, as the spec's maxLength counts them, not bytes.
        let wide = format!(
            r#"{{"api_key": "k", "customer": "c", "request_id": "{}"}}"#,
            "é".repeat(255)
        );
        assert!(RemoteCall::parse(None, wide.as_bytes(), None).is_ok());
    }

    fn request(
        kind: Option<&str>,
        value: Option<&str>,
        percentage: Option<&str>,
    ) -> RemoteCodeRequest {
        RemoteCodeRequest {
            api_key: "k".into(),
            customer: "c".into(),
            kind: kind.map(String::from),
            value: value.map(String::from),
            coupon_percentage: percentage.map(String::from),
        }
    }

    #[test]
    fn type_and_value_must_agree_with_the_pool() {
        use sea_orm::ActiveEnum;
        let field = |r: &RemoteCodeRequest, kind: &str, value| {
            let kind = DiscountType::try_from_value(&kind.to_string()).unwrap();
            check_agrees(r, kind, value).map_err(|m| m.field)
        };
        // Antavo's own sample against a 20% pool; the placeholder `value` is not read.
        let sample = request(Some("percentage"), Some("THE COUPON VALUE"), Some("20"));
        assert_eq!(field(&sample, "percentage", Some(2000)), Ok(()));
        assert_eq!(
            field(&sample, "percentage", Some(1250)),
            Err("coupon_percentage")
        );
        assert_eq!(field(&sample, "amount", Some(500)), Err("type"));
        assert_eq!(
            field(
                &request(None, None, Some("12.50")),
                "percentage",
                Some(1250)
            ),
            Ok(())
        );
        assert_eq!(
            field(&request(None, None, Some("20")), "amount", Some(2000)),
            Err("coupon_percentage")
        );
        // Amounts in minor units or in major units with two decimals.
        for v in ["500", "5", "5.00", "5.0"] {
            assert_eq!(
                field(&request(Some("amount"), Some(v), None), "amount", Some(500)),
                Ok(()),
                "{v}"
            );
        }
        for v in ["10", "5.01", "five", "50"] {
            assert_eq!(
                field(&request(Some("amount"), Some(v), None), "amount", Some(500)),
                Err("value"),
                "{v}"
            );
        }
        assert_eq!(
            field(&request(Some("AMOUNT"), None, None), "amount", Some(500)),
            Ok(())
        );
        assert_eq!(
            field(
                &request(Some("amount"), Some("10"), None),
                "percentage",
                Some(2000)
            ),
            Err("type")
        );
        assert_eq!(
            field(&request(None, None, None), "free_shipping", None),
            Ok(())
        );
    }

    #[test]
    fn hundredths_read_plain_decimals_only() {
        assert_eq!(hundredths("12.5"), Some(1250));
        assert_eq!(hundredths("20"), Some(2000));
        assert_eq!(hundredths("0.05"), Some(5));
        assert_eq!(hundredths("-1.5"), Some(-150));
        assert_eq!(hundredths("1.005"), None);
        assert_eq!(hundredths("1e3"), None);
        assert_eq!(hundredths(""), None);
        assert_eq!(hundredths(".5"), None);
    }
}
