//! `bedis` — BEDIS, AiSQL's Redis-compatible API (RESP2 and RESP3, port 6879). A protocol
//! layer only: [`frame`] parses and encodes RESP, [`connection`] runs a client connection,
//! `cmd` implements the commands, and [`db`] maps Redis data onto AiSQL tables through the
//! client library, so every write is Raft-replicated and durable before it is answered.
//! Every command is counted and timed per command name in a
//! [`common::metrics::ApiMetrics`] (served on the BEDIS metrics port, 8300).

pub mod cmd;
pub mod connection;
pub mod db;
pub mod frame;
pub mod pubsub;

use std::net::TcpListener;

/// Connections open now (INFO `connected_clients`).
pub static CONNECTED_CLIENTS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
/// Connections waiting in a blocking command now (INFO `blocked_clients`).
pub static BLOCKED_CLIENTS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Most connections served at once; more wait for a slot.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Serve BEDIS on `listener` until `shutdown` resolves. The per-database tables created on
/// first use get `tablets_per_server` tablets for each live dbserver; commands and
/// connections are reported to `metrics`.
pub async fn serve(
    listener: TcpListener,
    client: client::Client,
    tablets_per_server: u32,
    metrics: common::metrics::ApiMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let dbs = db::Dbs::new(client, tablets_per_server);
    let expiries = tokio::spawn(cmd::watch_expiries(dbs.clone()));
    let served = rpc::serve_connections(listener, MAX_CONNECTIONS, shutdown, move |sock| {
        connection::handle(sock, dbs.clone(), metrics.clone())
    })
    .await;
    expiries.abort();
    served
}
