//! Customer and POC messages: templates with `{{tags}}`, SMS segment counting (GSM-7 or
//! Unicode), when an expiry reminder is due, and how long a failed send waits before its retry.

use chrono::{DateTime, Days, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

use super::discount::DiscountType;

/// The tags a coupon message may use.
pub const TAGS: [&str; 5] = ["code", "expires_on", "pool_name", "customer_name", "value"];

/// The longest template accepted.
pub const MAX_TEMPLATE_CHARS: usize = 1_000;

/// Sends of one message before it is `dead`.
pub const MAX_ATTEMPTS: i32 = 8;

/// A template failed validation; the text says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// A parsed template: literal text and tags, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Tag(&'static str),
}

/// What a coupon message's tags stand for.
pub struct TagValues<'a> {
    pub code: &'a str,
    pub expires_on: &'a str,
    pub pool_name: &'a str,
    pub customer_name: &'a str,
    pub value: &'a str,
}

impl TagValues<'_> {
    fn get(&self, tag: &str) -> &str {
        match tag {
            "code" => self.code,
            "expires_on" => self.expires_on,
            "pool_name" => self.pool_name,
            "customer_name" => self.customer_name,
            _ => self.value,
        }
    }
}

impl Template {
    /// Parses `text`; an unknown or unclosed tag is an error, so a broken template is refused
    /// when it is saved rather than sent broken.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError("must not be empty".into()));
        }
        if text.chars().count() > MAX_TEMPLATE_CHARS {
            return Err(TemplateError(format!(
                "must be at most {MAX_TEMPLATE_CHARS} characters"
            )));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            push_text(&mut parts, &rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| TemplateError("a `{{` is never closed by `}}`".into()))?;
            let name = after[..end].trim();
            let tag = TAGS.iter().find(|t| **t == name).ok_or_else(|| {
                TemplateError(format!(
                    "unknown tag `{{{{{name}}}}}`; known tags: {}",
                    TAGS.map(|t| format!("{{{{{t}}}}}")).join(", ")
                ))
            })?;
            parts.push(Part::Tag(tag));
            rest = &after[end + 2..];
        }
        push_text(&mut parts, rest);
        Ok(Template { parts })
    }

    /// The literal text, without tags: what the Unicode check at save time looks at.
    pub fn literal_text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                Part::Tag(_) => None,
            })
            .collect()
    }

    pub fn render(&self, values: &TagValues) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.as_str(),
                Part::Tag(tag) => values.get(tag),
            })
            .collect()
    }
}

fn push_text(parts: &mut Vec<Part>, text: &str) {
    if !text.is_empty() {
        parts.push(Part::Text(text.to_string()));
    }
}

/// Checks an SMS template: it parses, and it needs Unicode only when Unicode is allowed.
pub fn check_sms_template(text: &str, allow_unicode: bool) -> Result<Template, TemplateError> {
    let template = Template::parse(text)?;
    if !allow_unicode && !is_gsm7(&template.literal_text()) {
        return Err(TemplateError(
            "has characters outside the GSM-7 alphabet; set allow_unicode to send it as Unicode"
                .into(),
        ));
    }
    Ok(template)
}

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of the GSM-7 extension table: each takes two septets.
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{c}";

fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_septets(c).is_some())
}

/// An SMS body as it will go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub body: String,
    pub unicode: bool,
    pub segments: u32,
}

/// Prepares a rendered body: Unicode (UCS-2) when it needs it and the template allows it;
/// otherwise characters outside GSM-7 (from tag values such as a customer's name) become `?`.
pub fn sms(body: &str, allow_unicode: bool) -> Sms {
    let unicode = allow_unicode && !is_gsm7(body);
    let body: String = if unicode || is_gsm7(body) {
        body.to_string()
    } else {
        body.chars()
            .map(|c| if gsm7_septets(c).is_some() { c } else { '?' })
            .collect()
    };
    let segments = if unicode {
        count_segments(body.encode_utf16().count(), 70, 67)
    } else {
        let septets = body.chars().filter_map(gsm7_septets).sum();
        count_segments(septets, 160, 153)
    };
    Sms {
        body,
        unicode,
        segments,
    }
}

/// One segment holds `single` units; a concatenated message loses room to its header.
fn count_segments(units: usize, single: usize, per_part: usize) -> u32 {
    if units <= single {
        1
    } else {
        units.div_ceil(per_part) as u32
    }
}

