//! `consensus` — Raft for AiSQL, on openraft. A Raft node is four parts (openraft's own
//! split): the [`TypeConfig`], the [`LogStore`], the state machine ([`StateMachine`], which
//! adapts any [`StateMachineApp`]: a tablet, or the mserver catalog) and the network
//! ([`Network`] to send, [`RaftRouter`] to receive). Many groups share one server: one
//! storage engine, one Raft log ([`open_wal`]), one channel pool and one router keyed by
//! group id.
//! [`ConsensusMetrics`] reports them all to Prometheus (term, role, applied index and
//! replication lag per group, leader changes, log append latency).

// openraft's trait methods return its (large) StorageError; our helpers return the same type.
#![allow(clippy::result_large_err)]

mod log_store;
mod metrics;
mod network;
mod state_machine;

use std::io::Cursor;
use std::sync::Arc;

pub use log_store::LogStore;
pub use metrics::ConsensusMetrics;
pub use network::{Network, RaftRouter};
pub use state_machine::{checkpoint_blob, StateMachine, StateMachineApp};

use storage::{KvEngine, Wal};

/// Opaque application payload of a log entry, and of an apply result (encoded as bytes: see
/// [`common::serde_bytes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Payload(#[serde(with = "common::serde_bytes")] pub Vec<u8>);

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "payload({} bytes)", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// openraft types for every AiSQL Raft group.
    pub TypeConfig:
        D = Payload,
        R = Payload,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type NodeId = u64;
pub use openraft::{BasicNode, ServerState};

/// Timing of every Raft group (milliseconds).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
        }
    }
}

impl Timing {
    /// How long after a quorum confirmed leadership the leader may serve reads without asking
    /// again. Followers refuse to vote for `election_timeout_max` after hearing from the
    /// leader, so no other leader can exist during this window; we use 90 % of the minimum.
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.election_timeout_min_ms * 9 / 10)
    }
}

/// What every group on a server shares.
#[derive(Clone)]
pub struct GroupEnv {
    pub engine: Arc<dyn KvEngine>,
    /// The Raft log of every group (see [`open_wal`]).
    pub wal: Arc<Wal>,
    pub pool: rpc::ChannelPool,
    pub router: RaftRouter,
    pub timing: Timing,
    pub metrics: ConsensusMetrics,
}

/// Errors starting a group.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("raft config: {0}")]
    Config(String),
    #[error("raft group {group}: {detail}")]
    Start { group: String, detail: String },
}

/// Start (or restart, from what is on disk) the Raft group `group_id` with this node as
/// `node_id`, and register it with the router so peers can reach it.
pub async fn start_group(
    env: &GroupEnv,
    group_id: &str,
    node_id: NodeId,
    app: Arc<dyn StateMachineApp>,
) -> Result<Raft, ConsensusError> {
    let config = openraft::Config {
        cluster_name: group_id.to_owned(),
        heartbeat_interval: env.timing.heartbeat_interval_ms,
        election_timeout_min: env.timing.election_timeout_min_ms,
        election_timeout_max: env.timing.election_timeout_max_ms,
        install_snapshot_timeout: 10_000,
        max_payload_entries: 2000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(50_000),
        max_in_snapshot_log_to_keep: 5_000,
        ..Default::default()
    };
    let config = Arc::new(
        config
            .validate()
            .map_err(|e| ConsensusError::Config(e.to_string()))?,
    );
    let prefix = common::ids::id_prefix(group_id);
    let log = LogStore::new(env.wal.clone(), env.engine.clone(), prefix)
        .with_append_latency(env.metrics.append_latency.clone());
    let sm =
        StateMachine::open(env.engine.clone(), prefix, app).map_err(|e| ConsensusError::Start {
            group: group_id.to_owned(),
            detail: e.to_string(),
        })?;
    let network = Network::new(group_id.to_owned(), env.pool.clone());
    let raft = Raft::new(node_id, config, network, log, sm)
        .await
        .map_err(|e| ConsensusError::Start {
            group: group_id.to_owned(),
            detail: e.to_string(),
        })?;
    env.router.register(group_id, raft.clone());
    env.metrics.watch_leader_changes(&raft);
    Ok(raft)
}

