//! The loyalty market's rules: who may see a coupon product, when it may be bought, and how
//! codes typed into the product form are read.

use chrono::{DateTime, Utc};

use super::Invalid;

/// The product facts the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Terms<'a> {
    pub visible: bool,
    pub archived: bool,
    /// Customer levels allowed to see and buy it; empty means everyone.
    pub levels: &'a [String],
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// Why a product cannot be bought right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// Archived, or outside its availability window.
    NotAvailable,
    Hidden,
    LevelNotAllowed,
}

impl Blocked {
    pub fn code(self) -> &'static str {
        match self {
            Blocked::NotAvailable => "product_not_available",
            Blocked::Hidden => "product_hidden",
            Blocked::LevelNotAllowed => "level_not_allowed",
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            Blocked::NotAvailable => "the product is archived or outside its availability window",
            Blocked::Hidden => "the product is not visible in the market",
            Blocked::LevelNotAllowed => "the product is reserved for other customer levels",
        }
    }
}

pub fn level_allows(levels: &[String], level: Option<&str>) -> bool {
    levels.is_empty() || level.is_some_and(|l| levels.iter().any(|allowed| allowed == l))
}

/// Whether a customer of this level sees the product in the market.
pub fn may_see(t: &Terms, level: Option<&str>) -> bool {
    t.visible && !t.archived && level_allows(t.levels, level)
}

pub fn in_window(t: &Terms, now: DateTime<Utc>) -> bool {
    t.starts_at.is_none_or(|s| s <= now) && t.ends_at.is_none_or(|e| now < e)
}

/// Whether a customer of this level may buy the product at `now` (stock and points aside).
pub fn check_purchase(t: &Terms, level: Option<&str>, now: DateTime<Utc>) -> Result<(), Blocked> {
    if t.archived {
        return Err(Blocked::NotAvailable);
    }
    if !t.visible {
        return Err(Blocked::Hidden);
    }
    if !level_allows(t.levels, level) {
        return Err(Blocked::LevelNotAllowed);
    }
    if !in_window(t, now) {
        return Err(Blocked::NotAvailable);
    }
    Ok(())
}

/// The most points one entry or price may move, far below where sums could overflow.
pub const MAX_POINTS: i64 = 1_000_000_000_000;

pub fn validate_price(price: i64) -> Result<(), Invalid> {
    if price <= 0 || price > MAX_POINTS {
        return Err(invalid(
            "price_points",
            format!("must be between 1 and {MAX_POINTS}"),
        ));
    }
    Ok(())
}

pub fn validate_delta(delta: i64) -> Result<(), Invalid> {
    if delta == 0 || delta.unsigned_abs() > MAX_POINTS.unsigned_abs() {
        return Err(invalid(
            "delta",
            format!("must be non-zero and at most {MAX_POINTS} either way"),
        ));
    }
    Ok(())
}

pub fn validate_max_per_customer(max: Option<i64>) -> Result<(), Invalid> {
    match max {
        Some(m) if m < 1 => Err(invalid("max_per_customer", "must be at least 1".into())),
        _ => Ok(()),
    }
}

pub fn validate_levels(levels: &[String]) -> Result<(), Invalid> {
    for level in levels {
        if level.trim().is_empty() {
            return Err(invalid("levels", "a level must not be blank".into()));
        }
        check_text("levels", level, 100)?;
    }
    Ok(())
}

/// A free-text field: at most `max` characters and no control characters (NUL would be a
/// PostgreSQL error, the rest corrupt listings and CSVs).
pub fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters".into()));
    }
    Ok(())
}

fn invalid(field: &'static str, reason: String) -> Invalid {
    Invalid { field, reason }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn terms(levels: &[String]) -> Terms<'_> {
        Terms {
            visible: true,
            archived: false,
            levels,
            starts_at: None,
            ends_at: None,
        }
    }

    #[test]
    fn levels_restrict_sight_and_purchase() {
        let gold = vec!["gold".to_string()];
        let now = Utc::now();
        assert!(may_see(&terms(&gold), Some("gold")));
        assert!(!may_see(&terms(&gold), Some("silver")));
        assert!(!may_see(&terms(&gold), None));
        assert!(may_see(&terms(&[]), None));
        assert_eq!(
            check_purchase(&terms(&gold), Some("silver"), now),
            Err(Blocked::LevelNotAllowed)
        );
        assert_eq!(check_purchase(&terms(&gold), Some("gold"), now), Ok(()));
    }

    #[test]
    fn hidden_archived_and_window_block_purchase() {
        let now = Utc::now();
        let mut t = terms(&[]);
        t.visible = false;
        assert_eq!(check_purchase(&t, None, now), Err(Blocked::Hidden));
        t.archived = true;
        assert_eq!(check_purchase(&t, None, now), Err(Blocked::NotAvailable));
        let mut t = terms(&[]);
        t.starts_at = Some(now + TimeDelta::hours(1));
        assert_eq!(check_purchase(&t, None, now), Err(Blocked::NotAvailable));
        t.starts_at = Some(now - TimeDelta::hours(2));
        t.ends_at = Some(now - TimeDelta::hours(1));
        assert_eq!(check_purchase(&t, None, now), Err(Blocked::NotAvailable));
        t.ends_at = Some(now + TimeDelta::hours(1));
        assert_eq!(check_purchase(&t, None, now), Ok(()));
    }

    #[test]
    fn points_bounds() {
        assert!(validate_delta(0).is_err());
        assert!(validate_delta(-5).is_ok());
        assert!(validate_delta(MAX_POINTS + 1).is_err());
        assert!(validate_delta(i64::MIN).is_err());
        assert!(validate_price(0).is_err());
        assert!(validate_price(10).is_ok());
        assert!(validate_max_per_customer(Some(0)).is_err());
        assert!(validate_levels(&[" ".into()]).is_err());
        assert!(check_text("name", "a\0b", 10).is_err());
        assert!(check_text("name", "ok", 1).is_err());
        assert!(check_text("name", "ok", 2).is_ok());
    }
}
