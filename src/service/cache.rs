//! Short-lived copies of what every keyed request reads and an operator rarely changes: an API
//! key (its org and scopes), a pool with its org (rules, time zone), a market product (price,
//! visibility, levels, window) and a store's settings. A change made through
//! this process's API forgets its copy at once; other replicas keep theirs for at most the TTL
//! (`COUPOND_CACHE_TTL_MS`), so the change reaches them within it.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use crate::store::entity::{api_keys, market_products, orgs, pools, stores};
use sea_orm::{ConnectionTrait, DbErr};

use crate::{domain::api_key::hash_secret, store};

/// Entries one cache keeps before it drops the stale ones.
const MAX_ENTRIES: usize = 10_000;

struct Ttl<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Ttl<K, V> {
    fn new(ttl: Duration) -> Ttl<K, V> {
        Ttl {
            ttl,
            entries: Mutex::default(),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.lock();
        let (at, value) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }

    fn forget(&self, keep: impl Fn(&K) -> bool) {
        self.lock().retain(|key, _| keep(key));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The process's caches; clones share them.
#[derive(Clone)]
pub struct Caches {
    /// Live keys by the hash of their secret.
    keys: Arc<Ttl<String, api_keys::Model>>,
    /// (org, pool) to the pool and its org.
    pools: Arc<Ttl<(i64, i64), (orgs::Model, pools::Model)>>,
    /// (org, product) to the product's terms (never its stock, which is read from its pool).
    products: Arc<Ttl<(i64, i64), market_products::Model>>,
    /// (org, store id) to the registered store, or to none: a till's unregistered store is
    /// looked for once per TTL, not on every checkout.
    stores: Arc<Ttl<(i64, String), Option<stores::Model>>>,
}

impl Caches {
    /// Copies live `ttl` long; zero turns caching off.
    pub fn new(ttl: Duration) -> Caches {
        Caches {
            keys: Arc::new(Ttl::new(ttl)),
            pools: Arc::new(Ttl::new(ttl)),
            products: Arc::new(Ttl::new(ttl)),
            stores: Arc::new(Ttl::new(ttl)),
        }
    }

    /// The live key whose secret this is ([`store::api_keys::find_by_secret`]). Unknown keys
    /// are not remembered, so a key made on another replica works at once.
    pub async fn api_key<C: ConnectionTrait>(
        &self,
        db: &C,
        secret: &str,
    ) -> Result<Option<api_keys::Model>, DbErr> {
        let hash = hash_secret(secret);
        if let Some(key) = self.keys.get(&hash) {
            return Ok(Some(key));
        }
        let found = store::api_keys::find_by_secret(db, secret).await?;
        if let Some(key) = &found {
            self.keys.put(hash, key.clone());
        }
        Ok(found)
    }

    /// A key was revoked here: no copy of any key outlives it.
    pub fn forget_api_keys(&self) {
        self.keys.forget(|_| false);
    }

    /// The org's pool and the org ([`store::pools::get_with_org`]). A pool with a total
    /// issual limit is always read afresh: its issued count moves with every issue.
    pub async fn pool_and_org<C: ConnectionTrait>(
        &self,
        db: &C,
        org_id: i64,
        pool_id: i64,
    ) -> Result<Option<(orgs::Model, pools::Model)>, DbErr> {
        if let Some(found) = self.pools.get(&(org_id, pool_id)) {
            return Ok(Some(found));
        }
        let Some((pool, org)) = store::pools::get_with_org(db, org_id, pool_id).await? else {
            return Ok(None);
        };
        let counted = pool.issuance.max_total.is_some();
        if !counted {
            self.pools
                .put((org_id, pool_id), (org.clone(), pool.clone()));
        }
        Ok(Some((org, pool)))
    }

    /// The pool changed here.
    pub fn forget_pool(&self, org_id: i64, pool_id: i64) {
        self.pools.forget(|key| *key != (org_id, pool_id));
    }

    /// The org (its time zone, its contacts) changed here.
    pub fn forget_org(&self, org_id: i64) {
        self.pools.forget(|(org, _)| *org != org_id);
    }

    /// The org's market product ([`store::market::product`]). Missing products are not
    /// remembered, so a product made on another replica sells at once.
    pub async fn product<C: ConnectionTrait>(
        &self,
        db: &C,
        org_id: i64,
        product_id: i64,
    ) -> Result<Option<market_products::Model>, DbErr> {
        if let Some(found) = self.products.get(&(org_id, product_id)) {
            return Ok(Some(found));
        }
        let found = store::market::product(db, org_id, product_id).await?;
        if let Some(product) = &found {
            self.products.put((org_id, product_id), product.clone());
        }
        Ok(found)
    }

    /// The product changed here (price, visibility, levels, window, archived).
    pub fn forget_product(&self, org_id: i64, product_id: i64) {
        self.products.forget(|key| *key != (org_id, product_id));
    }

    /// The org's registered store `id` ([`store::stores::get`]), or none.
    pub async fn store<C: ConnectionTrait>(
        &self,
        db: &C,
        org_id: i64,
        id: &str,
    ) -> Result<Option<stores::Model>, DbErr> {
        let key = (org_id, id.to_string());
        if let Some(found) = self.stores.get(&key) {
            return Ok(found);
        }
        let found = store::stores::get(db, org_id, id).await?;
        self.stores.put(key, found.clone());
        Ok(found)
    }

    /// The store was registered or changed here.
    pub fn forget_store(&self, org_id: i64, id: &str) {
        self.stores
            .forget(|(org, store)| *org != org_id || store != id);
    }
}
