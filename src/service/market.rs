//! The loyalty market's coupon products (Omniwallet's "Coupons" product type): a product sells
//! the codes of one pool for points. Its stock is read from the pool every time, never kept.

pub mod exchange;

use std::collections::HashMap;

use crate::store::entity::{market_products, pools};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, DatabaseConnection, TransactionTrait};

use super::{Error, Result};
use crate::{
    domain::{
        access::PoolAccess,
        discount::DiscountType,
        market::{self, Terms},
        pool::{self, PoolSource, PoolState},
    },
    store::{self, market::ProductScan},
};

/// A product as callers see it, with its live stock.
#[derive(Debug, Clone)]
pub struct Product {
    pub row: market_products::Model,
    pub levels: Vec<String>,
    /// Codes that can still be sold: the pool's available codes, plus what a minting pool can
    /// still make, capped by the pool's total issual limit.
    pub stock: i64,
    /// Purchasable now: visible, not archived, in its window and in stock.
    pub available: bool,
}

/// The terms of a product, on creation.
#[derive(Debug, Clone)]
pub struct Settings {
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
}

/// Where a new product's codes come from.
#[derive(Debug, Clone)]
pub enum Codes {
    /// An existing pool of unique codes.
    Pool(i64),
    /// Codes typed into the product form: a new uploaded pool is made for them.
    Upload {
        codes: Vec<String>,
        discount_type: DiscountType,
        value: Option<i64>,
        currency: Option<String>,
    },
}

/// What the upload of a product's codes did.
#[derive(Debug, Clone)]
pub struct Upload {
    pub import_id: i64,
    pub accepted: i64,
    pub skipped: i64,
    pub rejected: i64,
    /// Codes skipped because they already exist in the org or earlier in the list.
    pub duplicates: Vec<String>,
}

/// Creates a product; from codes, its uploaded pool first, then the codes (duplicates are
/// reported and skipped, as every upload does).
pub async fn create(
    db: &DatabaseConnection,
    org_id: i64,
    settings: Settings,
    codes: Codes,
) -> Result<(Product, Option<Upload>)> {
    validate(&settings)?;
    let (pool, upload) = match codes {
        Codes::Pool(id) => (sellable_pool(db, org_id, id).await?, None),
        Codes::Upload {
            codes,
            discount_type,
            value,
            currency,
        } => {
            pool::validate_value(discount_type, value, currency.as_deref())?;
            if codes.is_empty() {
                return Err(Error::invalid("codes", "give at least one code"));
            }
            let row = uploaded_pool(org_id, &settings.name, discount_type, value, currency)?;
            (store::pools::insert(db, row).await?, Some(codes))
        }
    };
    let row = market_products::ActiveModel {
        org_id: Set(org_id),
        pool_id: Set(pool.id),
        archived: Set(false),
        ..terms(settings)
    };
    let product = store::market::insert_product(db, row).await?;
    let upload = match upload {
        Some(codes) => Some(upload_codes(db, &pool, codes).await?),
        None => None,
    };
    Ok((view_one(db, product).await?, upload))
}

fn terms(s: Settings) -> market_products::ActiveModel {
    market_products::ActiveModel {
        name: Set(s.name.trim().to_string()),
        description: Set(s.description),
        category: Set(s.category),
        price_points: Set(s.price_points),
        visible: Set(s.visible),
        allowed_levels: Set(serde_json::json!(s.levels)),
        max_per_customer: Set(s.max_per_customer),
        starts_at: Set(s.starts_at),
        ends_at: Set(s.ends_at),
        refund_on_revoke: Set(s.refund_on_revoke),
        ..Default::default()
    }
}

fn validate(s: &Settings) -> Result<()> {
    if s.name.trim().is_empty() {
        return Err(Error::invalid("name", "must not be blank"));
    }
    market::check_text("name", &s.name, 200)?;
    market::check_text("description", s.description.as_deref().unwrap_or(""), 2_000)?;
    market::check_text("category", s.category.as_deref().unwrap_or(""), 100)?;
    market::validate_price(s.price_points)?;
    market::validate_levels(&s.levels)?;
    market::validate_max_per_customer(s.max_per_customer)?;
    pool::validate_window(s.starts_at, s.ends_at)?;
    Ok(())
}

