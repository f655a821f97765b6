//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), for the webhooks we send and
//! the signed requests we receive.
//!
//! A message is signed with HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` and the
//! `webhook-signature` header carries `v1,<base64 of the MAC>`; it may hold several
//! space-separated signatures (during a secret rotation) and any valid one is enough.
//!
//! A secret is the base64 of the key, with or without the `whsec_` prefix and its padding: the
//! prefix only marks what the string is, so `whsec_AQID` and `AQID` are the same key, as in the
//! Standard Webhooks reference libraries. A secret that is not base64 is refused when it is
//! configured, never used as text (a receiver built on those libraries could not check it).

use base64::{
    Engine,
    engine::{
        DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig,
        general_purpose::{STANDARD, STANDARD_NO_PAD},
    },
};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Largest difference, either way, between `webhook-timestamp` and now: older messages may be
/// replays, and ones from the future come from a badly wrong clock.
pub const TOLERANCE_SECS: i64 = 300;

const SECRET_PREFIX: &str = "whsec_";

/// Secrets are often pasted without their trailing `=`, so both padded and unpadded decode.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// `webhook-timestamp` is more than [`TOLERANCE_SECS`] away from now.
    TimestampOutOfTolerance,
    /// The header is well formed but no `v1` signature in it matches.
    NoMatchingSignature,
    /// The header is empty or an entry is not `version,signature`.
    MalformedHeader,
    /// The secret is empty or not base64.
    BadSecret,
}

impl SignatureError {
    /// Machine-readable reason, used in problem+json responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Self::NoMatchingSignature => "no_matching_signature",
            Self::MalformedHeader => "malformed_signature_header",
            Self::BadSecret => "bad_secret",
        }
    }
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TimestampOutOfTolerance => {
                "webhook-timestamp is more than 5 minutes away from the current time"
            }
            Self::NoMatchingSignature => "no signature in webhook-signature matches the message",
            Self::MalformedHeader => {
                "webhook-signature must be space-separated `v1,<base64>` entries"
            }
            Self::BadSecret => {
                "the signing secret must be base64 (optionally prefixed `whsec_`) of a non-empty key"
            }
        })
    }
}

impl std::error::Error for SignatureError {}

/// The HMAC key a secret stands for (see the module docs). Lets a secret be checked when it is
/// configured rather than when the first message is signed.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = SECRET_BASE64
        .decode(encoded)
        .map_err(|_| SignatureError::BadSecret)?;
    // HMAC accepts an empty key, but a message "signed" with it proves nothing.
    if key.is_empty() {
        return Err(SignatureError::BadSecret);
    }
    Ok(key)
}

fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` value for a message: `v1,<base64>`.
pub fn sign(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let key = secret_key(secret)?;
    let tag = mac(&key, msg_id, timestamp, body).finalize().into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(tag)))
}

/// Checks a received message against its `webhook-signature` header at time `now` (unix seconds).
///
/// Entries with versions other than `v1` (such as asymmetric `v1a`) are skipped, as the standard
/// asks. MAC comparison is constant time.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    signature_header: &str,
    now: i64,
) -> Result<(), SignatureError> {
    let key = secret_key(secret)?;
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::TimestampOutOfTolerance);
    }
    let expected = mac(&key, msg_id, timestamp, body);
    let mut entries = signature_header.split_ascii_whitespace().peekable();
    if entries.peek().is_none() {
        return Err(SignatureError::MalformedHeader);
    }
    let mut malformed = false;
    for entry in entries {
        let Some((version, signature)) = entry.split_once(',') else {
            malformed = true;
            continue;
        };
        if version.is_empty() || signature.is_empty() {
            malformed = true;
            continue;
        }
        if version != "v1" {
            continue;
        }
        // Signers differ on padding; the MAC length is fixed, so either form is unambiguous.
        let decoded = STANDARD
            .decode(signature)
            .or_else(|_| STANDARD_NO_PAD.decode(signature));
        match decoded {
            Ok(tag) if expected.clone().verify_slice(&tag).is_ok() => return Ok(()),
            Ok(_) => {}
            Err(_) => malformed = true,
        }
    }
    // A valid signature beside a garbled one passes above; only report the garbling when
    // nothing matched, since it is the likelier cause.
    Err(if malformed {
        SignatureError::MalformedHeader
    } else {
        SignatureError::NoMatchingSignature
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks reference libraries' test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn check(header: &str) -> Result<(), SignatureError> {
        verify(SECRET, MSG_ID, TS, BODY, header, TS)
    }

    #[test]
    fn signs_the_published_test_vector() {
        assert_eq!(sign(SECRET, MSG_ID, TS, BODY).unwrap(), EXPECTED);
    }

    #[test]
    fn verifies_the_published_test_vector() {
        assert_eq!(check(EXPECTED), Ok(()));
        // Unpadded base64 and surrounding whitespace are accepted.
        assert_eq!(
            check(&format!("  {} ", EXPECTED.trim_end_matches('='))),
            Ok(())
        );
    }

    #[test]
    fn whsec_secrets_decode_with_or_without_padding() {
        assert_eq!(secret_key("whsec_AQ==").unwrap(), vec![1]);
        assert_eq!(secret_key("whsec_AQ").unwrap(), vec![1]);
    }

    #[test]
    fn secrets_without_the_prefix_are_the_same_base64_key() {
        assert_eq!(secret_key("czNjcmV0").unwrap(), b"s3cret");
        // The published vector's key without its prefix signs identically.
        assert_eq!(
            sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", MSG_ID, TS, BODY).unwrap(),
            EXPECTED
        );
        let header = sign("czNjcmV0", MSG_ID, TS, BODY).unwrap();
        assert_eq!(
            verify("whsec_czNjcmV0", MSG_ID, TS, BODY, &header, TS),
            Ok(())
        );
        // A string that is not base64 is no key at all.
        assert_eq!(
            secret_key("s3cr3t-s3cr3t-s3cr3t"),
            Err(SignatureError::BadSecret)
        );
    }

    #[test]
    fn bad_secrets_are_refused() {
        for secret in ["", "whsec_", "whsec_not base64!"] {
            assert_eq!(
                sign(secret, MSG_ID, TS, BODY),
                Err(SignatureError::BadSecret)
            );
            assert_eq!(
                verify(secret, MSG_ID, TS, BODY, EXPECTED, TS),
                Err(SignatureError::BadSecret)
            );
        }
    }

    #[test]
    fn tampered_messages_fail() {
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(
            verify(SECRET, MSG_ID, TS, tampered, EXPECTED, TS),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            verify(SECRET, "msg_other", TS, BODY, EXPECTED, TS),
            Err(SignatureError::NoMatchingSignature)
        );
        // The timestamp is signed too, not only checked for freshness.
        assert_eq!(
            verify(SECRET, MSG_ID, TS + 1, BODY, EXPECTED, TS),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn wrong_secret_fails() {
        assert_eq!(
            verify(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSv",
                MSG_ID,
                TS,
                BODY,
                EXPECTED,
                TS
            ),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_fail() {
        let at = |now| verify(SECRET, MSG_ID, TS, BODY, EXPECTED, now);
        assert_eq!(at(TS + TOLERANCE_SECS), Ok(()));
        assert_eq!(at(TS - TOLERANCE_SECS), Ok(()));
        assert_eq!(
            at(TS + TOLERANCE_SECS + 1),
            Err(SignatureError::TimestampOutOfTolerance)
        );
        assert_eq!(
            at(TS - TOLERANCE_SECS - 1),
            Err(SignatureError::TimestampOutOfTolerance)
        );
        // Extreme values must not overflow.
        assert_eq!(at(i64::MIN), Err(SignatureError::TimestampOutOfTolerance));
        assert_eq!(at(i64::MAX), Err(SignatureError::TimestampOutOfTolerance));
    }

    #[test]
    fn any_valid_signature_in_the_header_passes() {
        let old = sign("whsec_AQID", MSG_ID, TS, BODY).unwrap();
        assert_eq!(check(&format!("{old} {EXPECTED}")), Ok(()));
        assert_eq!(check(&format!("{EXPECTED} {old}")), Ok(()));
        // Other versions are skipped, and a garbled entry does not hide a valid one.
        assert_eq!(check(&format!("v1a,AAAA v2,BBBB {EXPECTED}")), Ok(()));
        assert_eq!(check(&format!("nonsense v1,%%% {EXPECTED}")), Ok(()));
        assert_eq!(check(&old), Err(SignatureError::NoMatchingSignature));
        assert_eq!(
            check("v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn malformed_headers_are_reported() {
        for header in [
            "",
            "   ",
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,",
            ",abc",
            "v1,not*base64",
        ] {
            assert_eq!(
                check(header),
                Err(SignatureError::MalformedHeader),
                "{header:?}"
            );
        }
    }

    #[test]
    fn errors_have_stable_reasons_and_messages() {
        assert_eq!(
            SignatureError::TimestampOutOfTolerance.as_str(),
            "timestamp_out_of_tolerance"
        );
        assert!(
            SignatureError::MalformedHeader
                .to_string()
                .contains("webhook-signature")
        );
    }
}
