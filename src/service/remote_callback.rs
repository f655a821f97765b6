//! coupond as an Antavo "remote" coupon source: a loyalty platform POSTs
//! `{api_key, customer, type, value, coupon_percentage, ...}` (as JSON or as a form) and gets a
//! code issued to that customer from the pool the key is bound to, under the pool's issuance
//! rules. A request whose type or value disagrees with that pool is refused.
//!
//! Platforms retry calls whose answer they did not get. What counts as a retry is decided in
//! `domain::remote_call`: the platform's own mark when it sends one, else a call identical in
//! every field within the retry window. The answer is recorded as an idempotency key in the
//! transaction that issues the code. A call is first taken for new and only records; when an
//! answer is there already (the record is a unique violation), the call is undone and the
//! answer looked up under the customer's row lock, so concurrent retries also end with one code.
//! On PostgreSQL a call taken for new is one statement when the pool's rules allow the issue at
//! once: the customer found or created, the code claimed, the answer recorded.

use crate::store::entity::{api_keys, customers, orgs, pools};
use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};

use crate::{
    domain::{
        api_key::Scope,
        customer::CustomerIdentifier,
        pool::PoolSource,
        remote::RemoteBodyError,
        remote_call::{self, Mismatch, RemoteCall},
    },
    service::{
        Error, Result,
        cache::Caches,
        idempotency, issuance, issue_at_once,
        signed::{self, SignedHeaders},
    },
    store::{
        self,
        idempotency::Keyed,
        issue_at_once::{Answer, KeyRecord},
    },
};

/// A call to the callback: its raw body and headers, and the retry window to apply.
pub struct Call<'a> {
    pub headers: SignedHeaders<'a>,
    pub content_type: Option<&'a str>,
    /// The platform's own retry mark, when it sends one (`webhook-id` stands in otherwise).
    pub idempotency_key: Option<&'a str>,
    pub body: &'a [u8],
    pub retry_window: TimeDelta,
}

/// The code for the customer the request names. The key and its pool with the org come from
/// the caches the bearer-key paths use, so a steady stream of calls reads neither.
pub async fn serve(db: &DatabaseConnection, caches: &Caches, call: Call<'_>) -> Result<String> {
    let marked = call.idempotency_key.or(call.headers.id);
    let parsed = RemoteCall::parse(call.content_type, call.body, marked).map_err(bad_body)?;
    let request = &parsed.request;
    let (key, org, pool) = authenticate(db, caches, &request.api_key).await?;
    if let Some(secret) = &key.signing_secret {
        signed::verify(&call.headers, secret, call.body)?;
    }
    remote_call::check_agrees(request, pool.discount_type, pool.value).map_err(mismatch)?;
    let external_id = match CustomerIdentifier::from_column("external_id", &request.customer) {
        Ok(CustomerIdentifier::ExternalId(id)) => id,
        Ok(_) => {
            return Err(Error::internal("external_id parsed as another identifier"));
        }
        Err(e) => return Err(Error::invalid("customer", e.reason)),
    };
    let earlier = Earlier {
        keyed: Keyed {
            org_id: org.id,
            operation: "remoteCouponCode",
            key: format!("{}:{}", pool.id, parsed.retry.key()),
            request_hash: parsed.digest.clone(),
        },
        call: &parsed,
        since: Utc::now() - call.retry_window,
    };
    let first = match at_once(db, &org, &pool, &external_id, &earlier).await? {
        First::Answered(code) => return Ok(code),
        other => other,
    };
    let customer = store::customers::ensure(db, org.id, &external_id).await?;
    let take_for_new = first == First::Untried;
    code_for(db, &org, &pool, &customer, &earlier, take_for_new).await
}

/// What the one-statement attempt at a call came to.
#[derive(Debug, PartialEq, Eq)]
enum First {
    /// A new code, and the answer recorded.
    Answered(String),
    /// It did not apply (the pool's rules read more, or it mints codes) or found no code in
    /// stock: the full path takes the call from the start.
    Untried,
    /// The rules refused, or an answer is recorded already: an earlier call's answer, if there
    /// is one, wins over the refusal.
    Contested,
}

/// The common case, a call not seen before, in one statement: the customer found or created,
/// a code claimed and the answer recorded, without looking for an earlier answer first.
/// Recording is a unique violation (`RaceLost`, nothing written) when an answer is recorded
/// already or a concurrent twin records first.
async fn at_once(
    db: &DatabaseConnection,
    org: &orgs::Model,
    pool: &pools::Model,
    external_id: &str,
    earlier: &Earlier<'_>,
) -> Result<First> {
    let record = KeyRecord {
        keyed: &earlier.keyed,
        status: 200,
        answer: Answer::Code,
    };
    let holder = issue_at_once::Holder::ExternalId {
        org_id: org.id,
        external_id,
        create: true,
    };
    match issue_at_once::try_issue(db, org, pool, holder, Some(record)).await {
        Ok(issue_at_once::Attempt::Issued(issued)) => Ok(First::Answered(issued.coupon.code)),
        Ok(_) => Ok(First::Untried),
        Err(e) if e.is_caller_error() || matches!(e, Error::RaceLost) => Ok(First::Contested),
        Err(e) => Err(e),
    }
}

/// Where an earlier answer to this call would be recorded.
struct Earlier<'a> {
    keyed: Keyed,
    call: &'a RemoteCall,
    since: DateTime<Utc>,
}

