//! Pools (an offer, a coupon series): where codes come from, what they are worth, and the checks
//! a pool's settings must pass.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use sea_orm::{DeriveActiveEnum, EnumIter, FromJsonQueryResult, sea_query::StringLen};
use serde::{Deserialize, Serialize};

pub use super::Invalid;
use super::{currency::Currency, discount::DiscountType};

/// Where a pool's codes come from.
// Stored as its name in `pools.source`: never rename a `string_value`.
#[derive(
    Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum,
)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum PoolSource {
    /// Codes uploaded as CSV or JSON.
    #[sea_orm(string_value = "uploaded")]
    Uploaded,
    /// Codes made from the pattern, on demand at issue time or ahead with `generate`.
    #[sea_orm(string_value = "generated")]
    Generated,
    /// Codes made from the pattern ahead of time in batches (at least 4 placeholders, 1% rule).
    #[sea_orm(string_value = "bulk")]
    Bulk,
    /// One code for everyone (a pattern without placeholders).
    #[sea_orm(string_value = "common")]
    Common,
    /// Half fixed, half random codes derived from a sample code.
    #[sea_orm(string_value = "randomized_common")]
    RandomizedCommon,
    /// Codes fetched from an external URL at issue time.
    #[sea_orm(string_value = "remote")]
    Remote,
}

impl PoolSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolSource::Uploaded => "uploaded",
            PoolSource::Generated => "generated",
            PoolSource::Bulk => "bulk",
            PoolSource::Common => "common",
            PoolSource::RandomizedCommon => "randomized_common",
            PoolSource::Remote => "remote",
        }
    }

    /// Sources whose codes come from a pattern.
    pub fn has_pattern(self) -> bool {
        !matches!(self, PoolSource::Uploaded | PoolSource::Remote)
    }

    /// Sources that mint a fresh code at issue time when none is waiting in the pool.
    pub fn mints_on_issue(self) -> bool {
        matches!(self, PoolSource::Generated | PoolSource::RandomizedCommon)
    }
}

/// What a pool's stats count of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock {
    pub source: PoolSource,
    /// Past its end date, or archived: nothing more is issued.
    pub ended: bool,
    /// Codes waiting in the pool.
    pub available: i64,
    /// Codes the pattern can still mint at issue time (sources that mint on issue).
    pub mintable: u128,
    /// The pool's total issual limit and how many it has issued.
    pub max_total: Option<u64>,
    pub issued_ever: i64,
}

/// How many more coupons the pool can issue: None when nobody can know (a remote source) or
/// there is no bound (a common code without a total limit).
pub fn remaining(stock: &Stock) -> Option<i64> {
    if stock.ended {
        return Some(0);
    }
    let left_by_limit = stock
        .max_total
        .map(|max| (i64::try_from(max).unwrap_or(i64::MAX) - stock.issued_ever).max(0));
    let in_stock = match stock.source {
        PoolSource::Remote => return None,
        PoolSource::Common => return left_by_limit,
        source if source.mints_on_issue() => stock
            .available
            .saturating_add(i64::try_from(stock.mintable).unwrap_or(i64::MAX)),
        _ => stock.available,
    };
    Some(left_by_limit.map_or(in_stock, |left| left.min(in_stock)))
}

/// A pool's lifecycle. Pools are never deleted: `archived` stops issuing.
// Stored as its name in `pools.state`: never rename a `string_value`.
#[derive(
    Enum,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    EnumIter,
    DeriveActiveEnum,
)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum PoolState {
    /// Being set up: codes can be added, nothing is issued.
    #[sea_orm(string_value = "draft")]
    Draft,
    /// Issuing and redeeming.
    #[default]
    #[sea_orm(string_value = "active")]
    Active,
    /// Retired: no more issuing; still listed on request.
    #[sea_orm(string_value = "archived")]
    Archived,
}

/// Which existing coupons follow a change of the pool's value (Antavo's update criteria).
#[derive(Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum UpdateCriterion {
    /// Only coupons made from now on get the new value.
    #[default]
    None,
    /// Also coupons nobody holds yet.
    Unassigned,
    /// Also coupons not redeemed (available and issued).
    NotRedeemed,
    /// Every coupon of the pool.
    All,
}

