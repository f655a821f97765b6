//! `/v1/pools`: coupon pools (offers, coupon series) and the ways codes get into them.

use chrono::{DateTime, Utc};
use poem::{Body, web::Data};
use poem_openapi::{
    ApiRequest, ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::{Binary, Json},
};

use super::{
    auth::{ApiKeyAuth, Caller},
    error::ApiResult,
    imports::Import,
    state::AppState,
    tags::ApiTags,
};
use crate::{
    domain::{
        api_key::Scope,
        discount::DiscountType,
        expiry::ExpiryRules,
        issuance::IssuanceRules,
        pool::{PoolSource, PoolState, Reminder},
        redemption::RedemptionRules,
    },
    service::{
        self,
        pools::{CodeOptions, CreatePool, PoolStats, RemoteSource, UpdatePool},
        revocation::BulkScope,
    },
};

/// A coupon pool.
#[derive(Object)]
pub struct Pool {
    pub id: i64,
    pub name: String,
    pub source: PoolSource,
    pub pattern: Option<String>,
    pub discount_type: DiscountType,
    pub value: Option<i64>,
    pub currency: Option<String>,
    pub gift_card_min_value: Option<i64>,
    pub gift_card_min_redemption: Option<i64>,
    pub purchase_min: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub state: PoolState,
    /// The access group the pool belongs to; none for an ungrouped pool.
    pub group_id: Option<i64>,
    #[oai(flatten)]
    pub codes: CodeOptions,
    pub issuance: IssuanceRules,
    pub redemption: RedemptionRules,
    pub expiry: ExpiryRules,
    pub reminders: Vec<Reminder>,
    pub remote: Option<RemoteSource>,
    /// Claimed for workflows: only claimed pools appear in the workflow plugin descriptor.
    pub claimed: bool,
    /// Codes made from the pattern so far (the generator's position).
    pub generated: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Object)]
pub struct PoolList {
    pub items: Vec<Pool>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

/// A list of codes, for small uploads; use CSV for large ones.
#[derive(Object)]
pub struct CodeList {
    pub codes: Vec<String>,
}

#[derive(ApiRequest)]
pub enum CodesUpload {
    /// Streamed. No header, or a header naming only code columns (`code`, `codes`,
    /// `coupon_code`, `coupon`): every field is a code or a comma-separated list of codes. A
    /// header `code,customer` (or `external_id`, `email`, `mobile`, `user_id` for the customer)
    /// issues each code to that customer now, under the pool's issuance rules. A row with a
    /// value in any other column is refused as `unexpected_column`.
    #[oai(content_type = "text/csv")]
    Csv(Binary<Body>),
    Json(Json<CodeList>),
}

#[derive(Object)]
pub struct GenerateRequest {
    /// Codes to make in this batch: 1 to 5,000,000.
    #[oai(validator(minimum(value = "1"), maximum(value = "5000000")))]
    pub count: u64,
}

/// Which coupons a revocation takes.
#[derive(Object)]
pub struct RevokeRequest {
    /// all_unredeemed (issued and unissued) or unissued_only. To revoke the active coupons of
    /// specific customers, send their list as text/csv instead.
    pub scope: BulkScope,
}

#[derive(ApiRequest)]
pub enum RevokeBody {
    Json(Json<RevokeRequest>),
    /// The customers whose active coupons to revoke: a header naming the identifier column
    /// (external_id, email, mobile or user_id), then one customer a row.
    #[oai(content_type = "text/csv")]
    Csv(Binary<Body>),
}

/// How many coupons a bulk revocation took.
#[derive(Object)]
pub struct Revoked {
    /// Issued coupons revoked; each holder's history has a `coupon_revoke` event.
    pub issued: u64,
    /// Coupons nobody had been issued, revoked.
    pub unissued: u64,
}

#[derive(ApiResponse)]
pub enum RevokeResponse {
    /// A bulk revocation is done.
    #[oai(status = 200)]
    Revoked(Json<Revoked>),
    /// The list was processed: customers whose coupons were revoked are `accepted`, ones
    /// without active coupons `skipped`, unknown ones `rejected`, all in the issues CSV.
    #[oai(status = 201)]
    Imported(Json<Import>),
}

#[derive(ApiResponse)]
pub enum PoolCreated {
    #[oai(status = 201)]
    Created(Json<Pool>),
}

#[derive(ApiResponse)]
pub enum ImportCreated {
    /// The upload was processed; see the counts and the issues CSV.
    #[oai(status = 201)]
    Created(Json<Import>),
}

#[derive(ApiResponse)]
pub enum JobAccepted {
    /// The job runs in the background; follow it at `/v1/jobs/{id}`.
    #[oai(status = 202)]
    Accepted(Json<Import>),
}

pub struct PoolsApi;

#[OpenApi(prefix_path = "/v1/pools", tag = "ApiTags::Pools")]
impl PoolsApi {
    /// Creates a pool.
    #[oai(path = "/", method = "post", operation_id = "createPool")]
    async fn create(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        body: Json<CreatePool>,
    ) -> ApiResult<PoolCreated> {
        auth.0.require_in_pools(Scope::Admin)?;
        let pool = service::pools::create(&state.db, auth.0.org_id, &auth.0.access, body.0).await?;
        Ok(PoolCreated::Created(Json(to_view(pool))))
    }

