//! `tablet` — a tablet is one Raft group plus the MVCC rows it owns in the server's storage
//! engine. Key types: [`Tablet`] (write, read, scan on the leader), [`TabletMeta`] (the
//! persisted descriptor), [`WriteOp`], [`TabletError`].
//!
//! **Hybrid times.** The leader stamps each write with `hlc.now()` when proposing it. When a
//! replica applies the entry it uses `max(stamp, previous applied time + 1)` — a pure
//! function of the log, so every replica stores the same versions, and versions grow with the
//! log order even across leader changes. TTLs are turned into absolute expiry times at that
//! point too.
//!
//! **Reads.** Only the leader serves reads, and only under a lease: a quorum confirmed its
//! leadership (openraft `ensure_linearizable`, which also waits until everything committed
//! before is applied) less than [`consensus::Timing::lease`] ago, in the current term.
//! Followers refuse to vote for a new leader for longer than that, so no read can miss a
//! write acknowledged by a newer leader.
//!
//! **Nothing lands below a read.** An entry gets its time when proposed but applies later, so
//! a read at a given time must not run while an entry stamped at or below it may still
//! apply: it waits for those this process proposed ([`Fence`]), and, once after a restart,
//! for every entry already in the log then (a leader restored in its old term has no new
//! blank entry to wait for; `log_at_start`).

mod app;
mod intent_store;
mod meta;
mod retries;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{Hlc, HybridTime};
use consensus::{BasicNode, GroupEnv, NodeId, Payload, Raft, ServerState};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::RaftMetrics;
use storage::mvcc::{self, ScanRange};
use storage::KvEngine;
use tokio::sync::watch;

pub use app::{Condition, Conflict, WriteCmd, WriteOp, WriteOutcome};
pub use meta::{PeerMeta, TabletMeta};
pub use retries::RequestId;

use app::TabletApp;

/// Errors of tablet operations.
#[derive(Debug, thiserror::Error)]
pub enum TabletError {
    #[error("not the leader of tablet {tablet}")]
    NotLeader {
        tablet: String,
        leader_addr: Option<String>,
    },
    #[error("tablet {tablet}: {detail}")]
    Unavailable { tablet: String, detail: String },
    #[error("tablet {tablet}: storage: {source}")]
    Storage {
        tablet: String,
        source: storage::StorageError,
    },
    #[error("tablet {tablet}: {detail}")]
    Internal { tablet: String, detail: String },
    #[error("tablet {tablet}: read time {read_ht} is older than the kept history")]
    SnapshotTooOld { tablet: String, read_ht: HybridTime },
    /// A transaction's provisional record is on a key the read needs: resolve it, retry.
    #[error("tablet {tablet}: key locked by transaction {}", txn::id_hex(txn))]
    Locked {
        tablet: String,
        txn: txn::TxnId,
        key: Vec<u8>,
        written_at_us: u64,
        status_at: Option<txn::StatusAt>,
    },
    /// A key longer than the storage engine can hold (about 64 KiB).
    #[error("tablet {tablet}: key length of {len} is longer than the store's maximum (about 65,500 bytes)")]
    KeyTooLarge { tablet: String, len: usize },
    /// A version in the reader's uncertainty window: read again at `restart_ht` or later.
    #[error("tablet {tablet}: read restart required at {restart_ht}")]
    ReadRestart {
        tablet: String,
        restart_ht: HybridTime,
    },
}

impl TabletError {
    pub fn status(&self) -> common::StatusCode {
        use common::StatusCode;
        match self {
            TabletError::NotLeader { .. } => StatusCode::NotLeader,
            TabletError::Unavailable { .. } => StatusCode::ServiceUnavailable,
            TabletError::Storage { .. } => StatusCode::StorageError,
            TabletError::Internal { .. } => StatusCode::Internal,
            TabletError::SnapshotTooOld { .. } => StatusCode::InvalidArgument,
            TabletError::KeyTooLarge { .. } => StatusCode::TooLarge,
            TabletError::Locked { .. } | TabletError::ReadRestart { .. } => StatusCode::Internal,
        }
    }
}

/// Writes waiting to be proposed: one, or several independent ones answered together.
enum Queued {
    One {
        ops: Vec<WriteOp>,
        id: RequestId,
        tx: tokio::sync::oneshot::Sender<Result<WriteOutcome, TabletError>>,
    },
    Many {
        writes: Vec<(Vec<WriteOp>, RequestId)>,
        tx: tokio::sync::oneshot::Sender<Result<Vec<WriteOutcome>, TabletError>>,
    },
}

