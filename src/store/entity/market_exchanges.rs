use sea_orm::entity::prelude::*;

/// One exchange of points for a coupon in the loyalty market.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "market_exchanges")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub product_id: i64,
    pub customer_id: i64,
    #[sea_orm(unique)]
    pub coupon_id: i64,
    /// The price paid.
    pub points: i64,
    /// Set once, when the points went back after the coupon was revoked or invalidated.
    pub refunded_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
