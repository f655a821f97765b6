//! Issuing coupons: one at a time (`/issue`), from a customer list (`/issue/batch`), and the
//! allow-list of "issue to specific customers only" pools.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path},
    payload::Json,
};

use super::{
    ApiTags, AppState,
    auth::ApiKeyAuth,
    customers::{CustomerCoupon, coupon_view},
    error::{ApiError, ApiResult},
    imports::{CsvFile, Import},
    pools::find as find_pool,
};
use crate::{
    domain::{api_key::Scope, customer::CustomerRef},
    service,
    store::{self, idempotency::Keyed},
};

#[derive(Object)]
pub struct IssueRequest {
    /// The customer, by exactly one of external_id, email, mobile or user_id.
    pub customer: CustomerRef,
}

/// The coupon handed to the customer.
#[derive(Object)]
pub struct IssuedCoupon {
    #[oai(flatten)]
    pub coupon: CustomerCoupon,
    /// True when this is a coupon the customer already held (aggregated pool, or
    /// `resend_existing`), not a new one.
    pub existing: bool,
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
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: Json<IssueRequest>,
    ) -> ApiResult<IssueResponse> {
        auth.0.require_any(&[Scope::Workflow, Scope::Market])?;
        let identifier = body.0.customer.identifier()?;
        let keyed = idempotency_key.0.map(|key| {
            let fingerprint =
                serde_json::json!({"pool": id.0, "customer": format!("{identifier:?}")});
            Keyed::new(auth.0.org_id, "issueCoupon", key, &fingerprint)
        });
        if let Some(k) = &keyed
            && let Some(coupon_id) = service::idempotency::replay(&state.db, k).await?
        {
            return Ok(IssueResponse::Existing(Json(
                view(&state, coupon_id, true).await?,
            )));
        }
        let pool = find_pool(&state, auth.0.org_id, id.0).await?;
        if !pool.claimed && !Scope::reaches_unclaimed_pools(&auth.0.scopes) {
            return Err(not_claimed(pool.id));
        }
        let org = store::orgs::get(&state.db, auth.0.org_id)
            .await?
            .ok_or_else(|| ApiError::not_found("org", auth.0.org_id))?;
        let customer = service::customers::resolve(&state.db, auth.0.org_id, &identifier).await?;
        let issued =
            match service::issuance::issue(&state.db, &org, &pool, &customer, keyed.as_ref()).await
            {
                // A concurrent request with the same key committed first: answer as it did.
                Err(e) if e.problem().code == service::idempotency::RACE_LOST => {
                    let k = keyed.as_ref().ok_or(e)?;
                    let coupon_id = service::idempotency::replay(&state.db, k)
                        .await?
                        .ok_or_else(|| ApiError::internal("lost key race but no key"))?;
                    return Ok(IssueResponse::Existing(Json(
                        view(&state, coupon_id, true).await?,
                    )));
                }
                other => other?,
            };
        let body = IssuedCoupon {
            coupon: coupon_view(issued.coupon, false)?,
            existing: issued.existing,
        };
        Ok(if issued.existing {
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
        auth.0.require(Scope::Admin)?;
        let pool = find_pool(&state, auth.0.org_id, id.0).await?;
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
        auth.0.require(Scope::Admin)?;
        let pool = find_pool(&state, auth.0.org_id, id.0).await?;
        let CsvFile::Csv(body) = body;
        let file = super::imports::read_list(body.0).await?;
        service::customer_lists::check_header(&file)?;
        let import = service::customer_lists::upload_allow_list(&state.db, &pool, file).await?;
        Ok(ImportDone::Created(Json(import.into())))
    }
}

/// The workflow action's refusal, for a workflow key on the plain issue path.
fn not_claimed(pool_id: i64) -> ApiError {
    let mut p = super::error::problem(
        poem::http::StatusCode::UNPROCESSABLE_ENTITY,
        "pool_not_claimed",
        format!("pool {pool_id} is not claimed for workflows: POST /v1/pools/{pool_id}/claim"),
    );
    p.field = Some("pool_id".into());
    ApiError::from_problem(p)
}

async fn view(state: &AppState, coupon_id: i64, existing: bool) -> ApiResult<IssuedCoupon> {
    let coupon = store::issuance::get(&state.db, coupon_id)
        .await?
        .ok_or_else(|| ApiError::internal("keyed coupon vanished"))?;
    Ok(IssuedCoupon {
        coupon: coupon_view(coupon, false)?,
        existing,
    })
}
