//! Checkout: validating and redeeming codes against a basket, two-step redemptions
//! (reservations), reversals and auto-redeem of every code in a checkout.

use crate::store::entity::{coupons, redemptions};
use chrono::{DateTime, Duration, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path},
    payload::Json,
};

use super::{
    auth::{ApiKeyAuth, Caller},
    error::{ApiError, ApiResult},
    idempotency::IdempotencyKey,
    state::AppState,
    tags::ApiTags,
};
use crate::{
    domain::{
        api_key::Scope,
        coupon::CouponStatus,
        customer::CustomerRef,
        discount::{Basket, Discount},
        redemption::{self, Failure, RedemptionState, StoreFacts},
    },
    service::{
        self,
        checkout::{CheckoutKey, CodeOutcome},
        idempotency::Keyed,
        redemption::{Consumed, Mode, Purchase, Redeeming},
    },
};

/// How long a reservation holds its redemption unless `ttl_seconds` says otherwise.
const DEFAULT_HOLD_SECONDS: u32 = 15 * 60;

/// A code checked or redeemed against a basket.
#[derive(Object, Clone)]
pub struct RedeemRequest {
    /// The customer redeeming, by exactly one of external_id, email, mobile or user_id. Leave it
    /// out for an anonymous checkout, which pools with per-customer rules refuse.
    pub customer: Option<CustomerRef>,
    pub basket: Basket,
    /// Where the basket is paid, matched against the pool's stores, zones, concepts and tills.
    #[oai(default)]
    pub store: StoreFacts,
    /// When the purchase happened (default: now), for tills syncing offline purchases: at most
    /// `COUPOND_MAX_OFFLINE_SKEW_SECS` (default 24 h) in the past and never in the future
    /// beyond a few minutes of clock drift. Days, hours and gaps are checked at this instant in
    /// the org's time zone; expiry and the redemption start always at the server's clock.
    pub at: Option<DateTime<Utc>>,
    /// Gift cards only: how much to pay with the card, in minor units (default: as much as the
    /// card and the eligible basket allow).
    pub amount: Option<i64>,
}

/// A redemption held for a while before it is confirmed or released.
#[derive(Object, Clone)]
pub struct ReserveRequest {
    #[oai(flatten)]
    pub redeem: RedeemRequest,
    /// How long to hold it, 1 second to 1 day (default 900: 15 minutes).
    #[oai(validator(minimum(value = "1"), maximum(value = "86400")))]
    pub ttl_seconds: Option<u32>,
}

/// A rule the redemption would break.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
pub struct RuleFailure {
    /// Stable machine-readable reason, e.g. `customer_limit`, `below_min_bill`.
    pub code: String,
    /// A sentence for the cashier.
    pub detail: String,
}

impl From<&Failure> for RuleFailure {
    fn from(f: &Failure) -> RuleFailure {
        RuleFailure {
            code: f.code.to_string(),
            detail: f.detail.clone(),
        }
    }
}

/// Whether a code can be redeemed on this basket now, and what it would take off.
#[derive(Object)]
pub struct Validation {
    pub redeemable: bool,
    /// The code as stored; forgiving entry may have matched another spelling of it.
    pub code: String,
    pub coupon_id: i64,
    pub pool_id: i64,
    /// What the coupon takes off, when redeemable.
    #[oai(skip_serializing_if_is_none)]
    pub discount: Option<Discount>,
    /// Every rule that fails, when not redeemable.
    pub errors: Vec<RuleFailure>,
}

/// A redemption, or a reservation (a held redemption).
#[derive(Object)]
pub struct Redemption {
    pub id: i64,
    pub state: RedemptionState,
    pub coupon_id: i64,
    /// The code as stored; forgiving entry may have matched another spelling of it.
    pub code: String,
    pub pool_id: i64,
    /// The customer who redeemed (user id); none for an anonymous checkout.
    pub customer_id: Option<i64>,
    pub discount: Discount,
    pub basket_total: i64,
    pub currency: Option<String>,
    pub store: StoreFacts,
    /// The purchase time the rules were checked at (the till's `at`, or the server's time).
    pub redeemed_at: DateTime<Utc>,
    /// The server's time when the redemption was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Reservations: when the hold runs out. Cleared once confirmed.
    pub reserved_until: Option<DateTime<Utc>>,
    /// When the redemption was reversed, or the reservation released or closed after it ran out.
    pub reversed_at: Option<DateTime<Utc>>,
    /// The coupon's status now.
    pub coupon_status: CouponStatus,
    /// Gift cards: the balance now.
    pub coupon_balance: Option<i64>,
}

