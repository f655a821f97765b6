//! The one outbound HTTP client of the process (webhook deliveries, remote coupon sources):
//! bounded connect and total times, no redirects (a tenant's URL must not bounce us to an
//! address it could not name directly), a `User-Agent`, and answers read up to a size cap.

use std::{sync::LazyLock, time::Duration};

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
