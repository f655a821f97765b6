//! Uploaded files and background jobs as their owner reads them back: progress, and the
//! problem rows as a CSV ("Download Issues").

use crate::store::entity::imports;
use sea_orm::DatabaseConnection;

use crate::{
    domain::{access::PoolAccess, csv},
    service::{Error, Result, pools},
    store,
};

/// Issue rows read per statement while writing the CSV.
const ISSUES_PER_READ: u64 = 5_000;

/// The org's import or job `id` (`what` names it in the 404) when `access` reaches its pool; a
/// key bound to groups never reaches org-wide ones.
pub async fn get(
    db: &DatabaseConnection,
    org_id: i64,
    access: &PoolAccess,
    id: i64,
    what: &str,
) -> Result<imports::Model> {
    let hidden = || Error::not_found(what, id);
    let import = store::imports::get(db, org_id, id)
        .await?
        .ok_or_else(hidden)?;
    if pools::reaches(db, org_id, access, import.pool_id).await? {
        Ok(import)
    } else {
        Err(hidden())
    }
}

/// Every problem row of the import `id` as CSV (`row,value,code,reason`), in file order.
pub async fn issues_csv(
    db: &DatabaseConnection,
    org_id: i64,
    access: &PoolAccess,
    id: i64,
) -> Result<String> {
    let import = get(db, org_id, access, id, "import").await?;
    let header = ["row", "value", "code", "reason"]
        .map(String::from)
        .to_vec();
    let mut out = Vec::new();
    csv::write(&mut out, &[header]).map_err(Error::internal)?;
    let mut after = 0;
    loop {
        let page = store::imports::issues_after(db, import.id, after, ISSUES_PER_READ).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let rows: Vec<Vec<String>> = page
            .into_iter()
            .map(|i| vec![i.row_number.to_string(), i.value, i.code, i.reason])
            .collect();
        csv::write(&mut out, &rows).map_err(Error::internal)?;
    }
    String::from_utf8(out).map_err(Error::internal)
}
