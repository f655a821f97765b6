//! A coupon's lifecycle status, as stored (a small integer, to keep 100M-row tables narrow).

use chrono::{DateTime, Utc};
use poem_openapi::Enum;
use sea_orm::{DeriveActiveEnum, EnumIter};
use serde::{Deserialize, Serialize};

// Stored as a small integer in `coupons.status`: never renumber a `num_value`.
#[derive(
    Enum,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "i16", db_type = "SmallInteger")]
pub enum CouponStatus {
    /// In the pool, not issued to anyone yet; redeemable only if anyone may redeem the pool's codes.
    #[sea_orm(num_value = 0)]
    Available,
    /// Issued to a customer and not used up.
    #[sea_orm(num_value = 1)]
    Issued,
    /// No redemptions left: its code-level limit is reached, or its gift card balance is spent or
    /// fell under the card's minimum value (voided). A reversal brings it back.
    #[sea_orm(num_value = 2)]
    Redeemed,
    /// Past its expiry date without being used up.
    #[sea_orm(num_value = 3)]
    Expired,
    /// Invalidated by a program manager.
    #[sea_orm(num_value = 4)]
    Invalidated,
    /// Withdrawn by a revocation (Capillary's "Revoke coupons").
    #[sea_orm(num_value = 5)]
    Revoked,
}

impl CouponStatus {
    pub const ALL: [CouponStatus; 6] = [
        CouponStatus::Available,
        CouponStatus::Issued,
        CouponStatus::Redeemed,
        CouponStatus::Expired,
        CouponStatus::Invalidated,
        CouponStatus::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CouponStatus::Available => "available",
            CouponStatus::Issued => "issued",
            CouponStatus::Redeemed => "redeemed",
            CouponStatus::Expired => "expired",
            CouponStatus::Invalidated => "invalidated",
            CouponStatus::Revoked => "revoked",
        }
    }
}

/// The longest code accepted anywhere.
pub const MAX_CODE_LEN: usize = 64;

/// Why an uploaded code row is refused (a malformed row; duplicates are found by the database).
pub fn check_uploaded_code(code: &str) -> Result<(), &'static str> {
    if code.is_empty() {
        Err("empty code")
    } else if code.chars().count() > MAX_CODE_LEN {
        Err("longer than 64 characters")
    } else if code.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("contains whitespace or control characters")
    } else if code.contains(char::REPLACEMENT_CHARACTER) {
        // Files are read with bytes that are not UTF-8 replaced by U+FFFD (a UTF-16 or Latin-1
        // export, say): such a code is not the one printed on the voucher.
        Err("contains bytes that are not UTF-8 (save the file as UTF-8)")
    } else {
        Ok(())
    }
}

/// Codes given as Omniwallet takes them, in one field (a product form, or a code file's cell):
/// separated by commas (or new lines), blanks dropped.
pub fn split_codes(text: &str) -> Vec<String> {
    text.split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// Characters people type inside codes to group them, ignored by forgiving entry.
const SEPARATORS: [char; 4] = ['-', '_', ' ', '.'];

/// The forgiving-entry key of a code: separators dropped, ASCII letters upper-cased, so
/// `abcd-1234` and `ABCD1234` share a key. Must agree with the SQL expression the coupons index
/// is built on (`migration::CODE_LOOKUP_KEY`). `None` for codes with other than ASCII
/// characters: databases upper-case those by their locale, so such codes match exactly only.
pub fn lookup_key(code: &str) -> Option<String> {
    if !code.is_ascii() {
        return None;
    }
    let key: String = code
        .chars()
        .filter(|c| !SEPARATORS.contains(c))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (!key.is_empty()).then_some(key)
}

/// A change a program manager or a till makes to a coupon after it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Withdraws an available or issued coupon (Antavo: unassigned or claimed only).
    Invalidate,
    /// Takes an issued coupon back from its holder, leaving it available.
    Unassign,
    /// Hands an issued coupon to another customer.
    Transfer,
    /// Confirms a held redemption: the coupon must still be redeemable.
    Confirm,
    /// Undoes a redemption. Expired, invalidated and revoked coupons stay as they are
    /// (Capillary: expired coupons cannot be reversed; revoked ones are unredeemable).
    Reverse,
}

