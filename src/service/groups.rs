//! Access groups (Antavo's "User group"): naming them, deleting unused ones, and the rules for
//! putting a pool in a group or binding a key to groups.

use crate::store::entity::groups;
use sea_orm::DatabaseConnection;

use crate::{
    domain::access::PoolAccess,
    service::{Error, Result},
    store,
};

pub async fn create(db: &DatabaseConnection, org_id: i64, name: &str) -> Result<groups::Model> {
    let name = group_name(name)?;
    store::groups::create(db, org_id, name)
        .await
        .map_err(|e| name_taken(e.into()))
}

pub async fn get(db: &DatabaseConnection, org_id: i64, id: i64) -> Result<groups::Model> {
    store::groups::get(db, org_id, id)
        .await?
        .ok_or_else(|| Error::not_found("group", id))
}

/// The org's groups in id order.
pub async fn list(db: &DatabaseConnection, org_id: i64) -> Result<Vec<groups::Model>> {
    Ok(store::groups::list(db, org_id).await?)
}

pub async fn rename(
    db: &DatabaseConnection,
    org_id: i64,
    id: i64,
    name: &str,
) -> Result<groups::Model> {
    let name = group_name(name)?;
    let group = get(db, org_id, id).await?;
    store::groups::rename(db, group, name)
        .await
        .map_err(|e| name_taken(e.into()))
}

/// Deletes a group nothing refers to. A group with pools (archived ones too) or with live keys
/// bound to it is a 409 `group_in_use`: unassigning would put its pools within reach of every
/// unbound key, and a key whose last group vanished would become unbound.
pub async fn delete(db: &DatabaseConnection, org_id: i64, id: i64) -> Result<()> {
    let group = get(db, org_id, id).await?;
    let pools = store::groups::pool_count(db, group.id).await?;
    let keys = store::groups::bound_keys(db, org_id, group.id).await?.len();
    if pools > 0 || keys > 0 {
        return Err(Error::conflict(
            "group_in_use",
            format!(
                "group {id} still has {pools} pool(s) and {keys} API key(s) bound to it; \
                 move the pools and revoke the keys first"
            ),
        ));
    }
    Ok(store::groups::delete(db, group.id).await?)
}

/// The group a caller with `access` may put a pool in: one of the org's groups, and one of the
/// caller's own when it is bound to groups, which also may not leave a pool ungrouped.
pub async fn check_pool_group(
    db: &DatabaseConnection,
    org_id: i64,
    access: &PoolAccess,
    group_id: Option<i64>,
) -> Result<()> {
    let Some(id) = group_id else {
        return match access {
            PoolAccess::All => Ok(()),
            PoolAccess::Groups(_) => Err(Error::invalid(
                "group_id",
                "this key manages the pools of its groups only: name one of them in group_id",
            )),
        };
    };
    if access.reaches(Some(id)) && store::groups::get(db, org_id, id).await?.is_some() {
        Ok(())
    } else {
        Err(unknown_group("group_id", id))
    }
}

/// The groups a new key may be bound to: groups of the org, on a key whose only scope is
/// `admin` (the other scopes act on coupons by code, beyond any pool filter).
pub async fn check_key_groups(
    db: &DatabaseConnection,
    org_id: i64,
    admin_only: bool,
    ids: &[i64],
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    if !admin_only {
        return Err(Error::invalid(
            "groups",
            "only keys whose one scope is `admin` are bound to groups",
        ));
    }
    let found = store::groups::existing(db, org_id, ids).await?;
    match ids.iter().find(|id| !found.contains(id)) {
        Some(&missing) => Err(unknown_group("groups", missing)),
        None => Ok(()),
    }
}

fn group_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid("name", "a group needs a name"));
    }
    Ok(name.to_string())
}

fn name_taken(e: Error) -> Error {
    match &e {
        Error::Db(db) if store::is_unique_violation(db) => Error::conflict(
            "group_exists",
            "another group of this org already has this name",
        ),
        _ => e,
    }
}

/// The same answer for a group that does not exist, belongs to another org, or is not one of
/// the caller's: which ids exist elsewhere is none of a bound key's business.
fn unknown_group(field: &'static str, id: i64) -> Error {
    Error::rejected(
        field,
        "unknown_group",
        format!("no group {id} this key may use"),
    )
}
