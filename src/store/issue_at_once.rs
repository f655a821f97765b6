//! An issue that needs nothing read or locked before its code is taken, written in one step:
//! the pool's next available code handed to the customer, its `coupon_issue` event, its
//! `coupon.issued` webhook for every subscription and the idempotency key's answer. On
//! PostgreSQL that is one statement (a chain of data-modifying CTEs), so it needs no
//! transaction of its own; SQLite, with its one connection, runs the same writes in one.

use crate::store::entity::coupons;
use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult, Statement,
    TransactionTrait,
};

use crate::store::{
    customers,
    events::{self, EventKind, Fanout},
    idempotency::{self, Keyed},
    issuance::{self, Stamp},
};

/// The `coupon.issued` webhook of a coupon not claimed yet.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// The webhook event's name, as subscriptions list it.
    pub event: &'static str,
    /// The occurrence is `prefix`, the coupon's id, `suffix`.
    pub occurrence: (String, String),
    /// The webhook's body, whose `data.coupon` gets the claimed row's `id`, `code` and
    /// `balance`, and `data.customer` its holder's `id`.
    pub body: serde_json::Value,
}

impl Announcement {
    fn for_coupon(&self, coupon: &coupons::Model) -> Fanout {
        let mut body = self.body.clone();
        let fields = &mut body["data"]["coupon"];
        fields["id"] = coupon.id.into();
        fields["code"] = coupon.code.clone().into();
        fields["balance"] = coupon.balance.into();
        body["data"]["customer"]["id"] = coupon.customer_id.into();
        let (prefix, suffix) = &self.occurrence;
        Fanout {
            event: self.event,
            occurrence: format!("{prefix}{}{suffix}", coupon.id),
            body: body.to_string(),
        }
    }
}

/// The idempotency key an issue records its answer under, with the answer's status and shape.
#[derive(Debug, Clone, Copy)]
pub struct KeyRecord<'a> {
    pub keyed: &'a Keyed,
    pub status: u16,
    pub answer: Answer,
}

/// What a keyed issue answers a retry with, made from the claimed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `{"coupon_id": …, "existing": false}`, as the issue endpoint records it.
    CouponId,
    /// `{"code": …}`, as the remote-code callback records it.
    Code,
}

impl Answer {
    fn of(self, coupon: &coupons::Model) -> serde_json::Value {
        match self {
            Answer::CouponId => serde_json::json!({ "coupon_id": coupon.id, "existing": false }),
            Answer::Code => serde_json::json!({ "code": coupon.code }),
        }
    }

    /// [`Answer::of`] in SQL, over the claimed row.
    fn sql(self) -> &'static str {
        match self {
            Answer::CouponId => "json_build_object('coupon_id', id, 'existing', false)",
            Answer::Code => "json_build_object('code', code)",
        }
    }
}

/// Whom the claimed code goes to.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    /// The customer with this id.
    Id(i64),
    /// The org's customer with this external id, looked up by the claiming statement. When
    /// there is none, it is created if `create` (a loyalty platform names customers we may not
    /// have seen), else nothing is claimed; a concurrent creation also leaves nothing claimed.
    ExternalId {
        org_id: i64,
        external_id: &'a str,
        create: bool,
    },
}

/// An issue to write at once: the pool, the customer, and the coupon's dates.
#[derive(Debug, Clone, Copy)]
pub struct NewIssue<'a> {
    pub pool_id: i64,
    pub who: Who<'a>,
    pub now: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub redeemable_from: Option<DateTime<Utc>>,
}

impl NewIssue<'_> {
    fn stamp(&self, customer_id: i64) -> Stamp {
        Stamp {
            customer_id,
            now: self.now,
            expires_at: self.expires_at,
            redeemable_from: self.redeemable_from,
        }
    }
}

/// Claims the pool's next available code for the customer and records everything an issue
/// records, all or nothing. None when the pool has no available code or the external id names
/// no customer: nothing was written. A key already recorded is a unique violation, and
/// nothing is written either.
pub async fn claim_recorded(
    db: &DatabaseConnection,
    issue: &NewIssue<'_>,
    announcement: &Announcement,
    keyed: Option<KeyRecord<'_>>,
) -> Result<Option<coupons::Model>, DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        return claim_recorded_postgres(db, issue, announcement, keyed).await;
    }
    let txn = db.begin().await?;
    let customer_id = match issue.who {
        Who::Id(id) => id,
        Who::ExternalId {
            org_id,
            external_id,
            create: true,
        } => customers::ensure(&txn, org_id, external_id).await?.id,
        Who::ExternalId {
            org_id,
            external_id,
            create: false,
        } => match customers::by_external_id(&txn, org_id, external_id).await? {
            Some(c) => c.id,
            None => return Ok(None),
        },
    };
    let stamp = issue.stamp(customer_id);
    let Some(coupon) = issuance::claim_available(&txn, issue.pool_id, stamp).await? else {
        return Ok(None);
    };
    let fanout = announcement.for_coupon(&coupon);
    let customer = Some(customer_id);
    events::record_announced(&txn, &coupon, customer, EventKind::Issue, None, fanout).await?;
    if let Some(k) = keyed {
        idempotency::record(&txn, k.keyed, k.status, k.answer.of(&coupon)).await?;
    }
    txn.commit().await?;
    Ok(Some(coupon))
}

