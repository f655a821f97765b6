//! Notifications: a pool's expiry reminders and resend template, resending a coupon, and the
//! email/SMS outbox for admins.

use crate::store::entity::{outbox, pool_messages, pool_reminders};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{ApiTags, AppState, auth::ApiKeyAuth, error::ApiResult};
use crate::{
    domain::{
        api_key::Scope,
        message::{Channel, OutboxState},
    },
    service::notifications::{self, ReminderSpec, ResendSpec},
};

/// One expiry reminder: `days_before` the coupon's expiry date, at `at` in the org's time zone.
#[derive(Object)]
pub struct ExpiryReminder {
    #[oai(read_only)]
    pub id: i64,
    /// Days before the expiry date (0: on the day it expires).
    pub days_before: u32,
    /// `HH:MM`, 24-hour, the org's local time.
    pub at: String,
    pub channel: Channel,
    /// Email subject; tags allowed. Default: "Your coupon {{code}} expires on {{expires_on}}".
    #[oai(validator(max_length = 200))]
    pub subject: Option<String>,
    /// The message, with tags {{code}}, {{expires_on}}, {{pool_name}}, {{customer_name}},
    /// {{value}}; any other tag is refused.
    pub template: String,
    /// SMS only: send as Unicode when the text needs it. Without it, a template with
    /// characters outside GSM-7 is refused.
    #[oai(default)]
    pub allow_unicode: bool,
}

#[derive(Object)]
pub struct ExpiryReminderList {
    pub items: Vec<ExpiryReminder>,
}

/// How a pool's coupons are sent again.
#[derive(Object)]
pub struct PoolMessages {
    /// The resend message (SMS, or email text), tags as in reminders.
    pub resend_template: String,
    /// Email subject of resends; tags allowed. Default: "Your coupon {{code}}".
    #[oai(validator(max_length = 200))]
    pub resend_subject: Option<String>,
    #[oai(default)]
    pub allow_unicode: bool,
}

#[derive(Object)]
pub struct ResendRequest {
    /// SMS by default; email when asked or when the customer has no mobile number.
    pub channel: Option<Channel>,
}

#[derive(Object)]
pub struct Resent {
    pub channel: Channel,
    pub to: String,
}

/// A queued or sent message.
#[derive(Object)]
pub struct OutboxMessage {
    pub id: i64,
    /// `email`, `sms` or `webhook`.
    pub channel: String,
    pub state: OutboxState,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// What is sent: recipient, subject and text, or SMS body and segment count.
    pub payload: serde_json::Value,
}

#[derive(Object)]
pub struct OutboxList {
    pub items: Vec<OutboxMessage>,
}

impl From<pool_reminders::Model> for ExpiryReminder {
    fn from(m: pool_reminders::Model) -> ExpiryReminder {
        ExpiryReminder {
            id: m.id,
            days_before: m.days_before.max(0) as u32,
            at: m.at_time,
            channel: m.channel,
            subject: m.subject,
            template: m.template,
            allow_unicode: m.allow_unicode,
        }
    }
}

impl From<pool_messages::Model> for PoolMessages {
    fn from(m: pool_messages::Model) -> PoolMessages {
        PoolMessages {
            resend_template: m.resend_template,
            resend_subject: m.resend_subject,
            allow_unicode: m.allow_unicode,
        }
    }
}

impl From<outbox::Model> for OutboxMessage {
    fn from(m: outbox::Model) -> OutboxMessage {
        OutboxMessage {
            state: notifications::state_of(&m),
            id: m.id,
            channel: m.channel.as_str().to_string(),
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            sent_at: m.sent_at,
            last_error: m.last_error,
            created_at: m.created_at,
            payload: m.payload,
        }
    }
}

const MAX_LIST: u32 = 500;

pub struct NotificationsApi;

