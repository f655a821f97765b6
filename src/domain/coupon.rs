//! A coupon's lifecycle status, as stored (a small integer, to keep 100M-row tables narrow).

use poem_openapi::Enum;
use serde::{Deserialize, Serialize};

#[derive(Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum CouponStatus {
    /// In the pool, not issued to anyone yet; redeemable only if anyone may redeem the pool's codes.
    Available,
    /// Issued to a customer and not used up.
    Issued,
    /// No redemptions left: its code-level limit is reached or its gift card balance is spent.
    Redeemed,
    /// Past its expiry date without being used up.
    Expired,
    /// Invalidated by a program manager, or a gift card voided under its minimum value.
    Invalidated,
    /// Withdrawn by a revocation (Capillary's "Revoke coupons").
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

    /// The stored value; never renumber, rows hold these.
    pub fn as_i16(self) -> i16 {
        match self {
            CouponStatus::Available => 0,
            CouponStatus::Issued => 1,
            CouponStatus::Redeemed => 2,
            CouponStatus::Expired => 3,
            CouponStatus::Invalidated => 4,
            CouponStatus::Revoked => 5,
        }
    }

    pub fn from_i16(v: i16) -> Option<CouponStatus> {
        Self::ALL.into_iter().find(|s| s.as_i16() == v)
    }

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

    pub fn parse(s: &str) -> Option<CouponStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
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
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_round_trip_and_are_stable() {
        for s in CouponStatus::ALL {
            assert_eq!(CouponStatus::from_i16(s.as_i16()), Some(s));
        }
        assert_eq!(CouponStatus::Available.as_i16(), 0);
        assert_eq!(CouponStatus::Revoked.as_i16(), 5);
        assert_eq!(CouponStatus::from_i16(9), None);
    }

    #[test]
    fn uploaded_codes_must_be_printable_and_short() {
        assert!(check_uploaded_code("SUMMER-50").is_ok());
        assert!(check_uploaded_code("").is_err());
        assert!(check_uploaded_code("A B").is_err());
        assert!(check_uploaded_code(&"X".repeat(65)).is_err());
    }
}
