//! Whether a customer may be issued a coupon of a pool: the pool's issuance rules applied to the
//! facts the store reads inside the issuing transaction, so the decision and the claim it leads
//! to see the same data.

use chrono::{DateTime, Days, Months, Utc};
use chrono_tz::Tz;
use poem_openapi::{Enum, Object};
use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Serialize};

use super::Invalid;
use super::expiry::local_date;

/// How far back "Restrict based on past coupon issuals" looks.
const EXCLUSION_MONTHS: u32 = 6;
const MAX_EXCLUDED_POOLS: usize = 100;
const MAX_LEVELS: usize = 100;
const MAX_LEVEL_CHARS: usize = 100;
/// Longest minimum gap accepted; beyond it the gap means "once", which max_per_customer says.
const MAX_GAP_DAYS: u32 = 36_500;

/// What to do when a customer who reached `max_per_customer` is issued to again.
#[derive(Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum OnRepeat {
    /// Send nothing; the request is refused with `customer_limit`.
    #[default]
    DoNotSend,
    /// Send the customer's existing valid coupon of this pool again, if there is one.
    ResendExisting,
}

/// Who may be issued a pool's coupons, how often and how many.
#[derive(
    Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, FromJsonQueryResult,
)]
#[serde(default)]
pub struct IssuanceRules {
    /// Most coupons of this pool one customer may ever be issued; absent means no limit.
    pub max_per_customer: Option<u32>,
    /// What to do when a customer who reached `max_per_customer` is issued to again.
    #[oai(default)]
    pub on_repeat: OnRepeat,
    /// Fewest calendar days (org time) between two issuals to the same customer; absent or 0
    /// means no gap.
    pub min_days_between: Option<u32>,
    /// Most coupons this pool may issue in total; absent means no limit.
    pub max_total: Option<u64>,
    /// Email the org's POCs when the issuals left under `max_total` drop to this number.
    pub notify_remaining_at: Option<u64>,
    /// Pools whose coupons bar a customer from this pool if issued to them in the past 6 months.
    #[oai(default)]
    pub exclude_if_issued_from: Vec<i64>,
    /// Customer levels this pool is issued to (case is ignored); empty means every level.
    #[oai(default)]
    pub allowed_levels: Vec<String>,
    /// Issue the same coupon to the same customer every time: while they hold a valid coupon of
    /// this pool, it is sent again instead of a new one.
    #[oai(default)]
    pub aggregated: bool,
    /// Issue only to customers on the pool's uploaded list of specific customers.
    #[oai(default)]
    pub specific_customers_only: bool,
}

impl IssuanceRules {
    /// Whether any rule depends on what the customer already received from this pool; only
    /// then does issuing need the customer's history (and the lock that keeps it exact).
    pub fn depends_on_history(&self) -> bool {
        self.max_per_customer.is_some() || self.min_days_between.is_some() || self.aggregated
    }

    /// Whether any rule reads more about a customer than their row: what they received (from
    /// this pool or the excluding ones) or whether they are on the allow list. Only then does
    /// issuing need those facts read, under the customer's lock.
    pub fn reads_customer_facts(&self) -> bool {
        self.depends_on_history()
            || self.specific_customers_only
            || !self.exclude_if_issued_from.is_empty()
    }

