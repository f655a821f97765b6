//! Pools' expiry reminders and resend template, resending a coupon, and the admin view of the
//! email/SMS outbox. Customer messages are rendered when they are queued, so what goes out is
//! what the template said at that moment.

use crate::store::entity::{coupons, customers, outbox, pool_messages, pool_reminders, pools};
use chrono::Utc;
use chrono_tz::Tz;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use serde_json::{Value, json};

use crate::{
    domain::{
        coupon::CouponStatus,
        message::{self, Channel, OutboxChannel, OutboxState, TagValues, Template},
        webhook,
    },
    service::{Error, Result},
    store,
};

/// Reminders a pool may have.
pub const MAX_REMINDERS: usize = 10;
/// The earliest a reminder may go, in days before expiry.
pub const MAX_DAYS_BEFORE: u32 = 365;

const DEFAULT_RESEND: &str = "Your coupon for {{pool_name}}: {{code}}, valid until {{expires_on}}.";
const DEFAULT_RESEND_SUBJECT: &str = "Your coupon {{code}}";
const DEFAULT_REMINDER_SUBJECT: &str = "Your coupon {{code}} expires on {{expires_on}}";

/// A reminder as asked for.
#[derive(Debug, Clone)]
pub struct ReminderSpec {
    pub days_before: u32,
    /// `HH:MM`, the org's local time.
    pub at: String,
    pub channel: Channel,
    /// Email only; a default subject otherwise.
    pub subject: Option<String>,
    pub template: String,
    pub allow_unicode: bool,
}

/// The resend template as asked for.
#[derive(Debug, Clone)]
pub struct ResendSpec {
    pub template: String,
    pub subject: Option<String>,
    pub allow_unicode: bool,
}

async fn pool<C: ConnectionTrait>(db: &C, org_id: i64, pool_id: i64) -> Result<pools::Model> {
    store::pools::get(db, org_id, pool_id)
        .await?
        .ok_or_else(|| Error::not_found("pool", pool_id))
}

pub async fn reminders(
    db: &DatabaseConnection,
    org_id: i64,
    pool_id: i64,
) -> Result<Vec<pool_reminders::Model>> {
    pool(db, org_id, pool_id).await?;
    Ok(store::notifications::reminders_of(db, pool_id).await?)
}

/// Replaces the pool's reminders; every template is checked first (unknown tags, Unicode
/// without `allow_unicode`), so a bad one changes nothing.
pub async fn set_reminders(
    db: &DatabaseConnection,
    org_id: i64,
    pool_id: i64,
    specs: Vec<ReminderSpec>,
) -> Result<Vec<pool_reminders::Model>> {
    if specs.len() > MAX_REMINDERS {
        return Err(Error::invalid(
            "reminders",
            format!("at most {MAX_REMINDERS} reminders per pool"),
        ));
    }
    let mut rows = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        rows.push(check_reminder(i, spec)?);
    }
    let txn = db.begin().await?;
    pool(&txn, org_id, pool_id).await?;
    let saved = store::notifications::replace_reminders(&txn, org_id, pool_id, rows).await?;
    txn.commit().await?;
    Ok(saved)
}

fn check_reminder(i: usize, spec: ReminderSpec) -> Result<store::notifications::NewReminder> {
    let field = |name: &str| format!("reminders[{i}].{name}");
    if spec.days_before > MAX_DAYS_BEFORE {
        return Err(Error::invalid(
            field("days_before"),
            format!("at most {MAX_DAYS_BEFORE}"),
        ));
    }
    let at = message::parse_time_of_day(&spec.at).map_err(|e| Error::invalid(field("at"), e.0))?;
    check_template(spec.channel, &spec.template, spec.allow_unicode)
        .map_err(|e| Error::invalid(field("template"), e.0))?;
    if let Some(subject) = &spec.subject {
        Template::parse(subject).map_err(|e| Error::invalid(field("subject"), e.0))?;
    }
    Ok(store::notifications::NewReminder {
        days_before: spec.days_before as i32,
        at_time: at.format("%H:%M").to_string(),
        channel: spec.channel,
        subject: spec.subject,
        template: spec.template,
        allow_unicode: spec.allow_unicode,
    })
}

fn check_template(
    channel: Channel,
    text: &str,
    allow_unicode: bool,
) -> std::result::Result<Template, message::TemplateError> {
    match channel {
        Channel::Sms => message::check_sms_template(text, allow_unicode),
        Channel::Email => Template::parse(text),
    }
}