/// Where the outcomes of a [`Queued`] go once its entry applied.
enum Answer {
    One(tokio::sync::oneshot::Sender<Result<WriteOutcome, TabletError>>),
    Many(
        usize,
        tokio::sync::oneshot::Sender<Result<Vec<WriteOutcome>, TabletError>>,
    ),
}

impl Queued {
    /// How many writes this is.
    fn len(&self) -> usize {
        match self {
            Queued::One { .. } => 1,
            Queued::Many { writes, .. } => writes.len(),
        }
    }
}

impl Answer {
    fn fail(self, e: TabletError) {
        match self {
            Answer::One(tx) => drop(tx.send(Err(e))),
            Answer::Many(_, tx) => drop(tx.send(Err(e))),
        }
    }
}

/// Raft entries of one tablet in flight at once. One measured best (RF=1: 93k writes/s vs 76k
/// with four; RF=3 likewise): the queue behind it is what makes batches big.
const MAX_ENTRIES_IN_FLIGHT: usize = 1;

/// Longest a read waits for its leader to confirm leadership and apply up to the commit.
const LEASE_CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Most writes folded into one Raft entry.
const MAX_WRITES_PER_ENTRY: usize = 512;

/// The proposer of one tablet: folds every write queued since the last proposal into one Raft
/// entry (one log append, one replication message, one apply), so per-write cost falls as load
/// rises; at most [`MAX_ENTRIES_IN_FLIGHT`] entries are in flight. Proposing from one task also
/// makes stamps follow log order. Ends when the tablet is dropped.
async fn proposer(
    tablet: String,
    raft: Raft,
    clock: Arc<Hlc>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Queued>,
    fence: Arc<Fence>,
) {
    let fail = |e: String| TabletError::Unavailable {
        tablet: tablet.clone(),
        detail: e,
    };
    // One entry in flight: while the proposer awaits its answer, new writes queue up in `rx`
    // and go out together in the next entry. (The answer is awaited here: no task and no
    // semaphore permit per entry.)
    const _: () = assert!(MAX_ENTRIES_IN_FLIGHT == 1);
    while let Some(first) = rx.recv().await {
        let mut waiting = vec![first];
        let mut count = waiting[0].len();
        while count < MAX_WRITES_PER_ENTRY {
            match rx.try_recv() {
                Ok(q) => {
                    count += q.len();
                    waiting.push(q);
                }
                Err(_) => break,
            }
        }
        let mut writes = Vec::with_capacity(count);
        let mut ids = Vec::with_capacity(count);
        let mut senders = Vec::with_capacity(waiting.len());
        for q in waiting {
            match q {
                Queued::One { ops, id, tx } => {
                    writes.push(ops);
                    ids.push(id);
                    senders.push(Answer::One(tx));
                }
                Queued::Many { writes: many, tx } => {
                    senders.push(Answer::Many(many.len(), tx));
                    for (ops, id) in many {
                        writes.push(ops);
                        ids.push(id);
                    }
                }
            }
        }
        if !ids.iter().any(RequestId::is_set) {
            ids.clear();
        }
        let keys = writes
            .iter()
            .flatten()
            .map(|op| Fence::key_hash(&op.key))
            .collect();
        let stamp = fence.stamp(&clock, keys);
        let cmd = WriteCmd {
            ht: stamp,
            writes,
            ids,
        };
        let answer = match bincode::serialize(&cmd) {
            Ok(payload) => raft
                .client_write_ff(Payload(payload))
                .await
                .map_err(|e| fail(e.to_string())),
            Err(e) => Err(fail(e.to_string())),
        };
        // The ops are in the payload now: free them before the answer is awaited.
        drop(cmd);
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                fence.done(stamp);
                for s in senders {
                    s.fail(fail(e.to_string()));
                }
                continue;
            }
        };
        let answer = answer.await;
        fence.done(stamp);
        let result = match answer {
            Ok(Ok(resp)) => Ok(app::decode_outcomes(&resp.data.0)),
            // The entry was proposed: a later leader may still commit it. Not "not the
            // leader" (which tells callers nothing was written), but unavailable.
            Ok(Err(ClientWriteError::ForwardToLeader(_))) => Err(fail(
                "leadership changed during the write; it may still apply".into(),
            )),
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(_) => Err(fail("raft stopped before answering".into())),
        };
        match result {
            Ok(Some(outcomes)) if outcomes.len() == count => {
                let mut outcomes = outcomes.into_iter();
                for s in senders {
                    let _ = match s {
                        Answer::One(tx) => match outcomes.next() {
                            Some(o) => tx.send(Ok(o)).map_err(drop),
                            None => Ok(()),
                        },
                        Answer::Many(n, tx) => tx
                            .send(Ok(outcomes.by_ref().take(n).collect()))
                            .map_err(drop),
                    };
                }
            }
            Ok(_) => {
                for s in senders {
                    s.fail(TabletError::Internal {
                        tablet: tablet.clone(),
                        detail: "bad apply reply".into(),
                    });
                }
            }
            Err(e) => {
                for s in senders {
                    s.fail(clone_err(&e));
                }
            }
        }
    }
}