    /// Refuses limits of zero, settings that could never take effect and malformed pool ids or
    /// level names, naming the field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let invalid = |field, reason: String| Err(Invalid { field, reason });
        if self.max_per_customer == Some(0) {
            return invalid(
                "issuance.max_per_customer",
                "must be at least 1; leave it out for no limit".into(),
            );
        }
        if self.on_repeat == OnRepeat::ResendExisting && self.max_per_customer.is_none() {
            return invalid(
                "issuance.on_repeat",
                "resend_existing applies once max_per_customer is reached; set max_per_customer"
                    .into(),
            );
        }
        if self
            .min_days_between
            .is_some_and(|days| days > MAX_GAP_DAYS)
        {
            return invalid(
                "issuance.min_days_between",
                format!("must be at most {MAX_GAP_DAYS}"),
            );
        }
        if self.max_total == Some(0) {
            return invalid(
                "issuance.max_total",
                "must be at least 1; leave it out for no limit".into(),
            );
        }
        if let Some(remaining) = self.notify_remaining_at {
            match self.max_total {
                None => {
                    return invalid(
                        "issuance.notify_remaining_at",
                        "counts down from max_total; set max_total".into(),
                    );
                }
                // At or above the limit the count of remaining issuals never drops to it.
                Some(max_total) if remaining >= max_total => {
                    return invalid(
                        "issuance.notify_remaining_at",
                        format!("must be below max_total ({max_total})"),
                    );
                }
                Some(_) => {}
            }
        }
        if self.exclude_if_issued_from.len() > MAX_EXCLUDED_POOLS {
            return invalid(
                "issuance.exclude_if_issued_from",
                format!("may name at most {MAX_EXCLUDED_POOLS} pools"),
            );
        }
        if let Some(id) = self.exclude_if_issued_from.iter().find(|&&id| id <= 0) {
            return invalid(
                "issuance.exclude_if_issued_from",
                format!("`{id}` is not a pool id"),
            );
        }
        if self.allowed_levels.len() > MAX_LEVELS {
            return invalid(
                "issuance.allowed_levels",
                format!("may name at most {MAX_LEVELS} levels"),
            );
        }
        if self
            .allowed_levels
            .iter()
            .any(|level| level.trim().is_empty() || level.chars().count() > MAX_LEVEL_CHARS)
        {
            return invalid(
                "issuance.allowed_levels",
                format!("level names must be 1 to {MAX_LEVEL_CHARS} characters"),
            );
        }
        Ok(())
    }

    fn allows_level(&self, level: Option<&str>) -> bool {
        self.allowed_levels.is_empty()
            || level.is_some_and(|level| {
                self.allowed_levels
                    .iter()
                    .any(|allowed| allowed.trim().eq_ignore_ascii_case(level.trim()))
            })
    }
}

/// Everything the decision needs, read by the store inside the issuing transaction.
#[derive(Debug, Clone)]
pub struct IssueContext {
    /// The moment of the issue.
    pub now: DateTime<Utc>,
    /// The org's zone, in which issue dates are counted.
    pub tz: Tz,
    /// The pool's state is `active`.
    pub pool_active: bool,
    /// First instant the pool may issue, if it has a start.
    pub pool_starts_at: Option<DateTime<Utc>>,
    /// Last instant the pool may issue, if it has an end.
    pub pool_ends_at: Option<DateTime<Utc>>,
    /// One generic code for everyone.
    pub is_common: bool,
    /// The customer's loyalty level, if they have one.
    pub customer_level: Option<String>,
    /// The customer is on the pool's uploaded list of specific customers.
    pub on_allow_list: bool,
    /// Coupons of this pool ever issued to this customer, not counting ones since unassigned.
    pub customer_issued_count: u64,
    /// When the customer was last issued a coupon of this pool.
    pub customer_last_issued_at: Option<DateTime<Utc>>,
    /// An issued, unexpired, unredeemed coupon of this pool held by the customer (coupon id).
    pub existing_valid_coupon: Option<i64>,
    /// A coupon of any `exclude_if_issued_from` pool was issued to the customer since
    /// `six_months_before(now)`.
    pub issued_from_excluded_recently: bool,
    /// Coupons of this pool issued so far, to anyone.
    pub pool_issued_total: u64,
}

/// The outcome for one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Claim a new coupon for the customer.
    IssueNew,
    /// Send this coupon the customer already holds; nothing new is issued.
    ReturnExisting(i64),
    /// Issue nothing, for this reason.
    Refuse(Refusal),
}

/// Why a customer was not issued a coupon: a stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable code for machines.
    pub code: RefusalCode,
    /// One sentence explaining the refusal, for the people reading upload reports and errors.
    pub reason: String,
}

impl Refusal {
    fn new(code: RefusalCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }

    /// The claim found no code left; only the claim itself can tell, so the store raises this.
    pub fn pool_exhausted() -> Refusal {
        Refusal::new(
            RefusalCode::PoolExhausted,
            "the pool has no codes left to issue",
        )
    }
}

/// Machine-readable reason a customer was not issued a coupon.
#[derive(Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// The pool has no codes left.
    PoolExhausted,
    /// The customer reached the pool's `max_per_customer`.
    CustomerLimit,
    /// Too few days since the customer's last issual (`min_days_between`).
    MinGap,
    /// The pool reached its `max_total`.
    SeriesLimit,
    /// The pool's generic code was already issued to this customer.
    AlreadyIssued,
    /// The customer is not on the allow-list, not of an allowed level, or recently received a
    /// coupon from an excluded pool.
    NotEligible,
    /// The pool is not active or outside its validity window.
    PoolInactive,
}

impl RefusalCode {
    pub const ALL: [RefusalCode; 7] = [
        RefusalCode::PoolExhausted,
        RefusalCode::CustomerLimit,
        RefusalCode::MinGap,
        RefusalCode::SeriesLimit,
        RefusalCode::AlreadyIssued,
        RefusalCode::NotEligible,
        RefusalCode::PoolInactive,
    ];

