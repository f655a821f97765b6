//! A coupon as its holder sees it: the answer of issues and workflow actions, and of keyed
//! calls that replay them.

use chrono::{DateTime, Utc};
use poem_openapi::Object;

use crate::domain::coupon::{self, CouponStatus};

/// A coupon as its holder sees it.
#[derive(Object)]
pub struct CustomerCoupon {
    pub id: i64,
    pub code: String,
    pub pool_id: i64,
    pub status: CouponStatus,
    pub issued_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub redeemable_from: Option<DateTime<Utc>>,
    pub redemption_count: i32,
    /// Gift cards: what is left to spend.
    pub balance: Option<i64>,
    /// Its last redemption was reversed and the coupon reinstated.
    pub is_reversed: bool,
    pub last_status_change_at: DateTime<Utc>,
}

/// The coupon handed to the customer.
#[derive(Object)]
pub struct IssuedCoupon {
    #[oai(flatten)]
    pub coupon: CustomerCoupon,
    /// True when this is a coupon the customer already held (aggregated pool, or
    /// `resend_existing`), not a new one.
    pub existing: bool,
}

/// A coupon as it stands now: past its expiry it shows as expired before the sweep writes it.
pub fn coupon_view(m: crate::store::entity::coupons::Model, is_reversed: bool) -> CustomerCoupon {
    CustomerCoupon {
        status: coupon::status_at(m.status, m.expires_at, Utc::now()),
        id: m.id,
        code: m.code,
        pool_id: m.pool_id,
        issued_at: m.issued_at,
        expires_at: m.expires_at,
        redeemable_from: m.redeemable_from,
        redemption_count: m.redemption_count,
        balance: m.balance,
        is_reversed,
        last_status_change_at: m.last_status_change_at,
    }
}

impl IssuedCoupon {
    pub fn new(coupon: crate::store::entity::coupons::Model, existing: bool) -> IssuedCoupon {
        IssuedCoupon {
            coupon: coupon_view(coupon, false),
            existing,
        }
    }
}