/// The HTML part of an email whose text part is `text`: escaped, one paragraph per blank-line
/// separated block, line breaks kept.
pub fn html_body(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let paragraphs: Vec<String> = escaped
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", p.trim().replace('\n', "<br>")))
        .collect();
    format!("<html><body>{}</body></html>", paragraphs.join(""))
}

/// The subject and text of the email to an org's POCs when a pool runs low.
pub fn limit_notice(pool_name: &str, remaining: u64, max_total: u64) -> (String, String) {
    (
        format!("Pool \"{pool_name}\": {remaining} coupons left to issue"),
        format!(
            "The coupon pool \"{pool_name}\" can issue {remaining} more of its {max_total} coupons.\n\n\
             Raise its issual limit or add codes before it runs out."
        ),
    )
}

/// The subject and text of the email to an org's POCs when a pool's codes run low.
pub fn codes_left_notice(pool_name: &str, codes_left: u64) -> (String, String) {
    (
        format!("Pool \"{pool_name}\": {codes_left} coupons left to issue"),
        format!(
            "The coupon pool \"{pool_name}\" has {codes_left} codes left to issue.\n\n\
             Upload or generate more codes before it runs out."
        ),
    )
}

/// Parses a reminder's `HH:MM`.
pub fn parse_time_of_day(text: &str) -> Result<NaiveTime, TemplateError> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .map_err(|_| TemplateError("must be a time of day as HH:MM (24-hour)".into()))
}

/// When a reminder `days_before` expiry at `at` (org-local) is due for a coupon expiring at
/// `expires_at`: that many days before the expiry's local date, at that local time. A time
/// that does not exist that day (a DST gap) moves an hour later.
pub fn reminder_due_at(
    expires_at: DateTime<Utc>,
    tz: Tz,
    days_before: u32,
    at: NaiveTime,
) -> Option<DateTime<Utc>> {
    let date = expires_at
        .with_timezone(&tz)
        .date_naive()
        .checked_sub_days(Days::new(u64::from(days_before)))?;
    let local = date.and_time(at);
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + TimeDelta::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// Whether a reminder goes out at `now`: its time has come and the coupon is still valid.
/// After downtime this catches up; after expiry it never sends.
pub fn reminder_due(due_at: DateTime<Utc>, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    due_at <= now && now < expires_at
}

/// Coupons expiring before this instant may have reminder (`days_before`, `at`) due at `now`,
/// and those after it cannot: the last local day whose `at` has passed, plus the reminder's
/// days, ends there. The reminder scan reads only this window, so coupons whose reminder is
/// still days away are not read again and again.
pub fn reminder_window_end(
    now: DateTime<Utc>,
    tz: Tz,
    days_before: u32,
    at: NaiveTime,
) -> DateTime<Utc> {
    let local = now.with_timezone(&tz);
    let mut last_day = local.date_naive();
    if local.time() < at {
        last_day = last_day.pred_opt().unwrap_or(last_day);
    }
    let end_day = last_day
        .checked_add_days(Days::new(u64::from(days_before) + 1))
        .unwrap_or(last_day);
    let midnight = end_day.and_time(NaiveTime::MIN);
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(midnight + TimeDelta::hours(1)))
                .earliest()
        })
        .map_or(now, |t| t.with_timezone(&Utc))
}

/// The wait after the `failed_attempts`-th failure: `base` doubling each time, at most an
/// hour, with up to a quarter of jitter so retries of many messages spread out.
pub fn retry_delay(base: TimeDelta, failed_attempts: i32, jitter: f64) -> TimeDelta {
    let doublings = failed_attempts.saturating_sub(1).clamp(0, 20) as u32;
    let longest = TimeDelta::hours(1);
    let delay = base
        .checked_mul(1 << doublings)
        .map_or(longest, |d| d.min(longest));
    let extra = delay.num_milliseconds() as f64 * jitter.clamp(0.0, 1.0) / 4.0;
    delay + TimeDelta::milliseconds(extra as i64)
}

/// How a customer message goes out.
// Stored as its name in `pool_reminders.channel`: never rename a `string_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum, EnumIter, DeriveActiveEnum)]
#[oai(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Channel {
    #[sea_orm(string_value = "sms")]
    Sms,
    #[sea_orm(string_value = "email")]
    Email,
}

/// What an outbox row is sent as: a customer message, or a webhook delivery.
// Stored as its name in `outbox.channel`: never rename a `string_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum OutboxChannel {
    #[sea_orm(string_value = "webhook")]
    Webhook,
    #[sea_orm(string_value = "email")]
    Email,
    #[sea_orm(string_value = "sms")]
    Sms,
}

