//! The common issue in one step. When a pool's rules read nothing from the database (no
//! per-customer limit or gap, no allow list, no exclusion by other pools, no total limit) and
//! its codes come from its stock, the rules are decided from the pool and the customer alone,
//! and the claim, the event, the webhooks and the idempotency key are written by one statement
//! ([`store::issue_at_once`]): no transaction to open, no lock to take first.

use crate::store::entity::{coupons, customers, orgs, pools};
use chrono::{SubsecRound, Utc};

use crate::{
    domain::{coupon::CouponStatus, issuance::Decision, pool::PoolSource, webhook::WebhookEvent},
    service::{
        Error, Result,
        idempotency::race_or,
        issuance::{CustomerFacts, Issued, context, stamp},
        webhooks,
    },
    store::{
        self,
        issuance::{History, Stamp},
        issue_at_once::{Announcement, KeyRecord},
    },
};

/// Whether an issue of `pool` needs nothing read or locked before its code is taken.
fn applies(pool: &pools::Model) -> bool {
    let rules = &pool.issuance;
    let from_stock = !matches!(pool.source, PoolSource::Common | PoolSource::Remote);
    from_stock
        && !rules.depends_on_history()
        && !rules.specific_customers_only
        && rules.exclude_if_issued_from.is_empty()
        && rules.max_total.is_none()
}

/// Issues at once when the pool allows it. None when it does not, or when its stock is empty
/// (nothing was written: the full path then mints a code or says `pool_exhausted`). A refusal
/// of the rules is an error, as on the full path.
pub async fn try_issue(
    db: &sea_orm::DatabaseConnection,
    org: &orgs::Model,
    pool: &pools::Model,
    customer: &customers::Model,
    keyed: Option<KeyRecord<'_>>,
) -> Result<Option<Issued>> {
    if !applies(pool) {
        return Ok(None);
    }
    let tz = super::org_tz(&org.timezone)?;
    // The database keeps microseconds: the webhook's times are the row's.
    let now = Utc::now().trunc_subsecs(6);
    let facts = CustomerFacts {
        customer,
        history: &History::default(),
        on_allow_list: false,
        excluded_recently: false,
    };
    let ctx = context(pool, tz, now, &facts, pool.issued_count as u64);
    match crate::domain::issuance::decide(&pool.issuance, &ctx) {
        Decision::Refuse(r) => return Err(Error::refused(r.code.as_str(), r.reason)),
        Decision::ReturnExisting(_) => return Ok(None),
        Decision::IssueNew => {}
    }
    let stamp = stamp(pool, customer, now, tz);
    let announcement = announcement(pool, customer, stamp);
    let claimed = store::issue_at_once::claim_recorded(db, pool.id, stamp, &announcement, keyed)
        .await
        .map_err(race_or)?;
    Ok(claimed.map(|coupon| Issued {
        coupon,
        existing: false,
    }))
}

/// The `coupon.issued` webhook as [`webhooks::record_issue`] would write it, from the coupon
/// as it will be once claimed; the claim fills in its id, code and balance.
fn announcement(pool: &pools::Model, customer: &customers::Model, stamp: Stamp) -> Announcement {
    let coming = coupons::Model {
        id: 0,
        org_id: pool.org_id,
        pool_id: pool.id,
        code: String::new(),
        share_key: 0,
        status: CouponStatus::Issued,
        customer_id: Some(customer.id),
        value: None,
        balance: None,
        redemption_count: 0,
        issued_at: Some(stamp.now),
        expires_at: stamp.expires_at,
        redeemable_from: stamp.redeemable_from,
        last_status_change_at: stamp.now,
    };
    let event = WebhookEvent::CouponIssued;
    Announcement {
        event: event.as_str(),
        occurrence: webhooks::issue_occurrence_parts(Some(stamp.now)),
        body: webhooks::envelope_now(event, webhooks::coupon_data(&coming, Some(customer))),
    }
}
