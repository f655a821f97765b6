//! `/v1/groups`: access groups (Antavo's "User group"). A pool belongs to one group or none; an
//! admin key bound to groups manages only their pools. Managing groups is for unbound admin keys.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use super::{auth::ApiKeyAuth, error::ApiResult, state::AppState, tags::ApiTags};
use crate::{domain::api_key::Scope, service};

/// A group as written: its name, unique in the org.
#[derive(Object)]
pub struct GroupRequest {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
}

#[derive(Object)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Object)]
pub struct GroupList {
    pub items: Vec<Group>,
}

impl From<crate::store::entity::groups::Model> for Group {
    fn from(m: crate::store::entity::groups::Model) -> Group {
        Group {
            id: m.id,
            name: m.name,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum GroupCreated {
    /// The group was created.
    #[oai(status = 201)]
    Created(Json<Group>),
}

#[derive(ApiResponse)]
pub enum GroupDeleted {
    /// The group is gone.
    #[oai(status = 204)]
    Deleted,
}

pub struct GroupsApi;

#[OpenApi(prefix_path = "/v1/groups", tag = "ApiTags::Groups")]
impl GroupsApi {
    /// Creates an access group; 409 `group_exists` when the org has one of that name.
    #[oai(path = "/", method = "post", operation_id = "createGroup")]
    async fn create(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        body: Json<GroupRequest>,
    ) -> ApiResult<GroupCreated> {
        auth.0.require(Scope::Admin)?;
        let group = service::groups::create(&state.db, auth.0.org_id, &body.0.name).await?;
        Ok(GroupCreated::Created(Json(group.into())))
    }

    /// The org's groups in id order.
    #[oai(path = "/", method = "get", operation_id = "listGroups")]
    async fn list(&self, auth: ApiKeyAuth, state: Data<&AppState>) -> ApiResult<Json<GroupList>> {
        auth.0.require(Scope::Admin)?;
        let rows = service::groups::list(&state.db, auth.0.org_id).await?;
        Ok(Json(GroupList {
            items: rows.into_iter().map(Group::from).collect(),
        }))
    }

    #[oai(path = "/:id", method = "get", operation_id = "getGroup")]
    async fn get(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<Group>> {
        auth.0.require(Scope::Admin)?;
        Ok(Json(
            service::groups::get(&state.db, auth.0.org_id, id.0)
                .await?
                .into(),
        ))
    }

    /// Renames a group.
    #[oai(path = "/:id", method = "patch", operation_id = "updateGroup")]
    async fn update(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: Json<GroupRequest>,
    ) -> ApiResult<Json<Group>> {
        auth.0.require(Scope::Admin)?;
        let group = service::groups::rename(&state.db, auth.0.org_id, id.0, &body.0.name).await?;
        Ok(Json(group.into()))
    }

    /// Deletes a group nothing refers to. A group that still has pools (archived ones too) or
    /// live keys bound to it is a 409 `group_in_use`: move the pools, revoke the keys first.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteGroup")]
    async fn delete(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<GroupDeleted> {
        auth.0.require(Scope::Admin)?;
        service::groups::delete(&state.db, auth.0.org_id, id.0).await?;
        Ok(GroupDeleted::Deleted)
    }
}