impl Change {
    fn allowed_from(self) -> &'static [CouponStatus] {
        match self {
            Change::Invalidate | Change::Confirm => {
                &[CouponStatus::Available, CouponStatus::Issued]
            }
            Change::Unassign | Change::Transfer => &[CouponStatus::Issued],
            Change::Reverse => &[
                CouponStatus::Available,
                CouponStatus::Issued,
                CouponStatus::Redeemed,
            ],
        }
    }

    fn past_tense(self) -> &'static str {
        match self {
            Change::Invalidate => "invalidated",
            Change::Unassign => "unassigned",
            Change::Transfer => "transferred",
            Change::Confirm => "redeemed",
            Change::Reverse => "reversed",
        }
    }

    /// [`Change::check`] on the status the coupon has at `now`. A used-up coupon past its
    /// expiry cannot be reversed either: that would hand back an expired coupon (Capillary).
    pub fn check_at(
        self,
        stored: CouponStatus,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let past = expires_at.is_some_and(|at| now > at);
        let status = match status_at(stored, expires_at, now) {
            CouponStatus::Redeemed if past && self == Change::Reverse => CouponStatus::Expired,
            status => status,
        };
        self.check(status)
    }

    /// Refuses the change from `status` with a sentence naming the status.
    pub fn check(self, status: CouponStatus) -> Result<(), String> {
        let allowed = self.allowed_from();
        if allowed.contains(&status) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        Err(format!(
            "the coupon is {}; only {} coupons can be {}",
            status.as_str(),
            names.join(" or "),
            self.past_tense()
        ))
    }
}

