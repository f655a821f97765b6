use sea_orm::entity::prelude::*;

use crate::domain::coupon::CouponStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "coupons")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub pool_id: i64,
    pub code: String,
    pub share_key: i64,
    pub status: CouponStatus,
    pub customer_id: Option<i64>,
    pub value: Option<i64>,
    pub balance: Option<i64>,
    pub redemption_count: i32,
    pub issued_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub redeemable_from: Option<DateTimeUtc>,
    pub last_status_change_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
