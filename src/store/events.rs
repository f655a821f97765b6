//! The customer's coupon history. Every state change writes its event in its own transaction.

use crate::store::entity::{coupon_events, coupons};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, DeriveActiveEnum, EntityTrait, EnumIter,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value,
    sea_query::{Query, StringLen},
};

/// What happened to a coupon, in the vocabulary of the customer's event history.
// Stored as its name in `coupon_events.kind`: never rename a `string_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum EventKind {
    #[sea_orm(string_value = "coupon_issue")]
    Issue,
    #[sea_orm(string_value = "coupon_redeem")]
    Redeem,
    #[sea_orm(string_value = "coupon_unredeem")]
    Unredeem,
    #[sea_orm(string_value = "coupon_invalidate")]
    Invalidate,
    #[sea_orm(string_value = "coupon_unassign")]
    Unassign,
    #[sea_orm(string_value = "coupon_transfer")]
    Transfer,
    #[sea_orm(string_value = "coupon_receive")]
    Receive,
    #[sea_orm(string_value = "coupon_expire")]
    Expire,
    #[sea_orm(string_value = "coupon_revoke")]
    Revoke,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Issue,
        EventKind::Redeem,
        EventKind::Unredeem,
        EventKind::Invalidate,
        EventKind::Unassign,
        EventKind::Transfer,
        EventKind::Receive,
        EventKind::Expire,
        EventKind::Revoke,
    ];

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Issue => "coupon_issue",
            EventKind::Redeem => "coupon_redeem",
            EventKind::Unredeem => "coupon_unredeem",
            EventKind::Invalidate => "coupon_invalidate",
            EventKind::Unassign => "coupon_unassign",
            EventKind::Transfer => "coupon_transfer",
            EventKind::Receive => "coupon_receive",
            EventKind::Expire => "coupon_expire",
            EventKind::Revoke => "coupon_revoke",
        }
    }
}

/// Records an event for `customer_id` (the coupon's holder unless the change is about another
/// customer, as with transfers).
pub async fn record<C: ConnectionTrait>(
    db: &C,
    coupon: &coupons::Model,
    customer_id: Option<i64>,
    kind: EventKind,
    detail: Option<serde_json::Value>,
) -> Result<(), DbErr> {
    let values = event_values(coupon, customer_id, kind, detail, Utc::now());
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        INSERT_EVENT,
        values,
    ))
    .await?;
    Ok(())
}

/// [`INSERT_EVENT`]'s seven values.
fn event_values(
    coupon: &coupons::Model,
    customer_id: Option<i64>,
    kind: EventKind,
    detail: Option<serde_json::Value>,
    now: DateTime<Utc>,
) -> [Value; 7] {
    [
        coupon.org_id.into(),
        coupon.id.into(),
        coupon.pool_id.into(),
        customer_id.into(),
        kind.as_str().into(),
        detail.into(),
        now.into(),
    ]
}

/// A webhook queued with an event for every subscription of the org to it.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// The webhook event's name, as subscriptions list it.
    pub event: &'static str,
    /// Names this occurrence among the org's events of its kind: a subscription's dedup key.
    pub occurrence: String,
    /// The webhook's body, as JSON text.
    pub body: String,
}

impl Fanout {
    /// Its parameters of the fan-out statements: event name, occurrence, body.
    fn values(self) -> [Value; 3] {
        [self.event.into(), self.occurrence.into(), self.body.into()]
    }
}

/// [`record`], with `fanout` queued in the outbox for every subscription of the coupon's org
/// to its event, skipping a subscription already holding the occurrence. On PostgreSQL event
/// and messages are one statement: the issue and redemption paths neither read the
/// subscriptions nor insert apart.
pub async fn record_announced<C: ConnectionTrait>(
    db: &C,
    coupon: &coupons::Model,
    customer_id: Option<i64>,
    kind: EventKind,
    detail: Option<serde_json::Value>,
    fanout: Fanout,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let event = event_values(coupon, customer_id, kind, detail, now);
    let backend = db.get_database_backend();
    if backend == DbBackend::Postgres {
        return announce_on_postgres(db, event, fanout, None).await;
    }
    db.execute_raw(Statement::from_sql_and_values(backend, INSERT_EVENT, event))
        .await?;
    let org_and_time = [coupon.org_id.into(), now.into()];
    let values: Vec<Value> = org_and_time.into_iter().chain(fanout.values()).collect();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        FAN_OUT_SQLITE,
        values,
    ))
    .await?;
    Ok(())
}

