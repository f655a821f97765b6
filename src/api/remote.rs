//! `/v1/remote/coupon-code`: the callback a loyalty platform's "remote" coupon source calls
//! (Antavo's request and response shapes, not ours: no bearer key, no problem+json).

use poem::{Request, RequestBody, http::StatusCode, web::Data};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object, OpenApi,
    payload::Json,
    registry::{MetaMediaType, MetaRequest, Registry},
    types::Type,
};

use super::{auth::signed_headers, error::ApiError, state::AppState, tags::ApiTags};
use crate::service::remote_callback::{self, Call};

/// Antavo's request. Every field may be a string or a number; other fields are ignored.
#[derive(Object)]
pub struct RemoteCodeRequest {
    /// A key with the `remote` scope; it names the pool the code comes from.
    #[oai(validator(min_length = 1))]
    pub api_key: String,
    /// The customer's id in the loyalty platform (our external id); unknown ones are created.
    #[oai(validator(min_length = 1))]
    pub customer: String,
    /// The coupon type, e.g. `percentage`; when sent, it must be the pool's discount type.
    #[oai(rename = "type")]
    pub kind: Option<String>,
    /// The value of an amount coupon; when sent to an amount or gift card pool it must be the
    /// pool's value, in minor units (`500`) or in major units (`5.00`).
    pub value: Option<String>,
    /// The percentage of a percentage coupon (`20`); when sent it must be the pool's.
    pub coupon_percentage: Option<String>,
    /// The platform's id for this request: a call with the same id is a retry and gets the
    /// same code (so does an `Idempotency-Key` header, or `request_id`).
    #[oai(validator(max_length = 255))]
    pub idempotency_key: Option<String>,
    /// Same as `idempotency_key`.
    #[oai(validator(max_length = 255))]
    pub request_id: Option<String>,
}

/// The raw body, documented as [`RemoteCodeRequest`] and read whatever its content type, since
/// platforms are loose about both.
pub struct RawBody(Vec<u8>);

impl<'a> ApiExtractor<'a> for RawBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        RemoteCodeRequest::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: ["application/json", "application/x-www-form-urlencoded"]
                .into_iter()
                .map(|content_type| MetaMediaType {
                    content_type,
                    schema: RemoteCodeRequest::schema_ref(),
                })
                .collect(),
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(RawBody(
            <Vec<u8> as poem::FromRequest>::from_request(request, body).await?,
        ))
    }
}

#[derive(Object)]
pub struct RemoteCode {
    pub code: String,
}

/// Why no code was issued.
#[derive(Object)]
pub struct RemoteRefusal {
    /// What went wrong, in a sentence.
    pub error: String,
    /// Stable machine-readable reason: invalid_body, unauthorized, pool_mismatch,
    /// customer_limit, pool_exhausted, pool_inactive, ...
    pub code: String,
}

#[derive(ApiResponse)]
pub enum RemoteCodeResponse {
    /// The code issued to the customer (the same one again for a retry, and for aggregated
    /// pools).
    #[oai(status = 200)]
    Code(Json<RemoteCode>),
    /// Refused: an unreadable body (400), a wrong key or signature (401), or a rule of the
    /// pool (422, with the rule's code).
    #[oai(status_range = "4XX")]
    Refused(StatusCode, Json<RemoteRefusal>),
    /// coupond or a source behind it failed; retrying later may succeed.
    #[oai(status_range = "5XX")]
    Failed(StatusCode, Json<RemoteRefusal>),
}

impl From<ApiError> for RemoteCodeResponse {
    fn from(e: ApiError) -> RemoteCodeResponse {
        let p = e.problem();
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = Json(RemoteRefusal {
            error: p.detail.clone(),
            code: p.code.clone(),
        });
        if status.is_client_error() {
            RemoteCodeResponse::Refused(status, body)
        } else {
            RemoteCodeResponse::Failed(status, body)
        }
    }
}

pub struct RemoteApi;

#[OpenApi(prefix_path = "/v1/remote", tag = "ApiTags::Remote")]
impl RemoteApi {
    /// Issues a code to the customer from the pool the `api_key` is bound to, under the pool's
    /// rules, and answers `{"code": "..."}`. The body is JSON or a form, with the same fields.
    /// A `type`, `value` or `coupon_percentage` that disagrees with the pool is a 422
    /// `pool_mismatch`. A retry gets the code already issued: a call carrying the same
    /// `Idempotency-Key` (or `webhook-id`) header or `idempotency_key` / `request_id` field as an
    /// earlier one, or, without such a mark, a call identical in every field within the retry
    /// window (`COUPOND_REMOTE_RETRY_WINDOW_SECS`, default 60 s). A key with a signing secret
    /// also needs a Standard Webhooks signature.
    #[oai(
        path = "/coupon-code",
        method = "post",
        operation_id = "remoteCouponCode"
    )]
    async fn coupon_code(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: RawBody,
    ) -> RemoteCodeResponse {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        let call = Call {
            headers: signed_headers(request.headers()),
            content_type: header("content-type"),
            idempotency_key: header("idempotency-key"),
            body: &body.0,
            retry_window: state.remote_retry_window,
        };
        match remote_callback::serve(&state.db, &state.caches, call).await {
            Ok(code) => RemoteCodeResponse::Code(Json(RemoteCode { code })),
            Err(e) => ApiError::from(e).into(),
        }
    }
}
