//! Abuse limits at the edge: a request rate per API key and per customer on the checkout and
//! remote-callback paths, a budget of unknown-code answers per key (guessing codes), and a budget
//! of refused API keys per client address (guessing keys). Over a limit the answer is a 429
//! problem+json with `Retry-After`. Limits are held in this process: with several replicas each
//! replica enforces them on its own share of the traffic.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};
use serde_json::Value;

use super::{
    AppState,
    error::{ApiError, problem},
};

/// How many of each thing are allowed; 0 turns a limit off.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Checkout and remote-callback requests per second per API key.
    pub per_key_per_sec: u32,
    /// Checkout requests per minute naming one customer.
    pub per_customer_per_min: u32,
    /// Unknown-code answers per minute per API key.
    pub not_found_per_min: u32,
    /// Refused API keys per minute per client address.
    pub auth_failures_per_min: u32,
}

/// The limiters of one process.
pub struct Limits {
    per_key: Option<DefaultKeyedRateLimiter<String>>,
    per_customer: Option<DefaultKeyedRateLimiter<String>>,
    not_found: FailureBudget<String>,
    /// Refused API keys per client address; `auth::signed_requests` consults and spends it.
    pub auth_failures: FailureBudget<IpAddr>,
}

/// Keyed limiters keep one entry per key seen; past this many, idle entries are dropped.
const MAX_TRACKED_KEYS: usize = 100_000;

fn limiter<K: Hash + Eq + Clone>(quota: Option<Quota>) -> Option<DefaultKeyedRateLimiter<K>> {
    quota.map(RateLimiter::keyed)
}

fn per_second(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_second)
}

fn per_minute(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_minute)
}

impl Limits {
    pub fn new(s: LimitSettings) -> Limits {
        Limits {
            per_key: limiter(per_second(s.per_key_per_sec)),
            per_customer: limiter(per_minute(s.per_customer_per_min)),
            not_found: FailureBudget::new(per_minute(s.not_found_per_min)),
            auth_failures: FailureBudget::new(per_minute(s.auth_failures_per_min)),
        }
    }
}

/// Takes one unit for `key`; the wait until the next one when the budget is spent.
fn take<K: Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), Duration> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    if limiter.len() > MAX_TRACKED_KEYS {
        limiter.retain_recent();
    }
    limiter
        .check_key(key)
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

/// A budget of failures (unknown codes, refused keys): once spent, the key is blocked until
/// the budget refills, before any look-up, so that a blocked guesser learns nothing.
pub struct FailureBudget<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    blocked: Mutex<HashMap<K, Instant>>,
    /// Lets the common case (nobody blocked) skip the lock.
    any_blocked: AtomicBool,
}

impl<K: Hash + Eq + Clone> FailureBudget<K> {
    fn new(quota: Option<Quota>) -> FailureBudget<K> {
        FailureBudget {
            limiter: limiter(quota),
            blocked: Mutex::new(HashMap::new()),
            any_blocked: AtomicBool::new(false),
        }
    }

    /// How long `key` stays blocked, if it is.
    pub fn blocked(&self, key: &K) -> Option<Duration> {
        if !self.any_blocked.load(Ordering::Relaxed) {
            return None;
        }
        let mut blocked = self.blocked.lock().expect("limits lock");
        let now = Instant::now();
        blocked.retain(|_, until| *until > now);
        self.any_blocked
            .store(!blocked.is_empty(), Ordering::Relaxed);
        blocked.get(key).map(|until| *until - now)
    }

    /// Counts one failure for `key`, blocking it when its budget is spent.
    pub fn spend(&self, key: &K) {
        if let Err(wait) = take(&self.limiter, key) {
            let mut blocked = self.blocked.lock().expect("limits lock");
            blocked.insert(key.clone(), Instant::now() + wait);
            self.any_blocked.store(true, Ordering::Relaxed);
        }
    }
}

/// The operations the limits watch, by method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watched {
    /// Validate, redeem or reserve a code, or a checkout.
    Checkout { by_code: bool },
    /// The remote-code callback (the key is in the body).
    RemoteCallback,
}

fn watched(method: &Method, path: &str) -> Option<Watched> {
    if method != Method::POST {
        return None;
    }
    if path == "/v1/remote/coupon-code" {
        return Some(Watched::RemoteCallback);
    }
    if path == "/v1/checkouts" {
        return Some(Watched::Checkout { by_code: false });
    }
    let rest = path.strip_prefix("/v1/coupons/")?;
    let (_, action) = rest.rsplit_once('/')?;
    matches!(action, "validate" | "redeem" | "reserve")
        .then_some(Watched::Checkout { by_code: true })
}

