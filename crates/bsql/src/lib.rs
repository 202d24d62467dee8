//! BSQL: the PostgreSQL-compatible API.
//!
//! * [`server`]: the wire protocol (pgwire) and per-connection handlers;
//! * [`session`]: a connection's session and the statement dispatcher;
//! * [`ddl`], [`dml`], [`copy`]: CREATE/ALTER/DROP, INSERT/UPDATE/DELETE/TRUNCATE, COPY;
//! * [`fast`]: point reads and writes by primary key, without query planning;
//! * [`access`]: where reads and writes go (the open transaction block, or the tablets);
//! * [`provider`]: tables as DataFusion sees them (queries are planned and run by DataFusion);
//! * [`catalog`]: table definitions kept in the mserver's catalog, cached per server;
//! * [`pg_catalog`]: the PostgreSQL system tables and functions psql's listings read;
//! * [`row`], [`types`]: how rows and values are stored and typed.

pub mod access;
pub mod auth;
pub mod catalog;
pub mod copy;
pub mod ddl;
pub mod describe;
pub mod dml;
pub mod error;
pub mod fast;
pub mod pg_catalog;
pub mod provider;
pub mod row;
pub mod server;
pub mod session;
pub mod types;
pub mod views;

use std::net::TcpListener;
use std::sync::Arc;

/// Connections served at once; more wait for a slot.
const MAX_CONNECTIONS: usize = 1024;

/// How a BSQL server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Tablets of each hash table created through SQL.
    pub num_tablets: u32,
    /// Clients must log in with a role's password, by SCRAM-SHA-256 (`--bsql_enable_auth`).
    pub password_auth: bool,
}

/// Serve the PostgreSQL protocol on `listener` until `shutdown` resolves; statements and
/// connections are reported to `metrics`.
pub async fn serve(
    listener: TcpListener,
    client: client::Client,
    config: Config,
    metrics: common::metrics::ApiMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let catalog = Arc::new(catalog::Catalog::new(client, config.num_tablets));
    let cancels = Arc::new(pgwire::api::ConnectionManager::new());
    rpc::serve_connections(listener, MAX_CONNECTIONS, shutdown, move |sock| {
        let handlers = server::Handlers(server::Conn::new(
            catalog.clone(),
            metrics.clone(),
            cancels.clone(),
            config.password_auth,
        ));
        let conn = metrics.connection();
        async move {
            let _conn = conn;
            if let Err(e) = pgwire::tokio::process_socket(sock, None, handlers).await {
                tracing::debug!("BSQL connection ended: {e}");
            }
        }
    })
    .await
}
