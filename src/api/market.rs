//! The loyalty market: coupon products priced in points, exchanges, and customers' points.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi, Union,
    param::{Header, Path, Query},
    payload::Json,
    types::MaybeUndefined,
};

use super::{
    ApiTags, AppState,
    auth::{ApiKeyAuth, Caller},
    error::{ApiError, ApiResult},
    idempotency::IdempotencyKey,
};
use crate::{
    domain::{
        access::PoolAccess, api_key::Scope, coupon, customer::CustomerRef, discount::DiscountType,
    },
    service::{
        self,
        market::{Changes, Codes, Settings, exchange},
        points::{self as points_service, Posting},
    },
};

/// Codes as Omniwallet's product form takes them: one comma-separated string, or a list.
#[derive(Union, Debug, Clone)]
#[oai(one_of)]
pub enum CodesInput {
    List(Vec<String>),
    Text(String),
}

#[derive(Object)]
pub struct CreateProduct {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    #[oai(validator(max_length = 2000))]
    pub description: Option<String>,
    #[oai(validator(max_length = 100))]
    pub category: Option<String>,
    /// What one code costs.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000")))]
    pub price_points: i64,
    /// Whether customers see it in the market (defaults to false: publish when ready).
    #[oai(default)]
    pub visible: bool,
    /// Customer levels allowed to see and buy it; empty means everyone.
    #[oai(default, validator(max_items = 50))]
    pub levels: Vec<String>,
    /// How many of this product one customer may hold from exchanges.
    pub max_per_customer: Option<i64>,
    /// Availability window.
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Give the points back, once, when an exchanged coupon is revoked or invalidated.
    #[oai(default)]
    pub refund_on_revoke: bool,
    /// Sell the codes of this pool (uploaded, generated or bulk)...
    pub pool_id: Option<i64>,
    /// ...or of a new uploaded pool made from these codes. Duplicates are reported and skipped.
    pub codes: Option<CodesInput>,
    /// With `codes`: the discount the new pool's codes carry.
    pub discount_type: Option<DiscountType>,
    /// With `codes`: minor units or basis points, as for pools.
    pub value: Option<i64>,
    /// With `codes`: ISO 4217 currency of `value`.
    pub currency: Option<String>,
}

/// Changes to a product; absent fields stay as they are, `null` clears an optional one.
#[derive(Object)]
pub struct UpdateProduct {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub category: MaybeUndefined<String>,
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000")))]
    pub price_points: Option<i64>,
    pub visible: Option<bool>,
    #[oai(validator(max_items = 50))]
    pub levels: Option<Vec<String>>,
    pub max_per_customer: MaybeUndefined<i64>,
    pub starts_at: MaybeUndefined<DateTime<Utc>>,
    pub ends_at: MaybeUndefined<DateTime<Utc>>,
    pub refund_on_revoke: Option<bool>,
    /// Archive (true) or restore (false); products are never deleted.
    pub archived: Option<bool>,
}

/// A coupon product with its live stock.
#[derive(Object)]
pub struct Product {
    pub id: i64,
    pub pool_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub price_points: i64,
    pub visible: bool,
    pub levels: Vec<String>,
    pub max_per_customer: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub refund_on_revoke: bool,
    pub archived: bool,
    /// Codes left to sell: the pool's available codes (plus what a generated pool can still
    /// mint), read live.
    pub stock: i64,
    /// Whether it can be bought now: visible, not archived, in its window and in stock.
    pub available: bool,
    pub created_at: DateTime<Utc>,
}

/// What uploading a product's codes did; the rows are at `/v1/imports/{import_id}/issues`.
#[derive(Object)]
pub struct CodesUploaded {
    pub import_id: i64,
    pub accepted: i64,
    pub skipped: i64,
    pub rejected: i64,
    /// Codes skipped because they already exist in the org or earlier in the list.
    pub duplicates: Vec<String>,
}

#[derive(Object)]
pub struct CreatedProduct {
    #[oai(flatten)]
    pub product: Product,
    /// Present when the product was created from `codes`.
    #[oai(skip_serializing_if_is_none)]
    pub upload: Option<CodesUploaded>,
}

