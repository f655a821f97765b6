//! Which pools a caller reaches: a key bound to access groups sees only its groups' pools, and
//! learns nothing of the others (they read as not existing).

use crate::store::entity::pools;
use sea_orm::DatabaseConnection;

use crate::{
    domain::access::PoolAccess,
    service::{Error, Result},
    store,
};

/// The org's pool `id` when `access` reaches it; 404 otherwise, as for a pool that does not
/// exist.
pub async fn reachable(
    db: &DatabaseConnection,
    org_id: i64,
    access: &PoolAccess,
    id: i64,
) -> Result<pools::Model> {
    store::pools::get(db, org_id, id)
        .await?
        .filter(|p| access.reaches(p.group_id))
        .ok_or_else(|| Error::not_found("pool", id))
}

/// Whether `access` reaches something that lives in the pool `pool_id` (none for org-wide
/// things, which only unbound keys reach).
pub async fn reaches(
    db: &DatabaseConnection,
    org_id: i64,
    access: &PoolAccess,
    pool_id: Option<i64>,
) -> Result<bool> {
    if *access == PoolAccess::All {
        return Ok(true);
    }
    let group_id = match pool_id {
        Some(id) => store::pools::get(db, org_id, id)
            .await?
            .and_then(|p| p.group_id),
        None => None,
    };
    Ok(access.reaches(group_id))
}
