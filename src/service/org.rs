//! The caller's own tenant: reading it and changing its settings.

use crate::store::entity::orgs;
use sea_orm::DatabaseConnection;

use crate::{
    domain::{customer::normalize_email, org, pattern},
    service::{Error, Result, cache::Caches},
    store::{self, orgs::OrgChanges},
};

/// Changes to an org; None leaves a field as it is, and an empty prefix or suffix clears it.
#[derive(Default)]
pub struct UpdateOrg {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub code_prefix: Option<String>,
    pub code_suffix: Option<String>,
    pub poc_emails: Option<Vec<String>>,
}

pub async fn get(db: &DatabaseConnection, org_id: i64) -> Result<orgs::Model> {
    store::orgs::get(db, org_id)
        .await?
        .ok_or_else(|| Error::not_found("org", org_id))
}

/// Checks and applies the changes, then drops the cached org so requests see them at once.
pub async fn update(
    db: &DatabaseConnection,
    caches: &Caches,
    org_id: i64,
    input: UpdateOrg,
) -> Result<orgs::Model> {
    let mut changes = OrgChanges::default();
    if let Some(name) = input.name {
        changes.name = Some(org::validate_name(&name)?);
    }
    if let Some(tz) = input.timezone {
        org::parse_timezone(&tz)?;
        changes.timezone = Some(tz);
    }
    changes.code_prefix = affix("code_prefix", input.code_prefix)?;
    changes.code_suffix = affix("code_suffix", input.code_suffix)?;
    if let Some(emails) = input.poc_emails {
        for e in &emails {
            normalize_email(e).map_err(|_| {
                Error::invalid("poc_emails", format!("`{e}` is not an email address"))
            })?;
        }
        changes.poc_emails = Some(emails);
    }
    let org = store::orgs::update(db, org_id, changes).await?;
    caches.forget_org(org.id);
    Ok(org)
}

/// Some(None) clears the default, Some(Some(v)) sets it, None leaves it.
fn affix(field: &'static str, value: Option<String>) -> Result<Option<Option<String>>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(Some(None)),
        Some(v) => {
            pattern::validate_affix(field, &v)?;
            Ok(Some(Some(v)))
        }
    }
}