/// The middleware: runs inside `auth::signed_requests`, which has looked the bearer key up.
pub async fn guard<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let state = req
        .data::<AppState>()
        .expect("AppState is attached to every route")
        .clone();
    let limits = &state.rate_limits;
    let Some(op) = watched(req.method(), req.uri().path()) else {
        return next.call(req).await.map(IntoResponse::into_response);
    };
    let body = req.take_body().into_bytes().await?;
    let (key, customer) = identities(&req, op, &body);
    req.set_body(body);
    if let Some(key) = &key {
        if let Err(wait) = take(&limits.per_key, key) {
            return Ok(too_many(
                "rate_limited",
                "too many requests for this API key",
                wait,
            ));
        }
        if matches!(op, Watched::Checkout { by_code: true })
            && let Some(wait) = limits.not_found.blocked(key)
        {
            return Ok(too_many(
                "too_many_unknown_codes",
                "too many unknown codes were tried with this API key",
                wait,
            ));
        }
    }
    if let (Some(key), Some(customer)) = (&key, customer)
        && let Err(wait) = take(&limits.per_customer, &format!("{key}\u{1f}{customer}"))
    {
        return Ok(too_many(
            "customer_rate_limited",
            "too many requests for this customer",
            wait,
        ));
    }
    let result = next.call(req).await.map(IntoResponse::into_response);
    let status = match &result {
        Ok(resp) => resp.status(),
        Err(err) => err.status(),
    };
    if status == StatusCode::NOT_FOUND
        && let (Some(key), Watched::Checkout { by_code: true }) = (&key, op)
    {
        limits.not_found.spend(key);
    }
    result
}

/// Who a watched request counts against: the API key (bearer, or the remote callback's
/// `api_key` field) and the customer it names, if any.
fn identities(req: &Request, op: Watched, body: &[u8]) -> (Option<String>, Option<String>) {
    let fields: Value = if op == Watched::RemoteCallback && is_form(req) {
        serde_urlencoded_value(body)
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    };
    let key = match op {
        Watched::RemoteCallback => fields["api_key"].as_str().map(|k| format!("remote:{k}")),
        Watched::Checkout { .. } => super::auth::bearer_key_id(req).map(|id| format!("key:{id}")),
    };
    let customer = match &fields["customer"] {
        Value::Null => None,
        other => Some(other.to_string()),
    };
    (key, customer)
}

fn is_form(req: &Request) -> bool {
    req.content_type()
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
}

/// A form body as a JSON object of its fields.
fn serde_urlencoded_value(body: &[u8]) -> Value {
    let pairs = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Value::Object(pairs)
}

/// The address a request came from (the load balancer's, behind one).
pub fn client_address(req: &Request) -> Option<IpAddr> {
    req.remote_addr().as_socket_addr().map(|a| a.ip())
}

/// The 429 answer, with `Retry-After` in whole seconds.
pub fn too_many(code: &str, detail: &str, wait: Duration) -> Response {
    let mut p = problem(StatusCode::TOO_MANY_REQUESTS, code, detail.to_string());
    p.detail = format!("{detail}; retry later");
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = ApiError::from_problem(p).into_response();
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&secs.to_string()).expect("digits are a valid header value"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_the_checkout_and_callback_paths_only() {
        let post = Method::POST;
        assert_eq!(
            watched(&post, "/v1/coupons/AB-1/validate"),
            Some(Watched::Checkout { by_code: true })
        );
        assert_eq!(
            watched(&post, "/v1/checkouts"),
            Some(Watched::Checkout { by_code: false })
        );
        assert_eq!(
            watched(&post, "/v1/remote/coupon-code"),
            Some(Watched::RemoteCallback)
        );
        assert_eq!(watched(&post, "/v1/coupons/AB-1/revoke"), None);
        assert_eq!(watched(&Method::GET, "/v1/coupons/AB-1/validate"), None);
    }

    #[test]
    fn a_spent_budget_says_how_long_to_wait() {
        let lim = limiter::<String>(per_minute(2));
        let k = "key:1".to_string();
        assert!(take(&lim, &k).is_ok());
        assert!(take(&lim, &k).is_ok());
        let wait = take(&lim, &k).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30));
        assert!(take(&limiter::<String>(None), &k).is_ok());
    }

    #[test]
    fn a_spent_failure_budget_blocks_until_it_refills() {
        let budget = FailureBudget::<String>::new(per_minute(2));
        let k = "key:1".to_string();
        budget.spend(&k);
        budget.spend(&k);
        assert_eq!(budget.blocked(&k), None);
        budget.spend(&k);
        assert!(budget.blocked(&k).is_some());
        assert_eq!(budget.blocked(&"key:2".to_string()), None);
    }
}
