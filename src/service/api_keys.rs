//! Scoped API keys of an org: creating them with their bindings checked, listing, revoking.

use crate::store::entity::api_keys;
use sea_orm::DatabaseConnection;

use crate::{
    domain::{api_key::Scope, signature},
    service::{Error, Result, cache::Caches},
    store::{self, api_keys::NewApiKey},
};

/// A key to create.
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub pool_id: Option<i64>,
    pub signing_secret: Option<String>,
    pub groups: Vec<i64>,
}

/// Creates the key and returns its row and its secret, which is never stored.
pub async fn create(
    db: &DatabaseConnection,
    org_id: i64,
    key: NewKey,
) -> Result<(api_keys::Model, String)> {
    if key.scopes.is_empty() {
        return Err(Error::invalid("scopes", "give at least one scope"));
    }
    check_pool_binding(db, org_id, &key).await?;
    let admin_only = key.scopes.iter().all(|s| *s == Scope::Admin);
    super::groups::check_key_groups(db, org_id, admin_only, &key.groups).await?;
    if let Some(secret) = &key.signing_secret {
        signature::secret_key(secret)
            .map_err(|e| Error::invalid("signing_secret", e.to_string()))?;
    }
    let new = NewApiKey {
        org_id,
        name: key.name,
        scopes: key.scopes,
        pool_id: key.pool_id,
        signing_secret: key.signing_secret,
        groups: key.groups,
    };
    Ok(store::api_keys::create(db, new).await?)
}

/// The org's live keys in id order.
pub async fn list(db: &DatabaseConnection, org_id: i64) -> Result<Vec<api_keys::Model>> {
    Ok(store::api_keys::list(db, org_id).await?)
}

/// Revokes a live key; the key cache is dropped so the key stops authenticating at once.
pub async fn revoke(db: &DatabaseConnection, caches: &Caches, org_id: i64, id: i64) -> Result<()> {
    if !store::api_keys::revoke(db, org_id, id).await? {
        return Err(Error::not_found("api key", id));
    }
    caches.forget_api_keys();
    Ok(())
}

/// A `remote` key issues from exactly one pool of the org; other keys name no pool.
async fn check_pool_binding(db: &DatabaseConnection, org_id: i64, key: &NewKey) -> Result<()> {
    let remote = key.scopes.contains(&Scope::Remote);
    match key.pool_id {
        None if remote => Err(Error::invalid(
            "pool_id",
            "a `remote` key issues from one pool: name it in pool_id",
        )),
        Some(_) if !remote => Err(Error::invalid(
            "pool_id",
            "only `remote` keys are bound to a pool",
        )),
        Some(id) if store::pools::get(db, org_id, id).await?.is_none() => Err(Error::invalid(
            "pool_id",
            format!("pool {id} does not exist in this org"),
        )),
        _ => Ok(()),
    }
}