/// Whether a write's ops lay transaction intents.
fn is_prewrite(ops: &[WriteOp]) -> bool {
    ops.iter().any(|o| o.condition.intent().is_some())
}

fn clone_err(e: &TabletError) -> TabletError {
    match e {
        TabletError::NotLeader {
            tablet,
            leader_addr,
        } => TabletError::NotLeader {
            tablet: tablet.clone(),
            leader_addr: leader_addr.clone(),
        },
        TabletError::Unavailable { tablet, detail } => TabletError::Unavailable {
            tablet: tablet.clone(),
            detail: detail.clone(),
        },
        other => TabletError::Internal {
            tablet: String::new(),
            detail: other.to_string(),
        },
    }
}

/// What reads at a given time wait for: the stamps of entries this leader proposed and of
/// those it has seen applied (or failed). An entry stamped at or below a read's time may
/// still get a version at or below it; a read in the past must not run before such an entry
/// is applied, or a later read at the same time would see more (and a transaction's
/// conflict check, which trusts that nothing lands below a time it has read at, would miss
/// a write). Versions land only on the keys of an entry's ops, so a read of other keys need
/// not wait for it: the fence keeps the newest entry's key hashes.
#[derive(Default)]
struct Fence {
    /// Taken around stamping (clock reading + `proposed` + the entry's keys) and around a
    /// reader's clock update + `proposed` load: either the stamp is above the reader's time
    /// or the reader sees it. Holds the key hashes of the newest stamped entry.
    stamping: Mutex<Vec<u64>>,
    proposed: std::sync::atomic::AtomicU64,
    applied: tokio::sync::watch::Sender<u64>,
}

impl Fence {
    /// How the fence names a key (a collision only makes a read wait).
    fn key_hash(key: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::default().hash_one(key)
    }

    /// Stamp the next entry, whose ops' keys hash to `keys`.
    fn stamp(&self, clock: &Hlc, keys: Vec<u64>) -> u64 {
        let mut newest = self.stamping.lock().unwrap_or_else(|e| e.into_inner());
        let ht = clock.now().0;
        self.proposed
            .fetch_max(ht, std::sync::atomic::Ordering::AcqRel);
        *newest = keys;
        ht
    }

    /// Bring the clock to a reader's time `ht`; returns the newest stamp proposed so far, and
    /// whether the newest entry writes any of `keys` (`None`: a range, assume it does).
    fn enter_read(&self, clock: &Hlc, ht: HybridTime, keys: Option<&[Vec<u8>]>) -> (u64, bool) {
        let hashes: Option<Vec<u64>> =
            keys.map(|ks| ks.iter().map(|k| Self::key_hash(k)).collect());
        let newest = self.stamping.lock().unwrap_or_else(|e| e.into_inner());
        clock.update(ht);
        let target = self.proposed.load(std::sync::atomic::Ordering::Acquire);
        let touches = hashes.is_none_or(|hs| hs.iter().any(|h| newest.contains(h)));
        (target, touches)
    }

    fn done(&self, stamp: u64) {
        self.applied.send_if_modified(|v| {
            let grew = stamp > *v;
            *v = (*v).max(stamp);
            grew
        });
    }

