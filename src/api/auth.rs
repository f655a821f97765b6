//! Bearer API keys. Obtaining a `Caller` is the authentication check; `require` is the scope check.
//! Keys with a signing secret also need every request signed (see [`signed_requests`]).

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::HeaderMap,
    web::headers::{Authorization, HeaderMapExt, authorization::Bearer as BearerHeader},
};
use poem_openapi::{SecurityScheme, auth::Bearer};

use super::{error::ApiError, limits, state::AppState};
use crate::{
    domain::api_key::Scope,
    service::{self, signed::SignedHeaders},
    store,
};

/// Who is calling: the org the key belongs to and what the key may do.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org_id: i64,
    pub key_id: i64,
    pub scopes: Vec<Scope>,
    /// The pool a `remote` key is bound to.
    pub pool_id: Option<i64>,
}

impl Caller {
    /// 403 unless the key carries one of `scopes` (or `admin`).
    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        match scopes.iter().find(|s| Scope::granted(&self.scopes, **s)) {
            Some(_) => Ok(()),
            None => Err(ApiError::forbidden(
                &scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("` or `"),
            )),
        }
    }

    /// 403 unless the key carries `scope` (or `admin`).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if Scope::granted(&self.scopes, scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(scope.as_str()))
        }
    }
}

/// `Authorization: Bearer <api key>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "authenticate")]
pub struct ApiKeyAuth(pub Caller);

/// The live key a request's bearer token names (None for an unknown or revoked one), looked up
/// once per request by [`signed_requests`].
#[derive(Clone)]
struct BearerKey(Option<entity::api_keys::Model>);

async fn authenticate(req: &Request, _bearer: Bearer) -> poem::Result<Caller> {
    let row = req
        .data::<BearerKey>()
        .and_then(|k| k.0.clone())
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Caller {
        org_id: row.org_id,
        key_id: row.id,
        scopes: store::api_keys::scopes_of(&row),
        pool_id: row.pool_id,
    })
}

/// The id of the live key the request's bearer token names, once `signed_requests` ran.
pub fn bearer_key_id(req: &Request) -> Option<i64> {
    req.data::<BearerKey>()
        .and_then(|k| k.0.as_ref())
        .map(|k| k.id)
}

/// Looks up the bearer key of every request; when the key has a signing secret, the request
/// must carry a valid Standard Webhooks signature over its raw body (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature`), else it is a 401 before any handler runs.
pub async fn signed_requests<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let Some(token) = req
        .headers()
        .typed_get::<Authorization<BearerHeader>>()
        .map(|auth| auth.token().to_string())
    else {
        return next.call(req).await.map(IntoResponse::into_response);
    };
    let state = req
        .data::<AppState>()
        .expect("AppState is attached to every route");
    let client = limits::client_address(&req);
    if let Some(wait) = client.and_then(|ip| state.rate_limits.auth_failures.blocked(&ip)) {
        return Ok(limits::too_many(
            "auth_rate_limited",
            "too many refused API keys from this address",
            wait,
        ));
    }
    let key = state
        .caches
        .api_key(&state.db, &token)
        .await
        .map_err(ApiError::from)?;
    if key.is_none()
        && let Some(ip) = client
    {
        state.rate_limits.auth_failures.spend(&ip);
    }
    if let Some(k) = &key {
        super::metrics::record_org(k.org_id);
    }
    if let Some(secret) = key.as_ref().and_then(|k| k.signing_secret.clone()) {
        let body = req.take_body().into_bytes().await?;
        verify_signed(req.headers(), &secret, &body)?;
        req.set_body(body);
    }
    req.set_data(BearerKey(key));
    next.call(req).await.map(IntoResponse::into_response)
}

/// Checks the Standard Webhooks headers of a request against its raw body.
pub fn verify_signed(headers: &HeaderMap, secret: &str, body: &[u8]) -> Result<(), ApiError> {
    service::signed::verify(&signed_headers(headers), secret, body).map_err(ApiError::from)
}

/// The Standard Webhooks headers of a request.
pub fn signed_headers(headers: &HeaderMap) -> SignedHeaders<'_> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    SignedHeaders {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    }
}
