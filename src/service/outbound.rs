//! The one outbound HTTP client of the process (webhook deliveries, remote coupon sources):
//! bounded connect and total times, no redirects (a tenant's URL must not bounce us to an
//! address it could not name directly), a `User-Agent`, and answers read up to a size cap.

use std::{
    net::SocketAddr,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::url_policy;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request may take; callers may set a shorter one per request.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read from a remote party.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("coupond/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(PolicyResolver))
        .build()
        .expect("the HTTP client settings are valid")
});

/// The shared client; connections to a host are reused across callers.
pub fn client() -> &'static reqwest::Client {
    &CLIENT
}

/// Reads an answer's body, refusing one longer than `limit` bytes.
pub async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("the answer is larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether tenants' URLs may reach loopback, private, link-local and metadata addresses
/// (`COUPOND_ALLOW_PRIVATE_URLS`, for local set-ups and tests). Set once at start-up.
static ALLOW_PRIVATE: AtomicBool = AtomicBool::new(false);

pub fn allow_private_urls(allow: bool) {
    ALLOW_PRIVATE.store(allow, Ordering::Relaxed);
}

fn private_allowed() -> bool {
    ALLOW_PRIVATE.load(Ordering::Relaxed)
}

/// Why a URL may not be called, if it may not: checked when a URL is saved, resolving its
/// host now. Connecting checks again, since DNS can change (see [`PolicyResolver`]).
pub async fn check_destination(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "not a URL".to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("only http:// and https:// URLs are called".into());
    }
    if private_allowed() {
        return Ok(());
    }
    let host = parsed.host_str().ok_or("the URL has no host")?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    check_literal(&parsed)?;
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return Ok(());
    }
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?;
    refuse_internal(host, addrs)
}

/// Why a URL whose host is an address (which no resolver sees) may not be called, if it may
/// not; every send checks this.
pub fn check_literal(url: &reqwest::Url) -> Result<(), String> {
    if private_allowed() {
        return Ok(());
    }
    let internal = match url.host() {
        Some(url::Host::Ipv4(ip)) => url_policy::is_internal(ip.into()),
        Some(url::Host::Ipv6(ip)) => url_policy::is_internal(ip.into()),
        Some(url::Host::Domain(name)) => url_policy::is_internal_name(name),
        None => true,
    };
    if internal {
        return Err(INTERNAL.into());
    }
    Ok(())
}

const INTERNAL: &str = "the URL reaches a loopback, private, link-local or metadata address; \
                        an operator may allow such URLs with COUPOND_ALLOW_PRIVATE_URLS";

fn refuse_internal(host: &str, addrs: impl Iterator<Item = SocketAddr>) -> Result<(), String> {
    let addrs: Vec<SocketAddr> = addrs.collect();
    if url_policy::is_internal_name(host) || addrs.iter().any(|a| url_policy::is_internal(a.ip())) {
        return Err(INTERNAL.into());
    }
    Ok(())
}

/// Resolves host names for the shared client and refuses internal answers at connect time,
/// so a name that resolved to a public address when it was saved cannot be pointed inwards.
struct PolicyResolver;

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !private_allowed() {
                refuse_internal(&host, addrs.clone().into_iter())?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