impl Earlier<'_> {
    /// The code answered to an earlier call this one retries. An expired record of an identical
    /// call is deleted, so this call records its own answer.
    async fn answer<C: ConnectionTrait>(&self, db: &C) -> Result<Option<String>> {
        let Some(row) = store::idempotency::find(db, &self.keyed).await? else {
            return Ok(None);
        };
        if row.request_hash != self.keyed.request_hash {
            return Err(Error::conflict(
                "idempotency_key_reused",
                "this request id was already used for another request",
            ));
        }
        if !self.call.retry.replays(row.created_at >= self.since) {
            store::idempotency::forget(db, row.id).await?;
            return Ok(None);
        }
        row.response["code"]
            .as_str()
            .map(|code| Some(code.to_string()))
            .ok_or_else(|| Error::internal("a recorded callback answer has no code"))
    }
}

/// The code an earlier call got, if this one retries it, or a new one. `take_for_new`: the
/// call is first taken for new ([`Issue::first_answer`]), unless the one-statement attempt
/// was already refused or lost the race to record.
async fn code_for(
    db: &DatabaseConnection,
    org: &orgs::Model,
    pool: &pools::Model,
    customer: &customers::Model,
    earlier: &Earlier<'_>,
    take_for_new: bool,
) -> Result<String> {
    let call = Issue {
        org,
        pool,
        customer,
        earlier,
    };
    // A retry must not cost a remote pool a fetch from its source: it looks first.
    if pool.source == PoolSource::Remote {
        let txn = db.begin().await?;
        let answer = earlier.answer(&txn).await?;
        txn.commit().await?;
        if let Some(code) = answer {
            return Ok(code);
        }
        let mut fetched = issuance::prefetch(db, org, pool, customer, 1).await?;
        return call.answer_again(db, &mut fetched).await;
    }
    let mut fetched = issuance::prefetch(db, org, pool, customer, 1).await?;
    // A refusal may be the rules seeing the code an earlier call got (a per-customer limit,
    // an empty pool): that call's answer, if there is one, wins over it.
    if take_for_new {
        match call.first_answer(db, &mut fetched).await {
            Err(e) if e.is_caller_error() || matches!(e, Error::RaceLost) => {}
            other => return other,
        }
    }
    // A twin in its first answer records without the customer's lock, so the look under the
    // lock can miss it and lose the race to record too; once the twin committed, a second look
    // finds its answer.
    match call.answer_again(db, &mut fetched).await {
        Err(Error::RaceLost) => call.answer_again(db, &mut fetched).await,
        other => other,
    }
}

/// A call to answer with a code of `pool` for `customer`.
struct Issue<'a> {
    org: &'a orgs::Model,
    pool: &'a pools::Model,
    customer: &'a customers::Model,
    earlier: &'a Earlier<'a>,
}

impl Issue<'_> {
    /// A call not seen before, taken for new: issue and record the answer without looking for
    /// an earlier one. Recording is a unique violation (`RaceLost`, the issue undone) when an
    /// answer is recorded already or a concurrent twin records first; then
    /// [`Issue::answer_again`] decides.
    async fn first_answer(
        &self,
        db: &DatabaseConnection,
        fetched: &mut issuance::Fetched,
    ) -> Result<String> {
        let txn = db.begin().await?;
        let code = self.issue_and_record(&txn, fetched).await?;
        txn.commit().await?;
        Ok(code)
    }

    /// The earlier answer, looked up under the customer's row lock so concurrent retries
    /// queue on it, or a new code when there is none (or it is out of its retry window).
    async fn answer_again(
        &self,
        db: &DatabaseConnection,
        fetched: &mut issuance::Fetched,
    ) -> Result<String> {
        let txn = db.begin().await?;
        store::customers::lock(&txn, self.customer.id).await?;
        let code = match self.earlier.answer(&txn).await? {
            Some(code) => code,
            None => self.issue_and_record(&txn, fetched).await?,
        };
        txn.commit().await?;
        Ok(code)
    }

    async fn issue_and_record(
        &self,
        txn: &DatabaseTransaction,
        fetched: &mut issuance::Fetched,
    ) -> Result<String> {
        let (org, pool, customer) = (self.org, self.pool, self.customer);
        let issued = issuance::issue_in(txn, org, pool, customer, Utc::now(), fetched).await?;
        let code = issued.coupon.code;
        let answer = serde_json::json!({ "code": code });
        idempotency::record(txn, &self.earlier.keyed, 200, answer).await?;
        Ok(code)
    }
}

/// The remote key, its org and its pool. Every failure is the same 401, so a caller learns
/// nothing about which keys or pools exist.
async fn authenticate(
    db: &DatabaseConnection,
    caches: &Caches,
    api_key: &str,
) -> Result<(api_keys::Model, orgs::Model, pools::Model)> {
    let unauthorized = || Error::unauthorized("unauthorized", "api_key is not a valid remote key");
    let key = caches
        .api_key(db, api_key)
        .await?
        .filter(|k| Scope::granted(&k.scopes.0, Scope::Remote))
        .ok_or_else(unauthorized)?;
    let pool_id = key.pool_id.ok_or_else(unauthorized)?;
    let (org, pool) = caches
        .pool_and_org(db, key.org_id, pool_id)
        .await?
        .ok_or_else(unauthorized)?;
    Ok((key, org, pool))
}

fn bad_body(e: RemoteBodyError) -> Error {
    Error::bad_request("invalid_body", e.to_string())
}

fn mismatch(m: Mismatch) -> Error {
    Error::rejected(m.field, "pool_mismatch", m.reason)
}