#[derive(Object)]
pub struct ProductList {
    pub items: Vec<Product>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct ExchangeRequest {
    /// The buyer, by exactly one of external_id, email, mobile or user_id.
    pub customer: CustomerRef,
}

/// The code the customer got for their points.
#[derive(Object)]
pub struct ExchangeReceipt {
    pub exchange_id: i64,
    pub product_id: i64,
    pub coupon_id: i64,
    pub code: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// Points paid.
    pub points: i64,
    /// The customer's balance right after paying.
    pub balance: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Object)]
pub struct PostPoints {
    /// Points to add; negative takes points away (never below zero).
    #[oai(validator(minimum(value = "-1000000000000"), maximum(value = "1000000000000")))]
    pub delta: i64,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub reason: String,
    /// Your reference for the entry (an order id, a campaign).
    #[oai(validator(max_length = 200))]
    pub reference: Option<String>,
}

#[derive(Object)]
pub struct PointsEntry {
    pub id: i64,
    pub delta: i64,
    pub reason: String,
    pub reference: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Object)]
pub struct PointsPosted {
    pub entry: PointsEntry,
    pub balance: i64,
}

#[derive(Object)]
pub struct PointsStatement {
    /// The sum of every entry.
    pub balance: i64,
    /// Newest first.
    pub entries: Vec<PointsEntry>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// One line of a customer's redemption history.
#[derive(Object)]
pub struct ExchangeLine {
    pub exchange_id: i64,
    pub product_id: i64,
    pub product_name: String,
    pub coupon_id: i64,
    pub code: String,
    pub points: i64,
    /// When the points went back because the coupon was revoked or invalidated.
    pub refunded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Object)]
pub struct ExchangeHistory {
    /// Newest first.
    pub items: Vec<ExchangeLine>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum ProductCreated {
    #[oai(status = 201)]
    Created(Json<CreatedProduct>),
}

#[derive(ApiResponse)]
pub enum Exchanged {
    /// The code bought (a retry with the same Idempotency-Key gets the same receipt).
    #[oai(status = 201)]
    Created(Json<ExchangeReceipt>),
}

#[derive(ApiResponse)]
pub enum Posted {
    /// The entry applied (a retry with the same Idempotency-Key gets the same answer).
    #[oai(status = 201)]
    Created(Json<PointsPosted>),
}

pub struct MarketApi;

#[OpenApi(prefix_path = "/v1/market", tag = "ApiTags::Market")]
impl MarketApi {
    /// Creates a coupon product bound to a pool (`pool_id`), or from `codes` (a comma-separated
    /// string or a list), which makes an uploaded pool for them.
    #[oai(path = "/products", method = "post", operation_id = "createProduct")]
    async fn create(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        body: Json<CreateProduct>,
    ) -> ApiResult<ProductCreated> {
        auth.0.require_in_pools(Scope::Admin)?;
        let b = body.0;
        let codes = match (b.pool_id, b.codes) {
            (Some(id), None) => Codes::Pool(auth.0.pool(&state.db, id).await?.id),
            (None, Some(_)) if auth.0.access != PoolAccess::All => {
                return Err(ApiError::invalid(
                    "codes",
                    "`codes` makes an ungrouped pool: a key bound to groups names a pool of \
                     its groups in `pool_id`",
                ));
            }
            (None, Some(codes)) => Codes::Upload {
                codes: match codes {
                    CodesInput::List(list) => list,
                    CodesInput::Text(text) => coupon::split_codes(&text),
                },
                discount_type: b
                    .discount_type
                    .ok_or_else(|| ApiError::invalid("discount_type", "required with `codes`"))?,
                value: b.value,
                currency: b.currency,
            },
            _ => {
                return Err(ApiError::invalid(
                    "pool_id",
                    "give exactly one of `pool_id` and `codes`",
                ));
            }
        };
        let settings = Settings {
            name: b.name,
            description: b.description,
            category: b.category,
            price_points: b.price_points,
            visible: b.visible,
            levels: b.levels,
            max_per_customer: b.max_per_customer,
            starts_at: b.starts_at,
            ends_at: b.ends_at,
            refund_on_revoke: b.refund_on_revoke,
        };
        let (product, upload) =
            service::market::create(&state.db, auth.0.org_id, settings, codes).await?;
        Ok(ProductCreated::Created(Json(CreatedProduct {
            product: product.into(),
            upload: upload.map(|u| CodesUploaded {
                import_id: u.import_id,
                accepted: u.accepted,
                skipped: u.skipped,
                rejected: u.rejected,
                duplicates: u.duplicates,
            }),
        })))
    }

