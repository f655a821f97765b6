//! `/v1/stores`: the org's stores and the currency each charges in, and
//! `/v1/org/exchange-rates`: the rates a coupon's value is converted at.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{auth::ApiKeyAuth, error::ApiResult, state::AppState, tags::ApiTags};
use crate::{
    domain::{api_key::Scope, currency::RateInput, stores::StoreSettings},
    service::{self, exchange_rates::RatesQuery},
};

/// A store as registered.
#[derive(Object)]
pub struct Store {
    /// The caller's id for the store, as sent in a checkout's `store.id`.
    pub id: String,
    pub name: Option<String>,
    /// ISO 4217: a basket at this store that names no currency is in it.
    pub currency: String,
    pub zone: Option<String>,
    pub concept: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<crate::store::entity::stores::Model> for Store {
    fn from(m: crate::store::entity::stores::Model) -> Store {
        Store {
            id: m.external_id,
            name: m.name,
            currency: m.currency,
            zone: m.zone,
            concept: m.concept,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Object)]
pub struct StoreList {
    pub items: Vec<Store>,
}

pub struct StoresApi;

#[OpenApi(prefix_path = "/v1/stores", tag = "ApiTags::Stores")]
impl StoresApi {
    /// Registers a store or replaces its settings (admin). Its `currency` is the one a basket
    /// paid there is in unless the basket names another, and a coupon in another currency is
    /// converted to it; its `zone` and `concept` fill in what a till does not send, for the
    /// pools' store scopes.
    #[oai(path = "/:id", method = "put", operation_id = "putStore")]
    async fn put(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<String>,
        body: Json<StoreSettings>,
    ) -> ApiResult<Json<Store>> {
        auth.0.require(Scope::Admin)?;
        let row =
            service::stores::put(&state.db, &state.caches, auth.0.org_id, &id.0, body.0).await?;
        Ok(Json(row.into()))
    }

    /// A store (admin or pos).
    #[oai(path = "/:id", method = "get", operation_id = "getStore")]
    async fn get(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> ApiResult<Json<Store>> {
        auth.0.require(Scope::Pos)?;
        let row = service::stores::get(&state.db, auth.0.org_id, &id.0).await?;
        Ok(Json(row.into()))
    }

    /// The org's stores by id (admin or pos).
    #[oai(path = "/", method = "get", operation_id = "listStores")]
    async fn list(&self, auth: ApiKeyAuth, state: Data<&AppState>) -> ApiResult<Json<StoreList>> {
        auth.0.require(Scope::Pos)?;
        let rows = service::stores::list(&state.db, auth.0.org_id).await?;
        Ok(Json(StoreList {
            items: rows.into_iter().map(Store::from).collect(),
        }))
    }
}

/// Rates to record; each is added to the history, none replaces another.
#[derive(Object)]
pub struct PutExchangeRates {
    #[oai(validator(min_items = 1, max_items = 500))]
    pub rates: Vec<RateInput>,
}

/// One recorded rate.
#[derive(Object)]
pub struct ExchangeRate {
    pub id: i64,
    pub from: String,
    pub to: String,
    /// Units of `to` one unit of `from` buys, an exact decimal string.
    pub rate: String,
    /// In force from this instant until a later rate of the pair takes effect.
    pub effective_at: DateTime<Utc>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

impl From<crate::store::entity::exchange_rates::Model> for ExchangeRate {
    fn from(m: crate::store::entity::exchange_rates::Model) -> ExchangeRate {
        ExchangeRate {
            id: m.id,
            from: m.from_currency,
            to: m.to_currency,
            rate: m.rate,
            effective_at: m.effective_at,
            created_at: m.created_at,
        }
    }
}

#[derive(Object)]
pub struct RecordedRates {
    /// The rates recorded, in the order sent.
    pub items: Vec<ExchangeRate>,
}

#[derive(Object)]
pub struct ExchangeRates {
    /// With `from` and `to`: the pair's rate in force at `at` (default: now), absent when none is.
    #[oai(skip_serializing_if_is_none)]
    pub in_force: Option<ExchangeRate>,
    /// The rates matching `from` and `to`, latest effective first, at most `limit`.
    pub history: Vec<ExchangeRate>,
}

pub struct ExchangeRatesApi;

#[OpenApi(prefix_path = "/v1/org/exchange-rates", tag = "ApiTags::Org")]
impl ExchangeRatesApi {
    /// Records exchange rates (admin): each `{from, to, rate, effective_at}` is in force from
    /// `effective_at` (default now) until a later rate of the pair takes effect. Rates are only
    /// added, never overwritten; a redemption keeps the rate it was converted at. Only the
    /// direction given is used: record both if both are needed. One bad rate refuses the batch.
    #[oai(path = "/", method = "put", operation_id = "putExchangeRates")]
    async fn put(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        body: Json<PutExchangeRates>,
    ) -> ApiResult<Json<RecordedRates>> {
        auth.0.require(Scope::Admin)?;
        let rows = service::exchange_rates::record(&state.db, auth.0.org_id, &body.0.rates).await?;
        Ok(Json(RecordedRates {
            items: rows.into_iter().map(ExchangeRate::from).collect(),
        }))
    }

    /// The rate in force for a pair at an instant, and the rates' history (admin or pos).
    #[oai(path = "/", method = "get", operation_id = "listExchangeRates")]
    async fn list(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        /// The instant to read the rate in force at (default: now).
        at: Query<Option<DateTime<Utc>>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u64>,
    ) -> ApiResult<Json<ExchangeRates>> {
        auth.0.require(Scope::Pos)?;
        let query = RatesQuery {
            from: from.0,
            to: to.0,
            at: at.0,
            limit: limit.0,
        };
        let rates = service::exchange_rates::list(&state.db, auth.0.org_id, query).await?;
        Ok(Json(ExchangeRates {
            in_force: rates.in_force.map(ExchangeRate::from),
            history: rates.history.into_iter().map(ExchangeRate::from).collect(),
        }))
    }
}

fn default_limit() -> u64 {
    100
}
