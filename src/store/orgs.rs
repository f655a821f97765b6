//! Tenants.

use crate::store::entity::orgs;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QuerySelect, Set,
    TransactionTrait,
};

use super::api_keys;
use crate::domain::{api_key::Scope, org::PocEmails};

/// Creates an org with one admin key and returns both; the key's secret is never stored.
pub async fn create(
    db: &DatabaseConnection,
    name: String,
    timezone: String,
) -> Result<(orgs::Model, String), DbErr> {
    let txn = db.begin().await?;
    let org = orgs::ActiveModel {
        name: Set(name),
        timezone: Set(timezone),
        poc_emails: Set(PocEmails::default()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let (_, secret) = api_keys::create(
        &txn,
        api_keys::NewApiKey {
            org_id: org.id,
            name: "admin".into(),
            scopes: vec![Scope::Admin],
            pool_id: None,
            signing_secret: None,
            groups: Vec::new(),
        },
    )
    .await?;
    txn.commit().await?;
    Ok((org, secret))
}

pub async fn get<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<orgs::Model>, DbErr> {
    orgs::Entity::find_by_id(id).one(db).await
}

/// Takes the org row's lock for the rest of the transaction (PostgreSQL; SQLite runs one
/// writer at a time), so org-wide uniqueness checks take turns.
pub async fn lock<C: ConnectionTrait>(db: &C, id: i64) -> Result<(), DbErr> {
    orgs::Entity::find_by_id(id)
        .select_only()
        .column(orgs::Column::Id)
        .lock_exclusive()
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok(())
}

/// Fields to change on an org; None leaves a field as it is.
#[derive(Default)]
pub struct OrgChanges {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub code_prefix: Option<Option<String>>,
    pub code_suffix: Option<Option<String>>,
    pub poc_emails: Option<Vec<String>>,
}

pub async fn update<C: ConnectionTrait>(
    db: &C,
    id: i64,
    changes: OrgChanges,
) -> Result<orgs::Model, DbErr> {
    let org = get(db, id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("org {id}")))?;
    let mut row: orgs::ActiveModel = org.into();
    if let Some(v) = changes.name {
        row.name = Set(v);
    }
    if let Some(v) = changes.timezone {
        row.timezone = Set(v);
    }
    if let Some(v) = changes.code_prefix {
        row.code_prefix = Set(v);
    }
    if let Some(v) = changes.code_suffix {
        row.code_suffix = Set(v);
    }
    if let Some(v) = changes.poc_emails {
        row.poc_emails = Set(PocEmails(v));
    }
    row.update(db).await
}