impl OutboxChannel {
    /// The stored name, as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxChannel::Webhook => "webhook",
            OutboxChannel::Email => "email",
            OutboxChannel::Sms => "sms",
        }
    }
}

impl From<Channel> for OutboxChannel {
    fn from(channel: Channel) -> OutboxChannel {
        match channel {
            Channel::Sms => OutboxChannel::Sms,
            Channel::Email => OutboxChannel::Email,
        }
    }
}

/// What came of an expiry reminder for one coupon.
// Stored as its name in `reminder_deliveries.outcome`: never rename a `string_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum ReminderOutcome {
    /// The message is in the outbox.
    #[sea_orm(string_value = "queued")]
    Queued,
    /// The holder has no address on the reminder's channel; nothing was queued.
    #[sea_orm(string_value = "no_address")]
    NoAddress,
}

/// A coupon's value as a customer reads it: `15%`, `5.00 EUR`, `free shipping`.
pub fn display_value(
    discount_type: DiscountType,
    value: Option<i64>,
    currency: Option<&str>,
) -> String {
    match (discount_type, value) {
        (DiscountType::FreeShipping, _) => "free shipping".into(),
        // Percentages are stored in basis points.
        (DiscountType::Percentage, Some(v)) => {
            let whole = v / 100;
            match v % 100 {
                0 => format!("{whole}%"),
                frac => format!("{whole}.{frac:02}%"),
            }
        }
        (_, Some(v)) => {
            let amount = format!("{}.{:02}", v / 100, (v % 100).abs());
            match currency {
                Some(c) => format!("{amount} {c}"),
                None => amount,
            }
        }
        (_, None) => String::new(),
    }
}

/// A message's state in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for its first send or a retry.
    Pending,
    Sent,
    /// Given up: out of attempts, or refused for good.
    Dead,
}

