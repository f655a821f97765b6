//! Customers of an org, addressed by external id, email, mobile or internal id.

use std::collections::{HashMap, HashSet};

use crate::store::entity::customers;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Set,
    sea_query::{ArrayType, OnConflict, Query},
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
    if let Some(known) = by_external_id(db, org_id, external_id).await? {
        return Ok(known);
    }
    let now = Utc::now();
    let mut insert = Query::insert();
    insert
        .into_table(customers::Entity)
        .columns([
            customers::Column::OrgId,
            customers::Column::ExternalId,
            customers::Column::TransactionCount,
            customers::Column::CreatedAt,
            customers::Column::UpdatedAt,
        ])
        .values_panic([
            org_id.into(),
            external_id.into(),
            0i32.into(),
            now.into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::columns([customers::Column::OrgId, customers::Column::ExternalId])
                .do_nothing()
                .to_owned(),
        )
        .returning_all();
    if let Some(row) = db.query_one(&insert).await? {
        return customers::Model::from_query_result(&row, "");
    }
    // A concurrent request created it between the look-up and the insert.
    by_external_id(db, org_id, external_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("customer {external_id}")))
}

/// The org's customer with this coupond user id.
pub async fn by_id<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: i64,
) -> Result<Option<customers::Model>, DbErr> {
    customers::Entity::find_by_id(id)
        .filter(customers::Column::OrgId.eq(org_id))
        .one(db)
        .await
}

/// The org's customer with this external id (unique in an org).
pub async fn by_external_id<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    external_id: &str,
) -> Result<Option<customers::Model>, DbErr> {
    customers::Entity::find()
        .filter(customers::Column::OrgId.eq(org_id))
        .filter(customers::Column::ExternalId.eq(external_id))
        .one(db)
        .await
}

/// Up to `limit` of the org's customers an identifier names, oldest first: an email or mobile
/// may be shared.
pub async fn matching<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: &CustomerIdentifier,
    limit: u64,
) -> Result<Vec<customers::Model>, DbErr> {
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
        .limit(limit)
        .all(db)
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

/// The customers a list of identifiers names, in as few statements as there are identifier
/// kinds (a thousand values per statement at most, each list one array parameter on
/// PostgreSQL), with every identifier that names more than one (a shared email or mobile).
pub async fn find_many<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    ids: &[CustomerIdentifier],
) -> Result<Named, DbErr> {
    let mut named = Named::default();
    let mut by_kind: HashMap<&'static str, Vec<&CustomerIdentifier>> = HashMap::new();
    for id in ids {
        by_kind.entry(id.kind()).or_default().push(id);
    }
    for group in by_kind.values() {
        for chunk in group.chunks(1_000) {
            let column = match chunk[0] {
                CustomerIdentifier::ExternalId(_) => customers::Column::ExternalId,
                CustomerIdentifier::Email(_) => customers::Column::Email,
                CustomerIdentifier::Mobile(_) => customers::Column::Mobile,
                CustomerIdentifier::UserId(_) => customers::Column::Id,
            };
            let ty = match chunk[0] {
                CustomerIdentifier::UserId(_) => ArrayType::BigInt,
                _ => ArrayType::String,
            };
            let values = chunk.iter().map(|id| identifier_value(id));
            let backend = db.get_database_backend();
            let rows = customers::Entity::find()
                .filter(customers::Column::OrgId.eq(org_id))
                .filter(super::any_of(backend, column, ty, values))
                .all(db)
                .await?;
            let wanted: HashSet<&CustomerIdentifier> = chunk.iter().copied().collect();
            for row in rows {
                let id = same_kind_of(chunk[0], &row).filter(|id| wanted.contains(id));
                if let Some(id) = id {
                    named.add(id, row);
                }
            }
        }
    }
    Ok(named)
}

/// Who each identifier of a list names.
#[derive(Debug, Default)]
pub struct Named {
    pub customers: HashMap<CustomerIdentifier, customers::Model>,
    /// Identifiers more than one customer answers to.
    pub ambiguous: HashSet<CustomerIdentifier>,
}

impl Named {
    fn add(&mut self, id: CustomerIdentifier, row: customers::Model) {
        if self.ambiguous.contains(&id) {
            return;
        }
        match self.customers.get(&id) {
            Some(kept) if kept.id != row.id => {
                self.customers.remove(&id);
                self.ambiguous.insert(id);
            }
            _ => {
                self.customers.insert(id, row);
            }
        }
    }
}

fn identifier_value(id: &CustomerIdentifier) -> sea_orm::Value {
    match id {
        CustomerIdentifier::ExternalId(v)
        | CustomerIdentifier::Email(v)
        | CustomerIdentifier::Mobile(v) => v.clone().into(),
        CustomerIdentifier::UserId(v) => (*v).into(),
    }
}

/// The identifier of the same kind as `kind` that names `row`, if it has one.
fn same_kind_of(kind: &CustomerIdentifier, row: &customers::Model) -> Option<CustomerIdentifier> {
    match kind {
        CustomerIdentifier::ExternalId(_) => {
            Some(CustomerIdentifier::ExternalId(row.external_id.clone()))
        }
        CustomerIdentifier::Email(_) => row.email.clone().map(CustomerIdentifier::Email),
        CustomerIdentifier::Mobile(_) => row.mobile.clone().map(CustomerIdentifier::Mobile),
        CustomerIdentifier::UserId(_) => Some(CustomerIdentifier::UserId(row.id)),
    }
}

/// Row locks on many customers, taken in id order so concurrent batches cannot deadlock.
pub async fn lock_many<C: ConnectionTrait>(db: &C, sorted_ids: &[i64]) -> Result<(), DbErr> {
    for chunk in sorted_ids.chunks(5_000) {
        customers::Entity::find()
            .select_only()
            .column(customers::Column::Id)
            .filter(super::any_of(
                db.get_database_backend(),
                customers::Column::Id,
                ArrayType::BigInt,
                chunk.iter().copied(),
            ))
            .order_by_asc(customers::Column::Id)
            .lock_exclusive()
            .into_tuple::<i64>()
            .all(db)
            .await?;
    }
    Ok(())
}
