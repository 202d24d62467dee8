//! `dbserver` — bm-dbserver. Key types: [`DbServer`] (hosts tablet replicas, serves the
//! `TabletService` and the Raft transport on its RPC port, heartbeats to the mserver leader)
//! and [`DbServerConfig`].
//!
//! * Tablets are created when the mserver asks (a `CreateTablet` RPC after `CreateTable`, or
//!   a heartbeat reply listing replicas this server should host) and reopened from their
//!   persisted descriptors at start.
//! * The server's identity (uuid and Raft node id) is created on first start and kept in its
//!   store; a store that cannot be read stops the server rather than being re-created.
//! * Observability: [`web_ui`] (admin pages and JSON API on port 20000), the metrics
//!   registry ([`DbServer::metrics`]: RPCs, tablet operations, Raft, storage, process) and
//!   [`OpMetrics`] for every read and write, whether it came over RPC or in-process.

mod api_stub;
mod service;
pub mod web_ui;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::metrics::{CallMetrics, Registry};
use common::Hlc;
use consensus::{GroupEnv, NodeId, RaftRouter, Timing};
use rpc::mserver::mserver_service_client::MserverServiceClient;
use rpc::mserver::{CreateTabletRequest, HeartbeatRequest, TabletReport};
use storage::{Cf, FjallEngine, KvEngine, WriteBatch};
use tablet::{PeerMeta, Tablet, TabletMeta};

pub use api_stub::{serve_placeholder, Protocol};

/// Settings of a dbserver.
#[derive(Clone, Debug)]
pub struct DbServerConfig {
    /// Address peers and clients use to reach this server's RPC port.
    pub rpc_addr: String,
    /// Address of this server's web UI, as shown to people.
    pub http_addr: String,
    /// Address drivers use to reach this server's BCQL port (reported to the mservers for
    /// `system.peers`); empty if it serves no BCQL.
    pub cql_addr: String,
    pub mserver_addrs: Vec<String>,
    pub data_dir: PathBuf,
    pub timing: Timing,
    pub heartbeat_interval_ms: u64,
    /// How long MVCC history is kept for reads in the past.
    pub history_retention_secs: u64,
    /// The bound on clock skew between servers that transactions assume (µs).
    pub max_clock_skew_usec: u64,
}