/// [`record_announced`] with the coupon's row saved first as `coupon` shows it (status,
/// holder, issue time, redemption count, balance). On PostgreSQL the update, the event and
/// the messages are one statement. The caller holds the row's lock, so `coupon` is what the
/// row becomes.
pub async fn save_announced<C: ConnectionTrait>(
    db: &C,
    coupon: &coupons::Model,
    customer_id: Option<i64>,
    kind: EventKind,
    detail: Option<serde_json::Value>,
    fanout: Fanout,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    if backend != DbBackend::Postgres {
        let save = Statement::from_sql_and_values(backend, save_sql(1), saved_values(coupon));
        db.execute_raw(save).await?;
        return record_announced(db, coupon, customer_id, kind, detail, fanout).await;
    }
    let event = event_values(coupon, customer_id, kind, detail, Utc::now());
    announce_on_postgres(db, event, fanout, Some(coupon)).await
}

/// The event and its fan-out as one PostgreSQL statement, after saving `saved` when given.
async fn announce_on_postgres<C: ConnectionTrait>(
    db: &C,
    event: [Value; 7],
    fanout: Fanout,
    saved: Option<&coupons::Model>,
) -> Result<(), DbErr> {
    let mut values: Vec<Value> = event.into_iter().chain(fanout.values()).collect();
    let saving = match saved {
        Some(coupon) => {
            values.extend(saved_values(coupon));
            format!("saved AS ({}), ", save_sql(11))
        }
        None => String::new(),
    };
    let sql = format!("WITH {saving}recorded AS ({INSERT_EVENT}) {FAN_OUT_POSTGRES}");
    let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    db.execute_raw(stmt).await?;
    Ok(())
}

/// The update [`save_announced`] makes, its parameters numbered from `first`.
fn save_sql(first: usize) -> String {
    let p = |i: usize| format!("${}", first + i);
    format!(
        "UPDATE coupons SET status = {}, customer_id = {}, issued_at = {}, \
         redemption_count = {}, balance = {}, last_status_change_at = {} WHERE id = {}",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6)
    )
}

fn saved_values(coupon: &coupons::Model) -> [Value; 7] {
    [
        coupon.status.into(),
        coupon.customer_id.into(),
        coupon.issued_at.into(),
        coupon.redemption_count.into(),
        coupon.balance.into(),
        coupon.last_status_change_at.into(),
        coupon.id.into(),
    ]
}

const INSERT_EVENT: &str = "INSERT INTO coupon_events \
    (org_id, coupon_id, pool_id, customer_id, kind, detail, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// After [`INSERT_EVENT`]'s seven values: the event name, occurrence and body. Each message
/// gets a random UUID: an id unique across databases, the same for every retry of it.
const FAN_OUT_POSTGRES: &str = "INSERT INTO outbox \
    (org_id, channel, dedup_key, payload, attempts, next_attempt_at, created_at) \
    SELECT $1, 'webhook', 'webhook:' || w.id || ':' || $8 || ':' || $9, \
    json_build_object('webhook_id', w.id, 'message_id', 'msg_' || gen_random_uuid(), \
    'body', $10::json), 0, $7, $7 \
    FROM webhooks w WHERE w.org_id = $1 AND w.events::jsonb @> jsonb_build_array($8::text) \
    ON CONFLICT (dedup_key) DO NOTHING";

