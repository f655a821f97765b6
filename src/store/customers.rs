//! Customers of an org, addressed by external id, email, mobile or internal id.

use chrono::{DateTime, Utc};
use entity::customers;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::OnConflict,
};

use crate::domain::customer::CustomerIdentifier;

/// Profile fields of an upsert; the external id is the key.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub level: Option<String>,
    pub registered_at: Option<DateTime<Utc>>,
    pub transaction_count: i32,
    pub attributes: Option<serde_json::Value>,
}

/// Creates or replaces the customer with this external id, in one statement.
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    external_id: &str,
    p: Profile,
) -> Result<customers::Model, DbErr> {
    let now = Utc::now();
    let row = customers::ActiveModel {
        org_id: Set(org_id),
        external_id: Set(external_id.to_string()),
        email: Set(p.email),
        mobile: Set(p.mobile),
        level: Set(p.level),
        registered_at: Set(p.registered_at),
        transaction_count: Set(p.transaction_count),
        attributes: Set(p.attributes),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    customers::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([customers::Column::OrgId, customers::Column::ExternalId])
                .update_columns([
                    customers::Column::Email,
                    customers::Column::Mobile,
                    customers::Column::Level,
                    customers::Column::RegisteredAt,
                    customers::Column::TransactionCount,
                    customers::Column::Attributes,
                    customers::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_with_returning(db)
        .await
}

/// Creates the customer if the org does not know it yet (a loyalty platform owns its
/// customers and may name one we have not seen); returns it either way.
pub async fn ensure<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    external_id: &str,
) -> Result<customers::Model, DbErr> {
    let now = Utc::now();
    let row = customers::ActiveModel {
        org_id: Set(org_id),
        external_id: Set(external_id.to_string()),
        transaction_count: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    customers::Entity::insert(row)
        .on_conflict_do_nothing_on([customers::Column::OrgId, customers::Column::ExternalId])
        .exec(db)
        .await?;
    find(
        db,
        org_id,
        &CustomerIdentifier::ExternalId(external_id.to_string()),
    )
    .await?
    .ok_or_else(|| DbErr::RecordNotFound(format!("customer {external_id}")))
}

/// The customer an identifier names. Email and mobile are not unique keys: the oldest
/// customer with that address is the one meant.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: &CustomerIdentifier,
) -> Result<Option<customers::Model>, DbErr> {
    let by = match id {
        CustomerIdentifier::ExternalId(v) => customers::Column::ExternalId.eq(v.as_str()),
        CustomerIdentifier::Email(v) => customers::Column::Email.eq(v.as_str()),
        CustomerIdentifier::Mobile(v) => customers::Column::Mobile.eq(v.as_str()),
        CustomerIdentifier::UserId(v) => customers::Column::Id.eq(*v),
    };
    customers::Entity::find()
        .filter(customers::Column::OrgId.eq(org_id))
        .filter(by)
        .order_by_asc(customers::Column::Id)
        .limit(1)
        .one(db)
        .await
}

/// Takes the customer's row lock for the rest of the transaction (PostgreSQL), so two
/// concurrent issues to one customer check per-customer limits one after the other. SQLite
/// runs one transaction at a time already.
pub async fn lock<C: ConnectionTrait>(db: &C, customer_id: i64) -> Result<(), DbErr> {
    customers::Entity::find_by_id(customer_id)
        .select_only()
        .column(customers::Column::Id)
        .lock_exclusive()
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok(())
}
