//! Coupons as program managers, tills and holders read them back: gift card balances as a
//! redemption would find them, and whether the last redemption was reversed.

use crate::store::entity::coupons;
use chrono::Utc;
use sea_orm::DatabaseConnection;

use crate::{
    domain::{access::PoolAccess, coupon::CouponStatus},
    service::{Error, Result},
    store::{
        self,
        coupons::{ListFilter, RedeemedAt},
    },
};

/// A coupon row as it is shown.
pub struct Shown {
    pub row: coupons::Model,
    /// Its last redemption was reversed and the coupon reinstated.
    pub is_reversed: bool,
}

/// What a coupon search keeps. `store`, `zone` and `concept` find coupons redeemed there;
/// at most one of them may be given.
pub struct Search {
    pub pool_id: Option<i64>,
    pub status: Option<CouponStatus>,
    /// The holder's external id.
    pub customer: Option<String>,
    pub store: Option<String>,
    pub zone: Option<String>,
    pub concept: Option<String>,
    /// Only coupons of pools the caller reaches.
    pub access: PoolAccess,
}

/// One page of the org's coupons matching `search`, newest first, and the total matching. A
/// holder the org does not know holds nothing.
pub async fn search(
    db: &DatabaseConnection,
    org_id: i64,
    search: Search,
    page: u64,
    per_page: u64,
) -> Result<(Vec<Shown>, u64)> {
    let customer_id = match search.customer {
        Some(external_id) => {
            match store::customers::by_external_id(db, org_id, &external_id).await? {
                Some(c) => Some(c.id),
                None => return Ok((Vec::new(), 0)),
            }
        }
        None => None,
    };
    let filter = ListFilter {
        pool_id: search.pool_id,
        status: search.status,
        customer_id,
        redeemed_at: redeemed_at(search.store, search.zone, search.concept)?,
        access: search.access,
    };
    let (rows, total) = store::coupons::list(db, org_id, &filter, page, per_page).await?;
    Ok((shown(db, rows).await?, total))
}

/// The coupons of the customer with this external id, newest first.
pub async fn of_customer(
    db: &DatabaseConnection,
    org_id: i64,
    external_id: &str,
) -> Result<Vec<Shown>> {
    let customer = super::customers::by_external_id(db, org_id, external_id).await?;
    let rows = store::coupons::of_customer(db, customer.id).await?;
    shown(db, rows).await
}

pub async fn one(db: &DatabaseConnection, row: coupons::Model) -> Result<Shown> {
    shown(db, vec![row])
        .await?
        .pop()
        .ok_or_else(|| Error::internal("a coupon view went missing"))
}

async fn shown(db: &DatabaseConnection, mut rows: Vec<coupons::Model>) -> Result<Vec<Shown>> {
    with_lapsed_holds(db, &mut rows).await?;
    let reversed = store::coupons::reversed_among(db, rows.iter().map(|c| c.id).collect()).await?;
    Ok(rows
        .into_iter()
        .map(|row| Shown {
            is_reversed: reversed.contains(&row.id),
            row,
        })
        .collect())
}

/// Gift card balances as a redemption would find them: what holds that ran out still keep
/// off is added back, as validate does.
async fn with_lapsed_holds(db: &DatabaseConnection, rows: &mut [coupons::Model]) -> Result<()> {
    let cards: Vec<i64> = rows
        .iter()
        .filter(|c| c.balance.is_some())
        .map(|c| c.id)
        .collect();
    if cards.is_empty() {
        return Ok(());
    }
    let lapsed = store::redemptions::run_out_totals(db, &cards, Utc::now()).await?;
    for row in rows {
        if let (Some(balance), Some(back)) = (row.balance, lapsed.get(&row.id)) {
            row.balance = Some(balance + back);
        }
    }
    Ok(())
}

/// At most one org entity type at a time (Capillary's coupon APIs refuse more).
fn redeemed_at(
    store: Option<String>,
    zone: Option<String>,
    concept: Option<String>,
) -> Result<Option<RedeemedAt>> {
    let given = [
        store.map(RedeemedAt::Store),
        zone.map(RedeemedAt::Zone),
        concept.map(RedeemedAt::Concept),
    ];
    let mut given = given.into_iter().flatten();
    let first = given.next();
    if let Some(second) = given.next() {
        let field = match second {
            RedeemedAt::Store(_) => "store",
            RedeemedAt::Zone(_) => "zone",
            RedeemedAt::Concept(_) => "concept",
        };
        return Err(Error::invalid(
            field,
            "filter by one of store, zone or concept at a time",
        ));
    }
    Ok(first)
}