async fn claim_recorded_postgres(
    db: &DatabaseConnection,
    issue: &NewIssue<'_>,
    announcement: &Announcement,
    keyed: Option<KeyRecord<'_>>,
) -> Result<Option<coupons::Model>, DbErr> {
    let (prefix, suffix) = &announcement.occurrence;
    let mut values = issuance::claim_values(issue.pool_id, issue.stamp(0));
    // The claim's customer ($2) is read from `who`: $2 holds the id or the external id.
    values[1] = match issue.who {
        Who::Id(id) => id.into(),
        Who::ExternalId { external_id, .. } => external_id.into(),
    };
    values.extend([
        EventKind::Issue.as_str().into(),
        announcement.event.into(),
        prefix.clone().into(),
        suffix.clone().into(),
        announcement.body.to_string().into(),
    ]);
    let mut key = String::new();
    if let Some(k) = keyed {
        key = KEY_RECORDED.replace("{answer}", k.answer.sql());
        values.extend([
            k.keyed.operation.into(),
            k.keyed.key.clone().into(),
            k.keyed.request_hash.clone().into(),
            i32::from(k.status).into(),
        ]);
    }
    let who = match issue.who {
        Who::Id(_) => "who AS (SELECT CAST($2 AS bigint) AS id)".to_string(),
        Who::ExternalId { org_id, create, .. } => {
            values.push(org_id.into());
            let org = values.len();
            let found =
                format!("SELECT id FROM customers WHERE org_id = ${org} AND external_id = $2");
            if create {
                CREATED_WHO
                    .replace("{found}", &found)
                    .replace("{org}", &format!("${org}"))
            } else {
                format!("who AS ({found})")
            }
        }
    };
    let claim = issuance::claim_sql(DbBackend::Postgres, true);
    let sql = format!("WITH {who}, claimed AS ({claim}), {RECORDED}{key} SELECT * FROM claimed");
    let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    match db.query_one_raw(stmt).await? {
        Some(row) => Ok(Some(coupons::Model::from_query_result(&row, "")?)),
        None => Ok(None),
    }
}

/// `who` for a customer created when the org has none (`{found}` looks it up, `{org}` is the
/// org's parameter, `$3` the claim's time): a data-modifying statement cannot sit inside
/// `who`, so the look-up and the insert come before it.
const CREATED_WHO: &str = "\
found AS ({found}), \
made AS (\
    INSERT INTO customers (org_id, external_id, transaction_count, created_at, updated_at) \
    SELECT {org}, $2, 0, $3, $3 WHERE NOT EXISTS (SELECT 1 FROM found) \
    ON CONFLICT (org_id, external_id) DO NOTHING RETURNING id), \
who AS (SELECT id FROM found UNION ALL SELECT id FROM made)";

/// After the claim of [`issuance::claim_available`] (`claimed`, its seven values): the event
/// of [`events::record_announced`] and its fan-out, reading the claimed row. `jsonb_set`
/// fills the body's coupon and customer id (a `NULL` balance is JSON null, not a missing body).
const RECORDED: &str = "\
recorded AS (\
    INSERT INTO coupon_events (org_id, coupon_id, pool_id, customer_id, kind, detail, created_at) \
    SELECT org_id, id, pool_id, customer_id, $8, NULL, $3 FROM claimed), \
queued AS (\
    INSERT INTO outbox (org_id, channel, dedup_key, payload, attempts, next_attempt_at, created_at) \
    SELECT c.org_id, 'webhook', 'webhook:' || w.id || ':' || $9 || ':' || $10 || c.id || $11, \
    json_build_object('webhook_id', w.id, 'message_id', 'msg_' || gen_random_uuid(), \
    'body', jsonb_set(jsonb_set(jsonb_set(jsonb_set($12::jsonb, \
    '{data,customer,id}', to_jsonb(c.customer_id)), \
    '{data,coupon,id}', to_jsonb(c.id)), \
    '{data,coupon,code}', to_jsonb(c.code)), \
    '{data,coupon,balance}', COALESCE(to_jsonb(c.balance), 'null'::jsonb))), 0, $3, $3 \
    FROM claimed c JOIN webhooks w ON w.org_id = c.org_id \
    AND w.events::jsonb @> jsonb_build_array($9::text) \
    ON CONFLICT (dedup_key) DO NOTHING)";

/// The idempotency key's answer ([`Answer::sql`] in place of `{answer}`), after
/// the claim's and [`RECORDED`]'s twelve values: operation, key, request hash and status.
const KEY_RECORDED: &str = ", \
keyed AS (\
    INSERT INTO idempotency_keys (org_id, operation, key, request_hash, status, response, created_at) \
    SELECT org_id, $13, $14, $15, $16, {answer}, $3 FROM claimed)";