/// Errors starting or running a dbserver.
#[derive(Debug, thiserror::Error)]
pub enum DbServerError {
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Tablet(#[from] tablet::TabletError),
    #[error("{0}")]
    Other(String),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Instance {
    server_uuid: String,
    node_id: NodeId,
}

/// Tablet reads, scans and writes served by this server (in-process or over RPC).
#[derive(Debug)]
pub struct OpMetrics {
    ops: CallMetrics,
    /// Keys read and scans done, since start.
    reads: AtomicU64,
    /// Write batches applied, since start.
    writes: AtomicU64,
}

impl OpMetrics {
    fn new() -> Self {
        Self {
            ops: CallMetrics::new(Vec::new(), |op| vec![("op", op.to_owned())]),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    fn register(&self, r: &Registry) {
        self.ops.register(
            r,
            "aisql_tablet_request",
            [
                "Tablet requests served (in-process or over RPC), by operation",
                "Tablet requests answered with an error status, by operation",
                "Time to serve a tablet request, by operation",
            ],
        );
    }

    /// Count one request of `op` covering `n` keys (reads) or write batches (writes).
    pub(crate) fn observe(&self, op: &'static str, elapsed: Duration, n: u64, ok: bool) {
        self.ops.observe(op, elapsed, ok);
        if op == "read" || op == "scan" {
            self.reads.fetch_add(n, Ordering::Relaxed);
        } else {
            self.writes.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// (reads, writes) since start.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.reads.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}

/// Time between MVCC garbage-collection passes (which also measure tablet sizes), and before
/// the first: a pass reads every version of every tablet, which a server just started (often
/// being loaded) needs less than the CPU.
const GC_INTERVAL: Duration = Duration::from_secs(60);

/// A running dbserver.
pub struct DbServer {
    pub(crate) config: DbServerConfig,
    pub(crate) uuid: String,
    pub(crate) node_id: NodeId,
    pub(crate) env: GroupEnv,
    pub(crate) clock: Arc<Hlc>,
    pub(crate) tablets: RwLock<HashMap<String, Arc<Tablet>>>,
    /// Serializes tablet creation and deletion.
    pub(crate) lifecycle: tokio::sync::Mutex<()>,
    pub(crate) started: Instant,
    pub(crate) metrics: Arc<Registry>,
    pub(crate) rpc_metrics: common::metrics::RpcMetrics,
    pub(crate) ops: OpMetrics,
    /// Bytes of rows per tablet, refreshed by every GC pass ([`GC_INTERVAL`]).
    pub(crate) sizes: Mutex<HashMap<String, u64>>,
}

impl DbServer {
    /// Open the store (creating the identity on first start) and reopen every tablet.
    pub async fn start(config: DbServerConfig) -> Result<Arc<DbServer>, DbServerError> {
        let engine: Arc<dyn KvEngine> = Arc::new(FjallEngine::open(&config.data_dir)?);
        let instance = match engine.get(Cf::Meta, b"instance")? {
            Some(raw) => bincode::deserialize::<Instance>(&raw).map_err(|e| {
                DbServerError::Other(format!(
                    "corrupt instance record in {}: {e}",
                    config.data_dir.display()
                ))
            })?,
            None => {
                let u = uuid::Uuid::new_v4();
                let node_id =
                    u64::from_be_bytes(u.as_bytes()[..8].try_into().unwrap_or([1; 8])) >> 1 | 1;
                let inst = Instance {
                    server_uuid: u.simple().to_string(),
                    node_id,
                };
                let mut b = WriteBatch::new();
                b.put(
                    Cf::Meta,
                    b"instance".to_vec(),
                    bincode::serialize(&inst).map_err(|e| DbServerError::Other(e.to_string()))?,
                );
                engine.write(b)?;
                engine.sync()?;
                inst
            }
        };
        let env = GroupEnv {
            wal: consensus::open_wal(engine.as_ref(), &config.data_dir.join("wal"))?,
            engine: engine.clone(),
            pool: rpc::ChannelPool::new(),
            router: RaftRouter::new(),
            timing: config.timing,
            metrics: Default::default(),
        };
        env.router
            .quiet_for(Duration::from_millis(config.timing.election_timeout_max_ms));
        let server = Arc::new(DbServer {
            config,
            uuid: instance.server_uuid,
            node_id: instance.node_id,
            env,
            clock: Arc::new(Hlc::new()),
            tablets: RwLock::new(HashMap::new()),
            lifecycle: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            metrics: Registry::new(),
            rpc_metrics: common::metrics::RpcMetrics::new(),
            ops: OpMetrics::new(),
            sizes: Mutex::new(HashMap::new()),
        });
        server.rpc_metrics.register(&server.metrics);
        server.ops.register(&server.metrics);
        server
            .env
            .metrics
            .register(&server.metrics, server.env.router.clone());
        storage::register_metrics(
            &server.metrics,
            server.env.engine.clone(),
            server.env.wal.clone(),
        );
        web_ui::register_metrics(&server);
        for meta in TabletMeta::load_all(engine.as_ref())? {
            let init = meta.initial_leader_uuid == server.uuid;
            let t = Tablet::open(
                &server.env,
                meta,
                server.node_id,
                server.clock.clone(),
                init,
                server.config.history_retention_secs * 1_000_000,
            )
            .await?;
            server
                .tablets
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(t.id().to_owned(), t);
        }
        tracing::info!(uuid = %server.uuid, tablets = server.tablets.read().map(|t| t.len()).unwrap_or(0), "dbserver started");
        Ok(server)
    }

    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    pub fn rpc_addr(&self) -> &str {
        &self.config.rpc_addr
    }

    pub fn config(&self) -> &DbServerConfig {
        &self.config
    }

    /// The registry behind this server's `/prometheus-metrics`.
    pub fn metrics(&self) -> Arc<Registry> {
        self.metrics.clone()
    }

    /// Bytes of rows (all versions, before compression) of `tablet`, as last measured.
    pub fn tablet_bytes(&self, tablet: &str) -> Option<u64> {
        self.sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tablet)
            .copied()
    }

    /// Group-commit counters of this server's store.
    pub fn sync_stats(&self) -> &storage::SyncStats {
        self.env.wal.stats()
    }

    pub fn pool(&self) -> rpc::ChannelPool {
        self.env.pool.clone()
    }

    /// A client of this cluster that reaches this server's tablets without the network.
    pub fn local_client(self: &Arc<Self>) -> client::Client {
        let c = client::Client::with_local(
            self.config.mserver_addrs.clone(),
            self.env.pool.clone(),
            client::LocalTablets {
                rpc_addr: self.config.rpc_addr.clone(),
                service: Arc::new(service::Service(self.clone())),
                clock: self.clock.clone(),
            },
        );
        c.set_max_clock_skew_usec(self.config.max_clock_skew_usec);
        c
    }

    pub fn tablet(&self, id: &str) -> Option<Arc<Tablet>> {
        self.tablets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    pub fn tablet_list(&self) -> Vec<Arc<Tablet>> {
        let mut v: Vec<_> = self
            .tablets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id().cmp(b.id()));
        v
    }

    /// Create a replica (idempotent).
    pub(crate) async fn create_tablet(
        &self,
        req: CreateTabletRequest,
    ) -> Result<(), DbServerError> {
        let _guard = self.lifecycle.lock().await;
        if self.tablet(&req.tablet_id).is_some() {
            return Ok(());
        }
        if !req.peers.iter().any(|p| p.server_uuid == self.uuid) {
            return Err(DbServerError::Other(format!(
                "tablet {} has no replica on this server",
                req.tablet_id
            )));
        }
        let meta = TabletMeta {
            tablet_id: req.tablet_id.clone(),
            table_id: req.table_id,
            table_name: req.table_name,
            hash_start: req.hash_start,
            hash_end: req.hash_end,
            peers: req
                .peers
                .into_iter()
                .map(|p| PeerMeta {
                    server_uuid: p.server_uuid,
                    node_id: p.node_id,
                    rpc_addr: p.rpc_addr,
                })
                .collect(),
            initial_leader_uuid: req.initial_leader_uuid,
        };
        meta.save(self.env.engine.as_ref())?;
        let init = meta.initial_leader_uuid == self.uuid;
        let t = Tablet::open(
            &self.env,
            meta,
            self.node_id,
            self.clock.clone(),
            init,
            self.config.history_retention_secs * 1_000_000,
        )
        .await?;
        tracing::info!(tablet = %t.id(), table = %t.meta().table_name, "tablet replica created");
        self.tablets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(t.id().to_owned(), t);
        Ok(())
    }

    /// Delete a replica and its data (idempotent).
    pub(crate) async fn delete_tablet(&self, id: &str) -> Result<(), DbServerError> {
        let _guard = self.lifecycle.lock().await;
        let Some(t) = self
            .tablets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
        else {
            return Ok(());
        };
        self.env.router.unregister(id);
        t.shutdown().await;
        t.destroy()?;
        tracing::info!(tablet = %id, "tablet replica deleted");
        Ok(())
    }

    fn reports(&self) -> Vec<TabletReport> {
        self.tablet_list()
            .iter()
            .map(|t| {
                let s = t.status();
                TabletReport {
                    tablet_id: t.id().to_owned(),
                    is_leader: s.is_leader,
                    term: s.term,
                    last_applied: s.last_applied,
                    size_bytes: self.tablet_bytes(t.id()).unwrap_or(0),
                }
            })
            .collect()
    }

    /// Heartbeat to the mserver leader forever; act on its replies.
    async fn heartbeat_loop(self: Arc<Self>) {
        let mut leader: Option<String> = None;
        let mut next = 0usize;
        let interval = Duration::from_millis(self.config.heartbeat_interval_ms);
        loop {
            let addr = leader.clone().unwrap_or_else(|| {
                self.config.mserver_addrs[next % self.config.mserver_addrs.len()].clone()
            });
            let req = HeartbeatRequest {
                server_uuid: self.uuid.clone(),
                node_id: self.node_id,
                rpc_addr: self.config.rpc_addr.clone(),
                http_addr: self.config.http_addr.clone(),
                tablets: self.reports(),
                disk_bytes: self.env.engine.disk_space(),
                reads_total: self.ops.totals().0,
                writes_total: self.ops.totals().1,
                cql_addr: self.config.cql_addr.clone(),
            };
            let resp = match self.env.pool.get(&addr) {
                Ok(ch) => {
                    let mut c = MserverServiceClient::new(ch);
                    tokio::time::timeout(Duration::from_secs(5), c.heartbeat(req)).await
                }
                Err(e) => Ok(Err(e)),
            };
            match resp {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    match rpc::code_of(&r.status) {
                        common::StatusCode::Ok => {
                            leader = Some(addr);
                            for c in r.create_tablets {
                                let id = c.tablet_id.clone();
                                if let Err(e) = self.create_tablet(c).await {
                                    tracing::warn!(tablet = %id, error = %e, "creating tablet from heartbeat");
                                }
                            }
                            for id in r.delete_tablets {
                                if let Err(e) = self.delete_tablet(&id).await {
                                    tracing::warn!(tablet = %id, error = %e, "deleting tablet from heartbeat");
                                }
                            }
                        }
                        common::StatusCode::NotLeader => {
                            let hint = r.status.map(|s| s.leader_hint).unwrap_or_default();
                            leader = (!hint.is_empty()).then_some(hint);
                            if leader.is_none() {
                                next += 1;
                            }
                            continue_soon().await;
                            continue;
                        }
                        _ => {
                            tracing::debug!(status = ?r.status, "heartbeat refused");
                            leader = None;
                            next += 1;
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "heartbeat failed");
                    leader = None;
                    next += 1;
                }
                Err(_) => {
                    leader = None;
                    next += 1;
                }
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Resolve intents of abandoned transactions: every second, each leader replica looks
    /// for intents older than the transaction timeout and settles them by their status
    /// record (aborting those that never committed), so provisional records never linger
    /// even on keys nobody reads.
    async fn intent_sweep_loop(self: Arc<Self>) {
        let client = self.local_client();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0);
            let cutoff = now_us.saturating_sub(txn::DEFAULT_TIMEOUT_MICROS);
            for t in self.tablet_list() {
                if !t.status().is_leader {
                    continue;
                }
                let old = match t.old_intents(cutoff) {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::warn!(tablet = %t.id(), error = %e, "listing intents");
                        continue;
                    }
                };
                for (key, intent) in old {
                    let status = match client
                        .txn_outcome(&intent.txn, intent.status_at.as_ref(), intent.written_at_us)
                        .await
                    {
                        Ok(Some(s)) => s,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::debug!(error = %e, "transaction status");
                            continue;
                        }
                    };
                    let commit_ht = match status {
                        txn::TxnStatus::Committed { commit_ht } => Some(commit_ht),
                        txn::TxnStatus::Aborted => None,
                        // txn_outcome answers decided statuses only.
                        txn::TxnStatus::Pending { .. } => continue,
                    };
                    let op = tablet::WriteOp {
                        key,
                        condition: tablet::Condition::Resolve {
                            txn: intent.txn,
                            commit_ht,
                        },
                        ..Default::default()
                    };
                    if let Err(e) = t.write(vec![op]).await {
                        tracing::debug!(tablet = %t.id(), error = %e, "resolving an intent");
                    }
                }
            }
        }
    }

    /// Drop old MVCC versions every minute.
    async fn gc_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(GC_INTERVAL).await;
            let mut sizes = HashMap::new();
            for t in self.tablet_list() {
                let t2 = t.clone();
                match tokio::task::spawn_blocking(move || t2.gc()).await {
                    Ok(Ok(stats)) => {
                        if stats.removed > 0 {
                            tracing::debug!(tablet = %t.id(), removed = stats.removed, "mvcc gc");
                        }
                        sizes.insert(t.id().to_owned(), stats.kept_bytes);
                    }
                    Ok(Err(e)) => tracing::warn!(tablet = %t.id(), error = %e, "mvcc gc"),
                    Err(_) => {}
                }
            }
            *self.sizes.lock().unwrap_or_else(|e| e.into_inner()) = sizes;
        }
    }

    /// Serve RPC on `listener` and run background loops until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), DbServerError> {
        let wire = rpc::WireServer {
            handler: Arc::new(service::Wire(service::Service(self.clone()))),
            metrics: self.rpc_metrics.clone(),
        };
        let incoming =
            rpc::incoming(listener, Some(wire)).map_err(|e| DbServerError::Other(e.to_string()))?;
        let hb = tokio::spawn(self.clone().heartbeat_loop());
        let gc = tokio::spawn(self.clone().gc_loop());
        let sweep = tokio::spawn(self.clone().intent_sweep_loop());
        let svc = rpc::tablet::tablet_service_server::TabletServiceServer::new(service::Service(
            self.clone(),
        ))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
        let raft_svc =
            rpc::raft::raft_service_server::RaftServiceServer::new(self.env.router.clone())
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20);
        let res = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .layer(rpc::MetricsLayer(self.rpc_metrics.clone()))
            .add_service(svc)
            .add_service(raft_svc)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        hb.abort();
        gc.abort();
        sweep.abort();
        self.shutdown().await;
        res.map_err(|e| DbServerError::Other(format!("rpc server: {e}")))
    }

    /// Stop every tablet and flush storage.
    pub async fn shutdown(&self) {
        for t in self.tablet_list() {
            t.shutdown().await;
        }
        self.env.wal.shutdown();
        let _ = self.env.engine.sync();
    }
}

async fn continue_soon() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}
