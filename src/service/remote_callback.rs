//! coupond as an Antavo "remote" coupon source: a loyalty platform POSTs
//! `{api_key, customer, type, value, coupon_percentage, ...}` and gets a code issued to that
//! customer from the pool the key is bound to, under the pool's issuance rules.
//!
//! Platforms retry calls whose answer they did not get, without any idempotency key; a request
//! for the same customer and pool within the retry window therefore gets the code issued last
//! instead of a new one. The check runs again under the customer's row lock inside the issuing
//! transaction, so concurrent retries also end with one code.

use chrono::{DateTime, TimeDelta, Utc};
use entity::{api_keys, customers, orgs, pools};
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::{
    domain::{
        api_key::Scope,
        customer::CustomerIdentifier,
        pool::PoolSource,
        remote::{RemoteBodyError, RemoteCodeRequest},
    },
    service::{
        Error, Result, issuance,
        signed::{self, SignedHeaders},
    },
    store,
};

/// A call to the callback: its raw body and headers, and the retry window to apply.
pub struct Call<'a> {
    pub headers: SignedHeaders<'a>,
    pub body: &'a [u8],
    pub retry_window: TimeDelta,
}

/// The code for the customer the request names.
pub async fn serve(db: &DatabaseConnection, call: Call<'_>) -> Result<String> {
    let request = RemoteCodeRequest::parse(call.body).map_err(bad_body)?;
    let (key, pool) = authenticate(db, &request.api_key).await?;
    if let Some(secret) = &key.signing_secret {
        signed::verify(&call.headers, secret, call.body)?;
    }
    let org = store::orgs::get(db, key.org_id)
        .await?
        .ok_or_else(|| Error::internal("a key's org vanished"))?;
    let external_id = match CustomerIdentifier::from_column("external_id", &request.customer) {
        Ok(CustomerIdentifier::ExternalId(id)) => id,
        Ok(_) => {
            return Err(Error::internal("external_id parsed as another identifier"));
        }
        Err(e) => return Err(Error::invalid("customer", e.reason)),
    };
    let customer = store::customers::ensure(db, org.id, &external_id).await?;
    code_for(db, &org, &pool, &customer, Utc::now() - call.retry_window).await
}

/// The code issued to the customer since `since`, or a new one.
async fn code_for(
    db: &DatabaseConnection,
    org: &orgs::Model,
    pool: &pools::Model,
    customer: &customers::Model,
    since: DateTime<Utc>,
) -> Result<String> {
    // A retry must not cost a remote pool a fetch from its source; other pools check only
    // under the lock below.
    if pool.source == PoolSource::Remote.as_str()
        && let Some(recent) = store::issuance::issued_since(db, pool.id, customer.id, since).await?
    {
        return Ok(recent.code);
    }
    let mut fetched = issuance::prefetch(db, org, pool, customer, 1).await?;
    let txn = db.begin().await?;
    store::customers::lock(&txn, customer.id).await?;
    let recent = store::issuance::issued_since(&txn, pool.id, customer.id, since).await?;
    let code = match recent {
        Some(c) => c.code,
        None => {
            issuance::issue_in(&txn, org, pool, customer, Utc::now(), &mut fetched)
                .await?
                .coupon
                .code
        }
    };
    txn.commit().await?;
    Ok(code)
}

/// The remote key and its pool. Every failure is the same 401, so a caller learns nothing about
/// which keys or pools exist.
async fn authenticate(
    db: &DatabaseConnection,
    api_key: &str,
) -> Result<(api_keys::Model, pools::Model)> {
    let unauthorized = || Error::unauthorized("unauthorized", "api_key is not a valid remote key");
    let key = store::api_keys::find_by_secret(db, api_key)
        .await?
        .filter(|k| Scope::granted(&store::api_keys::scopes_of(k), Scope::Remote))
        .ok_or_else(unauthorized)?;
    let pool_id = key.pool_id.ok_or_else(unauthorized)?;
    let pool = store::pools::get(db, key.org_id, pool_id)
        .await?
        .ok_or_else(unauthorized)?;
    Ok((key, pool))
}

fn bad_body(e: RemoteBodyError) -> Error {
    Error::bad_request("invalid_body", e.to_string())
}
