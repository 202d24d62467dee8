//! `mserver` — bm-mserver, the metadata master. Key types: [`Mserver`] (the node: catalog
//! Raft group, liveness, placement, the `MserverService` RPC) and [`MserverConfig`].
//!
//! * The catalog ([`catalog::Catalog`]: namespaces, tables, tablets and their replicas,
//!   registered dbservers) is the state machine of the Raft group `sys.catalog`, so 1 or 3
//!   mservers work and any leader has all of it.
//! * Liveness is soft state on the leader: the time of each dbserver's last heartbeat and
//!   the tablet roles it reported. A new leader gives every server a fresh grace period.
//! * Node ids of mservers are their 1-based position in `--mserver_addrs`, which must list
//!   the same addresses in the same order on every mserver.
//! * Observability: [`web_ui`] (the admin pages and JSON API on port 10000), the
//!   `StatusService` RPC peers use to find each other's web UI, and the metrics registry
//!   ([`Mserver::metrics`]) behind `/prometheus-metrics`.

pub mod catalog;
mod service;
mod status;
pub mod web_ui;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use consensus::{BasicNode, GroupEnv, NodeId, Payload, Raft, RaftRouter, Timing};
use openraft::error::{ClientWriteError, RaftError};
use rpc::mserver::TabletReport;
use storage::{FjallEngine, KvEngine};

use catalog::{Catalog, CatalogApp, CatalogCmd};

/// The Raft group id of the catalog.
pub const CATALOG_GROUP: &str = "sys.catalog";

/// Settings of an mserver.
#[derive(Clone, Debug)]
pub struct MserverConfig {
    /// Address peers and dbservers use to reach this mserver (`host:port`).
    pub rpc_addr: String,
    /// Every mserver's RPC address, the same list in the same order on every mserver.
    pub mserver_addrs: Vec<String>,
    /// Address of this mserver's web UI (`host:port`), as shown to people and peers.
    pub http_addr: String,
    pub data_dir: PathBuf,
    pub replication_factor: u32,
    pub dbserver_unresponsive_timeout_ms: u64,
    pub timing: Timing,
}

/// Errors of mserver operations, mapped onto status codes for the wire.
#[derive(Debug, thiserror::Error)]
pub enum MserverError {
    #[error("this mserver is not the leader")]
    NotLeader { leader_addr: Option<String> },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("not enough live dbservers: need {need}, have {have}")]
    NotEnoughServers { need: u32, have: u32 },
    #[error("catalog unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error("{0}")]
    Start(String),
}

impl MserverError {
    pub fn status(&self) -> Option<rpc::common::Status> {
        use common::StatusCode as C;
        match self {
            MserverError::NotLeader { leader_addr } => rpc::not_leader(leader_addr.clone()),
            MserverError::InvalidArgument(m) => rpc::status(C::InvalidArgument, m.clone()),
            MserverError::AlreadyExists(_) => rpc::status(C::AlreadyExists, self.to_string()),
            MserverError::NotFound(_) => rpc::status(C::NotFound, self.to_string()),
            MserverError::NotEnoughServers { .. } => {
                rpc::status(C::NotEnoughServers, self.to_string())
            }
            MserverError::Unavailable(_) => rpc::status(C::ServiceUnavailable, self.to_string()),
            MserverError::Storage(_) => rpc::status(C::StorageError, self.to_string()),
            MserverError::Start(_) => rpc::status(C::Internal, self.to_string()),
        }
    }
}

/// What the leader last heard from a dbserver.
#[derive(Clone, Debug)]
pub(crate) struct Liveness {
    pub last_heartbeat: Instant,
    pub tablets: Vec<TabletReport>,
    pub disk_bytes: u64,
    /// (reads, writes) served since the dbserver started.
    pub counters: (u64, u64),
    /// (reads, writes) per second between the last two heartbeats.
    pub rates: (f64, f64),
    /// Where drivers reach the server's BCQL port (not persisted: every heartbeat says it).
    pub cql_addr: String,
}

impl Liveness {
    /// The record after a heartbeat; rates come from the change since `prev`.
    pub(crate) fn next(
        prev: Option<&Liveness>,
        tablets: Vec<TabletReport>,
        disk_bytes: u64,
        counters: (u64, u64),
    ) -> Liveness {
        let now = Instant::now();
        let rates = match prev {
            // A restarted server's counters start again at zero.
            Some(p) if counters.0 >= p.counters.0 && counters.1 >= p.counters.1 => {
                let dt = now.duration_since(p.last_heartbeat).as_secs_f64().max(1e-3);
                (
                    (counters.0 - p.counters.0) as f64 / dt,
                    (counters.1 - p.counters.1) as f64 / dt,
                )
            }
            _ => (0.0, 0.0),
        };
        Liveness {
            last_heartbeat: now,
            tablets,
            disk_bytes,
            counters,
            rates,
            cql_addr: String::new(),
        }
    }
}

