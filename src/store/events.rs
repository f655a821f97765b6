//! The customer's coupon history. Every state change writes its event in its own transaction.

use chrono::Utc;
use entity::{coupon_events, coupons};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, Set};

/// What happened to a coupon, in the vocabulary of the customer's event history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Issue,
    Redeem,
    Unredeem,
    Invalidate,
    Unassign,
    Transfer,
    Receive,
    Expire,
    Revoke,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Issue => "coupon_issue",
            EventKind::Redeem => "coupon_redeem",
            EventKind::Unredeem => "coupon_unredeem",
            EventKind::Invalidate => "coupon_invalidate",
            EventKind::Unassign => "coupon_unassign",
            EventKind::Transfer => "coupon_transfer",
            EventKind::Receive => "coupon_receive",
            EventKind::Expire => "coupon_expire",
            EventKind::Revoke => "coupon_revoke",
        }
    }
}

/// Records an event for `customer_id` (the coupon's holder unless the change is about another
/// customer, as with transfers).
pub async fn record<C: ConnectionTrait>(
    db: &C,
    coupon: &coupons::Model,
    customer_id: Option<i64>,
    kind: EventKind,
    detail: Option<serde_json::Value>,
) -> Result<(), DbErr> {
    coupon_events::ActiveModel {
        org_id: Set(coupon.org_id),
        coupon_id: Set(coupon.id),
        pool_id: Set(coupon.pool_id),
        customer_id: Set(customer_id),
        kind: Set(kind.as_str().to_string()),
        detail: Set(detail),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// `coupon_issue` events for many freshly issued coupons, in one statement per thousand.
pub async fn record_issues<C: ConnectionTrait>(
    db: &C,
    issued: &[coupons::Model],
) -> Result<(), DbErr> {
    let now = Utc::now();
    for chunk in issued.chunks(1_000) {
        let rows = chunk.iter().map(|c| coupon_events::ActiveModel {
            org_id: Set(c.org_id),
            coupon_id: Set(c.id),
            pool_id: Set(c.pool_id),
            customer_id: Set(c.customer_id),
            kind: Set(EventKind::Issue.as_str().to_string()),
            detail: Set(None),
            created_at: Set(now),
            ..Default::default()
        });
        coupon_events::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(())
}
