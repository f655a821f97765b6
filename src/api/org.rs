//! `GET /v1/org`: the caller's own tenant.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{Object, OpenApi, payload::Json};

use super::{ApiTags, AppState, auth::ApiKeyAuth, error::ApiResult};
use crate::store;

/// A tenant of the service.
#[derive(Object)]
pub struct Org {
    pub id: i64,
    pub name: String,
    /// IANA time zone in which the org's days, expiries and schedules are counted.
    pub timezone: String,
    /// Default code prefix pools may use.
    pub code_prefix: Option<String>,
    /// Default code suffix pools may use.
    pub code_suffix: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<entity::orgs::Model> for Org {
    fn from(m: entity::orgs::Model) -> Org {
        Org {
            id: m.id,
            name: m.name,
            timezone: m.timezone,
            code_prefix: m.code_prefix,
            code_suffix: m.code_suffix,
            created_at: m.created_at,
        }
    }
}

pub struct OrgApi;

#[OpenApi(prefix_path = "/v1/org", tag = "ApiTags::Org")]
impl OrgApi {
    /// The org the API key belongs to. Any scope may read it.
    #[oai(path = "/", method = "get", operation_id = "getOrg")]
    async fn get(&self, auth: ApiKeyAuth, state: Data<&AppState>) -> ApiResult<Json<Org>> {
        let org = store::orgs::get(&state.db, auth.0.org_id)
            .await?
            .ok_or_else(|| super::error::ApiError::not_found("org", auth.0.org_id))?;
        Ok(Json(org.into()))
    }
}
