//! Bearer API keys. Obtaining a `Caller` is the authentication check; `require` is the scope check.

use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};

use super::{AppState, error::ApiError};
use crate::{domain::api_key::Scope, store};

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

async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let state = req
        .data::<AppState>()
        .expect("AppState is attached to every route");
    let row = store::api_keys::find_by_secret(&state.db, &bearer.token)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Caller {
        org_id: row.org_id,
        key_id: row.id,
        scopes: store::api_keys::scopes_of(&row),
        pool_id: row.pool_id,
    })
}
