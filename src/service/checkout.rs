//! Auto-redeem at checkout (Antavo's "Auto redeem"): every code a checkout carries is redeemed
//! in order, each against the basket the earlier ones left, each in its own transaction so one
//! bad code does not stop the others.

use std::collections::HashSet;

use sea_orm::DatabaseConnection;

use crate::{
    domain::discount::{self, Basket},
    service::{Error, Result},
    service::{
        idempotency,
        redemption::{self, Consumed, Mode, Purchase, Redeeming},
    },
    store::idempotency::Keyed,
};

/// What became of one code.
#[derive(Debug)]
pub struct CodeOutcome {
    /// The code as the till sent it.
    pub code: String,
    pub result: Result<Consumed>,
}

#[derive(Debug)]
pub struct Checkout {
    pub results: Vec<CodeOutcome>,
    /// The basket left to pay after every redeemed code.
    pub left: Basket,
}

/// An idempotency key for the whole checkout: code `i` is recorded under `<key>#<i>`, so a
/// retry gets every code's first answer back.
#[derive(Debug, Clone)]
pub struct CheckoutKey {
    pub org_id: i64,
    pub key: String,
    pub body: serde_json::Value,
}

impl CheckoutKey {
    fn for_code(&self, index: usize) -> Keyed {
        let key = format!("{}#{index}", self.key);
        Keyed::new(self.org_id, "checkout", key, &self.body)
    }
}

pub async fn checkout(
    db: &DatabaseConnection,
    org_id: i64,
    purchase: Purchase,
    codes: &[String],
    key: Option<&CheckoutKey>,
) -> Result<Checkout> {
    if let Some(k) = key {
        refuse_reused_key(db, k, codes.len()).await?;
    }
    let mut left = purchase.basket.clone();
    let mut used = HashSet::new();
    let mut results = Vec::with_capacity(codes.len());
    for (index, code) in codes.iter().enumerate() {
        let keyed = key.map(|k| k.for_code(index));
        let now = Purchase {
            basket: left.clone(),
            ..purchase.clone()
        };
        let result = redeem_one(db, org_id, code, &now, keyed.as_ref(), &mut used).await;
        if let Ok(done) = &result {
            left = left_after(&left, done);
        }
        results.push(CodeOutcome {
            code: code.clone(),
            result,
        });
    }
    Ok(Checkout { results, left })
}

/// A key already used for another checkout is a 409 for the whole request, as on `/redeem`,
/// not a per-code refusal beside a 200. Only codes redeemed the first time left the key.
async fn refuse_reused_key(db: &DatabaseConnection, key: &CheckoutKey, codes: usize) -> Result<()> {
    for index in 0..codes {
        idempotency::stored_response(db, &key.for_code(index)).await?;
    }
    Ok(())
}

async fn redeem_one(
    db: &DatabaseConnection,
    org_id: i64,
    code: &str,
    purchase: &Purchase,
    keyed: Option<&Keyed>,
    used: &mut HashSet<i64>,
) -> Result<Consumed> {
    if let Some(k) = keyed
        && let Some(done) = redemption::replay(db, org_id, k).await?
    {
        used.insert(done.coupon.id);
        return Ok(done);
    }
    let located = redemption::locate(db, org_id, code, purchase.redeemer()).await?;
    // Forgiving entry can make two spellings one coupon; it is redeemed once per checkout.
    if !used.insert(located.target().id) {
        return Err(Error::refused(
            "duplicate_code",
            format!("{code} names a coupon already in this checkout"),
        ));
    }
    let asked = Redeeming {
        org_id,
        purchase,
        mode: Mode::Redeem,
        keyed,
    };
    redemption::consume(db, &located, &asked).await
}

fn left_after(basket: &Basket, done: &Consumed) -> Basket {
    let taken = redemption::recorded_discount(&done.redemption);
    discount::remaining(basket, &done.pool.redemption.item_filter(), &taken)
}
