//! Connecting to Postgres, creating the database on first start, and applying `migrations/`.
//!
//! Two ways in. Queries use `DATABASE_URL`, which may be a transaction-mode pooler (PgBouncer):
//! there every transaction, and every statement outside one, may run on a different server
//! connection, so nothing may outlive a transaction (no named prepared statements, no session
//! advisory locks, no `set` without `local`, no temporary tables, no LISTEN). What needs a
//! session (LISTEN, the migrator's advisory lock, `create database`) uses the direct
//! `DATABASE_LISTEN_URL`.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    ConnectOptions, Connection, Executor, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub fn connect_options(database_url: &str) -> anyhow::Result<PgConnectOptions> {
    PgConnectOptions::from_str(database_url)
        .context("DATABASE_URL is not a valid Postgres URL")
        .map(|o| o.log_statements(tracing::log::LevelFilter::Debug))
}

/// Where queries go and where session work goes; the same server unless a pooler is in between.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `DATABASE_URL`; with `DATABASE_POOLED=true`, without a statement cache.
    pub queries: PgConnectOptions,
    /// `DATABASE_LISTEN_URL`: LISTEN, migrations, database creation.
    pub direct: PgConnectOptions,
}

impl Endpoints {
    /// `database_url` for queries (through a transaction-mode pooler when `pooled`) and
    /// `listen_url` for what needs a session.
    pub fn new(database_url: &str, listen_url: &str, pooled: bool) -> anyhow::Result<Self> {
        let queries = connect_options(database_url)?;
        // No statement is kept across transactions: with the cache off, every statement is the
        // unnamed one, parsed, bound and executed in one go (see vendor/README.md).
        let queries = if pooled {
            queries.statement_cache_capacity(0)
        } else {
            queries
        };
        let direct = PgConnectOptions::from_str(listen_url)
            .context("DATABASE_LISTEN_URL is not a valid Postgres URL")?
            .log_statements(tracing::log::LevelFilter::Debug);
        Ok(Self { queries, direct })
    }

    /// Creates the database when missing and applies `migrations/`, over the direct connection:
    /// the migrator holds a session-level advisory lock so that instances starting together
    /// migrate one at a time.
    pub async fn create_and_migrate(&self) -> anyhow::Result<()> {
        create_database_if_missing(&self.direct).await?;
        let mut connection = PgConnection::connect_with(&self.direct)
            .await
            .context("could not connect to Postgres (DATABASE_LISTEN_URL) to migrate")?;
        MIGRATOR
            .run(&mut connection)
            .await
            .context("migrations failed")?;
        connection.close().await.ok();
        Ok(())
    }

    /// The pool that LISTEN connections come from: each listener keeps one connection for as
    /// long as it listens (the settings cache, the send workers, the users cache and the
    /// activity feed: four per instance), with room for one reconnecting before its old
    /// connection is back.
    pub fn listen_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(6)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(self.direct.clone())
    }
}

/// A pool that gives up quickly when Postgres is down, so requests answer 503 instead of hanging.
pub async fn pool(options: PgConnectOptions, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options)
        .await
        .context("could not connect to Postgres")
}

/// Creates the database named in `options` when it does not exist yet, connecting to the
/// server's `postgres` database to do so.
pub async fn create_database_if_missing(options: &PgConnectOptions) -> anyhow::Result<()> {
    let name = options.get_database().unwrap_or("postgres").to_string();
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .context("could not connect to the Postgres server to create the database")?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let statement = format!("create database \"{}\"", name.replace('"', "\"\""));
        match admin.execute(sqlx::AssertSqlSafe(statement)).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another instance created it between our check and our statement.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).with_context(|| format!("could not create database {name}")),
        }
    }
    Ok(())
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("migrations failed")
}

/// Runs one batch of a table owner's purge statement (`$1` the age, `$2` the batch size; rows
/// claimed with `for update skip locked`) and returns how many rows it deleted or changed.
pub async fn purge_batch(
    pool: &PgPool,
    statement: &'static str,
    age: i32,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(statement)
        .bind(age)
        .bind(limit)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Errors that mean "Postgres cannot be reached right now" rather than "this query is wrong".
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        // A connection cut mid-handshake shows up as a protocol error (unexpected bytes or EOF).
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => {
            // Class 08 (connection exception) and 57P0x (admin shutdown, crash shutdown, cannot connect now).
            e.code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
        }
        _ => false,
    }
}

/// Whether a database error is a unique violation of the named constraint or index.
pub fn is_unique_violation(error: &sqlx::Error, constraint: &str) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation() && e.constraint() == Some(constraint))
}

pub fn is_foreign_key_violation(error: &sqlx::Error, constraint: &str) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_foreign_key_violation() && e.constraint() == Some(constraint))
}

/// A dedicated connection listening on one NOTIFY channel (the settings cache, the send workers,
/// the users cache and the activity feed each keep one). `pool` must be a direct one ([`Endpoints::listen_pool`]): a
/// transaction-mode pooler would hand the LISTEN's server connection to another client.
pub async fn listen(
    pool: &PgPool,
    channel: &str,
) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Hands each id `listener` hears to `on_id` until `stop`. Notifications sent while the
/// connection was lost are gone, so after a loss (the listener connects again by itself on the
/// next receive) `on_gap` runs: whatever the ids stand for may have changed meanwhile. `what`
/// names the ids in the log.
pub async fn follow_ids<Handled: std::future::Future<Output = ()>>(
    mut listener: sqlx::postgres::PgListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
    what: &str,
    mut on_id: impl FnMut(uuid::Uuid) -> Handled,
    mut on_gap: impl FnMut(),
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            received = listener.try_recv() => match received {
                Ok(Some(n)) => match n.payload().parse() {
                    Ok(id) => on_id(id).await,
                    Err(_) => tracing::warn!(what, payload = n.payload(), "ignoring a malformed notification"),
                },
                Ok(None) => {
                    tracing::warn!(what, "a listener lost its connection; treating everything as changed");
                    on_gap();
                }
                Err(e) => {
                    tracing::warn!(what, error = %e, "a listener failed; retrying");
                    on_gap();
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                    }
                }
            }
        }
    }
}
