//! `/v1/api-keys`: scoped keys of the caller's org (admin only).

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use super::{auth::ApiKeyAuth, error::ApiResult, state::AppState, tags::ApiTags};
use crate::{domain::api_key::Scope, service};

#[derive(Object)]
pub struct CreateApiKey {
    /// What the key is for, e.g. "checkout eu-west".
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// At least one of admin, pos, workflow, market, remote.
    pub scopes: Vec<Scope>,
    /// The pool a `remote` key issues from.
    pub pool_id: Option<i64>,
    /// When set, requests made with this key must be signed with it (HMAC-SHA256).
    #[oai(validator(min_length = 16, max_length = 256))]
    pub signing_secret: Option<String>,
    /// Access groups an `admin` key is limited to: it then manages only their pools. Empty or
    /// absent: every pool of the org.
    #[oai(default, validator(max_items = 100))]
    pub groups: Vec<i64>,
}

/// A key as listed: never its secret.
#[derive(Object)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub pool_id: Option<i64>,
    /// The access groups the key is limited to; empty when it reaches every pool.
    pub groups: Vec<i64>,
    /// The first characters of the key, to tell keys apart.
    pub key_hint: String,
    /// Whether requests must be signed.
    pub signed: bool,
    pub created_at: DateTime<Utc>,
}

/// A key just created: the only response that ever carries the secret.
#[derive(Object)]
pub struct CreatedApiKey {
    #[oai(flatten)]
    pub key: ApiKey,
    /// The secret to send as `Authorization: Bearer <api_key>`. Shown once.
    pub api_key: String,
}

#[derive(Object)]
pub struct ApiKeyList {
    pub items: Vec<ApiKey>,
}

#[derive(ApiResponse)]
pub enum CreateApiKeyResponse {
    /// The key was created.
    #[oai(status = 201)]
    Created(Json<CreatedApiKey>),
}

#[derive(ApiResponse)]
pub enum RevokeApiKeyResponse {
    /// The key was revoked and no longer authenticates.
    #[oai(status = 204)]
    Revoked,
}

impl From<crate::store::entity::api_keys::Model> for ApiKey {
    fn from(m: crate::store::entity::api_keys::Model) -> ApiKey {
        ApiKey {
            scopes: m.scopes.0,
            groups: m.group_ids.map(|g| g.0).unwrap_or_default(),
            id: m.id,
            name: m.name,
            pool_id: m.pool_id,
            key_hint: m.key_hint,
            signed: m.signing_secret.is_some(),
            created_at: m.created_at,
        }
    }
}

pub struct ApiKeysApi;

#[OpenApi(prefix_path = "/v1/api-keys", tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// Creates a scoped key for the caller's org. The secret is in this response only.
    #[oai(path = "/", method = "post", operation_id = "createApiKey")]
    async fn create(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        body: Json<CreateApiKey>,
    ) -> ApiResult<CreateApiKeyResponse> {
        auth.0.require(Scope::Admin)?;
        let body = body.0;
        let key = service::api_keys::NewKey {
            name: body.name,
            scopes: body.scopes,
            pool_id: body.pool_id,
            signing_secret: body.signing_secret,
            groups: body.groups,
        };
        let (row, secret) = service::api_keys::create(&state.db, auth.0.org_id, key).await?;
        Ok(CreateApiKeyResponse::Created(Json(CreatedApiKey {
            key: row.into(),
            api_key: secret,
        })))
    }

    /// Lists the org's live keys, without secrets.
    #[oai(path = "/", method = "get", operation_id = "listApiKeys")]
    async fn list(&self, auth: ApiKeyAuth, state: Data<&AppState>) -> ApiResult<Json<ApiKeyList>> {
        auth.0.require(Scope::Admin)?;
        let rows = service::api_keys::list(&state.db, auth.0.org_id).await?;
        Ok(Json(ApiKeyList {
            items: rows.into_iter().map(ApiKey::from).collect(),
        }))
    }

    /// Revokes a key at once; requests made with it are refused with 401 from then on.
    #[oai(path = "/:id", method = "delete", operation_id = "revokeApiKey")]
    async fn revoke(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<RevokeApiKeyResponse> {
        auth.0.require(Scope::Admin)?;
        service::api_keys::revoke(&state.db, &state.caches, auth.0.org_id, id.0).await?;
        Ok(RevokeApiKeyResponse::Revoked)
    }
}
