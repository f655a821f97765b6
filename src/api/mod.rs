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
pub mod idempotency;
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
pub mod spec;
pub mod state;
pub mod stores;
pub mod tags;
pub mod wallet;
pub mod webhooks;
pub mod workflow;

use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get,
    http::{HeaderValue, StatusCode, header},
};
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
    let doc = spec::document();
    let routes = spec::Routes::from_spec(&doc);
    let guard = guard::Guard::new(state.limits, &doc, routes.clone());
    Route::new()
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .at("/metrics", get(health::metrics))
        .at("/openapi.json", spec::json_endpoint(&doc))
        .at("/docs", spec::docs_endpoint())
        .nest("/", openapi_service())
        .around(limits::guard)
        .around(auth::signed_requests)
        .around(move |next, req| {
            let guard = guard.clone();
            async move { guard.check(next, req).await }
        })
        .around(move |next, req| problem_errors(next, req, routes.clone()))
        .around(metrics::track)
        .data(state)
}

/// Renders every error that is not already one of our problem responses (parse failures,
/// unknown routes, missing credentials) as problem+json, keeping its status.
async fn problem_errors<E: Endpoint>(
    next: E,
    req: Request,
    routes: spec::Routes,
) -> poem::Result<Response> {
    let path = req.uri().path().to_string();
    match next.call(req).await {
        Ok(resp) => Ok(resp.into_response()),
        Err(err) if err.is_from_response() => Ok(err.into_response()),
        Err(err) => Ok(render_error(&err, &path, &routes)),
    }
}

/// A 405 says which methods the route does take (`Allow`).
fn render_error(err: &poem::Error, path: &str, routes: &spec::Routes) -> Response {
    let mut problem = error::problem_from_poem_error(err);
    name_path_parameter(&mut problem, path, routes);
    if problem.status >= 500 {
        tracing::error!(cause = %err, "request failed");
    }
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = Json(problem)
        .with_content_type("application/problem+json")
        .with_status(status)
        .into_response();
    if let Some(op) = err.data::<OperationId>().copied() {
        resp.set_data(op);
    }
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = routes.allow(path)
        && let Ok(value) = HeaderValue::from_str(&methods)
    {
        resp.headers_mut().insert(header::ALLOW, value);
    }
    resp
}

/// The router calls path parameters `param0`, `param1`, ...: say the route's own name.
fn name_path_parameter(problem: &mut error::Problem, path: &str, routes: &spec::Routes) {
    let Some(start) = problem.detail.find("path `param") else {
        return;
    };
    let digits: String = problem.detail[start + "path `param".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let Some(name) = digits.parse().ok().and_then(|n| routes.param(path, n)) else {
        return;
    };
    problem.detail = problem
        .detail
        .replace(&format!("`param{digits}`"), &format!("`{name}`"));
    problem.code = "invalid_parameter".into();
    problem.kind = "urn:coupond:problem:invalid_parameter".into();
    problem.field = Some(name.to_string());
}
