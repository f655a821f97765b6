//! When an issued coupon expires and from when it may be redeemed. Every date is counted in the
//! org's time zone: "1 day from issual" for a coupon issued at 23:30 in Madrid ends at 23:59:59
//! Madrid time the next day, whatever the UTC date was.

use chrono::{
    DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;
use poem_openapi::{Enum, Object};
use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Serialize};

/// Pool and issuance settings share one refusal type, so the API maps all of them the same way.
pub use super::Invalid;

/// Longest "days from issual" or "redemption starts N days after issual" accepted. Far beyond any
/// real offer; it only keeps date arithmetic inside the calendar.
const MAX_DAYS: u32 = 36_500;
/// Longest "month ends from issual" accepted, for the same reason.
const MAX_MONTHS: u32 = 1_200;

/// How an issued coupon's expiry is set.
#[derive(Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ExpiryMode {
    /// The coupon expires only when the offer (pool) ends, if it has an end.
    #[default]
    Never,
    /// At 23:59:59 (org time) of the issue date plus `days`; 0 is the end of the issue day.
    DaysFromIssual,
    /// At 23:59:59 (org time) of the last day of the month `months` after the issue month; 0 is
    /// the end of the issue month.
    MonthEndsFromIssual,
    /// When the offer (pool) ends; the pool must have an end date.
    AlongWithOffer,
}

/// From when an issued coupon may be redeemed.
#[derive(Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RedemptionStart {
    /// As soon as it is issued.
    #[default]
    RightAfterIssual,
    /// From 00:00 (org time) of the issue date plus `start_days`; the time of issue is ignored.
    DaysAfterIssual,
    /// From 00:00 (org time) of `start_date`, and not before 00:00 of the issue date plus
    /// `start_days` (0 when absent).
    FromDate,
}

/// A pool's expiry and redemption-start rules for the coupons it issues. Every rule is capped by
/// the pool's own end.
#[derive(
    Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, FromJsonQueryResult,
)]
#[serde(default)]
pub struct ExpiryRules {
    /// How an issued coupon's expiry is set.
    #[oai(default)]
    pub mode: ExpiryMode,
    /// Days from the issue date, for `days_from_issual`.
    pub days: Option<u32>,
    /// Month ends from the issue month, for `month_ends_from_issual`.
    pub months: Option<u32>,
    /// From when an issued coupon may be redeemed.
    #[oai(default)]
    pub redemption_starts: RedemptionStart,
    /// Days from the issue date before redemption may start, for `days_after_issual` (required)
    /// and `from_date` (optional).
    pub start_days: Option<u32>,
    /// First date (org time) on which coupons may be redeemed, for `from_date`.
    pub start_date: Option<NaiveDate>,
}

impl ExpiryRules {
    /// Refuses missing, out-of-range and unused settings, so a stored rule always means what
    /// its author thought it meant.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self.mode {
            ExpiryMode::DaysFromIssual => {
                require_count(self.days, "expiry.days", MAX_DAYS, "days_from_issual")?
            }
            ExpiryMode::MonthEndsFromIssual => require_count(
                self.months,
                "expiry.months",
                MAX_MONTHS,
                "month_ends_from_issual",
            )?,
            ExpiryMode::Never | ExpiryMode::AlongWithOffer => {}
        }
        if self.mode != ExpiryMode::DaysFromIssual {
            refuse_unused(self.days.is_some(), "expiry.days", "mode days_from_issual")?;
        }
        if self.mode != ExpiryMode::MonthEndsFromIssual {
            refuse_unused(
                self.months.is_some(),
                "expiry.months",
                "mode month_ends_from_issual",
            )?;
        }
        match self.redemption_starts {
            RedemptionStart::RightAfterIssual => {
                refuse_unused(
                    self.start_days.is_some(),
                    "expiry.start_days",
                    "redemption_starts days_after_issual or from_date",
                )?;
                refuse_unused(
                    self.start_date.is_some(),
                    "expiry.start_date",
                    "redemption_starts from_date",
                )?;
            }
            RedemptionStart::DaysAfterIssual => {
                require_count(
                    self.start_days,
                    "expiry.start_days",
                    MAX_DAYS,
                    "redemption_starts days_after_issual",
                )?;
                refuse_unused(
                    self.start_date.is_some(),
                    "expiry.start_date",
                    "redemption_starts from_date",
                )?;
            }
            RedemptionStart::FromDate => {
                if self.start_date.is_none() {
                    return Err(Invalid {
                        field: "expiry.start_date",
                        reason: "is required when redemption_starts is from_date".into(),
                    });
                }
                if self.start_days.is_some() {
                    require_count(
                        self.start_days,
                        "expiry.start_days",
                        MAX_DAYS,
                        "redemption_starts from_date",
                    )?;
                }
            }
        }
        // Both counts are whole dates from the issue date, so this is exactly "a coupon would
        // expire before it could ever be redeemed".
        if let (ExpiryMode::DaysFromIssual, Some(days), Some(start_days)) =
            (self.mode, self.days, self.start_days)
            && start_days > days
        {
            return Err(Invalid {
                field: "expiry.start_days",
                reason: format!(
                    "coupons would expire {days} days after issual, before redemption starts \
                     {start_days} days after issual"
                ),
            });
        }
        Ok(())
    }

    /// Checks the rules against the pool's end: `along_with_offer` is meaningless for a pool
    /// that never ends.
    /// Whether issued coupons ever expire: by their own rule, or when the offer ends.
    pub fn coupons_expire(&self, offer_end: Option<DateTime<Utc>>) -> bool {
        self.mode != ExpiryMode::Never || offer_end.is_some()
    }

    pub fn validate_with_offer_end(&self, offer_end: Option<DateTime<Utc>>) -> Result<(), Invalid> {
        self.validate()?;
        if self.mode == ExpiryMode::AlongWithOffer && offer_end.is_none() {
            return Err(Invalid {
                field: "expiry.mode",
                reason: "along_with_offer needs the pool to have an end date".into(),
            });
        }
        Ok(())
    }
}