    /// Lists pools, newest first. Archived pools are left out unless asked for.
    #[oai(path = "/", method = "get", operation_id = "listPools")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        /// Only pools in this state (archived included when asked for).
        #[oai(name = "state")]
        pool_state: Query<Option<PoolState>>,
        source: Query<Option<PoolSource>>,
        discount_type: Query<Option<DiscountType>>,
        /// Include archived pools.
        #[oai(default)]
        include_archived: Query<bool>,
        #[oai(
            default = "first_page",
            validator(minimum(value = "1"), maximum(value = "1000000"))
        )]
        page: Query<u64>,
        #[oai(
            default = "default_per_page",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        per_page: Query<u64>,
    ) -> ApiResult<Json<PoolList>> {
        auth.0.require_in_pools(Scope::Admin)?;
        let filter = service::pools::ListFilter {
            state: pool_state.0,
            source: source.0,
            discount_type: discount_type.0,
            include_archived: include_archived.0,
            claimed: None,
            access: auth.0.access.clone(),
        };
        let (rows, total) =
            service::pools::list(&state.db, auth.0.org_id, &filter, page.0, per_page.0).await?;
        Ok(Json(PoolList {
            items: rows.into_iter().map(to_view).collect(),
            page: page.0,
            per_page: per_page.0,
            total,
        }))
    }

    #[oai(path = "/:id", method = "get", operation_id = "getPool")]
    async fn get(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<Pool>> {
        Ok(Json(to_view(find(&state, &auth.0, id.0).await?)))
    }

    /// Edits a pool. A new `value` reaches existing coupons as `update_criterion` says.
    #[oai(path = "/:id", method = "patch", operation_id = "updatePool")]
    async fn update(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: Json<UpdatePool>,
    ) -> ApiResult<Json<Pool>> {
        let pool = find(&state, &auth.0, id.0).await?;
        let pool = service::pools::update(&state.db, &auth.0.access, pool, body.0).await?;
        state.caches.forget_pool(pool.org_id, pool.id);
        Ok(Json(to_view(pool)))
    }

    /// Coupon counts by status.
    #[oai(path = "/:id/stats", method = "get", operation_id = "getPoolStats")]
    async fn stats(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<PoolStats>> {
        let pool = find(&state, &auth.0, id.0).await?;
        Ok(Json(service::pools::stats(&state.db, &pool).await?))
    }

    /// Uploads codes (CSV or JSON) into an `uploaded` pool, or codes already given to customers
    /// (CSV with a customer column). Duplicates (in the file or anywhere in the org) are
    /// skipped; malformed codes, rows naming no customer or refused by the issuance rules, and
    /// rows with unexpected columns are rejected, each reported in the issues CSV. A header
    /// naming a customer but no code column is a 400 `missing_code_column`.
    #[oai(path = "/:id/codes", method = "post", operation_id = "uploadCodes")]
    async fn upload(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: CodesUpload,
    ) -> ApiResult<ImportCreated> {
        let pool = find(&state, &auth.0, id.0).await?;
        service::pools::check_uploadable(&pool)?;
        let import = match body {
            CodesUpload::Csv(body) => {
                service::codes::upload_csv(&state.db, &pool, body.0.into_async_read()).await?
            }
            CodesUpload::Json(list) => {
                service::codes::upload_list(&state.db, &pool, list.0.codes).await?
            }
        };
        Ok(ImportCreated::Created(Json(import.into())))
    }

    /// Generates a batch of codes from the pool's pattern in the background.
    #[oai(
        path = "/:id/generate",
        method = "post",
        operation_id = "generateCodes"
    )]
    async fn generate(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: Json<GenerateRequest>,
    ) -> ApiResult<JobAccepted> {
        let pool = find(&state, &auth.0, id.0).await?;
        let job = service::generation::start(&state.db, &pool, body.0.count).await?;
        Ok(JobAccepted::Accepted(Json(job.into())))
    }

    /// Revokes coupons so they can never be redeemed or reversed (Capillary's "Revoke
    /// coupons"): all unredeemed ones, only unissued ones, or the active coupons of the
    /// customers in a CSV list. Redeemed coupons are never revoked.
    #[oai(path = "/:id/revoke", method = "post", operation_id = "revokeCoupons")]
    async fn revoke(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: RevokeBody,
    ) -> ApiResult<RevokeResponse> {
        let pool = find(&state, &auth.0, id.0).await?;
        Ok(match body {
            RevokeBody::Json(req) => {
                let counts =
                    service::revocation::revoke_bulk(&state.db, &pool, req.0.scope).await?;
                RevokeResponse::Revoked(Json(Revoked {
                    issued: counts.issued,
                    unissued: counts.unissued,
                }))
            }
            RevokeBody::Csv(csv) => {
                let file = super::imports::read_list(csv.0).await?;
                service::customer_lists::check_header(&file)?;
                let import = service::revocation::revoke_listed(&state.db, &pool, file).await?;
                RevokeResponse::Imported(Json(import.into()))
            }
        })
    }

    /// Claims the pool for workflows: only claimed pools are offered by the workflow plugin and
    /// accepted by its actions.
    #[oai(path = "/:id/claim", method = "post", operation_id = "claimPool")]
    async fn claim(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<Pool>> {
        set_claimed(&auth, &state, id.0, true).await
    }

    /// Withdraws the pool from workflows.
    #[oai(path = "/:id/unclaim", method = "post", operation_id = "unclaimPool")]
    async fn unclaim(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<Pool>> {
        set_claimed(&auth, &state, id.0, false).await
    }
}

async fn set_claimed(
    auth: &ApiKeyAuth,
    state: &AppState,
    id: i64,
    claimed: bool,
) -> ApiResult<Json<Pool>> {
    let pool = find(state, &auth.0, id).await?;
    let pool = service::pools::set_claimed(&state.db, &state.caches, pool, claimed).await?;
    Ok(Json(to_view(pool)))
}

fn first_page() -> u64 {
    1
}

fn default_per_page() -> u64 {
    50
}

/// The pool an admin key manages: 403 without `admin`, 404 outside the key's access groups.
pub async fn find(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> ApiResult<crate::store::entity::pools::Model> {
    caller.require_in_pools(Scope::Admin)?;
    caller.pool(&state.db, id).await
}

/// The stored row as the API shows it.
fn to_view(m: crate::store::entity::pools::Model) -> Pool {
    Pool {
        id: m.id,
        name: m.name,
        source: m.source,
        pattern: m.pattern,
        discount_type: m.discount_type,
        value: m.value,
        currency: m.currency,
        gift_card_min_value: m.gift_card_min_value,
        gift_card_min_redemption: m.gift_card_min_redemption,
        purchase_min: m.purchase_min,
        starts_at: m.starts_at,
        ends_at: m.ends_at,
        state: m.state,
        group_id: m.group_id,
        codes: m.code_options,
        issuance: m.issuance,
        redemption: m.redemption,
        expiry: m.expiry,
        reminders: m.reminders.0,
        remote: m.remote.map(|r| RemoteSource {
            url: r.url,
            secret: None,
            api_key: None,
            timeout_ms: Some(r.timeout_ms),
            retries: Some(r.retries),
        }),
        claimed: m.claimed,
        generated: m.generated_count,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}
