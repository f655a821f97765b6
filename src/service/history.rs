//! The coupon history (Antavo's customer events `coupon_issue`, `coupon_redeem`, ...): a
//! customer's, and a code's, a page at a time, newest first.

use crate::store::entity::coupon_events;
use sea_orm::DatabaseConnection;

use crate::{
    service::{Error, Result},
    store::{
        self,
        events::{EventKind, History},
    },
};

/// One page of events, each with the code it is about, and the total matching.
pub type Page = (Vec<(coupon_events::Model, String)>, u64);

/// Which events of a history to read.
pub struct Window {
    /// One kind of event only, by its name (`coupon_issue`, ...).
    pub kind: Option<String>,
    pub page: u64,
    pub per_page: u64,
}

/// The history of the customer with this external id.
pub async fn of_customer(
    db: &DatabaseConnection,
    org_id: i64,
    external_id: &str,
    window: Window,
) -> Result<Page> {
    let customer = super::customers::by_external_id(db, org_id, external_id).await?;
    read(db, org_id, History::Customer(customer.id), window).await
}

/// Everything that happened to a code: its own row and, for a common code, every customer's
/// copy.
pub async fn of_code(
    db: &DatabaseConnection,
    org_id: i64,
    code: &str,
    window: Window,
) -> Result<Page> {
    read(db, org_id, History::Code { org_id, code }, window).await
}

async fn read(
    db: &DatabaseConnection,
    org_id: i64,
    of: History<'_>,
    window: Window,
) -> Result<Page> {
    let kind = window.kind.map(|k| parse_kind(&k)).transpose()?;
    let (page, per_page) = (window.page, window.per_page);
    Ok(store::events::history(db, org_id, of, kind, page, per_page).await?)
}

fn parse_kind(kind: &str) -> Result<EventKind> {
    EventKind::parse(kind).ok_or_else(|| {
        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        Error::invalid(
            "kind",
            format!("`{kind}` is not one of {}", known.join(", ")),
        )
    })
}
