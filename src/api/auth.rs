//! Bearer API keys. Obtaining a `Caller` is the authentication check; `require` is the scope check.
//! Keys with a signing secret also need every request signed (see [`signed_requests`]).
//!
//! Access groups are enforced here too. A key bound to groups is a pool manager: `require`
//! refuses it everything (403), and only handlers that reach their data through a pool let it
//! in, with `require_in_pools`, and then look that pool up with [`Caller::pool`] or
//! [`Caller::reach`] (404 outside its groups) or filter lists with [`Caller::access`].

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::HeaderMap,
    web::headers::{Authorization, HeaderMapExt, authorization::Bearer as BearerHeader},
};
use poem_openapi::{SecurityScheme, auth::Bearer};
use sea_orm::DbErr;

use crate::store::entity::pools;
use sea_orm::DatabaseConnection;

use super::{
    error::{ApiError, ApiResult},
    limits,
    state::AppState,
};
use crate::{
    domain::{access::PoolAccess, api_key::Scope},
    service::{self, redemption::Located, signed::SignedHeaders},
};

/// Who is calling: the org the key belongs to and what the key may do.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org_id: i64,
    pub key_id: i64,
    pub scopes: Vec<Scope>,
    /// The pool a `remote` key is bound to.
    pub pool_id: Option<i64>,
    /// The pools the key reaches: all of the org's, or those of its access groups.
    pub access: PoolAccess,
}

impl Caller {
    /// 403 unless the key carries one of `scopes` (or `admin`) and reaches every pool.
    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        self.unbound()?;
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

    /// 403 unless the key carries `scope` (or `admin`) and reaches every pool.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        self.unbound()?;
        if Scope::granted(&self.scopes, scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(scope.as_str()))
        }
    }

    /// For operations on data that lives under a pool: 403 unless the key carries `scope` (or
    /// `admin`), where an admin key bound to groups also passes. The handler must then reach
    /// that data through [`Caller::pool`], [`Caller::reach`] or a list filtered by `access`.
    pub fn require_in_pools(&self, scope: Scope) -> Result<(), ApiError> {
        if Scope::granted(&self.scopes, scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(scope.as_str()))
        }
    }

    /// The org's pool `id`, when this key reaches it; a 404 otherwise, as for a pool that
    /// does not exist, so a bound key learns nothing of other groups' pools.
    pub async fn pool(&self, db: &DatabaseConnection, id: i64) -> ApiResult<pools::Model> {
        Ok(service::pools::reachable(db, self.org_id, &self.access, id).await?)
    }

    /// The coupon with this code, when the key reaches its pool; 404 `coupon_not_found`
    /// otherwise, as for an unknown code.
    pub async fn coupon(&self, db: &DatabaseConnection, code: &str) -> ApiResult<Located> {
        Ok(service::redemption::locate_within(db, self.org_id, &self.access, code).await?)
    }

    /// Ok when the thing the caller asked for lives in a pool it reaches (`pool_id`; none for
    /// org-wide things, which only unbound keys reach); `hidden` (a 404) otherwise.
    pub async fn reach(
        &self,
        db: &DatabaseConnection,
        pool_id: Option<i64>,
        hidden: impl FnOnce() -> ApiError,
    ) -> ApiResult<()> {
        if service::pools::reaches(db, self.org_id, &self.access, pool_id).await? {
            Ok(())
        } else {
            Err(hidden())
        }
    }

    /// 403 for a key bound to access groups: org-wide operations are not theirs.
    fn unbound(&self) -> Result<(), ApiError> {
        match self.access {
            PoolAccess::All => Ok(()),
            PoolAccess::Groups(_) => Err(ApiError::bound_to_groups()),
        }
    }
}

/// `Authorization: Bearer <api key>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "authenticate")]
pub struct ApiKeyAuth(pub Caller);

/// The live key a request's bearer token names (None for an unknown or revoked one), looked up
/// once per request by [`signed_requests`]. A failed look-up is kept and answered here, inside
/// the operation, so the metrics count it under the operation it was meant for.
#[derive(Clone)]
struct BearerKey(Result<Option<crate::store::entity::api_keys::Model>, DbErr>);

async fn authenticate(req: &Request, _bearer: Bearer) -> poem::Result<Caller> {
    let found = match req.data::<BearerKey>() {
        Some(BearerKey(Err(err))) => return Err(ApiError::from(err.clone()).into()),
        Some(BearerKey(Ok(found))) => found.clone(),
        None => None,
    };
    let row = found.ok_or_else(ApiError::unauthorized)?;
    Ok(Caller {
        org_id: row.org_id,
        key_id: row.id,
        scopes: row.scopes.0,
        pool_id: row.pool_id,
        access: PoolAccess::of(row.group_ids.map(|g| g.0)),
    })
}

/// The id of the live key the request's bearer token names, once `signed_requests` ran.
pub fn bearer_key_id(req: &Request) -> Option<i64> {
    match req.data::<BearerKey>() {
        Some(BearerKey(Ok(Some(key)))) => Some(key.id),
        _ => None,
    }
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
    let key = match state.caches.api_key(&state.db, &token).await {
        Ok(key) => key,
        Err(err) => {
            req.set_data(BearerKey(Err(err)));
            return next.call(req).await.map(IntoResponse::into_response);
        }
    };
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
    req.set_data(BearerKey(Ok(key)));
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
