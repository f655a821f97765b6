use sea_orm::entity::prelude::*;

use crate::domain::discount::Discount;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "redemptions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub coupon_id: i64,
    pub pool_id: i64,
    pub customer_id: Option<i64>,
    pub store_id: Option<String>,
    pub zone: Option<String>,
    pub concept: Option<String>,
    pub till: Option<String>,
    pub basket_total: i64,
    pub currency: Option<String>,
    pub discount: i64,
    pub active: bool,
    pub reserved_until: Option<DateTimeUtc>,
    /// The purchase time the till sent (the server's time when it sent none).
    pub redeemed_at: DateTimeUtc,
    /// The server's time when the redemption was recorded.
    pub recorded_at: Option<DateTimeUtc>,
    pub reversed_at: Option<DateTimeUtc>,
    /// The discount as the checkout was told it (lines, free shipping, gift card balance).
    pub detail: Option<Discount>,
    /// Set when the coupon's currency differs from the basket's (`currency`): the coupon's.
    pub coupon_currency: Option<String>,
    /// With `coupon_currency`: the coupon's value in it, or for a gift card what came off the
    /// balance (`discount` is then in the basket's currency).
    pub coupon_amount: Option<i64>,
    /// With `coupon_currency`: the rate used, units of `currency` per unit of the coupon's.
    pub exchange_rate: Option<String>,
    /// With `coupon_currency`: when that rate took effect.
    pub rate_effective_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
