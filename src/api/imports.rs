//! `/v1/imports` (uploaded files and their issues CSV) and `/v1/jobs` (background work progress).
//! Both read the same records: an import is a job whose input was a file.

use chrono::{DateTime, Utc};
use poem::Body;
use poem::web::Data;
use poem_openapi::{
    ApiRequest, ApiResponse, Object, OpenApi,
    param::Path,
    payload::{Binary, Json},
};

use super::{
    auth::{ApiKeyAuth, Caller},
    error::ApiResult,
    state::AppState,
    tags::ApiTags,
};
use crate::{
    domain::api_key::Scope,
    service::{self, customer_lists::MAX_FILE_BYTES},
};

/// Reads an uploaded customer list whole (it is stored with its job), refusing one over the
/// size limit.
pub async fn read_list(body: Body) -> ApiResult<Vec<u8>> {
    let file = body
        .into_bytes_limit(MAX_FILE_BYTES)
        .await
        .map_err(|e| match e {
            poem::error::ReadBodyError::PayloadTooLarge => service::customer_lists::too_large(),
            other => service::Error::bad_request("unreadable_body", other.to_string()),
        })?;
    Ok(file.to_vec())
}

/// An uploaded file or a background job, with its progress and outcome.
#[derive(Object)]
pub struct Import {
    pub id: i64,
    /// What was imported or done: codes, customers, revocation, issue_batch, generate.
    pub kind: String,
    /// running, done or failed.
    pub state: String,
    pub pool_id: Option<i64>,
    /// Rows (or codes) to process; for a streamed upload, known once it is done.
    pub total: i64,
    /// Rows (or codes) processed so far.
    pub done: i64,
    /// Rows that went in.
    pub accepted: i64,
    /// Duplicate rows skipped.
    pub skipped: i64,
    /// Malformed or refused rows.
    pub rejected: i64,
    /// Why a failed job stopped: a stable code (e.g. `upload_interrupted`, `internal_error`).
    pub error_code: Option<String>,
    /// Why a failed job stopped, as a sentence.
    pub error: Option<String>,
    /// Where the issues CSV is ("Download Issues").
    pub issues_url: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<crate::store::entity::imports::Model> for Import {
    fn from(m: crate::store::entity::imports::Model) -> Import {
        Import {
            issues_url: format!("/v1/imports/{}/issues", m.id),
            id: m.id,
            kind: m.kind.as_str().to_string(),
            state: m.state.as_str().to_string(),
            pool_id: m.pool_id,
            total: m.total,
            done: m.done,
            accepted: m.accepted,
            skipped: m.skipped,
            rejected: m.rejected,
            error_code: m.error_code,
            error: m.error,
            created_at: m.created_at,
            finished_at: m.finished_at,
        }
    }
}

/// An uploaded CSV file, read as a stream.
#[derive(ApiRequest)]
pub enum CsvFile {
    #[oai(content_type = "text/csv")]
    Csv(Binary<Body>),
}

#[derive(ApiResponse)]
pub enum IssuesCsv {
    /// `row,value,code,reason`, one line per problem row, in file order.
    #[oai(status = 200, content_type = "text/csv")]
    Csv(poem_openapi::payload::PlainText<String>),
}

/// An import or job of the org, when the admin key reaches its pool (a bound key never reaches
/// org-wide ones); 404 otherwise.
async fn find(
    state: &AppState,
    caller: &Caller,
    id: i64,
    what: &str,
) -> ApiResult<crate::store::entity::imports::Model> {
    caller.require_in_pools(Scope::Admin)?;
    Ok(service::imports::get(&state.db, caller.org_id, &caller.access, id, what).await?)
}

pub struct ImportsApi;

#[OpenApi(prefix_path = "/v1/imports", tag = "ApiTags::Imports")]
impl ImportsApi {
    /// An import's counts: accepted, skipped (duplicates), rejected (malformed).
    #[oai(path = "/:id", method = "get", operation_id = "getImport")]
    async fn get(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<Import>> {
        Ok(Json(find(&state, &auth.0, id.0, "import").await?.into()))
    }

    /// Downloads every problem row of an import as CSV.
    #[oai(path = "/:id/issues", method = "get", operation_id = "getImportIssues")]
    async fn issues(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<IssuesCsv> {
        auth.0.require_in_pools(Scope::Admin)?;
        let text =
            service::imports::issues_csv(&state.db, auth.0.org_id, &auth.0.access, id.0).await?;
        Ok(IssuesCsv::Csv(poem_openapi::payload::PlainText(text)))
    }
}

pub struct JobsApi;

#[OpenApi(prefix_path = "/v1/jobs", tag = "ApiTags::Jobs")]
impl JobsApi {
    /// A background job's progress (`done` of `total`) and state.
    #[oai(path = "/:id", method = "get", operation_id = "getJob")]
    async fn get(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<Import>> {
        Ok(Json(find(&state, &auth.0, id.0, "job").await?.into()))
    }
}