    /// Lists products in id order. With `customer` (an external id), only what that customer
    /// may see: visible, not archived, allowed for their level. Each carries its live stock.
    #[oai(path = "/products", method = "get", operation_id = "listProducts")]
    async fn list(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        customer: Query<Option<String>>,
        category: Query<Option<String>>,
        cursor: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u64>,
    ) -> ApiResult<Json<ProductList>> {
        auth.0.require_in_pools(Scope::Market)?;
        let (items, next_cursor) = service::market::list(
            &state.db,
            (auth.0.org_id, &auth.0.access),
            customer.0.as_deref(),
            category.0.as_deref(),
            cursor.0.as_deref(),
            limit.0,
        )
        .await?;
        Ok(Json(ProductList {
            items: items.into_iter().map(Product::from).collect(),
            next_cursor,
        }))
    }

    #[oai(path = "/products/:id", method = "get", operation_id = "getProduct")]
    async fn get(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<Product>> {
        auth.0.require_in_pools(Scope::Market)?;
        Ok(Json(reachable_product(&state, &auth.0, id.0).await?.into()))
    }

    /// Edits price, visibility, levels, category, window, limits; archives or restores.
    #[oai(
        path = "/products/:id",
        method = "patch",
        operation_id = "updateProduct"
    )]
    async fn update(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: Json<UpdateProduct>,
    ) -> ApiResult<Json<Product>> {
        auth.0.require_in_pools(Scope::Admin)?;
        reachable_product(&state, &auth.0, id.0).await?;
        let b = body.0;
        let changes = Changes {
            name: b.name,
            description: maybe(b.description),
            category: maybe(b.category),
            price_points: b.price_points,
            visible: b.visible,
            levels: b.levels,
            max_per_customer: maybe(b.max_per_customer),
            starts_at: maybe(b.starts_at),
            ends_at: maybe(b.ends_at),
            refund_on_revoke: b.refund_on_revoke,
            archived: b.archived,
        };
        let product = service::market::update(&state.db, auth.0.org_id, id.0, changes).await?;
        state.caches.forget_product(auth.0.org_id, id.0);
        Ok(Json(product.into()))
    }

    /// Exchanges the customer's points for one code of the product, in one transaction.
    /// Refusals change nothing: 409 `out_of_stock`, `insufficient_points`, `product_hidden`,
    /// `product_not_available`; 403 `level_not_allowed`; 422 `product_limit` or the pool's
    /// issuance rule (`customer_limit`, `min_gap`, `series_limit`...).
    #[oai(
        path = "/products/:id/exchange",
        method = "post",
        operation_id = "exchangeProduct"
    )]
    async fn exchange(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        #[oai(name = "Idempotency-Key")] key: Header<IdempotencyKey>,
        body: Json<ExchangeRequest>,
    ) -> ApiResult<Exchanged> {
        auth.0.require(Scope::Market)?;
        let customer = body.0.customer.identifier()?;
        let request = exchange::Request {
            org_id: auth.0.org_id,
            product_id: id.0,
            customer: &customer,
            idempotency_key: key.0.0,
        };
        let r = exchange::exchange(&state.db, &state.caches, request).await?;
        Ok(Exchanged::Created(Json(ExchangeReceipt {
            exchange_id: r.exchange_id,
            product_id: r.product_id,
            coupon_id: r.coupon_id,
            code: r.code,
            expires_at: r.expires_at,
            points: r.points,
            balance: r.balance,
            created_at: r.created_at,
        })))
    }
}