    /// The snake_case code used in problem documents and upload reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::PoolExhausted => "pool_exhausted",
            RefusalCode::CustomerLimit => "customer_limit",
            RefusalCode::MinGap => "min_gap",
            RefusalCode::SeriesLimit => "series_limit",
            RefusalCode::AlreadyIssued => "already_issued",
            RefusalCode::NotEligible => "not_eligible",
            RefusalCode::PoolInactive => "pool_inactive",
        }
    }
}

/// Decides whether to issue a new coupon, send back one the customer holds, or refuse.
///
/// Checks run in this order, and the first that applies wins:
/// 1. the pool is not active or `now` is outside its validity window → `pool_inactive`;
/// 2. the customer is not on the allow-list, not of an allowed level, or received a coupon of an
///    excluded pool in the past 6 months → `not_eligible`;
/// 3. an aggregated pool and a valid coupon already held → that coupon;
/// 4. a common code already issued to the customer → `already_issued`;
/// 5. `max_per_customer` reached → the held coupon with `resend_existing`, else `customer_limit`;
/// 6. fewer than `min_days_between` calendar days since the last issual → `min_gap`;
/// 7. `max_total` reached → `series_limit`.
///
/// Whether anyone may be issued at all comes first, then who this customer is; the checks that
/// can hand back a held coupon come before those that only limit new issuals, because sending a
/// held coupon again consumes nothing the later limits protect.
pub fn decide(rules: &IssuanceRules, ctx: &IssueContext) -> Decision {
    use RefusalCode::*;
    let refuse = |code, reason: String| Decision::Refuse(Refusal::new(code, reason));
    let at = |instant: DateTime<Utc>| {
        instant
            .with_timezone(&ctx.tz)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    };

    if !ctx.pool_active {
        return refuse(PoolInactive, "the pool is not active".into());
    }
    if let Some(starts_at) = ctx.pool_starts_at
        && ctx.now < starts_at
    {
        return refuse(
            PoolInactive,
            format!("the pool opens for issuing at {}", at(starts_at)),
        );
    }
    // The end is the last valid instant, like a coupon's expiry.
    if let Some(ends_at) = ctx.pool_ends_at
        && ctx.now > ends_at
    {
        return refuse(
            PoolInactive,
            format!("the pool closed for issuing at {}", at(ends_at)),
        );
    }

    if rules.specific_customers_only && !ctx.on_allow_list {
        return refuse(
            NotEligible,
            "the customer is not on this pool's list of specific customers".into(),
        );
    }
    if !rules.allows_level(ctx.customer_level.as_deref()) {
        let allowed = rules.allowed_levels.join(", ");
        let reason = match &ctx.customer_level {
            Some(level) => {
                format!(
                    "the customer's level `{level}` is not among this pool's levels ({allowed})"
                )
            }
            None => format!("the customer has no level, and this pool is for levels {allowed}"),
        };
        return refuse(NotEligible, reason);
    }
    if ctx.issued_from_excluded_recently {
        return refuse(
            NotEligible,
            format!(
                "the customer was issued a coupon of an excluded pool in the past \
                 {EXCLUSION_MONTHS} months"
            ),
        );
    }

    if rules.aggregated
        && let Some(held) = ctx.existing_valid_coupon
    {
        return Decision::ReturnExisting(held);
    }

    if ctx.is_common && ctx.customer_issued_count > 0 {
        // Capillary's wording, which brands already know from their upload reports.
        return refuse(
            AlreadyIssued,
            "Generic coupon code has already been issued to this customer".into(),
        );
    }

    if let Some(max) = rules.max_per_customer
        && ctx.customer_issued_count >= u64::from(max)
    {
        return match (rules.on_repeat, ctx.existing_valid_coupon) {
            (OnRepeat::ResendExisting, Some(held)) => Decision::ReturnExisting(held),
            _ => refuse(
                CustomerLimit,
                format!(
                    "the customer has already been issued {}, the most allowed",
                    coupons(ctx.customer_issued_count)
                ),
            ),
        };
    }

    if let (Some(gap), Some(last)) = (rules.min_days_between, ctx.customer_last_issued_at) {
        let last_date = local_date(last, ctx.tz);
        let days_since = (local_date(ctx.now, ctx.tz) - last_date).num_days();
        if days_since < i64::from(gap) {
            // Unvalidated rules may put the next date beyond the calendar; then it goes unsaid.
            let next = last_date
                .checked_add_days(Days::new(gap.into()))
                .map(|next| format!("; the next is possible on {next}"))
                .unwrap_or_default();
            return refuse(
                MinGap,
                format!(
                    "the customer was last issued a coupon of this pool on {last_date} and \
                     issuals must be {} apart{next}",
                    plural(gap.into(), "day")
                ),
            );
        }
    }

    if let Some(max_total) = rules.max_total
        && ctx.pool_issued_total >= max_total
    {
        return refuse(
            SeriesLimit,
            format!(
                "the pool has issued {}, its total limit",
                coupons(ctx.pool_issued_total)
            ),
        );
    }

    Decision::IssueNew
}