pub async fn messages(
    db: &DatabaseConnection,
    org_id: i64,
    pool_id: i64,
) -> Result<pool_messages::Model> {
    pool(db, org_id, pool_id).await?;
    let saved = store::notifications::messages_of(db, pool_id).await?;
    Ok(saved.unwrap_or_else(|| default_messages(org_id, pool_id)))
}

fn default_messages(org_id: i64, pool_id: i64) -> pool_messages::Model {
    pool_messages::Model {
        pool_id,
        org_id,
        resend_template: DEFAULT_RESEND.into(),
        resend_subject: None,
        allow_unicode: false,
        updated_at: Utc::now(),
    }
}

/// Saves the pool's resend template; it goes out by SMS as well as email, so it is checked as
/// an SMS template.
pub async fn set_messages(
    db: &DatabaseConnection,
    org_id: i64,
    pool_id: i64,
    spec: ResendSpec,
) -> Result<pool_messages::Model> {
    message::check_sms_template(&spec.template, spec.allow_unicode)
        .map_err(|e| Error::invalid("resend_template", e.0))?;
    if let Some(subject) = &spec.subject {
        Template::parse(subject).map_err(|e| Error::invalid("resend_subject", e.0))?;
    }
    pool(db, org_id, pool_id).await?;
    let row = pool_messages::Model {
        pool_id,
        org_id,
        resend_template: spec.template,
        resend_subject: spec.subject,
        allow_unicode: spec.allow_unicode,
        updated_at: Utc::now(),
    };
    Ok(store::notifications::put_messages(db, row).await?)
}

/// What a resend queued.
#[derive(Debug, Clone)]
pub struct Resent {
    pub channel: Channel,
    pub to: String,
}

/// Sends the coupon with this code again to its holder, on the pool's resend template.
pub async fn resend_code(
    db: &DatabaseConnection,
    org_id: i64,
    code: &str,
    asked: Option<Channel>,
) -> Result<Resent> {
    let (coupon, pool_of) = store::coupons::by_code(db, org_id, code, &[0])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found("coupon", code))?;
    let Some(customer_id) = coupon.customer_id else {
        return Err(Error::conflict(
            "coupon_not_issued",
            "the coupon is not issued to anyone",
        ));
    };
    let customer = super::customers::holder(db, org_id, customer_id).await?;
    let tz = super::org_tz(&pool_of.timezone)?;
    let dedup_key = format!("resend:{}:{}", coupon.id, uuid::Uuid::now_v7());
    queue_resend(db, &pool_of.pool, tz, &coupon, &customer, asked, dedup_key).await
}

/// Queues a resend of an issued coupon, in the caller's transaction: SMS unless email is asked
/// for or no mobile number is known.
pub async fn queue_resend<C: ConnectionTrait>(
    db: &C,
    pool: &pools::Model,
    tz: Tz,
    coupon: &coupons::Model,
    customer: &customers::Model,
    asked: Option<Channel>,
    dedup_key: String,
) -> Result<Resent> {
    if coupon.status != CouponStatus::Issued {
        return Err(Error::conflict(
            "coupon_not_active",
            "only an issued coupon that is not used up, expired or withdrawn can be resent",
        ));
    }
    let (channel, to) = resend_address(customer, asked).ok_or_else(|| {
        Error::conflict(
            "no_address",
            "the customer has no mobile number or email address for this channel",
        )
    })?;
    let saved = store::notifications::messages_of(db, pool.id).await?;
    let saved = saved.unwrap_or_else(|| default_messages(pool.org_id, pool.id));
    let draft = Draft {
        channel,
        to: to.clone(),
        subject: saved
            .resend_subject
            .as_deref()
            .unwrap_or(DEFAULT_RESEND_SUBJECT),
        template: &saved.resend_template,
        allow_unicode: saved.allow_unicode,
    };
    let payload = draft.render(&Facts {
        coupon,
        pool,
        customer,
        tz,
    })?;
    store::outbox::push(db, pool.org_id, channel.into(), dedup_key, payload).await?;
    Ok(Resent { channel, to })
}

fn resend_address(
    customer: &customers::Model,
    asked: Option<Channel>,
) -> Option<(Channel, String)> {
    let sms = || customer.mobile.clone().map(|to| (Channel::Sms, to));
    let email = || customer.email.clone().map(|to| (Channel::Email, to));
    match asked {
        Some(Channel::Sms) => sms(),
        Some(Channel::Email) => email(),
        None => sms().or_else(email),
    }
}