/// How a pool's codes are made and matched (flat in the pool's JSON).
#[derive(
    Object, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, FromJsonQueryResult,
)]
#[serde(default)]
pub struct CodeOptions {
    /// Characters never used at placeholder positions, e.g. ["O", "0", "I", "1"]. List lower-
    /// and upper-case letters separately.
    #[oai(default)]
    pub exclude_chars: Vec<String>,
    /// Phrases that never appear anywhere in a code (case-insensitive).
    #[oai(default)]
    pub exclude_phrases: Vec<String>,
    /// Whether codes carry a prefix. `false` wins over every other prefix setting.
    pub prefix_enabled: Option<bool>,
    /// Custom prefix (at most 10 of A-Z a-z 0-9 _ -, case-sensitive). Shown resolved.
    pub prefix: Option<String>,
    /// Use the org's default prefix instead of a custom one (422 if the org has none).
    #[oai(default)]
    pub use_org_prefix: bool,
    /// Whether codes carry a suffix. `false` wins over every other suffix setting.
    pub suffix_enabled: Option<bool>,
    /// Custom suffix (same rules as the prefix). Shown resolved.
    pub suffix: Option<String>,
    /// Use the org's default suffix.
    #[oai(default)]
    pub use_org_suffix: bool,
    /// Append a check character so a mistyped code is refused as mistyped (422
    /// `invalid_check_character`) instead of being looked for any further.
    #[oai(default)]
    pub check_char: bool,
    /// Forgiving entry: match codes ignoring case and separators (`abcd-1234` finds `ABCD1234`).
    #[oai(default)]
    pub case_insensitive: bool,
    /// randomized_common: a 5 to 10 character sample the pattern is derived from; its first
    /// half is kept, the rest randomised.
    pub sample_code: Option<String>,
}

/// An expiry reminder: sent `days_before` the coupon expires, at `time` (HH:MM, org time).
#[derive(Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    /// Days before expiry.
    pub days_before: u32,
    /// `email` or `sms`.
    pub channel: String,
    /// Local time of day to send, HH:MM in the org's time zone.
    pub time: String,
}

/// A pool's expiry reminders, as its row holds them (a JSON list).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, FromJsonQueryResult)]
#[serde(transparent)]
pub struct Reminders(pub Vec<Reminder>);

impl std::ops::Deref for Reminders {
    type Target = [Reminder];

    fn deref(&self) -> &[Reminder] {
        &self.0
    }
}

/// Checks the money fields of a pool against its discount type.
pub fn validate_value(
    discount_type: DiscountType,
    value: Option<i64>,
    currency: Option<&str>,
) -> Result<(), Invalid> {
    let invalid = |field: &'static str, reason: &str| {
        Err(Invalid {
            field,
            reason: reason.to_string(),
        })
    };
    match (discount_type, value) {
        (DiscountType::FreeShipping, Some(_)) => {
            return invalid("value", "free shipping coupons carry no value");
        }
        (DiscountType::FreeShipping, None) => {}
        (_, None) => return invalid("value", "required for this discount type"),
        (_, Some(v)) if v <= 0 => return invalid("value", "must be positive"),
        (DiscountType::Percentage, Some(v)) if v > 10_000 => {
            return invalid(
                "value",
                "a percentage is in basis points, at most 10000 (100%)",
            );
        }
        _ => {}
    }
    let needs_currency = matches!(discount_type, DiscountType::Amount | DiscountType::GiftCard);
    match currency {
        None if needs_currency => invalid("currency", "required for amount and gift card coupons"),
        Some(c) => Currency::parse(c, "currency").map(|_| ()),
        None => Ok(()),
    }
}

/// A gift card's minimums must leave the card spendable: a minimum value or a minimum
/// redemption above what the card holds would void it or refuse every payment from the start.
pub fn validate_gift_card(
    value: Option<i64>,
    min_value: Option<i64>,
    min_redemption: Option<i64>,
) -> Result<(), Invalid> {
    let Some(value) = value else {
        return Ok(());
    };
    let above = |field: &'static str, min: Option<i64>| match min {
        Some(m) if m > value => Err(Invalid {
            field,
            reason: format!("{m} is more than the card's value of {value}"),
        }),
        Some(m) if m < 0 => Err(Invalid {
            field,
            reason: "must not be negative".into(),
        }),
        _ => Ok(()),
    };
    above("gift_card_min_value", min_value)?;
    above("gift_card_min_redemption", min_redemption)
}

