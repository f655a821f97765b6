//! The only module that touches the database. Functions take a connection (or transaction), so
//! callers decide the transaction boundary.

pub mod api_keys;
pub mod coupons;
pub mod customers;
pub mod entity;
pub mod events;
pub mod exchange_rates;
pub mod generation;
pub mod groups;
pub mod idempotency;
pub mod imports;
pub mod issuance;
pub mod issue_at_once;
pub mod market;
pub mod notifications;
pub mod orgs;
pub mod outbox;
pub mod passes;
pub mod points;
pub mod pools;
pub mod reach;
pub mod redemptions;
pub mod revocation;
pub mod stores;
pub mod webhooks;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, RuntimeErr, Select, SqlErr, Statement, Value,
    sea_query::{ArrayType, Expr, ExprTrait, IntoColumnRef, extension::postgres::PgFunc},
};

use crate::config::DatabaseConfig;

/// Opens the connection pool. SQLite gets WAL, a busy timeout and one connection: SQLite has one
/// writer at a time anyway, and a single connection makes every transaction serialisable, which
/// is what the claim and limit paths rely on there. PostgreSQL is reached once first (see
/// [`reach`]), so a failure names its cause; afterwards a request waits at most the acquire
/// timeout for a connection, and the pool reconnects by itself when the database returns.
pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(config.database_url.clone());
    options
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(std::cmp::max(
            config.database_acquire_timeout_secs,
            1,
        )));
    if is_sqlite(&config.database_url) {
        // Its one connection is busy, not down, while a long job chunk writes: wait for it.
        options
            .acquire_timeout(Duration::from_secs(30))
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None::<Duration>)
            .max_lifetime(None::<Duration>)
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    .create_if_missing(true)
            });
    } else {
        reach::reach(
            &config.database_url,
            Duration::from_secs(std::cmp::max(config.database_connect_timeout_secs, 1)),
            Duration::from_secs(config.database_wait_secs),
        )
        .await
        .map_err(|cause| DbErr::Conn(RuntimeErr::Internal(cause.to_string())))?;
        options.max_connections(config.database_max_connections);
    }
    Database::connect(options).await
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Applies pending migrations. On PostgreSQL an advisory lock makes replicas that start together
/// take turns instead of racing to create the same tables.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    const LOCK_KEY: i64 = 0x0063_6f75_706f_6e64; // "coupond" in ASCII
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    if !postgres {
        return Migrator::up(db, None).await;
    }
    // Session-level advisory locks belong to one connection, so hold one for the whole run.
    let conn = db.clone();
    let lock =
        |sql: &str| Statement::from_sql_and_values(DbBackend::Postgres, sql, [LOCK_KEY.into()]);
    let txn = sea_orm::TransactionTrait::begin(&conn).await?;
    txn.execute_raw(lock("SELECT pg_advisory_xact_lock($1)"))
        .await?;
    let result = Migrator::up(&txn, None).await;
    match result {
        Ok(()) => txn.commit().await,
        Err(err) => {
            txn.rollback().await?;
            Err(err)
        }
    }
}

/// Whether the database answers within `within`; used by `/readyz`, which must answer
/// promptly even while connecting would hang until the acquire timeout.
pub async fn ping(db: &DatabaseConnection, within: Duration) -> bool {
    matches!(tokio::time::timeout(within, db.ping()).await, Ok(Ok(())))
}

/// Whether an error is a unique-constraint violation, which callers turn into a 409.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// `column IN (values)` written for the database. On PostgreSQL it is `column = ANY($1)` with
/// one array parameter: the statement text, and so its cached plan, stays the same whatever
/// the number of values, where every length of an IN list is a new statement that PostgreSQL
/// plans again (and, prepared, may switch to a generic plan that seeks badly). SQLite gets the
/// IN list.
pub fn any_of<V: Into<Value>>(
    backend: DbBackend,
    column: impl IntoColumnRef,
    ty: ArrayType,
    values: impl IntoIterator<Item = V>,
) -> Expr {
    let values: Vec<Value> = values.into_iter().map(Into::into).collect();
    if backend == DbBackend::Postgres {
        let array = Value::Array(ty, Some(Box::new(values)));
        Expr::col(column).eq(PgFunc::any(Expr::val(array)))
    } else {
        Expr::col(column).is_in(values)
    }
}

/// Page `page` (from 1) of an ordered query and the number of rows it matches, through
/// sea-orm's paginator.
pub async fn page_of<C, E>(
    db: &C,
    query: Select<E>,
    page: u64,
    per_page: u64,
) -> Result<(Vec<E::Model>, u64), DbErr>
where
    C: ConnectionTrait,
    E: EntityTrait,
    E::Model: Sync,
{
    let pages = query.paginate(db, per_page);
    let total = pages.num_items().await?;
    let items = pages.fetch_page(page.saturating_sub(1)).await?;
    Ok((items, total))
}
