//! `/v1/webhooks`: subscriptions to coupon and pool events, delivered signed (Standard Webhooks).

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use super::{auth::ApiKeyAuth, error::ApiResult, state::AppState, tags::ApiTags};
use crate::{
    domain::{api_key::Scope, webhook::WebhookEvent},
    service,
};

#[derive(Object)]
pub struct CreateWebhook {
    /// Where events are POSTed (http or https).
    #[oai(validator(max_length = 2000))]
    pub url: String,
    /// The events to deliver; at least one.
    pub events: Vec<WebhookEvent>,
    /// Signing secret: the base64 of the key, `whsec_` prefix optional (Standard Webhooks). Generated
    /// (and shown once) when absent.
    #[oai(validator(min_length = 16, max_length = 256))]
    pub secret: Option<String>,
}

/// A subscription as listed: never its secret.
#[derive(Object)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub created_at: DateTime<Utc>,
}

/// A subscription just created: the only response that carries its secret.
#[derive(Object)]
pub struct CreatedWebhook {
    #[oai(flatten)]
    pub webhook: Webhook,
    /// Verify `webhook-signature` with this (Standard Webhooks, HMAC-SHA256).
    pub secret: String,
}

#[derive(Object)]
pub struct WebhookList {
    pub items: Vec<Webhook>,
}

#[derive(ApiResponse)]
pub enum CreateWebhookResponse {
    #[oai(status = 201)]
    Created(Json<CreatedWebhook>),
}

#[derive(ApiResponse)]
pub enum DeleteWebhookResponse {
    /// Deleted; deliveries still queued for it are dropped.
    #[oai(status = 204)]
    Deleted,
}

impl From<crate::store::entity::webhooks::Model> for Webhook {
    fn from(m: crate::store::entity::webhooks::Model) -> Webhook {
        Webhook {
            events: m.events.0,
            id: m.id,
            url: m.url,
            created_at: m.created_at,
        }
    }
}

pub struct WebhooksApi;

#[OpenApi(prefix_path = "/v1/webhooks", tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Subscribes a URL to events. Each delivery is a POST of
    /// `{"type", "timestamp", "data"}` with `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature` headers; any 2xx answer acknowledges it, anything else is retried
    /// with exponential backoff for about 29 hours.
    #[oai(path = "/", method = "post", operation_id = "createWebhook")]
    async fn create(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        body: Json<CreateWebhook>,
    ) -> ApiResult<CreateWebhookResponse> {
        auth.0.require(Scope::Admin)?;
        let body = body.0;
        let (row, secret) = service::subscriptions::create(
            &state.db,
            auth.0.org_id,
            body.url,
            body.events,
            body.secret,
        )
        .await?;
        Ok(CreateWebhookResponse::Created(Json(CreatedWebhook {
            webhook: row.into(),
            secret,
        })))
    }

    /// Lists the org's subscriptions, without secrets.
    #[oai(path = "/", method = "get", operation_id = "listWebhooks")]
    async fn list(&self, auth: ApiKeyAuth, state: Data<&AppState>) -> ApiResult<Json<WebhookList>> {
        auth.0.require(Scope::Admin)?;
        let rows = service::subscriptions::list(&state.db, auth.0.org_id).await?;
        Ok(Json(WebhookList {
            items: rows.into_iter().map(Webhook::from).collect(),
        }))
    }

    #[oai(path = "/:id", method = "delete", operation_id = "deleteWebhook")]
    async fn delete(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<DeleteWebhookResponse> {
        auth.0.require(Scope::Admin)?;
        service::subscriptions::delete(&state.db, auth.0.org_id, id.0).await?;
        Ok(DeleteWebhookResponse::Deleted)
    }
}