/// A running mserver.
pub struct Mserver {
    pub(crate) config: MserverConfig,
    pub(crate) node_id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) catalog: Arc<RwLock<Catalog>>,
    pub(crate) live: Mutex<HashMap<String, Liveness>>,
    /// (term, since) of this node's current leadership, for the liveness grace period.
    pub(crate) leader_since: Mutex<Option<(u64, Instant)>>,
    pub(crate) pool: rpc::ChannelPool,
    pub(crate) env: GroupEnv,
    pub(crate) started: Instant,
    pub(crate) metrics: Arc<common::metrics::Registry>,
    pub(crate) rpc_metrics: common::metrics::RpcMetrics,
}

impl Mserver {
    /// Open the data directory and start the catalog Raft group.
    pub async fn start(config: MserverConfig) -> Result<Arc<Mserver>, MserverError> {
        let mut peers = config.mserver_addrs.clone();
        if peers.is_empty() {
            peers.push(config.rpc_addr.clone());
        }
        let pos = peers
            .iter()
            .position(|a| a == &config.rpc_addr)
            .ok_or_else(|| {
                MserverError::Start(format!(
                    "this mserver's address {} is not in --mserver_addrs {}",
                    config.rpc_addr,
                    peers.join(",")
                ))
            })?;
        let node_id = pos as NodeId + 1;
        let engine: Arc<dyn KvEngine> = Arc::new(FjallEngine::open(&config.data_dir)?);
        let pool = rpc::ChannelPool::new();
        let env = GroupEnv {
            wal: consensus::open_wal(engine.as_ref(), &config.data_dir.join("wal"))?,
            engine: engine.clone(),
            pool: pool.clone(),
            router: RaftRouter::new(),
            timing: config.timing,
            metrics: Default::default(),
        };
        env.router
            .quiet_for(Duration::from_millis(config.timing.election_timeout_max_ms));
        let app = Arc::new(CatalogApp::open(engine.clone())?);
        let catalog = app.state();
        let raft = consensus::start_group(&env, CATALOG_GROUP, node_id, app)
            .await
            .map_err(|e| MserverError::Start(e.to_string()))?;
        if !raft
            .is_initialized()
            .await
            .map_err(|e| MserverError::Start(e.to_string()))?
        {
            let members: BTreeMap<NodeId, BasicNode> = peers
                .iter()
                .enumerate()
                .map(|(i, a)| (i as NodeId + 1, BasicNode { addr: a.clone() }))
                .collect();
            if let Err(e) = raft.initialize(members).await {
                tracing::info!(error = %e, "catalog group initialize (another mserver may have done it)");
            }
        }
        let metrics = common::metrics::Registry::new();
        let rpc_metrics = common::metrics::RpcMetrics::new();
        rpc_metrics.register(&metrics);
        env.metrics.register(&metrics, env.router.clone());
        storage::register_metrics(&metrics, env.engine.clone(), env.wal.clone());
        let m = Arc::new(Mserver {
            config: MserverConfig {
                mserver_addrs: peers,
                ..config
            },
            node_id,
            raft,
            catalog,
            live: Mutex::new(HashMap::new()),
            leader_since: Mutex::new(None),
            pool,
            env,
            started: Instant::now(),
            metrics,
            rpc_metrics,
        });
        web_ui::register_metrics(&m);
        Ok(m)
    }