/// Where a coupon message gets its tag values.
pub struct Facts<'a> {
    pub coupon: &'a coupons::Model,
    pub pool: &'a pools::Model,
    pub customer: &'a customers::Model,
    pub tz: Tz,
}

/// A customer message about to be rendered.
pub struct Draft<'a> {
    pub channel: Channel,
    pub to: String,
    pub subject: &'a str,
    pub template: &'a str,
    pub allow_unicode: bool,
}

impl Draft<'_> {
    /// The outbox payload: `{to, subject, text}` for email, `{to, body, unicode, segments}`
    /// for SMS.
    pub fn render(&self, facts: &Facts) -> Result<Value> {
        let (expires_on, value) = expiry_and_value(facts.coupon, facts.pool, facts.tz);
        let values = TagValues {
            code: &facts.coupon.code,
            expires_on: &expires_on,
            pool_name: &facts.pool.name,
            customer_name: &customer_name(facts.customer),
            value: &value,
        };
        // Templates were checked when saved; a failure here means the stored row is corrupt.
        let body = Template::parse(self.template)
            .map_err(|e| Error::internal(format!("stored template: {e}")))?
            .render(&values);
        Ok(match self.channel {
            Channel::Email => {
                let subject = Template::parse(self.subject)
                    .map_err(|e| Error::internal(format!("stored subject: {e}")))?
                    .render(&values);
                json!({"to": self.to, "subject": subject, "text": body})
            }
            Channel::Sms => {
                let sms = message::sms(&body, self.allow_unicode);
                json!({"to": self.to, "body": sms.body, "unicode": sms.unicode, "segments": sms.segments})
            }
        })
    }
}

/// A coupon's expiry date (in the org's time zone) and value as messages print them.
pub fn expiry_and_value(coupon: &coupons::Model, pool: &pools::Model, tz: Tz) -> (String, String) {
    let expires_on = coupon
        .expires_at
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let value = message::display_value(
        pool.discount_type,
        coupon.value.or(pool.value),
        pool.currency.as_deref(),
    );
    (expires_on, value)
}

/// The reminder's subject, or the default one.
pub fn reminder_subject(reminder: &pool_reminders::Model) -> &str {
    reminder
        .subject
        .as_deref()
        .unwrap_or(DEFAULT_REMINDER_SUBJECT)
}

/// A customer's name from their attributes (`name`, else `first_name`), else empty.
pub fn customer_name(customer: &customers::Model) -> String {
    let attributes = customer.attributes.as_ref();
    ["name", "first_name"]
        .iter()
        .find_map(|k| attributes.and_then(|a| a[*k].as_str()))
        .unwrap_or_default()
        .to_string()
}

/// The org's outbox rows, newest first.
pub async fn outbox(
    db: &DatabaseConnection,
    org_id: i64,
    channel: Option<&str>,
    state: Option<OutboxState>,
    limit: u64,
) -> Result<Vec<outbox::Model>> {
    Ok(store::notifications::list(db, org_id, channel, state, limit).await?)
}

/// Sends a dead message again, with fresh attempts.
pub async fn retry(db: &DatabaseConnection, org_id: i64, id: i64) -> Result<outbox::Model> {
    let row = store::notifications::get(db, org_id, id)
        .await?
        .ok_or_else(|| Error::not_found("message", id))?;
    if !store::notifications::revive(db, org_id, id, Utc::now()).await? {
        return Err(Error::conflict(
            "message_not_dead",
            format!(
                "message {id} is {}; only dead messages can be retried",
                state_name(state_of(&row))
            ),
        ));
    }
    store::notifications::get(db, org_id, id)
        .await?
        .ok_or_else(|| Error::not_found("message", id))
}

/// Whether a message is pending, sent or dead (its channel's attempts used up).
pub fn state_of(row: &outbox::Model) -> OutboxState {
    OutboxState::of(
        row.sent_at.is_some(),
        row.attempts,
        max_attempts(row.channel),
    )
}

/// Attempts after which a row of `channel` is dead.
fn max_attempts(channel: OutboxChannel) -> i32 {
    if channel == OutboxChannel::Webhook {
        webhook::MAX_ATTEMPTS
    } else {
        message::MAX_ATTEMPTS
    }
}

fn state_name(state: OutboxState) -> &'static str {
    match state {
        OutboxState::Pending => "pending",
        OutboxState::Sent => "sent",
        OutboxState::Dead => "dead",
    }
}
