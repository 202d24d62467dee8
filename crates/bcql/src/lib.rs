//! `bcql` — BCQL, AiSQL's Cassandra-compatible API (CQL native protocol v4, port 9542).
//!
//! * [`frame`] — frame codec, LZ4, protocol notation; [`server`] — one connection.
//! * [`parser`] — CQL lexer and parser; [`types`] and [`values`] — types, values, literals.
//! * [`exec`] — the engine, PREPARE, DDL; [`dml`] — writes; [`select`] — reads;
//!   [`system`] — the virtual system tables drivers read; [`describe`] — DESCRIBE.
//! * [`schema`] — table definitions, the catalog, and the storage layout of rows.
//! * [`token`] — Cassandra's Murmur3 partitioner.

pub mod auth;
pub mod batch;
pub mod describe;
pub mod dml;
pub mod error;
pub mod exec;
pub mod frame;
pub mod index;
pub mod parser;
pub mod schema;
pub mod select;
pub mod server;
pub mod system;
pub mod token;
pub mod types;
pub mod values;

use std::net::TcpListener;
use std::sync::Arc;

/// Most connections served at once; more wait for a slot.
pub const MAX_CONNECTIONS: usize = 10_000;

/// How a BCQL server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The dbserver's uuid: the host id drivers see.
    pub server_uuid: String,
    /// Tablets of each table created through CQL.
    pub num_tablets: u32,
    /// Clients must log in with a role's password (`--use_cassandra_authentication`).
    pub password_auth: bool,
}

/// Serve BCQL on `listener` until `shutdown` resolves; connections and statements are
/// counted in `metrics` (served on the BCQL metrics port, 8200).
pub async fn serve(
    listener: TcpListener,
    client: client::Client,
    config: Config,
    metrics: common::metrics::ApiMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let mut addr = listener.local_addr()?;
    if addr.ip().is_unspecified() {
        // Drivers connect to rpc_address; a wildcard bind is reachable on loopback.
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let host_id = *uuid::Uuid::parse_str(&config.server_uuid)
        .unwrap_or_else(|_| uuid::Uuid::new_v4())
        .as_bytes();
    let node = exec::NodeInfo {
        cql_addr: addr,
        cluster_name: "AiSQL Cluster".into(),
        host_id,
    };
    let engine = Arc::new(exec::Engine::new(
        schema::Catalog::new(client, config.num_tablets),
        node,
        config.password_auth,
    ));
    rpc::serve_connections(listener, MAX_CONNECTIONS, shutdown, move |sock| {
        server::handle(sock, engine.clone(), metrics.clone())
    })
    .await
}
