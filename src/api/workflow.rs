//! `/v1/workflow`: the workflow-engine plugin. The descriptor lists the actions with JSON Schemas
//! of their input and output, and the pools claimed for workflows; each action is a POST with an
//! `Idempotency-Key` (workflow run id + step id) whose first answer is replayed.

use poem::{http::StatusCode, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::Header,
    payload::Json,
    registry::{MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};
use serde_json::{Value, json};

use super::{
    auth::ApiKeyAuth,
    error::{ApiError, ApiResult},
    idempotency::IdempotencyKey,
    state::AppState,
    tags::ApiTags,
};
use crate::{
    domain::{api_key::Scope, discount::DiscountType, pool::PoolSource},
    service::{
        self,
        workflow::{
            ActionResult, ActionStatus, CreditPointsInput, IssueCouponInput, ResendCouponInput,
            RevokeCouponsInput, Step,
        },
    },
};

#[derive(ApiResponse)]
pub enum ActionResponse {
    /// Done, or `skipped` because a rule said no; a replay answers what the first call did.
    #[oai(status = 200)]
    Done(Json<ActionResult>),
    /// `failed`: an unknown customer or pool, a pool not claimed for workflows, bad input.
    #[oai(status_range = "4XX")]
    Failed(StatusCode, Json<ActionResult>),
}

/// An action the plugin offers.
#[derive(Object)]
pub struct ActionDescriptor {
    pub name: String,
    pub description: String,
    /// JSON Schema (2020-12) of the request body.
    pub input_schema: Value,
    /// JSON Schema (2020-12) of the answer.
    pub output_schema: Value,
}

/// A pool claimed for workflows.
#[derive(Object)]
pub struct WorkflowPool {
    pub id: i64,
    pub name: String,
    pub source: PoolSource,
    pub discount_type: DiscountType,
    pub value: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Object)]
pub struct PluginDescriptor {
    pub actions: Vec<ActionDescriptor>,
    /// Only these pools may be used by the actions.
    pub pools: Vec<WorkflowPool>,
}

/// Pools listed in the descriptor at most.
const MAX_DESCRIBED_POOLS: u64 = 200;

pub struct WorkflowApi;

#[OpenApi(prefix_path = "/v1/workflow", tag = "ApiTags::Workflow")]
impl WorkflowApi {
    /// The plugin descriptor: every action with the JSON Schemas of its input and output, and
    /// the pools claimed for workflows (`POST /v1/pools/{id}/claim`).
    #[oai(
        path = "/actions",
        method = "get",
        operation_id = "describeWorkflowActions"
    )]
    async fn describe(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
    ) -> ApiResult<Json<PluginDescriptor>> {
        auth.0.require(Scope::Workflow)?;
        let rows = service::pools::claimed(&state.db, auth.0.org_id, MAX_DESCRIBED_POOLS).await?;
        let pools = rows
            .into_iter()
            .map(|p| WorkflowPool {
                source: p.source,
                discount_type: p.discount_type,
                id: p.id,
                name: p.name,
                value: p.value,
                currency: p.currency,
            })
            .collect();
        Ok(Json(PluginDescriptor {
            actions: actions(),
            pools,
        }))
    }

    /// Issues coupons of a claimed pool to a customer under the pool's rules. A refusal is
    /// `skipped` with the rule's code, never an error.
    #[oai(
        path = "/actions/issue_coupon",
        method = "post",
        operation_id = "workflowIssueCoupon"
    )]
    async fn issue_coupon(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        #[oai(name = "Idempotency-Key")] key: Header<IdempotencyKey>,
        body: Json<IssueCouponInput>,
    ) -> ApiResult<ActionResponse> {
        let step = step(&auth, "workflow.issue_coupon", key.0, &body.0)?;
        let result = service::workflow::issue_coupon(&state.db, &step, &body.0).await;
        respond(result)
    }

    /// Revokes the customer's active coupons of a claimed pool; `skipped`
    /// (no_active_coupons) when there are none.
    #[oai(
        path = "/actions/revoke_coupons",
        method = "post",
        operation_id = "workflowRevokeCoupons"
    )]
    async fn revoke_coupons(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        #[oai(name = "Idempotency-Key")] key: Header<IdempotencyKey>,
        body: Json<RevokeCouponsInput>,
    ) -> ApiResult<ActionResponse> {
        let step = step(&auth, "workflow.revoke_coupons", key.0, &body.0)?;
        let result = service::workflow::revoke_coupons(&state.db, &step, &body.0).await;
        respond(result)
    }

    /// Queues the customer's active coupon of a claimed pool to be sent again by email or SMS;
    /// `skipped` (no_active_coupon, no_channel) when there is nothing to send or nowhere to.
    #[oai(
        path = "/actions/resend_coupon",
        method = "post",
        operation_id = "workflowResendCoupon"
    )]
    async fn resend_coupon(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        #[oai(name = "Idempotency-Key")] key: Header<IdempotencyKey>,
        body: Json<ResendCouponInput>,
    ) -> ApiResult<ActionResponse> {
        let step = step(&auth, "workflow.resend_coupon", key.0, &body.0)?;
        let result = service::workflow::resend_coupon(&state.db, &step, &body.0).await;
        respond(result)
    }

    /// Adds a signed entry to the customer's points ledger; `skipped` (insufficient_points)
    /// when a debit would take the balance below zero.
    #[oai(
        path = "/actions/credit_points",
        method = "post",
        operation_id = "workflowCreditPoints"
    )]
    async fn credit_points(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        #[oai(name = "Idempotency-Key")] key: Header<IdempotencyKey>,
        body: Json<CreditPointsInput>,
    ) -> ApiResult<ActionResponse> {
        let step = step(&auth, "workflow.credit_points", key.0, &body.0)?;
        let result = service::workflow::credit_points(&state.db, &step, &body.0).await;
        respond(result)
    }
}