#[derive(ApiResponse)]
pub enum Redeemed {
    /// Redeemed (or held, for a reservation).
    #[oai(status = 201)]
    Created(Json<Redemption>),
    /// A retry of a keyed request: the redemption it made the first time.
    #[oai(status = 200)]
    Replayed(Json<Redemption>),
}

/// A checkout carrying codes to redeem automatically.
#[derive(Object)]
pub struct CheckoutRequest {
    /// The customer paying, by exactly one identifier; leave it out for an anonymous checkout.
    pub customer: Option<CustomerRef>,
    pub basket: Basket,
    #[oai(default)]
    pub store: StoreFacts,
    /// When the purchase happened (default: now); bounded as for redeem.
    pub at: Option<DateTime<Utc>>,
    /// Codes to redeem, in order, each against the basket the earlier ones left. Gift cards pay
    /// as much as they and the basket allow.
    #[oai(validator(min_items = 1, max_items = 20))]
    pub codes: Vec<String>,
}

/// What became of one code of a checkout.
#[derive(Object)]
pub struct CodeResult {
    /// The code as sent.
    pub code: String,
    pub redeemed: bool,
    #[oai(skip_serializing_if_is_none)]
    pub redemption: Option<Redemption>,
    /// Why it was not redeemed: every failed rule, or the one problem (unknown code, ...).
    pub errors: Vec<RuleFailure>,
}

#[derive(Object)]
pub struct CheckoutResult {
    /// One result per code, in the order sent.
    pub results: Vec<CodeResult>,
    /// Minor units taken off the basket by every redeemed code together.
    pub total_discount: i64,
    /// Whether any redeemed code gives free shipping.
    pub free_shipping: bool,
    /// What is left to pay.
    pub remaining_total: i64,
}

pub struct RedemptionApi;

