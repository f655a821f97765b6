//! Access groups of an org, and the conditions that keep pool queries within a caller's groups.

use crate::store::entity::{api_keys, groups, pools};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, Set, sea_query::Query,
};

use crate::domain::access::PoolAccess;

pub async fn create<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    name: String,
) -> Result<groups::Model, DbErr> {
    let now = Utc::now();
    groups::ActiveModel {
        org_id: Set(org_id),
        name: Set(name),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
}

pub async fn list<C: ConnectionTrait>(db: &C, org_id: i64) -> Result<Vec<groups::Model>, DbErr> {
    groups::Entity::find()
        .filter(groups::Column::OrgId.eq(org_id))
        .order_by_asc(groups::Column::Id)
        .all(db)
        .await
}

/// The org's group with this id; another org's group is as absent as a missing one.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: i64,
) -> Result<Option<groups::Model>, DbErr> {
    groups::Entity::find_by_id(id)
        .filter(groups::Column::OrgId.eq(org_id))
        .one(db)
        .await
}

/// Those of `ids` that are groups of the org.
pub async fn existing<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    ids: &[i64],
) -> Result<Vec<i64>, DbErr> {
    Ok(groups::Entity::find()
        .filter(groups::Column::OrgId.eq(org_id))
        .filter(groups::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|g| g.id)
        .collect())
}

pub async fn rename<C: ConnectionTrait>(
    db: &C,
    group: groups::Model,
    name: String,
) -> Result<groups::Model, DbErr> {
    let mut row = group.into_active_model();
    row.name = Set(name);
    row.updated_at = Set(Utc::now());
    row.update(db).await
}

pub async fn delete<C: ConnectionTrait>(db: &C, id: i64) -> Result<(), DbErr> {
    groups::Entity::delete_by_id(id).exec(db).await.map(|_| ())
}

/// How many pools (archived ones included) belong to the group.
pub async fn pool_count<C: ConnectionTrait>(db: &C, id: i64) -> Result<u64, DbErr> {
    pools::Entity::find()
        .filter(pools::Column::GroupId.eq(id))
        .count(db)
        .await
}

/// The org's live keys bound to the group.
pub async fn bound_keys<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: i64,
) -> Result<Vec<api_keys::Model>, DbErr> {
    Ok(super::api_keys::list(db, org_id)
        .await?
        .into_iter()
        .filter(|k| k.group_ids.as_ref().is_some_and(|ids| ids.0.contains(&id)))
        .collect())
}

/// Keeps pools within `access`.
pub fn pools_within(access: &PoolAccess) -> Condition {
    match access.groups() {
        None => Condition::all(),
        Some(ids) => Condition::all().add(pools::Column::GroupId.is_in(ids.iter().copied())),
    }
}

/// Keeps rows whose `pool_column` names a pool within `access` (coupons, market products).
pub fn rows_within(pool_column: impl ColumnTrait, access: &PoolAccess) -> Condition {
    let Some(ids) = access.groups() else {
        return Condition::all();
    };
    let reachable = Query::select()
        .column(pools::Column::Id)
        .from(pools::Entity)
        .and_where(pools::Column::GroupId.is_in(ids.iter().copied()))
        .to_owned();
    Condition::all().add(pool_column.in_subquery(reachable))
}