/// Authorises the call and names it for idempotency: the key and a fingerprint of the body.
fn step<T: ToJSON>(
    auth: &ApiKeyAuth,
    operation: &'static str,
    IdempotencyKey(key): IdempotencyKey,
    body: &T,
) -> ApiResult<Step> {
    auth.0.require(Scope::Workflow)?;
    Ok(Step::new(
        auth.0.org_id,
        operation,
        key.trim().to_string(),
        &body.to_json().unwrap_or(Value::Null),
    ))
}

/// Caller errors become a `failed` result with their status; others stay problems.
fn respond(result: service::Result<ActionResult>) -> ApiResult<ActionResponse> {
    match result {
        Ok(r) => Ok(ActionResponse::Done(Json(r))),
        Err(e) => {
            let failed = ActionResult::from_error(ActionStatus::Failed, &e);
            let e = ApiError::from(e);
            let status = e.problem().status;
            if !is_caller_error(status) {
                return Err(e);
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            Ok(ActionResponse::Failed(status, Json(failed)))
        }
    }
}

/// 4xx other than authentication and authorisation, which are the plugin's set-up, not the
/// step's input.
fn is_caller_error(status: u16) -> bool {
    matches!(status, 400 | 404 | 409 | 422)
}

fn actions() -> Vec<ActionDescriptor> {
    fn action<I: Type>(name: &str, description: &str) -> ActionDescriptor {
        ActionDescriptor {
            name: name.to_string(),
            description: description.to_string(),
            input_schema: json_schema::<I>(),
            output_schema: json_schema::<ActionResult>(),
        }
    }
    vec![
        action::<IssueCouponInput>(
            "issue_coupon",
            "Issue coupons of a claimed pool to a customer under the pool's issuance rules.",
        ),
        action::<RevokeCouponsInput>(
            "revoke_coupons",
            "Revoke the customer's active coupons of a claimed pool.",
        ),
        action::<ResendCouponInput>(
            "resend_coupon",
            "Send the customer's active coupon of a claimed pool again by email or SMS.",
        ),
        action::<CreditPointsInput>(
            "credit_points",
            "Add a signed entry to the customer's points ledger.",
        ),
    ]
}

/// A JSON Schema of `T` from the same definitions as the OpenAPI document, so the two cannot
/// drift apart: `T`'s own definition at the top, the types it refers to in `$defs`, and
/// OpenAPI's `#/components/schemas/` references pointing there instead.
fn json_schema<T: Type>() -> Value {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let root = match T::schema_ref() {
        MetaSchemaRef::Reference(name) => json!(registry.schemas.get(&name)),
        inline => json!(inline),
    };
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": registry.schemas,
    });
    if let (Value::Object(out), Value::Object(root)) = (&mut schema, root) {
        out.extend(root);
    }
    let text = schema
        .to_string()
        .replace("\"#/components/schemas/", "\"#/$defs/");
    serde_json::from_str(&text).expect("replacing inside a JSON string keeps it JSON")
}