#[OpenApi(tag = "ApiTags::Redemption")]
impl RedemptionApi {
    /// Checks a code against a basket as a redemption would, changing nothing. Answers 200
    /// either way: `redeemable` with the discount, or every failed rule in `errors`.
    #[oai(
        path = "/v1/coupons/:code/validate",
        method = "post",
        operation_id = "validateCoupon"
    )]
    async fn validate(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        code: Path<String>,
        body: Json<RedeemRequest>,
    ) -> ApiResult<Json<Validation>> {
        auth.0.require(Scope::Pos)?;
        let org_id = auth.0.org_id;
        let purchase = purchase(&state, org_id, &body.0).await?;
        let located =
            service::redemption::locate(&state.db, org_id, &code.0, purchase.redeemer()).await?;
        let verdict = service::redemption::validate(&state.db, &located, &purchase).await?;
        let target = located.target();
        Ok(Json(Validation {
            redeemable: verdict.is_ok(),
            code: target.code.clone(),
            coupon_id: target.id,
            pool_id: target.pool_id,
            errors: verdict
                .as_ref()
                .err()
                .map(|f| f.iter().map(RuleFailure::from).collect())
                .unwrap_or_default(),
            discount: verdict.ok(),
        }))
    }

    /// Redeems a code against a basket. Every limit is checked and consumed in one transaction.
    /// A refusal is a 422 `not_redeemable` with every failed rule in `errors`. With an
    /// `Idempotency-Key`, a retry with the same body gets the same redemption (200); another
    /// body is a 409.
    #[oai(
        path = "/v1/coupons/:code/redeem",
        method = "post",
        operation_id = "redeemCoupon"
    )]
    async fn redeem(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        code: Path<String>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<IdempotencyKey>>,
        body: Json<RedeemRequest>,
    ) -> ApiResult<Redeemed> {
        auth.0.require(Scope::Pos)?;
        let fingerprint = fingerprint(code.0.clone().into(), &body.0, None);
        let keyed = keyed(
            &auth.0,
            "redeemCoupon",
            idempotency_key.0.map(|k| k.0),
            &fingerprint,
        );
        consume(&state, &auth.0, &code.0, &body.0, Mode::Redeem, keyed).await
    }

    /// Holds a redemption for `ttl_seconds` (default 15 minutes): it counts against every
    /// limit, and a gift card's amount is set aside, until it is confirmed, released or runs
    /// out. Refusals and idempotency as for redeem.
    #[oai(
        path = "/v1/coupons/:code/reserve",
        method = "post",
        operation_id = "reserveCoupon"
    )]
    async fn reserve(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        code: Path<String>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<IdempotencyKey>>,
        body: Json<ReserveRequest>,
    ) -> ApiResult<Redeemed> {
        auth.0.require(Scope::Pos)?;
        let ttl = body.0.ttl_seconds.unwrap_or(DEFAULT_HOLD_SECONDS);
        let fingerprint = fingerprint(code.0.clone().into(), &body.0.redeem, Some(ttl));
        let keyed = keyed(
            &auth.0,
            "reserveCoupon",
            idempotency_key.0.map(|k| k.0),
            &fingerprint,
        );
        let until = Utc::now() + Duration::seconds(i64::from(ttl));
        let mode = Mode::Reserve { until };
        consume(&state, &auth.0, &code.0, &body.0.redeem, mode, keyed).await
    }

    /// Turns a reservation into a redemption. Confirming a confirmed one answers with it; one
    /// that ran out or was released is a 409 (`reservation_expired`, `reservation_released`).
    #[oai(
        path = "/v1/reservations/:id/confirm",
        method = "post",
        operation_id = "confirmReservation"
    )]
    async fn confirm(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<Redemption>> {
        auth.0.require(Scope::Pos)?;
        let (row, coupon) = service::redemption::confirm(&state.db, auth.0.org_id, id.0).await?;
        Ok(Json(redemption_view(&row, &coupon)?))
    }

    /// Gives a reservation back before it runs out. Releasing a released (or run out) one
    /// answers with it; a confirmed one is a 409 `already_confirmed`.
    #[oai(
        path = "/v1/reservations/:id/release",
        method = "post",
        operation_id = "releaseReservation"
    )]
    async fn release(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<Redemption>> {
        auth.0.require(Scope::Pos)?;
        let (row, coupon) = service::redemption::release(&state.db, auth.0.org_id, id.0).await?;
        Ok(Json(redemption_view(&row, &coupon)?))
    }

    /// A redemption or reservation.
    #[oai(
        path = "/v1/redemptions/:id",
        method = "get",
        operation_id = "getRedemption"
    )]
    async fn get(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<Redemption>> {
        auth.0.require(Scope::Pos)?;
        let (row, coupon) = service::redemption::get(&state.db, auth.0.org_id, id.0).await?;
        Ok(Json(redemption_view(&row, &coupon)?))
    }

    /// Reverses a redemption (a return): its counts and gift card amount are given back and a
    /// used-up coupon is issued again, with `is_reversed` set. Reversing a reversed redemption
    /// answers with it; a coupon expired, invalidated or revoked since is a 409
    /// `invalid_transition` naming its status.
    #[oai(
        path = "/v1/redemptions/:id/reverse",
        method = "post",
        operation_id = "reverseRedemption"
    )]
    async fn reverse(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<Redemption>> {
        auth.0.require(Scope::Pos)?;
        let (row, coupon) = service::redemption::reverse(&state.db, auth.0.org_id, id.0).await?;
        Ok(Json(redemption_view(&row, &coupon)?))
    }

    /// Redeems every code of a checkout, in order, each against the basket the earlier ones
    /// left (Antavo's auto-redeem). Each code is its own redemption: a bad one is reported in
    /// its result and does not stop the others. With an `Idempotency-Key`, a retry gets every
    /// code's first answer.
    #[oai(path = "/v1/checkouts", method = "post", operation_id = "checkout")]
    async fn checkout(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<IdempotencyKey>>,
        body: Json<CheckoutRequest>,
    ) -> ApiResult<Json<CheckoutResult>> {
        auth.0.require(Scope::Pos)?;
        let body = body.0;
        let request = RedeemRequest {
            customer: body.customer,
            basket: body.basket,
            store: body.store,
            at: body.at,
            amount: None,
        };
        let key = idempotency_key.0.map(|IdempotencyKey(key)| CheckoutKey {
            org_id: auth.0.org_id,
            key,
            body: fingerprint(body.codes.clone().into(), &request, None),
        });
        let org_id = auth.0.org_id;
        let purchase = purchase(&state, org_id, &request).await?;
        let done =
            service::checkout::checkout(&state.db, org_id, purchase, &body.codes, key.as_ref())
                .await?;
        let results: Vec<CodeResult> = done
            .results
            .into_iter()
            .map(code_result)
            .collect::<ApiResult<_>>()?;
        let redeemed = results.iter().filter_map(|r| r.redemption.as_ref());
        Ok(Json(CheckoutResult {
            total_discount: redeemed.clone().map(|r| r.discount.amount).sum(),
            free_shipping: redeemed.clone().any(|r| r.discount.free_shipping),
            remaining_total: done.left.total,
            results,
        }))
    }
}

/// The checkout facts from a request: a sound basket and the customer it names.
async fn purchase(state: &AppState, org_id: i64, body: &RedeemRequest) -> ApiResult<Purchase> {
    body.basket.validate()?;
    let limits = &state.limits;
    if body.basket.lines.len() > limits.max_basket_lines {
        return Err(ApiError::invalid(
            "basket.lines",
            format!("a basket has at most {} lines", limits.max_basket_lines),
        ));
    }
    let now = Utc::now();
    let at = body.at.unwrap_or(now);
    let max_offline = Duration::seconds(i64::from(limits.max_offline_skew_secs));
    redemption::check_purchase_time(at, now, max_offline)?;
    let customer = match &body.customer {
        Some(r) => Some(service::customers::resolve(&state.db, org_id, &r.identifier()?).await?),
        None => None,
    };
    let (store, basket) = service::stores::checkout_place(
        &state.db,
        &state.caches,
        org_id,
        body.store.clone(),
        body.basket.clone(),
    )
    .await?;
    Ok(Purchase {
        customer,
        basket,
        store,
        at,
        amount: body.amount,
    })
}