#[OpenApi(tag = "ApiTags::Notifications")]
impl NotificationsApi {
    /// The pool's expiry reminders.
    #[oai(
        path = "/v1/pools/:id/reminders",
        method = "get",
        operation_id = "getPoolReminders"
    )]
    async fn reminders(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<ExpiryReminderList>> {
        super::pools::find(&state, &auth.0, id.0).await?;
        let rows = notifications::reminders(&state.db, auth.0.org_id, id.0).await?;
        Ok(Json(ExpiryReminderList {
            items: rows.into_iter().map(ExpiryReminder::from).collect(),
        }))
    }

    /// Replaces the pool's expiry reminders (admin). A reminder with the same days, time and
    /// channel as a saved one keeps its identity: coupons that had it do not get it again.
    #[oai(
        path = "/v1/pools/:id/reminders",
        method = "put",
        operation_id = "setPoolReminders"
    )]
    async fn set_reminders(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: Json<ExpiryReminderList>,
    ) -> ApiResult<Json<ExpiryReminderList>> {
        super::pools::find(&state, &auth.0, id.0).await?;
        let specs = body
            .0
            .items
            .into_iter()
            .map(|r| ReminderSpec {
                days_before: r.days_before,
                at: r.at,
                channel: r.channel,
                subject: r.subject,
                template: r.template,
                allow_unicode: r.allow_unicode,
            })
            .collect();
        let rows = notifications::set_reminders(&state.db, auth.0.org_id, id.0, specs).await?;
        Ok(Json(ExpiryReminderList {
            items: rows.into_iter().map(ExpiryReminder::from).collect(),
        }))
    }

    /// The pool's resend template (the default one until set).
    #[oai(
        path = "/v1/pools/:id/messages",
        method = "get",
        operation_id = "getPoolMessages"
    )]
    async fn messages(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<PoolMessages>> {
        super::pools::find(&state, &auth.0, id.0).await?;
        let row = notifications::messages(&state.db, auth.0.org_id, id.0).await?;
        Ok(Json(row.into()))
    }

    /// Sets the pool's resend template (admin).
    #[oai(
        path = "/v1/pools/:id/messages",
        method = "put",
        operation_id = "setPoolMessages"
    )]
    async fn set_messages(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: Json<PoolMessages>,
    ) -> ApiResult<Json<PoolMessages>> {
        super::pools::find(&state, &auth.0, id.0).await?;
        let spec = ResendSpec {
            template: body.0.resend_template,
            subject: body.0.resend_subject,
            allow_unicode: body.0.allow_unicode,
        };
        let row = notifications::set_messages(&state.db, auth.0.org_id, id.0, spec).await?;
        Ok(Json(row.into()))
    }

    /// Sends an issued coupon again to its holder on the pool's resend template.
    #[oai(
        path = "/v1/coupons/:code/resend",
        method = "post",
        operation_id = "resendCoupon"
    )]
    async fn resend(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        code: Path<String>,
        body: Json<ResendRequest>,
    ) -> ApiResult<Json<Resent>> {
        auth.0.require_any(&[Scope::Pos, Scope::Workflow])?;
        let done =
            notifications::resend_code(&state.db, auth.0.org_id, &code.0, body.0.channel).await?;
        Ok(Json(Resent {
            channel: done.channel,
            to: done.to,
        }))
    }

    /// Queued, sent and dead messages of the org, newest first (admin).
    #[oai(path = "/v1/outbox", method = "get", operation_id = "listOutbox")]
    async fn outbox(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        #[oai(name = "state")] message_state: Query<Option<OutboxState>>,
        channel: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
    ) -> ApiResult<Json<OutboxList>> {
        auth.0.require(Scope::Admin)?;
        let rows = notifications::outbox(
            &state.db,
            auth.0.org_id,
            channel.0.as_deref(),
            message_state.0,
            u64::from(limit.0.unwrap_or(100).min(MAX_LIST)),
        )
        .await?;
        Ok(Json(OutboxList {
            items: rows.into_iter().map(OutboxMessage::from).collect(),
        }))
    }

    /// Sends a dead message again with fresh attempts (admin); 409 unless it is dead.
    #[oai(
        path = "/v1/outbox/:id/retry",
        method = "post",
        operation_id = "retryOutboxMessage"
    )]
    async fn retry(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<OutboxMessage>> {
        auth.0.require(Scope::Admin)?;
        let row = notifications::retry(&state.db, auth.0.org_id, id.0).await?;
        Ok(Json(row.into()))
    }
}
