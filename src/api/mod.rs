//! The HTTP layer: one `#[OpenApi]` struct per tag, thin handlers, one error type.

pub mod api_keys;
pub mod auth;
pub mod coupons;
pub mod customers;
pub mod error;
pub mod events;
pub mod groups;
pub mod guard;
pub mod health;
pub mod imports;
pub mod issuance;
pub mod limits;
pub mod market;
pub mod metrics;
pub mod notifications;
pub mod org;
pub mod patterns;
pub mod pools;
pub mod redemption;
pub mod remote;
pub mod state;
pub mod stores;
pub mod tags;
pub mod wallet;
pub mod webhooks;
pub mod workflow;

use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, http::StatusCode};
use poem_openapi::{OpenApiService, OperationId, payload::Json};

pub use state::AppState;
pub use tags::ApiTags;

pub fn openapi_service() -> OpenApiService<impl poem_openapi::OpenApi, ()> {
    OpenApiService::new(
        (
            org::OrgApi,
            api_keys::ApiKeysApi,
            groups::GroupsApi,
            imports::ImportsApi,
            imports::JobsApi,
            pools::PoolsApi,
            patterns::PatternsApi,
            issuance::IssuanceApi,
            customers::CustomersApi,
            webhooks::WebhooksApi,
            remote::RemoteApi,
            workflow::WorkflowApi,
            redemption::RedemptionApi,
            (
                coupons::CouponsApi,
                notifications::NotificationsApi,
                market::MarketApi,
                market::PointsApi,
                events::EventsApi,
                wallet::WalletApi,
                stores::StoresApi,
                stores::ExchangeRatesApi,
            ),
        ),
        "coupond",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Coupon pools, issuance, redemption and notifications for loyalty programs. \
         Authenticate with `Authorization: Bearer <api key>`; errors are \
         `application/problem+json` with a stable `code`.",
    )
}

/// The whole HTTP surface: the versioned API, its spec and docs, health and metrics.
pub fn routes(state: AppState) -> impl Endpoint {
    let api = openapi_service();
    let guard = guard::Guard::new(state.limits, &api.spec());
    Route::new()
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .at("/metrics", get(health::metrics))
        .at("/openapi.json", api.spec_endpoint())
        .nest("/docs", api.swagger_ui())
        .nest("/", api)
        .around(limits::guard)
        .around(auth::signed_requests)
        .around(move |next, req| {
            let guard = guard.clone();
            async move { guard.check(next, req).await }
        })
        .around(problem_errors)
        .around(metrics::track)
        .data(state)
}

/// Renders every error that is not already one of our problem responses (parse failures,
/// unknown routes, missing credentials) as problem+json, keeping its status.
async fn problem_errors<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    match next.call(req).await {
        Ok(resp) => Ok(resp.into_response()),
        Err(err) if err.is_from_response() => Ok(err.into_response()),
        Err(err) => {
            let operation = err.data::<OperationId>().copied();
            let problem = error::problem_from_poem_error(&err);
            if problem.status >= 500 {
                tracing::error!(cause = %err, "request failed");
            }
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut resp = Json(problem)
                .with_content_type("application/problem+json")
                .with_status(status)
                .into_response();
            if let Some(op) = operation {
                resp.set_data(op);
            }
            Ok(resp)
        }
    }
}
