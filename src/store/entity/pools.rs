use sea_orm::entity::prelude::*;

use crate::domain::{
    discount::DiscountType,
    expiry::ExpiryRules,
    issuance::IssuanceRules,
    pool::{CodeOptions, PoolSource, PoolState, Reminders},
    redemption::RedemptionRules,
    remote::StoredRemote,
};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pools")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub source: PoolSource,
    pub pattern: Option<String>,
    pub discount_type: DiscountType,
    pub value: Option<i64>,
    pub currency: Option<String>,
    pub gift_card_min_value: Option<i64>,
    pub gift_card_min_redemption: Option<i64>,
    pub purchase_min: Option<i64>,
    pub starts_at: Option<DateTimeUtc>,
    pub ends_at: Option<DateTimeUtc>,
    pub state: PoolState,
    /// The access group the pool belongs to; none for an ungrouped pool.
    pub group_id: Option<i64>,
    pub code_options: CodeOptions,
    pub issuance: IssuanceRules,
    pub redemption: RedemptionRules,
    pub expiry: ExpiryRules,
    pub reminders: Reminders,
    pub remote: Option<StoredRemote>,
    pub claimed: bool,
    pub generation_key: Option<String>,
    pub generated_count: i64,
    /// Codes promised to generation jobs (queued, running or done); the generation caps are
    /// taken from it when a job is accepted.
    pub generation_reserved: i64,
    /// Coupons issued so far; kept only for pools with a total issual limit, where it is
    /// the counter that limit is enforced on.
    pub issued_count: i64,
    /// Active redemptions and holds; kept only for pools with a series-level redemption limit,
    /// where it is the counter that limit is enforced on.
    pub redeemed_count: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