/// A pool whose codes a product may sell: one code per buyer, made here (not fetched from a
/// remote source while a transaction waits).
async fn sellable_pool(db: &DatabaseConnection, org_id: i64, id: i64) -> Result<pools::Model> {
    let pool = store::pools::get(db, org_id, id)
        .await?
        .ok_or_else(|| Error::not_found("pool", id))?;
    if matches!(pool.source, PoolSource::Common | PoolSource::Remote) {
        return Err(Error::invalid(
            "pool_id",
            "a product sells unique codes: use an uploaded, generated or bulk pool",
        ));
    }
    Ok(pool)
}

fn uploaded_pool(
    org_id: i64,
    name: &str,
    discount_type: DiscountType,
    value: Option<i64>,
    currency: Option<String>,
) -> Result<pools::ActiveModel> {
    Ok(pools::ActiveModel {
        org_id: Set(org_id),
        name: Set(name.trim().to_string()),
        source: Set(PoolSource::Uploaded),
        pattern: Set(None),
        discount_type: Set(discount_type),
        value: Set(value),
        currency: Set(currency),
        state: Set(PoolState::Active),
        code_options: Set(Default::default()),
        issuance: Set(Default::default()),
        redemption: Set(Default::default()),
        expiry: Set(Default::default()),
        reminders: Set(Default::default()),
        claimed: Set(false),
        generated_count: Set(0),
        ..Default::default()
    })
}

async fn upload_codes(
    db: &DatabaseConnection,
    pool: &pools::Model,
    codes: Vec<String>,
) -> Result<Upload> {
    let import = super::codes::upload_list(db, pool, codes).await?;
    let mut duplicates = Vec::new();
    let mut after = 0;
    loop {
        let page = store::imports::issues_after(db, import.id, after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        duplicates.extend(
            page.into_iter()
                .filter(|i| i.code == "duplicate")
                .map(|i| i.value),
        );
    }
    Ok(Upload {
        import_id: import.id,
        accepted: import.accepted,
        skipped: import.skipped,
        rejected: import.rejected,
        duplicates,
    })
}

pub async fn get(db: &DatabaseConnection, org_id: i64, id: i64) -> Result<Product> {
    let row = store::market::product(db, org_id, id)
        .await?
        .ok_or_else(|| Error::not_found("product", id))?;
    view_one(db, row).await
}

/// Changes to a product; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub category: Option<Option<String>>,
    pub price_points: Option<i64>,
    pub visible: Option<bool>,
    pub levels: Option<Vec<String>>,
    pub max_per_customer: Option<Option<i64>>,
    pub starts_at: Option<Option<DateTime<Utc>>>,
    pub ends_at: Option<Option<DateTime<Utc>>>,
    pub refund_on_revoke: Option<bool>,
    /// Products are archived, never deleted: their exchanges keep pointing at them.
    pub archived: Option<bool>,
}

pub async fn update(db: &DatabaseConnection, org_id: i64, id: i64, c: Changes) -> Result<Product> {
    let txn = db.begin().await?;
    let current = store::market::product(&txn, org_id, id)
        .await?
        .ok_or_else(|| Error::not_found("product", id))?;
    let mut settings = Settings {
        name: c.name.unwrap_or(current.name.clone()),
        description: c.description.unwrap_or(current.description.clone()),
        category: c.category.unwrap_or(current.category.clone()),
        price_points: c.price_points.unwrap_or(current.price_points),
        visible: c.visible.unwrap_or(current.visible),
        levels: c.levels.unwrap_or_else(|| levels_of(&current)),
        max_per_customer: c.max_per_customer.unwrap_or(current.max_per_customer),
        starts_at: c.starts_at.unwrap_or(current.starts_at),
        ends_at: c.ends_at.unwrap_or(current.ends_at),
        refund_on_revoke: c.refund_on_revoke.unwrap_or(current.refund_on_revoke),
    };
    settings.name = settings.name.trim().to_string();
    validate(&settings)?;
    let row = market_products::ActiveModel {
        id: Set(current.id),
        archived: Set(c.archived.unwrap_or(current.archived)),
        ..terms(settings)
    };
    let saved = store::market::save_product(&txn, row).await?;
    txn.commit().await?;
    view_one(db, saved).await
}