    /// Wait until every entry proposed before [`Fence::enter_read`] returned `target`, if
    /// any was stamped at or below `ht` (and, with one entry in flight, if that entry
    /// `touches` the read's keys), is done.
    async fn wait(&self, ht: HybridTime, target: u64, touches: bool) -> bool {
        let mut rx = self.applied.subscribe();
        let cleared = |v: &u64| *v >= target || target == 0;
        if cleared(&rx.borrow())
            || self.first_in_flight_above(ht, target)
            || self.first_in_flight_elsewhere(touches)
        {
            return true;
        }
        tokio::time::timeout(std::time::Duration::from_secs(10), rx.wait_for(cleared))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// With one entry in flight, the newest proposed stamp is the only one pending: if it
    /// is above `ht`, nothing pending can land at or below `ht`.
    fn first_in_flight_above(&self, ht: HybridTime, target: u64) -> bool {
        MAX_ENTRIES_IN_FLIGHT == 1 && target > ht.0
    }

    /// With one entry in flight (every earlier one is done before the next is stamped: the
    /// proposer awaits an entry's answer and calls [`Fence::done`] before the next), the
    /// newest entry is the only one pending: if it writes none of the read's keys, nothing
    /// lands on them at or below the read's time. (Entries stamped later are above it: the
    /// reader raised the clock.)
    fn first_in_flight_elsewhere(&self, touches: bool) -> bool {
        MAX_ENTRIES_IN_FLIGHT == 1 && !touches
    }
}

/// Role and progress of a replica, for heartbeats and status pages.
#[derive(Clone, Debug)]
pub struct ReplicaStatus {
    pub is_leader: bool,
    pub role: &'static str,
    pub term: u64,
    pub last_applied: u64,
    pub last_log_index: u64,
    pub leader: Option<NodeId>,
}

/// A tablet replica hosted on this server.
pub struct Tablet {
    meta: TabletMeta,
    node_id: NodeId,
    raft: Raft,
    metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    engine: Arc<dyn KvEngine>,
    wal: Arc<storage::Wal>,
    prefix: [u8; 16],
    clock: Arc<Hlc>,
    lease: consensus::Timing,
    /// (valid until, term) of the current read lease.
    lease_until: Mutex<Option<(Instant, u64)>>,
    /// Serializes lease renewals so concurrent readers share one quorum round.
    lease_refresh: tokio::sync::Mutex<()>,
    /// The replicated state machine (for GC's checkpoint bound).
    app: Arc<TabletApp>,
    /// Writes waiting for the proposer (see [`proposer`]).
    queue: tokio::sync::mpsc::UnboundedSender<Queued>,
    /// Reads older than this (µs before now) are refused: GC may have removed their versions.
    history_retention_micros: u64,
    /// Reads at a given time wait here for writes that may land below it.
    fence: Arc<Fence>,
    /// `(term, index)` of the last log entry found on disk at start (`None` once waited for).
    /// Those entries were stamped by an earlier life of this process, so the [`Fence`] does
    /// not know them; and if this replica was the leader of that term, openraft restores it
    /// as that term's leader with no new blank entry, so a linearizable read does not wait
    /// for them either. One of them committed after such a read would land below the read's
    /// time: a leader of that same term serves no read until they are applied. (A leader of a
    /// later term has its own blank entry after them, which `ensure_linearizable` waits
    /// for; entries truncated meanwhile never apply, so waiting for their index could
    /// stall.)
    log_at_start: Mutex<Option<(u64, u64)>>,
}

impl Tablet {
    /// Open (or create) the replica described by `meta`. If `initialize` and the group has
    /// never been initialized, this replica initializes it with every peer as a voter (and so
    /// becomes its first leader).
    pub async fn open(
        env: &GroupEnv,
        meta: TabletMeta,
        node_id: NodeId,
        clock: Arc<Hlc>,
        initialize: bool,
        history_retention_micros: u64,
    ) -> Result<Arc<Tablet>, TabletError> {
        let tablet = meta.tablet_id.clone();
        let prefix = common::ids::id_prefix(&tablet);
        let app = Arc::new(
            TabletApp::open(env.engine.clone(), prefix, clock.clone()).map_err(|source| {
                TabletError::Storage {
                    tablet: tablet.clone(),
                    source,
                }
            })?,
        );
        let log_at_start =
            consensus::last_log_id(env, &tablet).map_err(|e| TabletError::Internal {
                tablet: tablet.clone(),
                detail: e.to_string(),
            })?;
        let raft = consensus::start_group(env, &tablet, node_id, app.clone())
            .await
            .map_err(|e| TabletError::Internal {
                tablet: tablet.clone(),
                detail: e.to_string(),
            })?;
        if initialize {
            let done = raft
                .is_initialized()
                .await
                .map_err(|e| TabletError::Internal {
                    tablet: tablet.clone(),
                    detail: e.to_string(),
                })?;
            if !done {
                let members: BTreeMap<NodeId, BasicNode> = meta
                    .peers
                    .iter()
                    .map(|p| {
                        (
                            p.node_id,
                            BasicNode {
                                addr: p.rpc_addr.clone(),
                            },
                        )
                    })
                    .collect();
                if let Err(e) = raft.initialize(members).await {
                    tracing::warn!(tablet = %tablet, error = %e, "initializing raft group");
                }
            }
        }
        let metrics = raft.metrics();
        let (queue, rx) = tokio::sync::mpsc::unbounded_channel();
        let fence = Arc::new(Fence::default());
        tokio::spawn(proposer(
            tablet.clone(),
            raft.clone(),
            clock.clone(),
            rx,
            fence.clone(),
        ));
        Ok(Arc::new(Tablet {
            meta,
            node_id,
            raft,
            metrics,
            engine: env.engine.clone(),
            wal: env.wal.clone(),
            prefix,
            clock,
            lease: env.timing,
            lease_until: Mutex::new(None),
            lease_refresh: tokio::sync::Mutex::new(()),
            queue,
            app,
            history_retention_micros,
            fence,
            log_at_start: Mutex::new((log_at_start.1 > 0).then_some(log_at_start)),
        }))
    }

