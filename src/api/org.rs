//! `/v1/org`: the caller's own tenant.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{Object, OpenApi, payload::Json};

use super::{auth::ApiKeyAuth, error::ApiResult, state::AppState, tags::ApiTags};
use crate::{domain::api_key::Scope, service};

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
    /// Brand points of contact: they get issual-limit notifications.
    pub poc_emails: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// Changes to the org; absent fields stay as they are. An empty prefix or suffix clears it.
#[derive(Object)]
pub struct UpdateOrg {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub code_prefix: Option<String>,
    pub code_suffix: Option<String>,
    pub poc_emails: Option<Vec<String>>,
}

impl From<crate::store::entity::orgs::Model> for Org {
    fn from(m: crate::store::entity::orgs::Model) -> Org {
        Org {
            id: m.id,
            name: m.name,
            timezone: m.timezone,
            code_prefix: m.code_prefix,
            code_suffix: m.code_suffix,
            poc_emails: m.poc_emails.0,
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
        let org = service::org::get(&state.db, auth.0.org_id).await?;
        Ok(Json(org.into()))
    }

    /// Changes the org's name, time zone, default code prefix/suffix or POC emails (admin).
    #[oai(path = "/", method = "patch", operation_id = "updateOrg")]
    async fn update(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        body: Json<UpdateOrg>,
    ) -> ApiResult<Json<Org>> {
        auth.0.require(Scope::Admin)?;
        let body = body.0;
        let changes = service::org::UpdateOrg {
            name: body.name,
            timezone: body.timezone,
            code_prefix: body.code_prefix,
            code_suffix: body.code_suffix,
            poc_emails: body.poc_emails,
        };
        let org = service::org::update(&state.db, &state.caches, auth.0.org_id, changes).await?;
        Ok(Json(org.into()))
    }
}