/// The status a coupon has at `now`: an available or issued coupon past its expiry is expired
/// even before the expiry sweep writes it, so no read shows it as usable.
pub fn status_at(
    stored: CouponStatus,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> CouponStatus {
    let past = expires_at.is_some_and(|at| now > at);
    match stored {
        CouponStatus::Available | CouponStatus::Issued if past => CouponStatus::Expired,
        other => other,
    }
}

/// What a coupon goes back to when a redemption that used it up is reversed: its holder's, or
/// the pool's if nobody holds it (a shared code redeemed anonymously).
pub fn status_after_reversal(status: CouponStatus, holder: Option<i64>) -> CouponStatus {
    match (status, holder) {
        (CouponStatus::Redeemed, Some(_)) => CouponStatus::Issued,
        (CouponStatus::Redeemed, None) => CouponStatus::Available,
        (other, _) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_split_on_commas_and_lines() {
        assert_eq!(
            split_codes(" A1, B2,,C3\nD4 "),
            vec!["A1", "B2", "C3", "D4"]
        );
        assert!(split_codes(" , ").is_empty());
    }

    #[test]
    fn stored_values_round_trip_and_are_stable() {
        use sea_orm::{ActiveEnum, Iterable};
        // The numbers rows hold (`coupons.status`), and the names the API shows.
        let stored: Vec<(CouponStatus, i16, &str)> = CouponStatus::iter()
            .map(|s| (s, s.to_value(), s.as_str()))
            .collect();
        assert_eq!(
            stored,
            [
                (CouponStatus::Available, 0, "available"),
                (CouponStatus::Issued, 1, "issued"),
                (CouponStatus::Redeemed, 2, "redeemed"),
                (CouponStatus::Expired, 3, "expired"),
                (CouponStatus::Invalidated, 4, "invalidated"),
                (CouponStatus::Revoked, 5, "revoked"),
            ]
        );
        assert_eq!(CouponStatus::iter().collect::<Vec<_>>(), CouponStatus::ALL);
        for (status, n, name) in stored {
            assert_eq!(CouponStatus::try_from_value(&n).unwrap(), status);
            assert_eq!(serde_json::to_value(status).unwrap(), name);
        }
        assert!(CouponStatus::try_from_value(&6).is_err());
    }

    #[test]
    fn uploaded_codes_must_be_printable_and_short() {
        assert!(check_uploaded_code("SUMMER-50").is_ok());
        assert!(check_uploaded_code("").is_err());
        assert!(check_uploaded_code("A B").is_err());
        assert!(check_uploaded_code(&"X".repeat(65)).is_err());
        let latin1 = String::from_utf8_lossy(b"CAF\xc9-1");
        assert!(check_uploaded_code(&latin1).is_err());
    }

    #[test]
    fn lookup_keys_ignore_case_and_separators() {
        assert_eq!(lookup_key("abcd-1234").as_deref(), Some("ABCD1234"));
        assert_eq!(lookup_key("ABCD1234").as_deref(), Some("ABCD1234"));
        assert_eq!(lookup_key(" ab_cd.12 34 ").as_deref(), Some("ABCD1234"));
        assert_eq!(lookup_key("--"), None);
        assert_eq!(lookup_key("café"), None);
    }

    #[test]
    fn lookup_key_agrees_with_the_index_expression() {
        // The SQL drops exactly these separators and upper-cases; the Rust side must too.
        for sep in SEPARATORS {
            let quoted = format!("'{sep}'");
            assert!(migration::CODE_LOOKUP_KEY.contains(&quoted), "{sep:?}");
        }
        assert_eq!(
            migration::CODE_LOOKUP_KEY.matches("REPLACE(").count(),
            SEPARATORS.len()
        );
    }

    #[test]
    fn changes_are_refused_naming_the_status() {
        assert_eq!(Change::Invalidate.check(CouponStatus::Available), Ok(()));
        assert_eq!(Change::Invalidate.check(CouponStatus::Issued), Ok(()));
        assert_eq!(
            Change::Invalidate
                .check(CouponStatus::Redeemed)
                .unwrap_err(),
            "the coupon is redeemed; only available or issued coupons can be invalidated"
        );
        assert!(Change::Unassign.check(CouponStatus::Available).is_err());
        assert_eq!(Change::Transfer.check(CouponStatus::Issued), Ok(()));
        let revoked = Change::Reverse.check(CouponStatus::Revoked).unwrap_err();
        assert!(revoked.starts_with("the coupon is revoked;"), "{revoked}");
        for status in [
            CouponStatus::Expired,
            CouponStatus::Invalidated,
            CouponStatus::Revoked,
        ] {
            assert!(Change::Reverse.check(status).is_err(), "{status:?}");
        }
        assert_eq!(Change::Reverse.check(CouponStatus::Redeemed), Ok(()));
        assert!(Change::Confirm.check(CouponStatus::Revoked).is_err());
    }

    #[test]
    fn a_coupon_past_its_expiry_is_expired_for_reads_and_changes() {
        use CouponStatus::*;
        let now = Utc::now();
        let past = Some(now - chrono::Duration::seconds(1));
        let future = Some(now + chrono::Duration::seconds(1));
        assert_eq!(status_at(Issued, past, now), Expired);
        assert_eq!(status_at(Available, past, now), Expired);
        assert_eq!(status_at(Issued, future, now), Issued);
        assert_eq!(status_at(Issued, None, now), Issued);
        assert_eq!(status_at(Redeemed, past, now), Redeemed);
        assert_eq!(status_at(Revoked, past, now), Revoked);
        assert!(Change::Invalidate.check_at(Issued, past, now).is_err());
        assert!(Change::Reverse.check_at(Redeemed, past, now).is_err());
        assert_eq!(Change::Reverse.check_at(Redeemed, future, now), Ok(()));
    }

    #[test]
    fn a_reversal_gives_a_used_up_coupon_back_to_its_holder_or_the_pool() {
        use CouponStatus::*;
        assert_eq!(status_after_reversal(Redeemed, Some(7)), Issued);
        assert_eq!(status_after_reversal(Redeemed, None), Available);
        assert_eq!(status_after_reversal(Issued, Some(7)), Issued);
        assert_eq!(status_after_reversal(Available, None), Available);
    }
}