/// The org's product `id`, when the caller reaches its pool; 404 otherwise.
async fn reachable_product(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> ApiResult<service::market::Product> {
    let product = service::market::get(&state.db, caller.org_id, id).await?;
    let hidden = || ApiError::not_found("product", id);
    caller
        .reach(&state.db, Some(product.row.pool_id), hidden)
        .await?;
    Ok(product)
}

pub struct PointsApi;

#[OpenApi(prefix_path = "/v1/customers", tag = "ApiTags::Market")]
impl PointsApi {
    /// Adds a signed entry to the customer's points ledger, once per Idempotency-Key. A debit
    /// beyond the balance is 409 `insufficient_points` and writes nothing.
    #[oai(
        path = "/:external_id/points",
        method = "post",
        operation_id = "postPoints"
    )]
    async fn post(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        external_id: Path<String>,
        #[oai(name = "Idempotency-Key")] key: Header<IdempotencyKey>,
        body: Json<PostPoints>,
    ) -> ApiResult<Posted> {
        auth.0.require(Scope::Market)?;
        let posting = Posting {
            org_id: auth.0.org_id,
            external_id: external_id.0,
            delta: body.0.delta,
            reason: body.0.reason,
            reference: body.0.reference,
            idempotency_key: key.0.0,
        };
        let applied = points_service::post(&state.db, posting).await?;
        Ok(Posted::Created(Json(PointsPosted {
            entry: applied.entry.into(),
            balance: applied.balance,
        })))
    }

    /// The customer's balance and ledger entries, newest first.
    #[oai(
        path = "/:external_id/points",
        method = "get",
        operation_id = "getPoints"
    )]
    async fn statement(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        external_id: Path<String>,
        cursor: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u64>,
    ) -> ApiResult<Json<PointsStatement>> {
        auth.0.require(Scope::Market)?;
        let s = points_service::statement(
            &state.db,
            auth.0.org_id,
            &external_id.0,
            cursor.0.as_deref(),
            limit.0,
        )
        .await?;
        Ok(Json(PointsStatement {
            balance: s.balance,
            entries: s.entries.into_iter().map(PointsEntry::from).collect(),
            next_cursor: s.next_cursor,
        }))
    }

    /// The customer's redemption history in the market: product, code, points, time.
    #[oai(
        path = "/:external_id/exchanges",
        method = "get",
        operation_id = "listExchanges"
    )]
    async fn exchanges(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        external_id: Path<String>,
        cursor: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u64>,
    ) -> ApiResult<Json<ExchangeHistory>> {
        auth.0.require(Scope::Market)?;
        let h = exchange::history(
            &state.db,
            auth.0.org_id,
            &external_id.0,
            cursor.0.as_deref(),
            limit.0,
        )
        .await?;
        Ok(Json(ExchangeHistory {
            items: h
                .items
                .into_iter()
                .map(|l| ExchangeLine {
                    exchange_id: l.id,
                    product_id: l.product_id,
                    product_name: l.product_name,
                    coupon_id: l.coupon_id,
                    code: l.code,
                    points: l.points,
                    refunded_at: l.refunded_at,
                    created_at: l.created_at,
                })
                .collect(),
            next_cursor: h.next_cursor,
        }))
    }
}

fn default_limit() -> u64 {
    50
}

fn maybe<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

impl From<service::market::Product> for Product {
    fn from(p: service::market::Product) -> Product {
        let r = p.row;
        Product {
            id: r.id,
            pool_id: r.pool_id,
            name: r.name,
            description: r.description,
            category: r.category,
            price_points: r.price_points,
            visible: r.visible,
            levels: p.levels,
            max_per_customer: r.max_per_customer,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            refund_on_revoke: r.refund_on_revoke,
            archived: r.archived,
            stock: p.stock,
            available: p.available,
            created_at: r.created_at,
        }
    }
}

impl From<points_service::Entry> for PointsEntry {
    fn from(e: points_service::Entry) -> PointsEntry {
        PointsEntry {
            id: e.id,
            delta: e.delta,
            reason: e.reason,
            reference: e.reference,
            created_at: e.created_at,
        }
    }
}