/// SQLite numbers parameters in the order they first appear: org, time, then as above. It has
/// no UUID function: the version 4 UUID is put together from random bytes.
const FAN_OUT_SQLITE: &str = "INSERT INTO outbox \
    (org_id, channel, dedup_key, payload, attempts, next_attempt_at, created_at) \
    SELECT $1, 'webhook', 'webhook:' || w.id || ':' || $3 || ':' || $4, \
    json_object('webhook_id', w.id, 'message_id', 'msg_' || lower(hex(randomblob(4))) || '-' \
    || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' \
    || substr('89ab', 1 + abs(random()) % 4, 1) || substr(lower(hex(randomblob(2))), 2) || '-' \
    || lower(hex(randomblob(6))), 'body', json($5)), 0, $2, $2 \
    FROM webhooks w WHERE w.org_id = $1 \
    AND EXISTS (SELECT 1 FROM json_each(w.events) WHERE json_each.value = $3) \
    ON CONFLICT (dedup_key) DO NOTHING";

/// `coupon_issue` events for many freshly issued coupons, in one statement per thousand.
pub async fn record_issues<C: ConnectionTrait>(
    db: &C,
    issued: &[coupons::Model],
) -> Result<(), DbErr> {
    let now = Utc::now();
    for chunk in issued.chunks(1_000) {
        let rows = chunk.iter().map(|c| coupon_events::ActiveModel {
            org_id: Set(c.org_id),
            coupon_id: Set(c.id),
            pool_id: Set(c.pool_id),
            customer_id: Set(c.customer_id),
            kind: Set(EventKind::Issue),
            detail: Set(None),
            created_at: Set(now),
            ..Default::default()
        });
        coupon_events::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(())
}

/// Whose history to read.
#[derive(Debug, Clone, Copy)]
pub enum History<'a> {
    /// Everything recorded for one customer.
    Customer(i64),
    /// Everything that happened to a code: its own row and, for a common code, every
    /// customer's copy.
    Code { org_id: i64, code: &'a str },
}

/// One page of a history, newest first, optionally one kind only, and the total matching;
/// each event with the code it is about.
pub async fn history<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    of: History<'_>,
    kind: Option<EventKind>,
    page: u64,
    per_page: u64,
) -> Result<(Vec<(coupon_events::Model, String)>, u64), DbErr> {
    use coupon_events::Column as E;
    let mut query = coupon_events::Entity::find().filter(E::OrgId.eq(org_id));
    query = match of {
        History::Customer(id) => query.filter(E::CustomerId.eq(id)),
        History::Code { org_id, code } => query.filter(
            E::CouponId.in_subquery(
                Query::select()
                    .column(coupons::Column::Id)
                    .from(coupons::Entity)
                    .and_where(coupons::Column::OrgId.eq(org_id))
                    .and_where(coupons::Column::Code.eq(code))
                    .to_owned(),
            ),
        ),
    };
    if let Some(kind) = kind {
        query = query.filter(E::Kind.eq(kind));
    }
    let (events, total) = super::page_of(db, query.order_by_desc(E::Id), page, per_page).await?;
    let ids: Vec<i64> = events.iter().map(|e| e.coupon_id).collect();
    let codes: std::collections::HashMap<i64, String> = coupons::Entity::find()
        .select_only()
        .column(coupons::Column::Id)
        .column(coupons::Column::Code)
        .filter(coupons::Column::Id.is_in(ids))
        .into_tuple::<(i64, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let items = events
        .into_iter()
        .map(|e| {
            let code = codes.get(&e.coupon_id).cloned().unwrap_or_default();
            (e, code)
        })
        .collect();
    Ok((items, total))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveEnum, Iterable};

    use super::*;

    #[test]
    fn kinds_keep_their_stored_names() {
        let names = [
            "coupon_issue",
            "coupon_redeem",
            "coupon_unredeem",
            "coupon_invalidate",
            "coupon_unassign",
            "coupon_transfer",
            "coupon_receive",
            "coupon_expire",
            "coupon_revoke",
        ];
        let kinds: Vec<EventKind> = EventKind::iter().collect();
        assert_eq!(kinds, EventKind::ALL);
        for (kind, name) in kinds.into_iter().zip(names) {
            assert_eq!((kind.to_value(), kind.as_str()), (name.to_string(), name));
            assert_eq!(EventKind::try_from_value(&name.to_string()).unwrap(), kind);
            assert_eq!(EventKind::parse(name), Some(kind));
        }
        assert!(EventKind::try_from_value(&"coupon_claim".to_string()).is_err());
    }
}