/// A page of the org's products. With a customer, only what that customer may see (visible,
/// not archived, allowed for their level); without, every product not archived.
pub async fn list(
    db: &DatabaseConnection,
    (org_id, access): (i64, &PoolAccess),
    customer: Option<&str>,
    category: Option<&str>,
    cursor: Option<&str>,
    limit: u64,
) -> Result<(Vec<Product>, Option<String>)> {
    let level = match customer {
        Some(external_id) => Some(
            super::points::customer(db, org_id, external_id)
                .await?
                .level,
        ),
        None => None,
    };
    let mut scan = ProductScan {
        category,
        after_id: super::points::parse_cursor(cursor)?,
        include_archived: false,
        access,
    };
    let may_see = |row: &market_products::Model| match &level {
        Some(level) => market::may_see(&terms_of(row, &levels_of(row)), level.as_deref()),
        None => true,
    };
    let mut rows = Vec::new();
    // Products the customer may not see are skipped, so a page may take several scans.
    let next = 'scan: loop {
        let batch = store::market::products(db, org_id, &scan, limit).await?;
        let exhausted = (batch.len() as u64) < limit;
        for row in batch {
            scan.after_id = Some(row.id);
            if may_see(&row) {
                rows.push(row);
                if rows.len() as u64 == limit {
                    break 'scan scan.after_id.map(|id| id.to_string());
                }
            }
        }
        if exhausted {
            break None;
        }
    };
    Ok((view(db, rows).await?, next))
}

pub fn levels_of(row: &market_products::Model) -> Vec<String> {
    serde_json::from_value(row.allowed_levels.clone()).unwrap_or_default()
}

pub fn terms_of<'a>(row: &market_products::Model, levels: &'a [String]) -> Terms<'a> {
    Terms {
        visible: row.visible,
        archived: row.archived,
        levels,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
    }
}

async fn view_one(db: &DatabaseConnection, row: market_products::Model) -> Result<Product> {
    let mut views = view(db, vec![row]).await?;
    views
        .pop()
        .ok_or_else(|| Error::internal("product view vanished"))
}

/// Products with their stock, read in two statements for the whole page.
async fn view(db: &DatabaseConnection, rows: Vec<market_products::Model>) -> Result<Vec<Product>> {
    let pool_ids: Vec<i64> = rows.iter().map(|r| r.pool_id).collect();
    let available = store::market::available_counts(db, &pool_ids).await?;
    let mut pools: HashMap<i64, pools::Model> = HashMap::new();
    for row in &rows {
        if !pools.contains_key(&row.pool_id)
            && let Some(p) = store::pools::get(db, row.org_id, row.pool_id).await?
        {
            pools.insert(p.id, p);
        }
    }
    let now = Utc::now();
    rows.into_iter()
        .map(|row| {
            let pool = pools
                .get(&row.pool_id)
                .ok_or_else(|| Error::internal("product without its pool"))?;
            let stock = stock(pool, available.get(&pool.id).copied().unwrap_or(0))?;
            let levels = levels_of(&row);
            let t = terms_of(&row, &levels);
            let available = stock > 0 && t.visible && !t.archived && market::in_window(&t, now);
            Ok(Product {
                row,
                levels,
                stock,
                available,
            })
        })
        .collect()
}

/// What a pool can still sell: its available codes, what its pattern can still mint if it
/// mints on issue, capped by its total issual limit.
fn stock(pool: &pools::Model, available: i64) -> Result<i64> {
    let mut stock = available;
    if pool.source.mints_on_issue() {
        let space = super::generation::pool_pattern(pool)?.combinations();
        let mintable = space.saturating_sub(pool.generated_count.max(0) as u128);
        stock = stock.saturating_add(i64::try_from(mintable).unwrap_or(i64::MAX));
    }
    if let Some(max) = pool.issuance.max_total {
        let left = i64::try_from(max).unwrap_or(i64::MAX) - pool.issued_count;
        stock = stock.min(left.max(0));
    }
    Ok(stock)
}