fn require_count(
    value: Option<u32>,
    field: &'static str,
    max: u32,
    when: &str,
) -> Result<(), Invalid> {
    match value {
        None => Err(Invalid {
            field,
            reason: format!("is required for {when}"),
        }),
        Some(n) if n > max => Err(Invalid {
            field,
            reason: format!("must be at most {max}"),
        }),
        Some(_) => Ok(()),
    }
}

fn refuse_unused(present: bool, field: &'static str, used_by: &str) -> Result<(), Invalid> {
    if present {
        return Err(Invalid {
            field,
            reason: format!("is only used with {used_by}; leave it out"),
        });
    }
    Ok(())
}

/// When a coupon issued at `issued_at` expires (the last instant it is valid), or `None` if it
/// never does. `offer_end` is the pool's end, which caps every rule.
pub fn expires_at(
    rules: &ExpiryRules,
    issued_at: DateTime<Utc>,
    tz: Tz,
    offer_end: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let issue_date = local_date(issued_at, tz);
    // A count so large the calendar overflows means the rule itself never ends the coupon.
    let by_rule = match rules.mode {
        ExpiryMode::Never | ExpiryMode::AlongWithOffer => None,
        ExpiryMode::DaysFromIssual => issue_date
            .checked_add_days(Days::new(rules.days.unwrap_or(0).into()))
            .and_then(|last_day| end_of_day(tz, last_day)),
        ExpiryMode::MonthEndsFromIssual => issue_date
            .with_day(1)
            .and_then(|first| first.checked_add_months(Months::new(rules.months.unwrap_or(0) + 1)))
            .and_then(|first_after| start_of_day(tz, first_after))
            .map(|start| start - TimeDelta::seconds(1)),
    };
    match (by_rule, offer_end) {
        (Some(rule), Some(end)) => Some(rule.min(end)),
        (rule, end) => rule.or(end),
    }
}

/// The first instant a coupon issued at `issued_at` may be redeemed. Never before it is issued.
pub fn redeemable_from(rules: &ExpiryRules, issued_at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let issue_date = local_date(issued_at, tz);
    let days_after_issue = |days: Option<u32>| {
        issue_date
            .checked_add_days(Days::new(days.unwrap_or(0).into()))
            .and_then(|date| start_of_day(tz, date))
    };
    let start = match rules.redemption_starts {
        RedemptionStart::RightAfterIssual => Some(issued_at),
        RedemptionStart::DaysAfterIssual => days_after_issue(rules.start_days),
        RedemptionStart::FromDate => {
            let from_date = rules.start_date.and_then(|date| start_of_day(tz, date));
            days_after_issue(rules.start_days).max(from_date)
        }
    };
    // Beyond the calendar means never: the far future keeps such a coupon unredeemable.
    start.unwrap_or(DateTime::<Utc>::MAX_UTC).max(issued_at)
}