    pub fn meta(&self) -> &TabletMeta {
        &self.meta
    }

    pub fn id(&self) -> &str {
        &self.meta.tablet_id
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Current role and progress.
    pub fn status(&self) -> ReplicaStatus {
        let m = self.metrics.borrow();
        let role = match m.state {
            ServerState::Leader => "LEADER",
            ServerState::Follower => "FOLLOWER",
            ServerState::Candidate => "CANDIDATE",
            ServerState::Learner => "LEARNER",
            ServerState::Shutdown => "SHUTDOWN",
        };
        ReplicaStatus {
            is_leader: m.state == ServerState::Leader,
            role,
            term: m.current_term,
            last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            last_log_index: m.last_log_index.unwrap_or(0),
            leader: m.current_leader,
        }
    }

    fn leader_addr(&self, leader: Option<NodeId>) -> Option<String> {
        let leader = leader?;
        if leader == self.node_id {
            return None;
        }
        let m = self.metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    fn not_leader(&self, leader: Option<NodeId>) -> TabletError {
        TabletError::NotLeader {
            tablet: self.meta.tablet_id.clone(),
            leader_addr: self.leader_addr(leader),
        }
    }

    /// Replicate `ops` as one atomic write; returns the hybrid time it committed at. Returns
    /// only once the entry is durable on a majority and applied here.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<WriteOutcome, TabletError> {
        self.write_request(ops, RequestId::default()).await
    }

    /// [`Tablet::write`] of a client's write named `id`: if the tablet applied it already (the
    /// client is resending it), it is answered as applied and not applied again.
    pub async fn write_request(
        &self,
        ops: Vec<WriteOp>,
        id: RequestId,
    ) -> Result<WriteOutcome, TabletError> {
        self.admit(&ops)?;
        let prewrite = is_prewrite(&ops);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut outcome = self.submit(Queued::One { ops, id, tx }, rx).await?;
        self.commit_above_reads(&mut outcome, prewrite);
        Ok(outcome)
    }

    /// Several independent writes, each as one [`Tablet::write_request`], queued together
    /// (so they share a Raft entry) and answered in order. Fails as a whole if the tablet
    /// cannot take them (then any of them may or may not have applied).
    pub async fn write_requests(
        &self,
        writes: Vec<(Vec<WriteOp>, RequestId)>,
    ) -> Result<Vec<WriteOutcome>, TabletError> {
        self.admit(writes.iter().flat_map(|w| &w.0))?;
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let prewrites: Vec<bool> = writes.iter().map(|w| is_prewrite(&w.0)).collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut outcomes = self.submit(Queued::Many { writes, tx }, rx).await?;
        for (o, prewrite) in outcomes.iter_mut().zip(prewrites) {
            self.commit_above_reads(o, prewrite);
        }
        Ok(outcomes)
    }

    /// Whether this replica takes writes of `ops` now: it leads, and every key fits the store.
    fn admit<'a>(&self, ops: impl IntoIterator<Item = &'a WriteOp>) -> Result<(), TabletError> {
        let leader = self.metrics.borrow().current_leader;
        if leader != Some(self.node_id) {
            return Err(self.not_leader(leader));
        }
        match ops.into_iter().find(|o| !mvcc::key_fits(&o.key)) {
            Some(op) => Err(self.key_too_large(&op.key)),
            None => Ok(()),
        }
    }

    /// Queue `q` for the proposer and wait for its answer on `rx`.
    async fn submit<T>(
        &self,
        q: Queued,
        rx: tokio::sync::oneshot::Receiver<Result<T, TabletError>>,
    ) -> Result<T, TabletError> {
        self.queue
            .send(q)
            .map_err(|_| self.unavailable("tablet is shutting down"))?;
        rx.await
            .unwrap_or_else(|_| Err(self.unavailable("raft stopped before answering")))
    }

