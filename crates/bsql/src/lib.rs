//! BSQL: the PostgreSQL-compatible API.
//!
//! * [`server`]: the wire protocol (pgwire) and per-connection handlers;
//! * [`session`]: a connection's session and the statement dispatcher;
//! * [`temp`]: temporary tables, in a schema of the session's own;
//! * [`cursor`]: DECLARE / FETCH / CLOSE;
//! * [`ddl`], [`dml`], [`copy`]: CREATE/ALTER/DROP, INSERT/UPDATE/DELETE/TRUNCATE, COPY;
//! * [`correlated`]: correlated subqueries DataFusion cannot decorrelate, row by row;
//! * [`fast`]: point reads and writes by primary key, without query planning;
//! * [`foreign`]: FOREIGN KEY checks and ON DELETE actions;
//! * [`index`]: secondary and unique indexes, each kept in an index table of its own;
//! * [`access`]: where reads and writes go (the open transaction block, or the tablets);
//! * [`provider`]: tables as DataFusion sees them (queries are planned and run by DataFusion);
//! * [`catalog`]: table definitions kept in the mserver's catalog, cached per server;
//! * [`pg_catalog`]: the PostgreSQL system tables and functions psql's listings read;
//! * [`row`], [`types`]: how rows and values are stored and typed;
//! * [`checked`]: integer arithmetic and conversions as PostgreSQL does them;
//! * [`strings`]: `format`, `quote_*`, `concat`, `VARIADIC`, `to_date` as PostgreSQL has them;
//! * [`to_char`]: `to_char` of numbers and timestamps (PostgreSQL's `formatting.c`, ported);
//! * [`pgtext`]: values written as PostgreSQL writes them (floats, dates, timestamps);
//! * [`references`], [`literals`]: errors PostgreSQL raises before planning, with positions.

pub mod access;
pub mod arrays;
pub mod auth;
pub mod catalog;
pub mod checked;
pub mod coalesce;
pub mod copy;
pub mod correlated;
pub mod cursor;
pub mod ddl;
pub mod describe;
pub mod dml;
pub mod error;
pub mod fast;
pub mod foreign;
pub mod index;
pub mod literals;
pub mod pg_catalog;
pub mod pgtext;
pub mod provider;
pub mod references;
pub mod row;
pub mod server;
pub mod session;
pub mod strings;
pub mod temp;
pub mod to_char;
pub mod types;
pub mod views;

use std::net::TcpListener;
use std::sync::Arc;

/// Connections served at once; more wait for a slot.
const MAX_CONNECTIONS: usize = 1024;

/// How a BSQL server runs.
#[derive(Clone)]
pub struct Config {
    /// Tablets of each hash table created through SQL.
    pub num_tablets: u32,
    /// Clients must log in with a role's password, by SCRAM-SHA-256 (`--bsql_enable_auth`).
    pub password_auth: bool,
    /// TLS for clients that ask for it (`--bsql_ssl_cert_file`, `--bsql_ssl_key_file`).
    pub tls: Option<TlsAcceptor>,
}

pub use pgwire::tokio::TlsAcceptor;

/// A TLS acceptor from a PEM certificate chain and private key; errors name the file.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> std::io::Result<TlsAcceptor> {
    use pgwire::tokio::tokio_rustls::rustls::{self, pki_types};
    use pki_types::pem::PemObject;
    let bad = |path: &std::path::Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: {e}", path.display()),
        )
    };
    let certs = pki_types::CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(cert, &e))?;
    if certs.is_empty() {
        return Err(bad(cert, &"no certificate in the file"));
    }
    let key_der = pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(cert, &e))?;
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
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
        let tls = config.tls.clone();
        async move {
            let _conn = conn;
            let conn = handlers.0.clone();
            if let Err(e) = pgwire::tokio::process_socket(sock, tls, handlers).await {
                tracing::debug!("BSQL connection ended: {e}");
            }
            conn.close().await;
        }
    })
    .await
}
