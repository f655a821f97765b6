//! Issuing coupons: one at a time (`/issue`), from a customer list (`/issue/batch`), and the
//! allow-list of "issue to specific customers only" pools.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path},
    payload::Json,
};

use super::{
    auth::ApiKeyAuth,
    error::ApiResult,
    idempotency::IdempotencyKey,
    imports::{CsvFile, Import},
    pools::find as find_pool,
    state::AppState,
    tags::ApiTags,
};
pub use crate::service::coupons::IssuedCoupon;
use crate::{
    domain::{api_key::Scope, customer::CustomerRef},
    service,
};

#[derive(Object)]
pub struct IssueRequest {
    /// The customer, by exactly one of external_id, email, mobile or user_id.
    pub customer: CustomerRef,
}

#[derive(ApiResponse)]
pub enum IssueResponse {
    /// A new coupon was issued.
    #[oai(status = 201)]
    Issued(Json<IssuedCoupon>),
    /// The customer's existing coupon was returned (or this is a replay of a keyed request).
    #[oai(status = 200)]
    Existing(Json<IssuedCoupon>),
}

#[derive(ApiResponse)]
pub enum ImportDone {
    #[oai(status = 201)]
    Created(Json<Import>),
}

#[derive(ApiResponse)]
pub enum BatchAccepted {
    /// The list is being issued in the background; follow it at `/v1/jobs/{id}` and download
    /// the rejected rows at `/v1/imports/{id}/issues`.
    #[oai(status = 202)]
    Accepted(Json<Import>),
}

pub struct IssuanceApi;

#[OpenApi(prefix_path = "/v1/pools", tag = "ApiTags::Issuance")]
impl IssuanceApi {
    /// Issues one coupon of the pool to a customer under the pool's issuance rules. A refusal
    /// is a 422 whose `code` names the rule: pool_exhausted, customer_limit, min_gap,
    /// series_limit, already_issued, not_eligible or pool_inactive. With an `Idempotency-Key`,
    /// a retry with the same body returns the same coupon; another body is a 409.
    #[oai(path = "/:id/issue", method = "post", operation_id = "issueCoupon")]
    async fn issue(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<IdempotencyKey>>,
        body: Json<IssueRequest>,
    ) -> ApiResult<IssueResponse> {
        auth.0.require_any(&[Scope::Workflow, Scope::Market])?;
        let who = body.0.customer.identifier()?;
        let issuer = service::issuance::Issuer {
            org_id: auth.0.org_id,
            reaches_unclaimed: Scope::reaches_unclaimed_pools(&auth.0.scopes),
        };
        let outcome = service::issuance::issue_one(
            &state.db,
            &state.caches,
            issuer,
            id.0,
            &who,
            idempotency_key.0.map(|k| k.0),
        )
        .await?;
        let replayed = outcome.is_replayed();
        let issued = outcome.into_inner();
        let body = IssuedCoupon::new(issued.coupon, issued.existing);
        Ok(if replayed || issued.existing {
            IssueResponse::Existing(Json(body))
        } else {
            IssueResponse::Issued(Json(body))
        })
    }

    /// Issues one coupon per row of a customer list (CSV with a header naming the identifier
    /// column: external_id, email, mobile or user_id; a customer may appear on several rows).
    /// Runs as a job; rejected rows and their reasons are in `/v1/imports/{id}/issues`.
    #[oai(
        path = "/:id/issue/batch",
        method = "post",
        operation_id = "issueBatch"
    )]
    async fn batch(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: CsvFile,
    ) -> ApiResult<BatchAccepted> {
        let pool = find_pool(&state, &auth.0, id.0).await?;
        service::issuance::check_batchable(&pool)?;
        let CsvFile::Csv(body) = body;
        let file = super::imports::read_list(body.0).await?;
        service::customer_lists::check_header(&file)?;
        let job = service::batch_issue::start(&state.db, &pool, file).await?;
        Ok(BatchAccepted::Accepted(Json(job.into())))
    }

    /// Uploads the allow-list of an "issue to specific customers only" pool: a CSV whose header
    /// names the identifier column (external_id, email, mobile or user_id). Unknown customers
    /// are reported in the issues CSV.
    #[oai(
        path = "/:id/customers",
        method = "post",
        operation_id = "uploadAllowList"
    )]
    async fn allow_list(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: CsvFile,
    ) -> ApiResult<ImportDone> {
        let pool = find_pool(&state, &auth.0, id.0).await?;
        let CsvFile::Csv(body) = body;
        let file = super::imports::read_list(body.0).await?;
        service::customer_lists::check_header(&file)?;
        let import = service::customer_lists::upload_allow_list(&state.db, &pool, file).await?;
        Ok(ImportDone::Created(Json(import.into())))
    }
}