    /// Serve RPC on `listener` until `shutdown` resolves, then stop Raft.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), MserverError> {
        let wire = rpc::WireServer {
            handler: Arc::new(self.env.router.clone()),
            metrics: self.rpc_metrics.clone(),
        };
        let incoming =
            rpc::incoming(listener, Some(wire)).map_err(|e| MserverError::Start(e.to_string()))?;
        let svc = rpc::mserver::mserver_service_server::MserverServiceServer::new(
            service::Service(self.clone()),
        )
        .max_decoding_message_size(64 << 20);
        let raft_svc =
            rpc::raft::raft_service_server::RaftServiceServer::new(self.env.router.clone())
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20);
        let status_svc = rpc::status::status_service_server::StatusServiceServer::new(
            status::Service(self.clone()),
        );
        let res = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .layer(rpc::MetricsLayer(self.rpc_metrics.clone()))
            .add_service(svc)
            .add_service(raft_svc)
            .add_service(status_svc)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        self.shutdown().await;
        res.map_err(|e| MserverError::Start(format!("rpc server: {e}")))
    }

    /// Stop the catalog group and flush storage.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
        self.env.wal.shutdown();
        let _ = self.env.engine.sync();
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Whether this mserver leads the catalog group now.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.node_id)
    }

    /// The current leader's RPC address, if known.
    pub fn leader_addr(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// A snapshot of the catalog as this node has applied it.
    pub fn catalog(&self) -> Catalog {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Fail with NotLeader unless this node leads; also starts the liveness grace period
    /// when leadership is new.
    pub(crate) fn require_leader(&self) -> Result<(), MserverError> {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(self.node_id) {
            return Err(MserverError::NotLeader {
                leader_addr: self.leader_addr(),
            });
        }
        // A new leader answers only once it has applied an entry of its own term (the blank
        // entry it commits on election), so every entry committed before it is applied too.
        // Before that its catalog can miss committed changes: right after a restart, until
        // the log is replayed, a table could read as missing.
        if m.last_applied.map(|l| l.leader_id.term) != Some(m.current_term) {
            return Err(MserverError::Unavailable(
                "new leader still applying its log".into(),
            ));
        }
        let mut since = self.leader_since.lock().unwrap_or_else(|e| e.into_inner());
        if since.map(|(t, _)| t) != Some(m.current_term) {
            *since = Some((m.current_term, Instant::now()));
        }
        Ok(())
    }

    /// Replicate a catalog change.
    pub(crate) async fn propose(&self, cmd: CatalogCmd) -> Result<(), MserverError> {
        let payload =
            bincode::serialize(&cmd).map_err(|e| MserverError::Unavailable(e.to_string()))?;
        match self.raft.client_write(Payload(payload)).await {
            Ok(resp) => match bincode::deserialize::<Result<(), String>>(&resp.data.0) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(MserverError::InvalidArgument(e)),
                Err(e) => Err(MserverError::Unavailable(format!("bad catalog reply: {e}"))),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(MserverError::NotLeader {
                    leader_addr: f.leader_node.map(|n| n.addr),
                })
            }
            Err(e) => Err(MserverError::Unavailable(e.to_string())),
        }
    }

    /// Whether `uuid` heartbeated recently. A new leader counts from the start of its
    /// leadership: heartbeats it recorded in an earlier term (or none at all) do not make a
    /// server dead before the dbservers have had `timeout` to find the new leader.
    pub(crate) fn is_alive(&self, uuid: &str) -> (bool, u64) {
        let timeout = Duration::from_millis(self.config.dbserver_unresponsive_timeout_ms);
        let leading_for = self
            .leader_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(_, s)| s.elapsed())
            .unwrap_or(Duration::MAX);
        let heartbeat_age = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uuid)
            .map(|l| l.last_heartbeat.elapsed());
        let age = heartbeat_age.unwrap_or(Duration::MAX).min(leading_for);
        (
            age < timeout,
            heartbeat_age.map_or(u64::MAX, |a| a.as_millis() as u64),
        )
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn config(&self) -> &MserverConfig {
        &self.config
    }

    /// The registry behind this mserver's `/prometheus-metrics`.
    pub fn metrics(&self) -> Arc<common::metrics::Registry> {
        self.metrics.clone()
    }

    /// RPCs served (for `/rpcz`-style pages).
    pub fn rpc_metrics(&self) -> &common::metrics::RpcMetrics {
        &self.rpc_metrics
    }

    /// The Raft metrics of the catalog group.
    pub fn raft_metrics(&self) -> openraft::RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// The leader replica of each tablet as last reported by heartbeats (highest term
    /// wins): tablet id → (server uuid, term). Only the leader mserver hears heartbeats.
    pub(crate) fn leaders_by_tablet(&self) -> HashMap<String, (String, u64)> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: HashMap<String, (String, u64)> = HashMap::new();
        for (uuid, l) in live.iter() {
            for r in l.tablets.iter().filter(|r| r.is_leader) {
                let e = out
                    .entry(r.tablet_id.clone())
                    .or_insert((uuid.clone(), r.term));
                if r.term > e.1 {
                    *e = (uuid.clone(), r.term);
                }
            }
        }
        out
    }
}
