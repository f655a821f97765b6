//! Wallet passes: a pool's pass template and logo, a coupon's Apple Wallet pass (a signed
//! `.pkpass` zip) and its "Save to Google Wallet" link. Both show the coupon as it stands at
//! the request: voided, expired or used up as the coupon is.

mod keys;

use std::io::{Cursor, Write};

use chrono::Utc;
use sea_orm::DatabaseConnection;
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

pub use keys::{SetupError, Wallet};

use crate::{
    domain::{
        coupon,
        wallet::{self, LogoError, PassFacts, PassTemplate},
    },
    service::{Error, Result, notifications, redemption},
    store,
};

/// A pool's pass template as saved, and whether it has a logo.
#[derive(Debug, Clone)]
pub struct PoolPass {
    pub template: PassTemplate,
    pub has_logo: bool,
}

/// The org's pool must exist.
async fn check_pool(db: &DatabaseConnection, org_id: i64, pool_id: i64) -> Result<()> {
    store::pools::get(db, org_id, pool_id)
        .await?
        .ok_or_else(|| Error::not_found("pool", pool_id))?;
    Ok(())
}

/// The pool's pass template (the default one until set).
pub async fn template(db: &DatabaseConnection, org_id: i64, pool_id: i64) -> Result<PoolPass> {
    check_pool(db, org_id, pool_id).await?;
    let (template, logo) = saved(db, pool_id).await?;
    Ok(PoolPass {
        template,
        has_logo: logo.is_some(),
    })
}

/// The pool's template and logo; the default template when none is saved.
async fn saved(db: &DatabaseConnection, pool_id: i64) -> Result<(PassTemplate, Option<Vec<u8>>)> {
    let Some(row) = store::passes::get(db, pool_id).await? else {
        return Ok((PassTemplate::default(), None));
    };
    Ok((row.template, row.logo))
}

/// Saves the pool's pass template; a template that would make a broken pass changes nothing.
pub async fn set_template(
    db: &DatabaseConnection,
    org_id: i64,
    pool_id: i64,
    wanted: PassTemplate,
) -> Result<PoolPass> {
    wanted
        .check()
        .map_err(|e| Error::invalid(e.field, e.reason))?;
    check_pool(db, org_id, pool_id).await?;
    store::passes::put_template(db, org_id, pool_id, wanted).await?;
    template(db, org_id, pool_id).await
}

/// Saves the pool's logo: a PNG, at most [`wallet::MAX_LOGO_BYTES`].
pub async fn set_logo(
    db: &DatabaseConnection,
    org_id: i64,
    pool_id: i64,
    png: Vec<u8>,
) -> Result<PoolPass> {
    wallet::check_logo(&png).map_err(|e| match e {
        LogoError::TooLarge => Error::too_large("logo_too_large", e.to_string()),
        _ => Error::rejected("logo", "invalid_logo", e.to_string()),
    })?;
    check_pool(db, org_id, pool_id).await?;
    store::passes::put_logo(db, org_id, pool_id, png).await?;
    template(db, org_id, pool_id).await
}

fn not_configured(what: &str, settings: &str) -> Error {
    Error::conflict(
        "wallet_not_configured",
        format!("{what} are not configured on this service: the operator sets {settings}"),
    )
}

/// The coupon's Apple Wallet pass: a zip of `pass.json`, the images, `manifest.json` and the
/// detached signature of the manifest.
pub async fn apple_pass(
    db: &DatabaseConnection,
    keys: &Wallet,
    org_id: i64,
    code: &str,
) -> Result<Vec<u8>> {
    let apple = keys.apple.as_ref().ok_or_else(|| {
        not_configured(
            "Apple Wallet passes",
            "COUPOND_WALLET_APPLE_CERT and its partners",
        )
    })?;
    let (template, logo, facts) = pass_facts(db, org_id, code).await?;
    let pass = wallet::pass_json(&template, &apple.ids, &facts);
    let mut files = wallet::pass_files(&pass, logo.as_deref());
    let manifest = wallet::manifest(&files);
    let signature = apple
        .sign(&manifest)
        .map_err(|e| Error::internal(format!("signing a pass: {e}")))?;
    files.push(("manifest.json", manifest));
    files.push(("signature", signature));
    zip(&files).map_err(|e| Error::internal(format!("zipping a pass: {e}")))
}

fn zip(files: &[(&str, Vec<u8>)]) -> zip::result::ZipResult<Vec<u8>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, bytes) in files {
        zip.start_file(*name, options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

/// The coupon's "Save to Google Wallet" link: a JWT with the pool's offer class and the
/// coupon's offer object, signed with the service account key.
pub async fn google_link(
    db: &DatabaseConnection,
    keys: &Wallet,
    org_id: i64,
    code: &str,
) -> Result<String> {
    let google = keys.google.as_ref().ok_or_else(|| {
        not_configured(
            "Google Wallet links",
            "COUPOND_WALLET_GOOGLE_SERVICE_ACCOUNT and COUPOND_WALLET_GOOGLE_ISSUER_ID",
        )
    })?;
    let (template, _, facts) = pass_facts(db, org_id, code).await?;
    let claims = wallet::google_claims(&template, &google.ids, &facts, Utc::now());
    let input = wallet::jwt_signing_input(&claims);
    Ok(wallet::google_save_url(&input, &google.sign(&input)))
}

/// What a coupon's pass shows, found as a till finds a typed code.
async fn pass_facts(
    db: &DatabaseConnection,
    org_id: i64,
    code: &str,
) -> Result<(PassTemplate, Option<Vec<u8>>, PassFacts)> {
    let located = redemption::locate(db, org_id, code, None).await?;
    let (row, pool) = (&located.code_row, &located.pool);
    let org = store::orgs::get(db, org_id)
        .await?
        .ok_or_else(|| Error::internal(format!("org {org_id} of a coupon is gone")))?;
    let customer_name = match row.customer_id {
        Some(id) => store::customers::by_id(db, org_id, id)
            .await?
            .map(|c| notifications::customer_name(&c))
            .unwrap_or_default(),
        None => String::new(),
    };
    let (expires_on, value) = notifications::expiry_and_value(row, pool, located.tz);
    let stored = row.status;
    let (template, logo) = saved(db, pool.id).await?;
    let facts = PassFacts {
        org_id,
        organization: org.name,
        pool_id: pool.id,
        pool_name: pool.name.clone(),
        code: row.code.clone(),
        status: coupon::status_at(stored, row.expires_at, Utc::now()),
        valid_from: row.redeemable_from.or(row.issued_at),
        expires_at: row.expires_at,
        expires_on,
        value,
        customer_name,
    };
    Ok((template, logo, facts))
}