    /// An applied prewrite answers at or above this leader's clock: every read it served
    /// before the intents were visible ran at or below it, so the transaction must commit
    /// above that (docs/design/transactions.md).
    fn commit_above_reads(&self, outcome: &mut WriteOutcome, prewrite: bool) {
        if prewrite && outcome.applied {
            outcome.ht = outcome.ht.max(self.clock.now());
        }
    }

    /// Make sure this replica may serve a read now (see the crate docs).
    async fn ensure_read_lease(&self) -> Result<(), TabletError> {
        let (leader, term) = {
            let m = self.metrics.borrow();
            (m.current_leader, m.current_term)
        };
        if leader != Some(self.node_id) {
            return Err(self.not_leader(leader));
        }
        let valid = |slot: &Option<(Instant, u64)>| matches!(slot, Some((until, t)) if *t == term && Instant::now() < *until);
        if valid(&self.lease_until.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(());
        }
        let _one = self.lease_refresh.lock().await;
        if valid(&self.lease_until.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(());
        }
        let start = Instant::now();
        // openraft waits without end for the state machine to reach the read's log id; a
        // leader that cannot commit (its followers unreachable) must fail the read instead, so
        // the caller retries elsewhere.
        let confirmed =
            tokio::time::timeout(LEASE_CONFIRM_TIMEOUT, self.raft.ensure_linearizable())
                .await
                .map_err(|_| self.unavailable("the leader could not confirm its lease in time"))?;
        match confirmed {
            Ok(_) => {
                self.wait_for_log_at_start().await?;
                *self.lease_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((start + self.lease.lease(), term));
                Ok(())
            }
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(self.not_leader(f.leader_id))
            }
            Err(e) => Err(self.unavailable(e)),
        }
    }

    /// Wait until the entries that were in the log when this replica started are applied
    /// (see `log_at_start`).
    async fn wait_for_log_at_start(&self) -> Result<(), TabletError> {
        let Some((term, index)) = *self.log_at_start.lock().unwrap_or_else(|e| e.into_inner())
        else {
            return Ok(());
        };
        if self.metrics.borrow().current_term != term {
            *self.log_at_start.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return Ok(());
        }
        let applied = self
            .raft
            .wait(Some(std::time::Duration::from_secs(10)))
            .applied_index_at_least(Some(index), "entries from before the restart")
            .await;
        match applied {
            Ok(_) => {
                *self.log_at_start.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(())
            }
            Err(e) => Err(self.unavailable(format!(
                "entries up to {index} from before the restart are not applied yet: {e}"
            ))),
        }
    }

    /// The read time to use: `read_ht` if history is still kept for it, else now.
    fn read_time(&self, read_ht: Option<HybridTime>) -> Result<HybridTime, TabletError> {
        let now = self.clock.now();
        match read_ht {
            None => Ok(now),
            Some(ht) if ht < now.sub_micros(self.history_retention_micros) => {
                Err(TabletError::SnapshotTooOld {
                    tablet: self.meta.tablet_id.clone(),
                    read_ht: ht,
                })
            }
            Some(ht) => {
                // A read in the future first brings the clock there, so later writes land above it.
                self.clock.update(ht);
                Ok(ht)
            }
        }
    }