/// Row 14 of the limit table: a third party's (remote) code belongs to the customer it was
/// fetched for, so nobody else may redeem it.
pub fn validate_redemption_for_source(
    source: PoolSource,
    rules: &super::redemption::RedemptionRules,
) -> Result<(), Invalid> {
    if source == PoolSource::Remote && rules.allow_anyone {
        return Err(Invalid {
            field: "redemption.allow_anyone",
            reason: "a remote pool's codes are redeemed only by the customer they were fetched for"
                .into(),
        });
    }
    Ok(())
}

/// Checks a validity window: the end, when set, comes after the start.
pub fn validate_window(
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
) -> Result<(), Invalid> {
    match (starts_at, ends_at) {
        (Some(s), Some(e)) if e <= s => Err(Invalid {
            field: "ends_at",
            reason: "must be after starts_at".into(),
        }),
        _ => Ok(()),
    }
}

pub fn validate_reminders(reminders: &[Reminder]) -> Result<(), Invalid> {
    for r in reminders {
        let time_ok = chrono::NaiveTime::parse_from_str(&r.time, "%H:%M").is_ok();
        if !matches!(r.channel.as_str(), "email" | "sms") {
            return Err(Invalid {
                field: "reminders.channel",
                reason: format!("`{}` is not email or sms", r.channel),
            });
        }
        if !time_ok {
            return Err(Invalid {
                field: "reminders.time",
                reason: format!("`{}` is not a time of day as HH:MM", r.time),
            });
        }
    }
    Ok(())
}

/// Reminders count down to a coupon's expiry: a pool whose coupons never expire (no expiry rule
/// and no end date) would keep them forever unsent.
pub fn validate_reminders_reach(
    reminders: &[Reminder],
    coupons_expire: bool,
) -> Result<(), Invalid> {
    if reminders.is_empty() || coupons_expire {
        return Ok(());
    }
    Err(Invalid {
        field: "reminders",
        reason: "the pool's coupons never expire (expiry mode never and no ends_at), so no \
                 reminder would be sent"
            .into(),
    })
}