/// `(term, index)` of the last entry in group `group_id`'s log on this node (`(0, 0)`: none).
/// Read before [`start_group`]: the entries up to it may have been proposed by this node in
/// an earlier life, and if it was the leader then, openraft restores it as the leader of the
/// same term without a new blank entry, so its linearizable reads do not wait for those
/// entries.
pub fn last_log_id(env: &GroupEnv, group_id: &str) -> Result<(u64, u64), ConsensusError> {
    let prefix = common::ids::id_prefix(group_id);
    let log = LogStore::new(env.wal.clone(), env.engine.clone(), prefix);
    log.last_entry_id()
        .map(|id| id.map(|l| (l.leader_id.term, l.index)).unwrap_or((0, 0)))
        .map_err(|e| ConsensusError::Start {
            group: group_id.to_owned(),
            detail: e.to_string(),
        })
}

/// Remove every trace of group `group_id` from storage (log, vote, applied state). The app's
/// own data is the app's to delete. The group must already be shut down.
pub fn destroy_group_state(
    engine: &dyn KvEngine,
    wal: &Wal,
    group_id: &str,
) -> Result<(), storage::StorageError> {
    let prefix = common::ids::id_prefix(group_id);
    wal.destroy(&prefix)?;
    wal.sync()?;
    storage::delete_prefix(engine, storage::Cf::RaftMeta, &prefix)?;
    Ok(())
}

/// Open the server's Raft log in `dir` (conventionally `<data dir>/wal`). A store written
/// before the log moved out of the LSM has its entries, votes and purge marks in the
/// `raft_log` and `raft_meta` families: they are copied into the log, synced, then deleted.
pub fn open_wal(
    engine: &dyn KvEngine,
    dir: &std::path::Path,
) -> Result<Arc<Wal>, storage::StorageError> {
    use std::ops::Bound;
    use storage::{Cf, WriteBatch};
    let wal = Wal::open(dir)?;
    let mut moved = WriteBatch::new();
    for kv in engine.scan(Cf::RaftMeta, Bound::Unbounded, Bound::Unbounded, false) {
        let (k, v) = kv?;
        let Some(group) = k.get(..16).and_then(|g| <[u8; 16]>::try_from(g).ok()) else {
            continue;
        };
        match &k[16..] {
            b"vote" => wal.save_vote(&group, &v)?,
            b"purged" => {
                let mark: Option<openraft::LogId<NodeId>> =
                    bincode::deserialize(&v).map_err(|e| storage::StorageError::Corrupt {
                        what: "raft purge mark",
                        detail: e.to_string(),
                    })?;
                if let Some(id) = mark {
                    wal.purge(&group, id.index, &v)?;
                }
            }
            _ => continue,
        }
        moved.delete(Cf::RaftMeta, k);
    }
    for kv in engine.scan(Cf::RaftLog, Bound::Unbounded, Bound::Unbounded, false) {
        let (k, v) = kv?;
        if let (Some(group), Some(index)) = (
            k.get(..16).and_then(|g| <[u8; 16]>::try_from(g).ok()),
            k.get(16..24).and_then(|i| <[u8; 8]>::try_from(i).ok()),
        ) {
            wal.append(&group, [(u64::from_be_bytes(index), &v[..])])?;
        }
        moved.delete(Cf::RaftLog, k);
    }
    if !moved.is_empty() {
        tracing::info!(
            records = moved.len(),
            "moving the raft log out of the LSM store"
        );
        wal.sync()?;
        for chunk in moved.ops.chunks(10_000) {
            engine.write(WriteBatch {
                ops: chunk.to_vec(),
            })?;
        }
        engine.sync()?;
    }
    Ok(Arc::new(wal))
}

pub(crate) fn storage_err(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: impl std::fmt::Display,
) -> openraft::StorageError<NodeId> {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}