/// What makes two keyed requests the same request.
fn fingerprint(
    codes: serde_json::Value,
    body: &RedeemRequest,
    ttl: Option<u32>,
) -> serde_json::Value {
    serde_json::json!({
        "codes": codes,
        "customer": body.customer,
        "basket": body.basket,
        "store": body.store,
        "at": body.at,
        "amount": body.amount,
        "ttl": ttl,
    })
}

fn keyed(
    caller: &Caller,
    operation: &'static str,
    key: Option<String>,
    fingerprint: &serde_json::Value,
) -> Option<Keyed> {
    key.map(|key| Keyed::new(caller.org_id, operation, key, fingerprint))
}

/// Every effect of a redemption is in the transaction that records its key, so the key is not
/// looked up first (as keyed issues do): a retry loses on the key's row and rolls back, or is
/// refused by what its first call changed, and then answers as the first call did.
async fn consume(
    state: &AppState,
    caller: &Caller,
    code: &str,
    body: &RedeemRequest,
    mode: Mode,
    keyed: Option<Keyed>,
) -> ApiResult<Redeemed> {
    let done = match consume_once(state, caller.org_id, code, body, mode, keyed.as_ref()).await {
        Ok(done) => done,
        Err(e) => match &keyed {
            Some(k) => service::redemption::replay(&state.db, caller.org_id, k)
                .await?
                .ok_or(e)?,
            None => return Err(e),
        },
    };
    let view = Json(consumed_view(&done)?);
    Ok(if done.replayed {
        Redeemed::Replayed(view)
    } else {
        Redeemed::Created(view)
    })
}

async fn consume_once(
    state: &AppState,
    org_id: i64,
    code: &str,
    body: &RedeemRequest,
    mode: Mode,
    keyed: Option<&Keyed>,
) -> ApiResult<Consumed> {
    let purchase = purchase(state, org_id, body).await?;
    let db = &state.db;
    let asked = Redeeming {
        org_id,
        purchase: &purchase,
        mode,
        keyed,
    };
    Ok(service::redemption::redeem_code(db, code, &asked).await?)
}

fn consumed_view(done: &Consumed) -> ApiResult<Redemption> {
    redemption_view(&done.redemption, &done.coupon)
}

pub fn redemption_view(row: &redemptions::Model, coupon: &coupons::Model) -> ApiResult<Redemption> {
    Ok(Redemption {
        id: row.id,
        state: service::redemption::state_of(row),
        coupon_id: row.coupon_id,
        code: coupon.code.clone(),
        pool_id: row.pool_id,
        customer_id: row.customer_id,
        discount: service::redemption::recorded_discount(row),
        basket_total: row.basket_total,
        currency: row.currency.clone(),
        store: StoreFacts {
            id: row.store_id.clone(),
            zone: row.zone.clone(),
            concept: row.concept.clone(),
            till: row.till.clone(),
        },
        redeemed_at: row.redeemed_at,
        recorded_at: row.recorded_at.unwrap_or(row.redeemed_at),
        reserved_until: row.reserved_until,
        reversed_at: row.reversed_at,
        coupon_status: coupon.status,
        coupon_balance: coupon.balance,
    })
}

fn code_result(outcome: CodeOutcome) -> ApiResult<CodeResult> {
    Ok(match outcome.result {
        Ok(done) => CodeResult {
            code: outcome.code,
            redeemed: true,
            redemption: Some(consumed_view(&done)?),
            errors: Vec::new(),
        },
        Err(e) => CodeResult {
            code: outcome.code,
            redeemed: false,
            redemption: None,
            errors: problem_failures(&e),
        },
    })
}

/// A refusal's failed rules, or the error itself as one failure.
fn problem_failures(e: &service::Error) -> Vec<RuleFailure> {
    match e {
        service::Error::Refused(r) if !r.failures.is_empty() => r
            .failures
            .iter()
            .map(|f| RuleFailure {
                code: f.code.to_string(),
                detail: f.detail.clone(),
            })
            .collect(),
        _ => {
            if !e.is_caller_error() {
                tracing::error!(cause = %e, "a checkout code failed");
            }
            vec![RuleFailure {
                code: e.code().to_string(),
                detail: e.public_detail(),
            }]
        }
    }
}
