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
        issuance::{CustomerFacts, Issued, context, dates},
        webhooks,
    },
    store::{
        self,
        issuance::History,
        issue_at_once::{Announcement, KeyRecord, NewIssue, Who},
    },
};

/// Whom an issue at once is for.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    /// A customer already read.
    Customer(&'a customers::Model),
    /// The org's customer with this external id, read by the claiming statement itself (one
    /// statement fewer). When there is none, the statement creates it if `create`; else nothing
    /// is issued and the caller's look-up says so.
    ExternalId {
        org_id: i64,
        external_id: &'a str,
        create: bool,
    },
}

impl Holder<'_> {
    fn level(&self) -> Option<&str> {
        match self {
            Holder::Customer(c) => c.level.as_deref(),
            Holder::ExternalId { .. } => None,
        }
    }
}

/// Whether an issue of `pool` to `holder` needs nothing read or locked before its code is
/// taken. A customer not read yet has no level to check.
fn applies(pool: &pools::Model, holder: &Holder) -> bool {
    let rules = &pool.issuance;
    let from_stock = !matches!(pool.source, PoolSource::Common | PoolSource::Remote);
    let level_known = matches!(holder, Holder::Customer(_)) || rules.allowed_levels.is_empty();
    from_stock && level_known && !rules.reads_customer_facts() && rules.max_total.is_none()
}

/// What came of an attempt to issue at once. Unless issued, nothing was written.
#[derive(Debug)]
pub enum Attempt {
    Issued(Issued),
    /// The pool's rules read more than the pool and a customer read already.
    NotApplicable,
    /// The stock is empty, the external id names no customer or a concurrent request created
    /// it: the full path mints a code, says `pool_exhausted` or names the missing customer.
    NotClaimed,
}

/// Issues at once when the pool allows it. A refusal of the rules is an error, as on the full
/// path.
pub async fn try_issue(
    db: &sea_orm::DatabaseConnection,
    org: &orgs::Model,
    pool: &pools::Model,
    holder: Holder<'_>,
    keyed: Option<KeyRecord<'_>>,
) -> Result<Attempt> {
    if !applies(pool, &holder) {
        return Ok(Attempt::NotApplicable);
    }
    let tz = super::org_tz(&org.timezone)?;
    // The database keeps microseconds: the webhook's times are the row's.
    let now = Utc::now().trunc_subsecs(6);
    let facts = CustomerFacts {
        level: holder.level(),
        history: &History::default(),
        on_allow_list: false,
        excluded_recently: false,
    };
    let ctx = context(pool, tz, now, &facts, pool.issued_count as u64);
    match crate::domain::issuance::decide(&pool.issuance, &ctx) {
        Decision::Refuse(r) => return Err(Error::refused(r.code.as_str(), r.reason)),
        Decision::ReturnExisting(_) => return Ok(Attempt::NotApplicable),
        Decision::IssueNew => {}
    }
    let (expires_at, redeemable_from) = dates(pool, now, tz);
    let issue = NewIssue {
        pool_id: pool.id,
        who: match holder {
            Holder::Customer(c) => Who::Id(c.id),
            Holder::ExternalId {
                org_id,
                external_id,
                create,
            } => Who::ExternalId {
                org_id,
                external_id,
                create,
            },
        },
        now,
        expires_at,
        redeemable_from,
    };
    let announcement = announcement(pool, holder, &issue);
    let claimed = store::issue_at_once::claim_recorded(db, &issue, &announcement, keyed)
        .await
        .map_err(race_or)?;
    Ok(match claimed {
        Some(coupon) => Attempt::Issued(Issued {
            coupon,
            existing: false,
        }),
        None => Attempt::NotClaimed,
    })
}

/// The `coupon.issued` webhook as [`webhooks::record_issue`] would write it, from the coupon
/// as it will be once claimed; the claim fills in its id, code and balance, and the
/// customer's id.
fn announcement(pool: &pools::Model, holder: Holder<'_>, issue: &NewIssue) -> Announcement {
    let coming = coupons::Model {
        id: 0,
        org_id: pool.org_id,
        pool_id: pool.id,
        code: String::new(),
        share_key: 0,
        status: CouponStatus::Issued,
        customer_id: None,
        value: None,
        balance: None,
        redemption_count: 0,
        issued_at: Some(issue.now),
        expires_at: issue.expires_at,
        redeemable_from: issue.redeemable_from,
        last_status_change_at: issue.now,
    };
    let customer = match holder {
        Holder::Customer(c) => webhooks::customer_ref(c.id, &c.external_id),
        Holder::ExternalId { external_id, .. } => webhooks::customer_ref(0, external_id),
    };
    let event = WebhookEvent::CouponIssued;
    Announcement {
        event: event.as_str(),
        occurrence: webhooks::issue_occurrence_parts(Some(issue.now)),
        body: webhooks::envelope_now(event, webhooks::coupon_data_with(&coming, customer)),
    }
}
