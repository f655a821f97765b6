//! Stores and where a checkout happens: the registered store fills in the zone, concept and
//! currency a till does not send.

use crate::store::entity::stores;
use sea_orm::ConnectionTrait;

use crate::{
    domain::{
        discount::Basket,
        redemption::StoreFacts,
        stores::{self as rules, StoreSettings},
    },
    service::{Error, Result, cache::Caches},
    store::{self, stores::StoreFields},
};

/// Registers the store `id` or replaces its settings.
pub async fn put<C: ConnectionTrait>(
    db: &C,
    caches: &Caches,
    org_id: i64,
    id: &str,
    settings: StoreSettings,
) -> Result<stores::Model> {
    let id = rules::validate_id(id)?;
    let (settings, _) = settings.validate()?;
    let fields = StoreFields {
        name: settings.name,
        currency: settings.currency,
        zone: settings.zone,
        concept: settings.concept,
    };
    let row = store::stores::upsert(db, org_id, id, fields).await?;
    caches.forget_store(org_id, id);
    Ok(row)
}

pub async fn get<C: ConnectionTrait>(db: &C, org_id: i64, id: &str) -> Result<stores::Model> {
    store::stores::get(db, org_id, id)
        .await?
        .ok_or_else(|| Error::not_found("store", id))
}

pub async fn list<C: ConnectionTrait>(db: &C, org_id: i64) -> Result<Vec<stores::Model>> {
    Ok(store::stores::list(db, org_id).await?)
}

/// The store facts and basket of a checkout, completed from the registered store its
/// `store.id` names: the till's own zone and concept win, the store's fill the gaps, and a
/// basket naming no currency is in the store's. A basket whose currency is still unknown is
/// refused: its amounts mean nothing without one.
pub async fn checkout_place<C: ConnectionTrait>(
    db: &C,
    caches: &Caches,
    org_id: i64,
    facts: StoreFacts,
    mut basket: Basket,
) -> Result<(StoreFacts, Basket)> {
    let registered = match &facts.id {
        Some(id) => caches.store(db, org_id, id).await?,
        None => None,
    };
    let Some(registered) = registered else {
        if basket.currency.is_none() {
            return Err(Error::invalid(
                "basket.currency",
                "name the basket's currency, or a store registered with one in store.id",
            ));
        }
        return Ok((facts, basket));
    };
    basket.currency = basket.currency.or(Some(registered.currency));
    let facts = StoreFacts {
        zone: facts.zone.or(registered.zone),
        concept: facts.concept.or(registered.concept),
        ..facts
    };
    Ok((facts, basket))
}