/// The calendar date of an instant in the org's zone.
pub fn local_date(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// The first instant of `date` in `tz`, or `None` beyond the calendar.
fn start_of_day(tz: Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    // Where clocks jump forward at midnight (Chile, Lebanon, formerly Brazil), 00:00 does not
    // exist and the day begins when the clocks land. Such gaps are whole minutes and at most a
    // day long (Samoa skipped 30 December 2011), so step a minute at a time for up to two days.
    let mut local = date.and_time(NaiveTime::MIN);
    for _ in 0..2 * 24 * 60 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(at) => return Some(at.with_timezone(&Utc)),
            // Where clocks go back over midnight the day begins at the first midnight.
            LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
            LocalResult::None => local = local.checked_add_signed(TimeDelta::minutes(1))?,
        }
    }
    None
}

/// The last second of `date` in `tz`: one second before the next day starts, which is the right
/// 23:59:59 even when that local time occurs twice.
fn end_of_day(tz: Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    start_of_day(tz, date.succ_opt()?).map(|next| next - TimeDelta::seconds(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Europe, UTC};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn days(n: u32) -> ExpiryRules {
        ExpiryRules {
            mode: ExpiryMode::DaysFromIssual,
            days: Some(n),
            ..ExpiryRules::default()
        }
    }

    fn month_ends(n: u32) -> ExpiryRules {
        ExpiryRules {
            mode: ExpiryMode::MonthEndsFromIssual,
            months: Some(n),
            ..ExpiryRules::default()
        }
    }

    fn starts(redemption_starts: RedemptionStart, start_days: Option<u32>) -> ExpiryRules {
        ExpiryRules {
            redemption_starts,
            start_days,
            ..ExpiryRules::default()
        }
    }

    const NOV_12_NOON: &str = "2024-11-12T12:00:00Z";

    #[test]
    fn days_from_issual_ends_at_the_end_of_the_day() {
        let issued = utc(NOV_12_NOON);
        assert_eq!(
            expires_at(&days(0), issued, UTC, None),
            Some(utc("2024-11-12T23:59:59Z"))
        );
        assert_eq!(
            expires_at(&days(1), issued, UTC, None),
            Some(utc("2024-11-13T23:59:59Z"))
        );
        assert_eq!(
            expires_at(&days(30), issued, UTC, None),
            Some(utc("2024-12-12T23:59:59Z"))
        );
    }

    #[test]
    fn month_ends_from_issual_ends_at_the_end_of_the_month() {
        let issued = utc(NOV_12_NOON);
        assert_eq!(
            expires_at(&month_ends(0), issued, UTC, None),
            Some(utc("2024-11-30T23:59:59Z"))
        );
        assert_eq!(
            expires_at(&month_ends(1), issued, UTC, None),
            Some(utc("2024-12-31T23:59:59Z"))
        );
        assert_eq!(
            expires_at(&month_ends(3), issued, UTC, None),
            Some(utc("2025-02-28T23:59:59Z"))
        );
        assert_eq!(
            expires_at(&month_ends(3), utc("2023-11-30T10:00:00Z"), UTC, None),
            Some(utc("2024-02-29T23:59:59Z"))
        );
    }

    #[test]
    fn the_offer_end_caps_every_rule() {
        let issued = utc(NOV_12_NOON);
        let offer_end = utc("2024-11-20T18:00:00Z");
        assert_eq!(
            expires_at(&days(30), issued, UTC, Some(offer_end)),
            Some(offer_end)
        );
        assert_eq!(
            expires_at(&month_ends(1), issued, UTC, Some(offer_end)),
            Some(offer_end)
        );
        assert_eq!(
            expires_at(&days(1), issued, UTC, Some(offer_end)),
            Some(utc("2024-11-13T23:59:59Z"))
        );
    }

    #[test]
    fn never_and_along_with_offer_follow_the_offer_end() {
        let issued = utc(NOV_12_NOON);
        let offer_end = utc("2025-01-31T22:59:59Z");
        let never = ExpiryRules::default();
        let along = ExpiryRules {
            mode: ExpiryMode::AlongWithOffer,
            ..ExpiryRules::default()
        };
        assert_eq!(expires_at(&never, issued, UTC, None), None);
        assert_eq!(
            expires_at(&never, issued, UTC, Some(offer_end)),
            Some(offer_end)
        );
        assert_eq!(
            expires_at(&along, issued, UTC, Some(offer_end)),
            Some(offer_end)
        );
        assert_eq!(expires_at(&along, issued, UTC, None), None);
    }

    #[test]
    fn dates_are_counted_in_the_org_zone() {
        // 20:00 UTC on 11 Nov is already 05:00 on 12 Nov in Tokyo.
        let issued = utc("2024-11-11T20:00:00Z");
        assert_eq!(
            expires_at(&days(0), issued, Asia::Tokyo, None),
            Some(utc("2024-11-12T14:59:59Z"))
        );
        assert_eq!(
            expires_at(
                &month_ends(0),
                utc("2024-11-30T16:00:00Z"),
                Asia::Tokyo,
                None
            ),
            Some(utc("2024-12-31T14:59:59Z"))
        );
        // 02:00 UTC on 13 Nov is still 21:00 on 12 Nov in New York.
        let issued = utc("2024-11-13T02:00:00Z");
        assert_eq!(
            expires_at(&days(0), issued, America::New_York, None),
            Some(utc("2024-11-13T04:59:59Z"))
        );
    }

    #[test]
    fn end_of_day_follows_daylight_saving_changes() {
        // Madrid leaves summer time (UTC+2 to UTC+1) at 03:00 on Sunday 27 October 2024.
        let issued = utc("2024-10-26T10:00:00Z");
        assert_eq!(
            expires_at(&days(0), issued, Europe::Madrid, None),
            Some(utc("2024-10-26T21:59:59Z"))
        );
        assert_eq!(
            expires_at(&days(1), issued, Europe::Madrid, None),
            Some(utc("2024-10-27T22:59:59Z"))
        );
        assert_eq!(
            expires_at(&month_ends(0), issued, Europe::Madrid, None),
            Some(utc("2024-10-31T22:59:59Z"))
        );
        // And enters it (UTC+1 to UTC+2) at 02:00 on 31 March 2024.
        assert_eq!(
            expires_at(&days(1), utc("2024-03-30T10:00:00Z"), Europe::Madrid, None),
            Some(utc("2024-03-31T21:59:59Z"))
        );
    }

    #[test]
    fn midnight_clock_changes_neither_panic_nor_shorten_the_day() {
        // Santiago went from UTC-3 back to UTC-4 at 24:00 on 6 April 2024, so 23:59:59 on the
        // 6th happened twice; the day ends at the second one.
        assert_eq!(
            expires_at(
                &days(0),
                utc("2024-04-06T15:00:00Z"),
                America::Santiago,
                None
            ),
            Some(utc("2024-04-07T03:59:59Z"))
        );
        // It went from UTC-4 to UTC-3 at 24:00 on 7 September 2024, so 8 September began at
        // 01:00 local time.
        let rules = starts(RedemptionStart::DaysAfterIssual, Some(1));
        assert_eq!(
            redeemable_from(&rules, utc("2024-09-07T15:00:00Z"), America::Santiago),
            utc("2024-09-08T04:00:00Z")
        );
        assert_eq!(
            expires_at(
                &days(0),
                utc("2024-09-07T15:00:00Z"),
                America::Santiago,
                None
            ),
            Some(utc("2024-09-08T03:59:59Z"))
        );
        // Samoa skipped 30 December 2011 altogether.
        assert_eq!(
            expires_at(
                &days(0),
                utc("2011-12-29T20:00:00Z"),
                chrono_tz::Pacific::Apia,
                None
            ),
            Some(utc("2011-12-30T09:59:59Z"))
        );
    }

    #[test]
    fn redemption_right_after_issual_starts_at_issue() {
        let issued = utc(NOV_12_NOON);
        assert_eq!(
            redeemable_from(&ExpiryRules::default(), issued, UTC),
            issued
        );
    }

    #[test]
    fn redemption_days_after_issual_counts_dates_not_hours() {
        // 23:50 in Madrid on 12 Nov; one day later means from midnight, ten minutes on.
        let issued = utc("2024-11-12T22:50:00Z");
        let rules = starts(RedemptionStart::DaysAfterIssual, Some(1));
        assert_eq!(
            redeemable_from(&rules, issued, Europe::Madrid),
            utc("2024-11-12T23:00:00Z")
        );
        let rules = starts(RedemptionStart::DaysAfterIssual, Some(7));
        assert_eq!(
            redeemable_from(&rules, issued, Europe::Madrid),
            utc("2024-11-18T23:00:00Z")
        );
        // Zero days never makes a coupon redeemable before it was issued.
        let rules = starts(RedemptionStart::DaysAfterIssual, Some(0));
        assert_eq!(redeemable_from(&rules, issued, Europe::Madrid), issued);
    }

    #[test]
    fn redemption_from_a_date_waits_for_the_later_of_date_and_days() {
        let rules = ExpiryRules {
            redemption_starts: RedemptionStart::FromDate,
            start_date: NaiveDate::from_ymd_opt(2018, 10, 22),
            start_days: Some(30),
            ..ExpiryRules::default()
        };
        // Issued long before the date: the date wins.
        assert_eq!(
            redeemable_from(&rules, utc("2018-08-01T10:00:00Z"), Europe::Madrid),
            utc("2018-10-21T22:00:00Z")
        );
        // Issued close to it: 30 days after issual wins.
        assert_eq!(
            redeemable_from(&rules, utc("2018-10-20T10:00:00Z"), Europe::Madrid),
            utc("2018-11-18T23:00:00Z")
        );
        // Without start_days, issued after the date: redeemable at once.
        let rules = ExpiryRules {
            start_days: None,
            ..rules
        };
        let issued = utc("2018-12-01T10:00:00Z");
        assert_eq!(redeemable_from(&rules, issued, Europe::Madrid), issued);
    }

    #[test]
    fn validation_names_the_missing_or_stray_field() {
        let field = |rules: ExpiryRules| rules.validate().unwrap_err().field;
        assert!(ExpiryRules::default().validate().is_ok());
        assert!(days(0).validate().is_ok());
        assert!(month_ends(2).validate().is_ok());
        assert_eq!(
            field(ExpiryRules {
                mode: ExpiryMode::DaysFromIssual,
                ..ExpiryRules::default()
            }),
            "expiry.days"
        );
        assert_eq!(
            field(ExpiryRules {
                mode: ExpiryMode::MonthEndsFromIssual,
                ..ExpiryRules::default()
            }),
            "expiry.months"
        );
        assert_eq!(field(days(MAX_DAYS + 1)), "expiry.days");
        assert_eq!(field(month_ends(MAX_MONTHS + 1)), "expiry.months");
        assert_eq!(
            field(ExpiryRules {
                days: Some(3),
                ..month_ends(1)
            }),
            "expiry.days"
        );
        assert_eq!(
            field(ExpiryRules {
                months: Some(3),
                ..ExpiryRules::default()
            }),
            "expiry.months"
        );
        assert_eq!(
            field(starts(RedemptionStart::DaysAfterIssual, None)),
            "expiry.start_days"
        );
        assert_eq!(
            field(starts(RedemptionStart::RightAfterIssual, Some(2))),
            "expiry.start_days"
        );
        assert_eq!(
            field(starts(RedemptionStart::FromDate, Some(2))),
            "expiry.start_date"
        );
        assert_eq!(
            field(ExpiryRules {
                start_date: NaiveDate::from_ymd_opt(2025, 1, 1),
                ..starts(RedemptionStart::DaysAfterIssual, Some(2))
            }),
            "expiry.start_date"
        );
        assert!(
            ExpiryRules {
                start_date: NaiveDate::from_ymd_opt(2025, 1, 1),
                ..starts(RedemptionStart::FromDate, None)
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn validation_refuses_coupons_that_expire_before_redemption_starts() {
        let rules = ExpiryRules {
            redemption_starts: RedemptionStart::DaysAfterIssual,
            start_days: Some(6),
            ..days(5)
        };
        assert_eq!(rules.validate().unwrap_err().field, "expiry.start_days");
        let rules = ExpiryRules {
            start_days: Some(5),
            ..rules
        };
        assert!(rules.validate().is_ok());
    }

    #[test]
    fn along_with_offer_needs_an_offer_end() {
        let along = ExpiryRules {
            mode: ExpiryMode::AlongWithOffer,
            ..ExpiryRules::default()
        };
        assert_eq!(
            along.validate_with_offer_end(None).unwrap_err().field,
            "expiry.mode"
        );
        assert!(
            along
                .validate_with_offer_end(Some(utc(NOV_12_NOON)))
                .is_ok()
        );
        assert!(ExpiryRules::default().validate_with_offer_end(None).is_ok());
    }

    #[test]
    fn stored_json_uses_snake_case_and_defaults_missing_fields() {
        let rules: ExpiryRules =
            serde_json::from_str(r#"{"mode":"days_from_issual","days":3}"#).unwrap();
        assert_eq!(rules, days(3));
        let rules: ExpiryRules = serde_json::from_str("{}").unwrap();
        assert_eq!(rules, ExpiryRules::default());
        let json = serde_json::to_value(starts(RedemptionStart::DaysAfterIssual, Some(1))).unwrap();
        assert_eq!(json["mode"], "never");
        assert_eq!(json["redemption_starts"], "days_after_issual");
    }
}