fn coupons(n: u64) -> String {
    plural(n, "coupon")
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The start of the "past 6 months" window of `exclude_if_issued_from`: the same time six
/// calendar months earlier, on the month's last day when that month is shorter (31 Aug →
/// 29 Feb).
pub fn six_months_before(now: DateTime<Utc>) -> DateTime<Utc> {
    now.checked_sub_months(Months::new(EXCLUSION_MONTHS))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether an issual-limit notification is due: remaining after this issue crossed
/// notify_remaining_at. True for exactly one issue (the one that brought the pool's total to
/// `issued_total_after`), so calling it after every single issue notifies once.
pub fn limit_notification_due(rules: &IssuanceRules, issued_total_after: u64) -> bool {
    let (Some(max_total), Some(threshold)) = (rules.max_total, rules.notify_remaining_at) else {
        return false;
    };
    let Some(issued_total_before) = issued_total_after.checked_sub(1) else {
        return false;
    };
    let remaining_before = max_total.saturating_sub(issued_total_before);
    let remaining_after = max_total.saturating_sub(issued_total_after);
    remaining_before > threshold && remaining_after <= threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Europe, UTC};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// An active pool without limits and a customer who has never been issued anything.
    fn ctx() -> IssueContext {
        IssueContext {
            now: utc("2024-11-12T10:00:00Z"),
            tz: UTC,
            pool_active: true,
            pool_starts_at: None,
            pool_ends_at: None,
            is_common: false,
            customer_level: None,
            on_allow_list: false,
            customer_issued_count: 0,
            customer_last_issued_at: None,
            existing_valid_coupon: None,
            issued_from_excluded_recently: false,
            pool_issued_total: 0,
        }
    }

    fn refusal(decision: Decision) -> RefusalCode {
        match decision {
            Decision::Refuse(refusal) => refusal.code,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn reason(decision: Decision) -> String {
        match decision {
            Decision::Refuse(refusal) => refusal.reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Decides each row of an upload in turn, recording each new issue the way the store would,
    /// and returns what each row got.
    fn upload(rules: &IssuanceRules, ctx: &mut IssueContext, rows: usize) -> Vec<Decision> {
        (0..rows)
            .map(|_| {
                let decision = decide(rules, ctx);
                if decision == Decision::IssueNew {
                    ctx.pool_issued_total += 1;
                    ctx.customer_issued_count += 1;
                    ctx.customer_last_issued_at = Some(ctx.now);
                    ctx.existing_valid_coupon = Some(ctx.pool_issued_total as i64);
                }
                decision
            })
            .collect()
    }

    fn codes(decisions: &[Decision]) -> Vec<&'static str> {
        decisions
            .iter()
            .map(|decision| match decision {
                Decision::IssueNew => "issue_new",
                Decision::ReturnExisting(_) => "return_existing",
                Decision::Refuse(refusal) => refusal.code.as_str(),
            })
            .collect()
    }

    #[test]
    fn only_per_customer_rules_need_the_history() {
        assert!(!IssuanceRules::default().depends_on_history());
        let capped = IssuanceRules {
            max_total: Some(5),
            allowed_levels: vec!["gold".into()],
            ..Default::default()
        };
        assert!(!capped.depends_on_history());
        assert!(
            IssuanceRules {
                max_per_customer: Some(1),
                ..Default::default()
            }
            .depends_on_history()
        );
        assert!(
            IssuanceRules {
                min_days_between: Some(1),
                ..Default::default()
            }
            .depends_on_history()
        );
        assert!(
            IssuanceRules {
                aggregated: true,
                ..Default::default()
            }
            .depends_on_history()
        );
    }

    #[test]
    fn allow_lists_and_exclusions_read_customer_facts_too() {
        let level_only = IssuanceRules {
            allowed_levels: vec!["gold".into()],
            max_total: Some(5),
            ..Default::default()
        };
        assert!(!level_only.reads_customer_facts());
        let listed = IssuanceRules {
            specific_customers_only: true,
            ..Default::default()
        };
        assert!(listed.reads_customer_facts());
        let excluding = IssuanceRules {
            exclude_if_issued_from: vec![7],
            ..Default::default()
        };
        assert!(excluding.reads_customer_facts());
        let limited = IssuanceRules {
            max_per_customer: Some(1),
            ..Default::default()
        };
        assert!(limited.reads_customer_facts());
    }

    #[test]
    fn an_unrestricted_pool_issues() {
        assert_eq!(
            decide(&IssuanceRules::default(), &ctx()),
            Decision::IssueNew
        );
    }

    #[test]
    fn an_inactive_or_out_of_window_pool_refuses() {
        let rules = IssuanceRules::default();
        let now = ctx().now;
        let draft = IssueContext {
            pool_active: false,
            ..ctx()
        };
        assert_eq!(refusal(decide(&rules, &draft)), RefusalCode::PoolInactive);
        let not_yet = IssueContext {
            pool_starts_at: Some(now + chrono::TimeDelta::seconds(1)),
            tz: Europe::Madrid,
            ..ctx()
        };
        assert_eq!(
            reason(decide(&rules, &not_yet)),
            "the pool opens for issuing at 2024-11-12 11:00 CET"
        );
        let ended = IssueContext {
            pool_ends_at: Some(now - chrono::TimeDelta::seconds(1)),
            ..ctx()
        };
        assert_eq!(refusal(decide(&rules, &ended)), RefusalCode::PoolInactive);
        let on_the_edges = IssueContext {
            pool_starts_at: Some(now),
            pool_ends_at: Some(now),
            ..ctx()
        };
        assert_eq!(decide(&rules, &on_the_edges), Decision::IssueNew);
    }

    #[test]
    fn an_inactive_pool_is_reported_before_anything_about_the_customer() {
        let rules = IssuanceRules {
            specific_customers_only: true,
            ..IssuanceRules::default()
        };
        let ctx = IssueContext {
            pool_active: false,
            ..ctx()
        };
        assert_eq!(refusal(decide(&rules, &ctx)), RefusalCode::PoolInactive);
    }

    #[test]
    fn specific_customers_only_needs_the_allow_list() {
        let rules = IssuanceRules {
            specific_customers_only: true,
            ..IssuanceRules::default()
        };
        assert_eq!(refusal(decide(&rules, &ctx())), RefusalCode::NotEligible);
        let listed = IssueContext {
            on_allow_list: true,
            ..ctx()
        };
        assert_eq!(decide(&rules, &listed), Decision::IssueNew);
    }

    #[test]
    fn levels_are_matched_ignoring_case() {
        let rules = IssuanceRules {
            allowed_levels: vec!["Gold".into(), "Silver".into()],
            ..IssuanceRules::default()
        };
        let with_level = |level: Option<&str>| IssueContext {
            customer_level: level.map(String::from),
            ..ctx()
        };
        assert_eq!(
            decide(&rules, &with_level(Some("gold"))),
            Decision::IssueNew
        );
        assert_eq!(
            reason(decide(&rules, &with_level(Some("Bronze")))),
            "the customer's level `Bronze` is not among this pool's levels (Gold, Silver)"
        );
        assert_eq!(
            refusal(decide(&rules, &with_level(None))),
            RefusalCode::NotEligible
        );
        assert_eq!(
            decide(&IssuanceRules::default(), &with_level(None)),
            Decision::IssueNew
        );
    }

    #[test]
    fn a_recent_coupon_from_an_excluded_pool_bars_the_customer() {
        let rules = IssuanceRules {
            exclude_if_issued_from: vec![7],
            ..IssuanceRules::default()
        };
        let recently = IssueContext {
            issued_from_excluded_recently: true,
            ..ctx()
        };
        assert_eq!(refusal(decide(&rules, &recently)), RefusalCode::NotEligible);
        assert_eq!(decide(&rules, &ctx()), Decision::IssueNew);
    }

    #[test]
    fn eligibility_is_checked_before_a_held_coupon_is_sent_again() {
        let rules = IssuanceRules {
            aggregated: true,
            specific_customers_only: true,
            ..IssuanceRules::default()
        };
        let holder = IssueContext {
            existing_valid_coupon: Some(5),
            customer_issued_count: 1,
            ..ctx()
        };
        assert_eq!(refusal(decide(&rules, &holder)), RefusalCode::NotEligible);
    }

    #[test]
    fn an_aggregated_pool_sends_the_held_coupon_again() {
        let rules = IssuanceRules {
            aggregated: true,
            max_per_customer: Some(1),
            max_total: Some(1),
            ..IssuanceRules::default()
        };
        let holder = IssueContext {
            existing_valid_coupon: Some(5),
            customer_issued_count: 1,
            pool_issued_total: 1,
            ..ctx()
        };
        assert_eq!(decide(&rules, &holder), Decision::ReturnExisting(5));
        // Once that coupon is redeemed or expired, a new one is subject to the limits.
        let spent = IssueContext {
            existing_valid_coupon: None,
            ..holder
        };
        assert_eq!(refusal(decide(&rules, &spent)), RefusalCode::CustomerLimit);
        assert_eq!(decide(&rules, &ctx()), Decision::IssueNew);
    }

    #[test]
    fn a_common_code_is_issued_once_per_customer() {
        let issued_before = IssueContext {
            is_common: true,
            customer_issued_count: 1,
            ..ctx()
        };
        let decision = decide(&IssuanceRules::default(), &issued_before);
        assert_eq!(
            reason(decision),
            "Generic coupon code has already been issued to this customer"
        );
        let first_time = IssueContext {
            is_common: true,
            ..ctx()
        };
        assert_eq!(
            decide(&IssuanceRules::default(), &first_time),
            Decision::IssueNew
        );
    }

    #[test]
    fn the_per_customer_limit_refuses_or_resends() {
        let rules = IssuanceRules {
            max_per_customer: Some(3),
            ..IssuanceRules::default()
        };
        let at_limit = IssueContext {
            customer_issued_count: 3,
            existing_valid_coupon: Some(11),
            ..ctx()
        };
        assert_eq!(
            reason(decide(&rules, &at_limit)),
            "the customer has already been issued 3 coupons, the most allowed"
        );
        let below = IssueContext {
            customer_issued_count: 2,
            ..at_limit.clone()
        };
        assert_eq!(decide(&rules, &below), Decision::IssueNew);

        let resend = IssuanceRules {
            on_repeat: OnRepeat::ResendExisting,
            ..rules
        };
        assert_eq!(decide(&resend, &at_limit), Decision::ReturnExisting(11));
        let nothing_held = IssueContext {
            existing_valid_coupon: None,
            ..at_limit
        };
        assert_eq!(
            refusal(decide(&resend, &nothing_held)),
            RefusalCode::CustomerLimit
        );
    }

    #[test]
    fn the_minimum_gap_counts_calendar_days_in_the_org_zone() {
        let rules = IssuanceRules {
            min_days_between: Some(1),
            ..IssuanceRules::default()
        };
        // Last issued 23:50 on 12 Nov in Madrid; twenty minutes later it is the 13th there.
        let issued_late = IssueContext {
            tz: Europe::Madrid,
            customer_issued_count: 1,
            customer_last_issued_at: Some(utc("2024-11-12T22:50:00Z")),
            now: utc("2024-11-12T23:10:00Z"),
            ..ctx()
        };
        assert_eq!(decide(&rules, &issued_late), Decision::IssueNew);
        // In UTC both instants fall on the 12th.
        let in_utc = IssueContext {
            tz: UTC,
            ..issued_late.clone()
        };
        assert_eq!(
            reason(decide(&rules, &in_utc)),
            "the customer was last issued a coupon of this pool on 2024-11-12 and issuals must \
             be 1 day apart; the next is possible on 2024-11-13"
        );
        // A whole day of hours on the same date in New York is still the same date.
        let same_date = IssueContext {
            tz: America::New_York,
            customer_last_issued_at: Some(utc("2024-11-12T05:00:00Z")),
            now: utc("2024-11-13T04:59:00Z"),
            ..issued_late.clone()
        };
        assert_eq!(refusal(decide(&rules, &same_date)), RefusalCode::MinGap);

        let three_days = IssuanceRules {
            min_days_between: Some(3),
            ..rules
        };
        let two_dates_later = IssueContext {
            now: utc("2024-11-14T22:50:00Z"),
            ..issued_late.clone()
        };
        assert_eq!(
            refusal(decide(&three_days, &two_dates_later)),
            RefusalCode::MinGap
        );
        let three_dates_later = IssueContext {
            now: utc("2024-11-14T23:10:00Z"),
            ..issued_late
        };
        assert_eq!(decide(&three_days, &three_dates_later), Decision::IssueNew);

        let forever = IssuanceRules {
            min_days_between: Some(u32::MAX),
            ..IssuanceRules::default()
        };
        let last_issued_far_ahead = IssueContext {
            customer_last_issued_at: Some(DateTime::<Utc>::MAX_UTC),
            ..ctx()
        };
        assert_eq!(
            refusal(decide(&forever, &last_issued_far_ahead)),
            RefusalCode::MinGap
        );
    }

    #[test]
    fn the_series_limit_caps_the_pool() {
        let rules = IssuanceRules {
            max_total: Some(100),
            ..IssuanceRules::default()
        };
        let full = IssueContext {
            pool_issued_total: 100,
            ..ctx()
        };
        assert_eq!(
            reason(decide(&rules, &full)),
            "the pool has issued 100 coupons, its total limit"
        );
        let one_left = IssueContext {
            pool_issued_total: 99,
            ..ctx()
        };
        assert_eq!(decide(&rules, &one_left), Decision::IssueNew);
    }

    #[test]
    fn resending_a_held_coupon_is_not_stopped_by_limits_on_new_issuals() {
        let rules = IssuanceRules {
            max_per_customer: Some(1),
            on_repeat: OnRepeat::ResendExisting,
            min_days_between: Some(30),
            max_total: Some(1),
            ..IssuanceRules::default()
        };
        let holder = IssueContext {
            customer_issued_count: 1,
            customer_last_issued_at: Some(ctx().now),
            existing_valid_coupon: Some(3),
            pool_issued_total: 1,
            ..ctx()
        };
        assert_eq!(decide(&rules, &holder), Decision::ReturnExisting(3));
    }

    #[test]
    fn pool_exhausted_is_a_refusal_the_store_raises() {
        let refusal = Refusal::pool_exhausted();
        assert_eq!(refusal.code.as_str(), "pool_exhausted");
        assert_eq!(refusal.reason, "the pool has no codes left to issue");
    }

    // Capillary, "Validations for Duplicate Users in a File while Issuing Coupon": the same
    // customer four times in one upload.

    #[test]
    fn duplicate_rows_with_three_per_customer() {
        let rules = IssuanceRules {
            max_per_customer: Some(3),
            ..IssuanceRules::default()
        };
        let mut ctx = ctx();
        assert_eq!(
            codes(&upload(&rules, &mut ctx, 4)),
            ["issue_new", "issue_new", "issue_new", "customer_limit"]
        );
        assert_eq!(codes(&upload(&rules, &mut ctx, 4)), ["customer_limit"; 4]);
        assert_eq!(codes(&upload(&rules, &mut ctx, 1)), ["customer_limit"]);
        assert_eq!(ctx.customer_issued_count, 3);
    }

    #[test]
    fn duplicate_rows_with_a_one_day_gap() {
        let rules = IssuanceRules {
            max_per_customer: Some(3),
            min_days_between: Some(1),
            ..IssuanceRules::default()
        };
        let mut ctx = ctx();
        assert_eq!(
            codes(&upload(&rules, &mut ctx, 4)),
            ["issue_new", "min_gap", "min_gap", "min_gap"]
        );
        // The next day the customer may be issued again.
        ctx.now += chrono::TimeDelta::days(1);
        assert_eq!(
            codes(&upload(&rules, &mut ctx, 2)),
            ["issue_new", "min_gap"]
        );
    }

    #[test]
    fn duplicate_rows_with_a_series_limit_of_two() {
        let rules = IssuanceRules {
            max_total: Some(2),
            ..IssuanceRules::default()
        };
        let mut ctx = ctx();
        assert_eq!(
            codes(&upload(&rules, &mut ctx, 4)),
            ["issue_new", "issue_new", "series_limit", "series_limit"]
        );
    }

    #[test]
    fn duplicate_rows_for_a_generic_code() {
        let rules = IssuanceRules::default();
        let mut ctx = IssueContext {
            is_common: true,
            ..ctx()
        };
        assert_eq!(
            codes(&upload(&rules, &mut ctx, 4)),
            [
                "issue_new",
                "already_issued",
                "already_issued",
                "already_issued"
            ]
        );
        let again = upload(&rules, &mut ctx, 4);
        assert_eq!(codes(&again), ["already_issued"; 4]);
        assert_eq!(
            reason(again[0].clone()),
            "Generic coupon code has already been issued to this customer"
        );
    }

    #[test]
    fn six_months_back_keeps_the_time_and_clamps_the_day() {
        assert_eq!(
            six_months_before(utc("2024-11-12T10:30:00Z")),
            utc("2024-05-12T10:30:00Z")
        );
        assert_eq!(
            six_months_before(utc("2024-08-31T23:00:00Z")),
            utc("2024-02-29T23:00:00Z")
        );
        assert_eq!(
            six_months_before(utc("2025-03-15T00:00:00Z")),
            utc("2024-09-15T00:00:00Z")
        );
    }

    #[test]
    fn the_limit_notification_is_due_once_when_remaining_reaches_the_threshold() {
        let rules = IssuanceRules {
            max_total: Some(100),
            notify_remaining_at: Some(10),
            ..IssuanceRules::default()
        };
        let due: Vec<u64> = (0..=100)
            .filter(|&after| limit_notification_due(&rules, after))
            .collect();
        assert_eq!(due, [90]);

        let at_zero = IssuanceRules {
            notify_remaining_at: Some(0),
            ..rules.clone()
        };
        assert!(limit_notification_due(&at_zero, 100));
        assert!(!limit_notification_due(&at_zero, 99));

        let no_threshold = IssuanceRules {
            notify_remaining_at: None,
            ..rules
        };
        assert!(!limit_notification_due(&no_threshold, 90));
    }

    #[test]
    fn validation_names_the_bad_field() {
        let field = |rules: IssuanceRules| rules.validate().unwrap_err().field;
        assert!(IssuanceRules::default().validate().is_ok());
        assert!(
            IssuanceRules {
                max_per_customer: Some(3),
                on_repeat: OnRepeat::ResendExisting,
                min_days_between: Some(0),
                max_total: Some(100),
                notify_remaining_at: Some(10),
                exclude_if_issued_from: vec![4, 5],
                allowed_levels: vec!["Gold".into()],
                aggregated: true,
                specific_customers_only: true,
            }
            .validate()
            .is_ok()
        );
        let cases = [
            (
                IssuanceRules {
                    max_per_customer: Some(0),
                    ..IssuanceRules::default()
                },
                "issuance.max_per_customer",
            ),
            (
                IssuanceRules {
                    on_repeat: OnRepeat::ResendExisting,
                    ..IssuanceRules::default()
                },
                "issuance.on_repeat",
            ),
            (
                IssuanceRules {
                    min_days_between: Some(MAX_GAP_DAYS + 1),
                    ..IssuanceRules::default()
                },
                "issuance.min_days_between",
            ),
            (
                IssuanceRules {
                    max_total: Some(0),
                    ..IssuanceRules::default()
                },
                "issuance.max_total",
            ),
            (
                IssuanceRules {
                    notify_remaining_at: Some(5),
                    ..IssuanceRules::default()
                },
                "issuance.notify_remaining_at",
            ),
            (
                IssuanceRules {
                    max_total: Some(5),
                    notify_remaining_at: Some(5),
                    ..IssuanceRules::default()
                },
                "issuance.notify_remaining_at",
            ),
            (
                IssuanceRules {
                    exclude_if_issued_from: vec![3, 0],
                    ..IssuanceRules::default()
                },
                "issuance.exclude_if_issued_from",
            ),
            (
                IssuanceRules {
                    exclude_if_issued_from: vec![1; MAX_EXCLUDED_POOLS + 1],
                    ..IssuanceRules::default()
                },
                "issuance.exclude_if_issued_from",
            ),
            (
                IssuanceRules {
                    allowed_levels: vec!["Gold".into(), " ".into()],
                    ..IssuanceRules::default()
                },
                "issuance.allowed_levels",
            ),
            (
                IssuanceRules {
                    allowed_levels: vec!["x".repeat(MAX_LEVEL_CHARS + 1)],
                    ..IssuanceRules::default()
                },
                "issuance.allowed_levels",
            ),
        ];
        for (rules, expected) in cases {
            assert_eq!(field(rules), expected);
        }
    }

    #[test]
    fn stored_json_uses_snake_case_and_defaults_missing_fields() {
        let rules: IssuanceRules =
            serde_json::from_str(r#"{"max_per_customer":2,"on_repeat":"resend_existing"}"#)
                .unwrap();
        assert_eq!(
            rules,
            IssuanceRules {
                max_per_customer: Some(2),
                on_repeat: OnRepeat::ResendExisting,
                ..IssuanceRules::default()
            }
        );
        let json = serde_json::to_value(IssuanceRules::default()).unwrap();
        assert_eq!(json["on_repeat"], "do_not_send");
        assert_eq!(json["aggregated"], false);
        assert_eq!(
            serde_json::to_value(RefusalCode::SeriesLimit).unwrap(),
            RefusalCode::SeriesLimit.as_str()
        );
    }
}