    /// The values of `keys` at `read_ht` (default: now), with the time used. A key with a
    /// transaction's write intent fails the read with [`TabletError::Locked`]. With
    /// `uncertain_until` above the read time, a version in between fails it with
    /// [`TabletError::ReadRestart`] (the window is capped at this leader's clock).
    pub async fn read(
        &self,
        keys: &[Vec<u8>],
        read_ht: Option<HybridTime>,
        uncertain_until: Option<HybridTime>,
    ) -> Result<(Vec<Option<Vec<u8>>>, HybridTime), TabletError> {
        // Taken before the read time: every version written before it is at or below it.
        let ticket = match read_ht {
            None => self.app.latest.ticket(),
            Some(_) => None,
        };
        let ht = self.read_time(read_ht)?;
        self.wait_for_writes_below(ht, read_ht.is_some(), Some(keys))
            .await?;
        // After the fence: waiting may have outlived the lease.
        self.ensure_read_lease().await?;
        let limit = self.uncertainty_limit(ht, uncertain_until);
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if !mvcc::key_fits(k) {
                out.push(None); // never stored
                continue;
            }
            if self.app.intent_index.contains(k) {
                self.check_intents(k)?;
            }
            // The key's newest version if known (outer `None`: unknown): from the cache, or for
            // a read at "now", from the engine, and then remembered.
            let newest = match (self.app.latest.get(k), ticket) {
                (Some(n), _) => Some(Some(n)),
                (None, Some(ticket)) => {
                    let n = mvcc::newest(self.engine.as_ref(), &self.prefix, k)
                        .map_err(|e| self.storage(e))?;
                    self.app.latest.fill(ticket, k, n.as_ref());
                    Some(n)
                }
                (None, None) => None,
            };
            if limit > ht {
                let newest_ht = match &newest {
                    Some(n) => n.as_ref().map(|n| n.ht),
                    None => mvcc::newest_ht(self.engine.as_ref(), &self.prefix, k)
                        .map_err(|e| self.storage(e))?,
                };
                if let Some(newest) = newest_ht {
                    if newest > ht && newest <= limit {
                        return Err(TabletError::ReadRestart {
                            tablet: self.meta.tablet_id.clone(),
                            restart_ht: newest,
                        });
                    }
                }
            }
            let known = match &newest {
                Some(Some(n)) => n.value_at(ht),
                Some(None) => Some(None),
                None => None,
            };
            out.push(match known {
                Some(value) => value,
                // Unknown, or the newest version is above the read time: seek.
                None => mvcc::get(self.engine.as_ref(), &self.prefix, k, ht)
                    .map_err(|e| self.storage(e))?,
            });
        }
        Ok((out, ht))
    }

    /// The status records (encoded `TxnStatus`) of the transactions `txns` kept in this
    /// tablet (those anchored here), read on the leader under its lease.
    pub async fn txn_statuses(
        &self,
        txns: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, TabletError> {
        self.ensure_read_lease().await?;
        txns.iter()
            .map(|id| {
                let Ok(id) = txn::TxnId::try_from(id.as_slice()) else {
                    return Ok(None);
                };
                Ok(self.app.status_of(&id))
            })
            .collect()
    }

    /// Live rows in `range` at `read_ht` (default: now), at most `limit`; intents and
    /// uncertainty as for [`Tablet::read`].
    pub async fn scan(
        &self,
        range: &ScanRange,
        limit: usize,
        read_ht: Option<HybridTime>,
        uncertain_until: Option<HybridTime>,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, HybridTime), TabletError> {
        if let Some(k) = [&range.start, &range.end]
            .into_iter()
            .flatten()
            .find(|k| !mvcc::key_fits(k))
        {
            return Err(self.key_too_large(k));
        }
        let ht = self.read_time(read_ht)?;
        self.wait_for_writes_below(ht, read_ht.is_some(), None)
            .await?;
        self.ensure_read_lease().await?;
        let until = self.uncertainty_limit(ht, uncertain_until);
        // Only the keys the in-memory index names can hold intents (in key order).
        for k in self.app.intent_index.keys_in(range) {
            self.check_intents(&k)?;
        }
        let (rows, uncertain) =
            mvcc::scan_checked(self.engine.as_ref(), &self.prefix, range, ht, limit, until)
                .map_err(|e| self.storage(e))?;
        if let Some(restart_ht) = uncertain {
            return Err(TabletError::ReadRestart {
                tablet: self.meta.tablet_id.clone(),
                restart_ht,
            });
        }
        Ok((rows, ht))
    }

    /// A read at a chosen time waits for writes in flight that may land at or below it (see
    /// [`Fence`]). A read at "now" need not: a write not yet applied was not acknowledged
    /// either, and nobody reads at that exact time again.
    async fn wait_for_writes_below(
        &self,
        ht: HybridTime,
        chosen: bool,
        keys: Option<&[Vec<u8>]>,
    ) -> Result<(), TabletError> {
        if !chosen {
            return Ok(());
        }
        let (target, touches) = self.fence.enter_read(&self.clock, ht, keys);
        if !self.fence.wait(ht, target, touches).await {
            return Err(self.unavailable("writes in flight did not finish"));
        }
        Ok(())
    }

    /// The end of a reader's uncertainty window here: versions above it were written after
    /// the read reached this leader, so they are certainly later than the reader.
    fn uncertainty_limit(&self, ht: HybridTime, requested: Option<HybridTime>) -> HybridTime {
        match requested {
            Some(u) if u > ht => u.min(self.clock.now()),
            _ => ht,
        }
    }

    /// Fail with `Locked` if `key` has a transaction's write intent.
    fn check_intents(&self, key: &[u8]) -> Result<(), TabletError> {
        let set = self.app.intents_on(key).unwrap_or_default();
        match set.into_iter().find(|i| i.kind == txn::IntentKind::Write) {
            Some(i) => Err(TabletError::Locked {
                tablet: self.meta.tablet_id.clone(),
                txn: i.txn,
                key: key.to_vec(),
                written_at_us: i.written_at_us,
                status_at: i.status_at,
            }),
            None => Ok(()),
        }
    }

    /// Intents of this tablet written before `older_than_us` (physical µs): candidates for
    /// the resolver's sweep of abandoned transactions.
    pub fn old_intents(
        &self,
        older_than_us: u64,
    ) -> Result<Vec<(Vec<u8>, txn::Intent)>, TabletError> {
        // The index names every key with intents, and the app holds them in memory.
        let mut out = Vec::new();
        for k in self.app.intent_index.keys_in(&ScanRange::default()) {
            let set = self.app.intents_on(&k).unwrap_or_default();
            out.extend(
                set.into_iter()
                    .filter(|i| i.written_at_us < older_than_us)
                    .map(|i| (k.clone(), i)),
            );
        }
        Ok(out)
    }

    /// Drop versions no allowed read (see `history_retention_micros`) can see; also measures
    /// the bytes of keys and values (all versions kept, before compression) the tablet holds.
    /// Scans the tablet: call it from a background task, not per request.
    pub fn gc(&self) -> Result<mvcc::GcStats, TabletError> {
        let cutoff = self
            .clock
            .now()
            .sub_micros(self.history_retention_micros)
            .min(self.app.checkpointed_ht().map_err(|e| self.storage(e))?);
        mvcc::gc(self.engine.as_ref(), &self.prefix, cutoff).map_err(|e| self.storage(e))
    }

    /// Stop the Raft group (data stays on disk).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(tablet = %self.meta.tablet_id, error = %e, "raft shutdown");
        }
    }

    /// Delete every row, the Raft state and the descriptor of this (shut down) tablet.
    pub fn destroy(&self) -> Result<(), TabletError> {
        self.app.latest.clear();
        let e = self.engine.as_ref();
        storage::delete_prefix(e, storage::Cf::Data, &self.prefix).map_err(|s| self.storage(s))?;
        e.forget_prefix(storage::Cf::Data, &self.prefix)
            .map_err(|s| self.storage(s))?;
        storage::delete_prefix(e, storage::Cf::Intents, &self.prefix)
            .map_err(|s| self.storage(s))?;
        consensus::destroy_group_state(e, &self.wal, &self.meta.tablet_id)
            .map_err(|s| self.storage(s))?;
        TabletMeta::remove(e, &self.meta.tablet_id).map_err(|s| self.storage(s))
    }

    fn key_too_large(&self, key: &[u8]) -> TabletError {
        TabletError::KeyTooLarge {
            tablet: self.meta.tablet_id.clone(),
            len: key.len(),
        }
    }

    fn storage(&self, source: storage::StorageError) -> TabletError {
        TabletError::Storage {
            tablet: self.meta.tablet_id.clone(),
            source,
        }
    }
    fn unavailable(&self, e: impl std::fmt::Display) -> TabletError {
        TabletError::Unavailable {
            tablet: self.meta.tablet_id.clone(),
            detail: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read at a chosen time waits for the entry in flight only if that entry writes one of
    /// its keys (or the read is a range); a read above the entry's stamp never waits.
    #[tokio::test]
    async fn fence_waits_only_for_entries_writing_the_read_keys() {
        let clock = Hlc::new();
        let fence = Arc::new(Fence::default());
        let stamp = fence.stamp(&clock, vec![Fence::key_hash(b"busy")]);
        let at = clock.now();
        let quick = |keys: Option<&[Vec<u8>]>| {
            let (target, touches) = fence.enter_read(&clock, at, keys);
            assert_eq!(target, stamp);
            let fence = fence.clone();
            async move {
                tokio::time::timeout(
                    std::time::Duration::from_millis(50),
                    fence.wait(at, target, touches),
                )
                .await
                .is_ok()
            }
        };
        assert!(quick(Some(&[b"idle".to_vec()])).await);
        assert!(!quick(Some(&[b"idle".to_vec(), b"busy".to_vec()])).await);
        assert!(!quick(None).await);
        // Once the entry is done, nobody waits.
        fence.done(stamp);
        assert!(quick(None).await);
        // An entry stamped after the reader raised the clock is above the read.
        let later = fence.stamp(&clock, vec![Fence::key_hash(b"busy")]);
        assert!(later > at.0);
        let (target, touches) = fence.enter_read(&clock, at, Some(&[b"busy".to_vec()]));
        assert!(touches && fence.wait(at, target, touches).await);
    }
}