/// `update_criterion` and `match_value` steer where a new value goes; without a new value they
/// would do nothing, which the caller did not mean.
pub fn validate_update_criterion(
    criterion: UpdateCriterion,
    match_value: bool,
    value_changes: bool,
) -> Result<(), Invalid> {
    let field = match (value_changes, criterion, match_value) {
        (true, _, _) | (false, UpdateCriterion::None, false) => return Ok(()),
        (false, UpdateCriterion::None, true) => "match_value",
        (false, _, _) => "update_criterion",
    };
    Err(Invalid {
        field,
        reason: format!(
            "{field} applies a new value to existing coupons; this edit changes no value"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_rules_follow_the_discount_type() {
        assert!(validate_value(DiscountType::Amount, Some(500), Some("EUR")).is_ok());
        assert_eq!(
            validate_value(DiscountType::Amount, Some(500), None)
                .unwrap_err()
                .field,
            "currency"
        );
        assert_eq!(
            validate_value(DiscountType::Amount, None, Some("EUR"))
                .unwrap_err()
                .field,
            "value"
        );
        assert_eq!(
            validate_value(DiscountType::Amount, Some(0), Some("EUR"))
                .unwrap_err()
                .field,
            "value"
        );
        assert!(validate_value(DiscountType::Percentage, Some(2000), None).is_ok());
        assert!(validate_value(DiscountType::Percentage, Some(10_001), None).is_err());
        assert!(validate_value(DiscountType::FreeShipping, None, None).is_ok());
        assert!(validate_value(DiscountType::FreeShipping, Some(1), None).is_err());
        assert_eq!(
            validate_value(DiscountType::GiftCard, Some(10_000), Some("eur"))
                .unwrap_err()
                .field,
            "currency"
        );
    }

    #[test]
    fn windows_end_after_they_start() {
        let now = Utc::now();
        assert!(validate_window(Some(now), Some(now + chrono::Duration::days(1))).is_ok());
        assert!(validate_window(Some(now), Some(now)).is_err());
        assert!(validate_window(None, Some(now)).is_ok());
    }

    #[test]
    fn remaining_is_unknown_for_remote_unbounded_for_common_and_zero_once_ended() {
        let stock = Stock {
            source: PoolSource::Uploaded,
            ended: false,
            available: 7,
            mintable: 0,
            max_total: None,
            issued_ever: 3,
        };
        assert_eq!(remaining(&stock), Some(7));
        assert_eq!(
            remaining(&Stock {
                max_total: Some(5),
                ..stock
            }),
            Some(2)
        );
        assert_eq!(
            remaining(&Stock {
                ended: true,
                ..stock
            }),
            Some(0)
        );
        let remote = Stock {
            source: PoolSource::Remote,
            ..stock
        };
        assert_eq!(remaining(&remote), None);
        assert_eq!(
            remaining(&Stock {
                max_total: Some(5),
                ..remote
            }),
            None
        );
        let common = Stock {
            source: PoolSource::Common,
            available: 1,
            ..stock
        };
        assert_eq!(remaining(&common), None);
        assert_eq!(
            remaining(&Stock {
                max_total: Some(10),
                ..common
            }),
            Some(7)
        );
        let generated = Stock {
            source: PoolSource::Generated,
            mintable: 100,
            ..stock
        };
        assert_eq!(remaining(&generated), Some(107));
    }

    #[test]
    fn reminders_need_coupons_that_expire() {
        let r = Reminder {
            days_before: 3,
            channel: "email".into(),
            time: "09:00".into(),
        };
        assert!(validate_reminders_reach(&[], false).is_ok());
        assert!(validate_reminders_reach(std::slice::from_ref(&r), true).is_ok());
        assert_eq!(
            validate_reminders_reach(&[r], false).unwrap_err().field,
            "reminders"
        );
    }

    #[test]
    fn an_update_criterion_needs_a_value_change() {
        assert!(validate_update_criterion(UpdateCriterion::All, true, true).is_ok());
        assert!(validate_update_criterion(UpdateCriterion::None, false, false).is_ok());
        let field = |c, m| validate_update_criterion(c, m, false).unwrap_err().field;
        assert_eq!(field(UpdateCriterion::All, false), "update_criterion");
        assert_eq!(field(UpdateCriterion::Unassigned, true), "update_criterion");
        assert_eq!(field(UpdateCriterion::None, true), "match_value");
    }

    #[test]
    fn reminders_need_a_channel_and_a_time() {
        let ok = Reminder {
            days_before: 3,
            channel: "sms".into(),
            time: "09:30".into(),
        };
        assert!(validate_reminders(std::slice::from_ref(&ok)).is_ok());
        let bad_time = Reminder {
            time: "25:00".into(),
            ..ok.clone()
        };
        assert_eq!(
            validate_reminders(&[bad_time]).unwrap_err().field,
            "reminders.time"
        );
        let bad_channel = Reminder {
            channel: "fax".into(),
            ..ok
        };
        assert_eq!(
            validate_reminders(&[bad_channel]).unwrap_err().field,
            "reminders.channel"
        );
    }

    #[test]
    fn sources_round_trip_and_know_their_patterns() {
        use sea_orm::{ActiveEnum, Iterable};
        // The names rows hold (`pools.source`), the API's and the serialized ones alike.
        let names = [
            "uploaded",
            "generated",
            "bulk",
            "common",
            "randomized_common",
            "remote",
        ];
        let sources: Vec<PoolSource> = PoolSource::iter().collect();
        assert_eq!(sources.len(), names.len());
        for (source, name) in sources.into_iter().zip(names) {
            assert_eq!(
                (source.to_value(), source.as_str()),
                (name.to_string(), name)
            );
            assert_eq!(
                PoolSource::try_from_value(&name.to_string()).unwrap(),
                source
            );
            assert_eq!(serde_json::to_value(source).unwrap(), name);
        }
        assert!(PoolSource::try_from_value(&"imported".to_string()).is_err());
        assert!(!PoolSource::Uploaded.has_pattern());
        assert!(PoolSource::Bulk.has_pattern());
        assert!(PoolSource::Generated.mints_on_issue());
        assert!(!PoolSource::Bulk.mints_on_issue());
    }

    #[test]
    fn states_keep_their_stored_names() {
        use sea_orm::{ActiveEnum, Iterable};
        // The names rows hold (`pools.state`), the API's and the serialized ones alike.
        let stored: Vec<(PoolState, String)> =
            PoolState::iter().map(|s| (s, s.to_value())).collect();
        assert_eq!(
            stored,
            [
                (PoolState::Draft, "draft".to_string()),
                (PoolState::Active, "active".to_string()),
                (PoolState::Archived, "archived".to_string()),
            ]
        );
        for (state, name) in stored {
            assert_eq!(PoolState::try_from_value(&name).unwrap(), state);
            assert_eq!(serde_json::to_value(state).unwrap(), name.as_str());
        }
        assert!(PoolState::try_from_value(&"paused".to_string()).is_err());
    }
}