impl OutboxState {
    pub fn of(sent: bool, attempts: i32, max_attempts: i32) -> OutboxState {
        if sent {
            OutboxState::Sent
        } else if attempts >= max_attempts {
            OutboxState::Dead
        } else {
            OutboxState::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_keep_their_stored_names() {
        use sea_orm::{ActiveEnum, Iterable};
        let stored: Vec<(Channel, String)> = Channel::iter().map(|c| (c, c.to_value())).collect();
        assert_eq!(
            stored,
            [
                (Channel::Sms, "sms".to_string()),
                (Channel::Email, "email".to_string()),
            ]
        );
        for (channel, name) in stored {
            assert_eq!(Channel::try_from_value(&name).unwrap(), channel);
            // A message's outbox row is on the channel of the same name.
            assert_eq!(OutboxChannel::from(channel).to_value(), name);
        }
        let outbox: Vec<(String, &str)> = OutboxChannel::iter()
            .map(|c| (c.to_value(), c.as_str()))
            .collect();
        assert_eq!(
            outbox,
            [
                ("webhook".to_string(), "webhook"),
                ("email".to_string(), "email"),
                ("sms".to_string(), "sms"),
            ]
        );
        assert!(OutboxChannel::try_from_value(&"push".to_string()).is_err());
        let outcomes: Vec<String> = ReminderOutcome::iter().map(|o| o.to_value()).collect();
        assert_eq!(outcomes, ["queued", "no_address"]);
    }
    use chrono_tz::Europe::Madrid;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn values() -> TagValues<'static> {
        TagValues {
            code: "ABC123",
            expires_on: "2026-12-31",
            pool_name: "Winter",
            customer_name: "Ana",
            value: "10%",
        }
    }

    #[test]
    fn templates_render_known_tags_and_refuse_unknown_ones() {
        let t = Template::parse("Hi {{customer_name}}, {{ code }} ends {{expires_on}}").unwrap();
        assert_eq!(t.render(&values()), "Hi Ana, ABC123 ends 2026-12-31");
        let err = Template::parse("Hi {{name}}").unwrap_err();
        assert!(err.0.contains("unknown tag `{{name}}`"), "{err}");
        assert!(Template::parse("Hi {{code").is_err());
        assert!(Template::parse("  ").is_err());
    }

    #[test]
    fn unicode_templates_need_allow_unicode() {
        assert!(check_sms_template("Tu cupón {{code}}", true).is_ok());
        assert!(check_sms_template("Ваш купон {{code}}", false).is_err());
        // é and ñ are in GSM-7.
        assert!(check_sms_template("Café ñ {{code}}", false).is_ok());
    }

    #[test]
    fn segments_follow_gsm7_and_ucs2_sizes() {
        assert_eq!(sms(&"a".repeat(160), false).segments, 1);
        assert_eq!(sms(&"a".repeat(161), false).segments, 2);
        assert_eq!(sms(&"a".repeat(306), false).segments, 2);
        assert_eq!(sms(&"€".repeat(80), false).segments, 1);
        assert_eq!(sms(&"€".repeat(81), false).segments, 2);
        let u = sms(&"ж".repeat(71), true);
        assert!(u.unicode);
        assert_eq!(u.segments, 2);
        assert_eq!(sms("ж1", false).body, "?1");
    }

    #[test]
    fn reminders_fall_on_local_days_and_times() {
        let at = parse_time_of_day("09:30").unwrap();
        // Expires 31 Dec 22:59:59 UTC = 23:59:59 in Madrid; 3 days before at 09:30 local.
        let due = reminder_due_at(utc("2026-12-31T22:59:59Z"), Madrid, 3, at).unwrap();
        assert_eq!(due, utc("2026-12-28T08:30:00Z"));
        // 23:30 UTC on 31 Dec is already 1 Jan in Madrid.
        let due = reminder_due_at(utc("2026-12-31T23:30:00Z"), Madrid, 0, at).unwrap();
        assert_eq!(due, utc("2027-01-01T08:30:00Z"));
        assert!(parse_time_of_day("25:00").is_err());
    }

    #[test]
    fn reminders_catch_up_only_while_the_coupon_is_valid() {
        let due = utc("2026-12-28T08:30:00Z");
        let expires = utc("2026-12-31T22:59:59Z");
        assert!(!reminder_due(due, expires, utc("2026-12-28T08:29:59Z")));
        assert!(reminder_due(due, expires, due));
        assert!(reminder_due(due, expires, utc("2026-12-30T00:00:00Z")));
        assert!(!reminder_due(due, expires, expires));
    }

    #[test]
    fn values_read_naturally() {
        assert_eq!(
            display_value(DiscountType::Percentage, Some(1500), None),
            "15%"
        );
        assert_eq!(
            display_value(DiscountType::Percentage, Some(1250), None),
            "12.50%"
        );
        assert_eq!(
            display_value(DiscountType::Amount, Some(505), Some("EUR")),
            "5.05 EUR"
        );
        assert_eq!(
            display_value(DiscountType::FreeShipping, None, None),
            "free shipping"
        );
    }

    #[test]
    fn html_parts_are_escaped_text() {
        assert_eq!(
            html_body("a <b>\nc\n\nd"),
            "<html><body><p>a &lt;b&gt;<br>c</p><p>d</p></body></html>"
        );
    }

    #[test]
    fn the_reminder_window_ends_after_the_last_due_expiry_day() {
        let at = parse_time_of_day("09:00").unwrap();
        // 08:59 in Madrid on 10 Dec: 9 Dec is the last day whose 09:00 passed; 3 days before
        // covers expiries up to 12 Dec, so the window ends at 13 Dec 00:00 local.
        let before = reminder_window_end(utc("2026-12-10T07:59:00Z"), Madrid, 3, at);
        assert_eq!(before, utc("2026-12-12T23:00:00Z"));
        let after = reminder_window_end(utc("2026-12-10T08:00:00Z"), Madrid, 3, at);
        assert_eq!(after, utc("2026-12-13T23:00:00Z"));
        // Every expiry inside the window is due, the first one outside is not.
        let now = utc("2026-12-10T08:00:00Z");
        let inside = utc("2026-12-13T22:59:59Z");
        let due = reminder_due_at(inside, Madrid, 3, at).unwrap();
        assert!(reminder_due(due, inside, now));
        let due = reminder_due_at(after, Madrid, 3, at).unwrap();
        assert!(!reminder_due(due, after, now));
    }

    #[test]
    fn retries_back_off_with_bounded_jitter() {
        let base = TimeDelta::seconds(10);
        assert_eq!(retry_delay(base, 1, 0.0), TimeDelta::seconds(10));
        assert_eq!(retry_delay(base, 3, 0.0), TimeDelta::seconds(40));
        assert_eq!(retry_delay(base, 3, 1.0), TimeDelta::seconds(50));
        assert_eq!(retry_delay(base, 30, 0.0), TimeDelta::hours(1));
    }
}
