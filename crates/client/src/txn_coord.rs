//! Distributed transactions for the query layers: [`Transaction`] (begin with
//! [`Client::begin`]), and the lock resolution every read and write of the client uses when
//! it meets a transaction's intent. The records and rules are in the `txn` crate; the design
//! and its correctness argument in `docs/design/transactions.md`.
//!
//! A transaction reads at one snapshot (per statement under read committed) and buffers its
//! writes. `commit` then:
//! * **one tablet** (the fast path): one conditional write, applied only if none of its keys
//!   changed after the snapshot — one Raft round, no status record;
//! * **several tablets**: prewrites intents on every tablet (in parallel), writes the status
//!   record `Committed { commit_ht }` (the commit point, compare-and-set against `Aborted`),
//!   then resolves the intents into versions at `commit_ht`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{HybridTime, StatusCode};
use rpc::tablet::{Condition, Conflict, KvOp};
use txn::{Isolation, StatusAt, TxnId, TxnStatus};

use crate::{Client, ClientError, Result, Table};

/// Default bound on the clock skew between servers (µs), as YugabyteDB's
/// `--max_clock_skew_usec`.
pub const DEFAULT_MAX_CLOCK_SKEW_USEC: u64 = 500_000;

fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Test hook: whether `AISQL_FAILPOINT=<name>` is in the process's environment.
fn failpoint_armed(name: &str) -> bool {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    POINT
        .get_or_init(|| std::env::var("AISQL_FAILPOINT").ok())
        .as_deref()
        == Some(name)
}

/// Test hook: with `AISQL_FAILPOINT=<name>`, the process kills itself (SIGKILL, as
/// `kill -9`) when a commit reaches the point `name` (`txn_after_prewrite`,
/// `txn_after_commit`). Lets tests kill a coordinator mid-commit.
fn failpoint(name: &str) {
    if failpoint_armed(name) {
        tracing::error!(failpoint = name, "failpoint reached: killing this process");
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

/// How long a redoable write waits for a pending transaction with a lower id before it
/// fails its own ([`Transaction::may_wait`]).
const DIE_AFTER: Duration = Duration::from_millis(20);

/// Put `op` in place of the op of the same key in `ops`, keeping where the op said the
/// transaction's status record is (a redone prewrite must name the same anchor).
fn replace_op(ops: &mut [KvOp], mut op: KvOp) {
    if let Some(o) = ops.iter_mut().find(|o| o.key == op.key) {
        op.status_table_id = std::mem::take(&mut o.status_table_id);
        op.status_tablet = o.status_tablet;
        *o = op;
    }
}

fn conflict(msg: impl Into<String>) -> ClientError {
    ClientError::Server {
        code: StatusCode::TxnConflict,
        message: msg.into(),
    }
}

/// Where the status record of the holder of the intent `c` is (`None`: the status table).
fn status_at_of(c: &Conflict) -> Option<StatusAt> {
    (!c.status_table_id.is_empty()).then(|| StatusAt {
        table_id: c.status_table_id.clone(),
        tablet: c.status_tablet,
    })
}

/// How long a status record whose transaction is fully resolved waits to be removed by
/// riding along with a later commit anchored in the same tablet, before it is removed by
/// a write of its own.
const FORGET_DELAY: Duration = Duration::from_millis(5);

/// Status records of resolved transactions waiting for removal in one anchor tablet: the
/// next commit anchored there removes them in its own write, which saves a Raft write per
/// transaction under load ([`Client::queue_forget`]).
pub(crate) struct Forgets {
    table: Table,
    idx: usize,
    ids: Vec<TxnId>,
}

/// How long the resolutions of a committed (or aborted) transaction's intents wait to ride
/// along with another write to their tablet before they are written on their own.
const RESOLVE_DELAY: Duration = Duration::from_millis(1);

/// Resolutions waiting in one tablet: the next prewrite or commit sent there carries them in
/// its own write, which saves a Raft write and a client call per distributed transaction
/// under load ([`Client::queue_resolves`]).
pub(crate) struct Resolves {
    table: Table,
    idx: usize,
    ops: Vec<KvOp>,
    /// One per transaction whose ops are in `ops`.
    waits: Vec<Arc<ResolveWait>>,
}

/// The resolutions of one anchored transaction still to be applied: once every tablet's
/// are, its status record is removed ([`Client::queue_forget`]).
pub(crate) struct ResolveWait {
    tablets_left: AtomicUsize,
    id: TxnId,
    anchor: (Table, usize),
}

/// Where a transaction's status record is.
#[derive(Clone)]
pub(crate) enum StatusPlace {
    /// The table `system_txn.status`, in the tablet the id hashes to.
    System,
    /// Tablet `idx` of a participant table (the transaction's anchor: its commit writes
    /// that tablet's rows and the record in one Raft write).
    Anchor(Table, usize),
}

fn txn_id_of(c: &Conflict) -> Result<TxnId> {
    c.txn_id
        .as_slice()
        .try_into()
        .map_err(|_| ClientError::Server {
            code: StatusCode::Internal,
            message: "malformed transaction id in a lock".into(),
        })
}

/// How a read-committed write is redone on a newer version of its key: given the newest
/// committed value, the value to write instead, or `None` when it cannot be redone (then
/// the conflict fails the transaction, as without it).
pub type Reapply = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// One buffered write.
#[derive(Clone)]
struct Buffered {
    /// `None` deletes.
    value: Option<Vec<u8>>,
    ttl_ms: u64,
    /// The snapshot the write was made at: a version of the key newer than this fails the
    /// commit (unless `reapply` redoes the write on it).
    since: HybridTime,
    /// Read committed: how to redo this write on a newer version met at commit
    /// ([`Transaction::put_reapplicable`]).
    reapply: Option<Reapply>,
}

impl std::fmt::Debug for Buffered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffered")
            .field("value", &self.value)
            .field("since", &self.since)
            .field("reapply", &self.reapply.is_some())
            .finish()
    }
}

/// Ops per tablet, keyed by (table id, tablet index).
type PerTablet = BTreeMap<(String, usize), Vec<KvOp>>;

/// A key's place: (table id, tablet index, key).
type Place = (String, usize, Vec<u8>);

/// The writes a transaction had buffered at a savepoint ([`Transaction::savepoint`]).
#[derive(Clone)]
pub struct Savepoint {
    writes: BTreeMap<Place, Buffered>,
}

/// A transaction in progress. Dropping it without `commit` abandons it; nothing is written.
pub struct Transaction {
    client: Client,
    id: TxnId,
    isolation: Isolation,
    /// The snapshot reads run at.
    read_ht: HybridTime,
    /// Versions in `(read_ht, global_limit]` may have been written before this transaction
    /// started on a server whose clock is ahead: reading past them would be stale.
    global_limit: HybridTime,
    /// Per tablet, the leader's clock at this statement's first read there: versions above
    /// it were written after the transaction (statement) began, so they are not uncertain
    /// (YugabyteDB's "local limit"). Reset with each new snapshot.
    local_limits: HashMap<(String, usize), HybridTime>,
    /// Whether a read result of the current snapshot has been handed out (then a restart
    /// can no longer be transparent).
    exposed: bool,
    tables: HashMap<String, Table>,
    writes: BTreeMap<Place, Buffered>,
    /// Keys read (serializable only): validated with read intents at commit.
    reads: BTreeMap<Place, ()>,
    /// Key ranges scanned (serializable only): checked for phantoms at commit.
    ranges: Vec<ScannedRange>,
}

/// A key range a serializable transaction scanned: tablet `idx` of table `table`, keys in
/// `[start, end)` (`end` `None`: to the tablet's end).
#[derive(Clone, Debug)]
struct ScannedRange {
    table: String,
    idx: usize,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl ScannedRange {
    /// The check op: nothing in the range changed after `since`; then the tablet's time is
    /// raised to `raise_to` (0: not raised).
    fn check(&self, id: &TxnId, since: HybridTime, raise_to: HybridTime) -> KvOp {
        KvOp {
            key: self.start.clone(),
            expected: self.end.clone().unwrap_or_default(),
            condition: Condition::RangeUnchanged as i32,
            txn_id: id.to_vec(),
            txn_ht: since.0,
            raise_to_ht: raise_to.0,
            ..Default::default()
        }
    }
}

impl Client {
    /// Start a transaction.
    pub fn begin(&self, isolation: Isolation) -> Transaction {
        let now = self.inner.clock.now();
        Transaction {
            client: self.clone(),
            id: txn::new_id(),
            isolation,
            read_ht: now,
            global_limit: now.add_micros(self.max_clock_skew_usec()),
            local_limits: HashMap::new(),
            exposed: false,
            tables: HashMap::new(),
            writes: BTreeMap::new(),
            reads: BTreeMap::new(),
            ranges: Vec::new(),
        }
    }

    pub(crate) fn max_clock_skew_usec(&self) -> u64 {
        self.inner
            .max_clock_skew_usec
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Set the clock-skew bound transactions assume (`--max_clock_skew_usec`).
    pub fn set_max_clock_skew_usec(&self, usec: u64) {
        self.inner
            .max_clock_skew_usec
            .store(usec, std::sync::atomic::Ordering::Relaxed);
    }

    /// The table of transaction status records, created on first use.
    async fn status_table(&self) -> Result<&Table> {
        self.inner
            .status_table
            .get_or_try_init(|| async {
                if let Ok(t) = self
                    .open_table(txn::STATUS_NAMESPACE, txn::STATUS_TABLE)
                    .await
                {
                    return Ok(t);
                }
                self.create_namespace(txn::STATUS_NAMESPACE, true).await?;
                let created = self
                    .create_table(rpc::mserver::CreateTableRequest {
                        namespace_name: txn::STATUS_NAMESPACE.into(),
                        name: txn::STATUS_TABLE.into(),
                        if_not_exists: true,
                        ..Default::default()
                    })
                    .await;
                if let Err(e) = created {
                    if e.code() != StatusCode::AlreadyExists {
                        return Err(e);
                    }
                }
                let t = self
                    .open_table(txn::STATUS_NAMESPACE, txn::STATUS_TABLE)
                    .await?;
                self.wait_for_leaders(&t).await?;
                Ok(t)
            })
            .await
    }

    /// Where the status record named by an intent (`at`, `None`: the status table) is;
    /// `near` is a table the caller has at hand (usually the record's own).
    pub(crate) async fn status_place(
        &self,
        at: Option<&StatusAt>,
        near: Option<&Table>,
    ) -> Result<StatusPlace> {
        let Some(at) = at else {
            return Ok(StatusPlace::System);
        };
        let table = match near.filter(|t| t.info.table_id == at.table_id) {
            Some(t) => t.clone(),
            None => self.table_by_id(&at.table_id).await?,
        };
        if at.tablet as usize >= table.tablets.len() {
            return Err(ClientError::Server {
                code: StatusCode::Internal,
                message: format!(
                    "transaction status in tablet {} of table {}, which has {}",
                    at.tablet,
                    at.table_id,
                    table.tablets.len()
                ),
            });
        }
        Ok(StatusPlace::Anchor(table, at.tablet as usize))
    }

    /// The status record of transaction `id`, kept where its intents say (`status_at`,
    /// `None`: the status table): `None` if it has none (it is pending, or it finished and
    /// its record was removed after every intent was resolved).
    pub async fn txn_status_at(
        &self,
        id: &TxnId,
        status_at: Option<&StatusAt>,
    ) -> Result<Option<TxnStatus>> {
        let place = self.status_place(status_at, None).await?;
        self.txn_status(id, &place).await
    }

    /// [`Client::txn_status_at`] of a known place.
    pub(crate) async fn txn_status(
        &self,
        id: &TxnId,
        place: &StatusPlace,
    ) -> Result<Option<TxnStatus>> {
        let resp = match place {
            StatusPlace::System => {
                let st = self.status_table().await?;
                // Raw: the status table never holds intents (and resolving would recurse).
                self.read_tablet_raw(st, st.tablet_for(id), &[id.to_vec()], None, None)
                    .await?
            }
            StatusPlace::Anchor(t, idx) => self.read_status_raw(t, *idx, &[id.to_vec()]).await?,
        };
        Ok(resp
            .values
            .into_iter()
            .next()
            .filter(|v| v.found)
            .map(|v| TxnStatus::decode(&v.value).unwrap_or(TxnStatus::Aborted)))
    }

    /// The op that compare-and-sets `id`'s record kept in an anchor tablet from `from`
    /// (`None`: absent) to `to`; with `commit_min` > 0, to `Committed` at the write's time
    /// but at least `commit_min` (and the write's other ops with it).
    fn anchor_status_op(
        id: &TxnId,
        from: Option<&TxnStatus>,
        to: &TxnStatus,
        commit_min: HybridTime,
    ) -> KvOp {
        KvOp {
            key: id.to_vec(),
            value: to.encode(),
            condition: Condition::TxnStatus as i32,
            expected: from.map(TxnStatus::encode).unwrap_or_default(),
            txn_id: id.to_vec(),
            txn_ht: commit_min.0,
            ..Default::default()
        }
    }

    /// Compare-and-set `id`'s status record at `place` from `from` (`None`: absent) to
    /// `to`. Returns the record as it is afterwards.
    async fn swap_status(
        &self,
        id: &TxnId,
        place: &StatusPlace,
        from: Option<&TxnStatus>,
        to: &TxnStatus,
    ) -> Result<Option<TxnStatus>> {
        let (r, _) = match place {
            StatusPlace::System => {
                let st = self.status_table().await?;
                let (condition, expected) = match from {
                    None => (Condition::IfAbsent, Vec::new()),
                    Some(s) => (Condition::IfEquals, s.encode()),
                };
                let op = KvOp {
                    key: id.to_vec(),
                    value: to.encode(),
                    condition: condition as i32,
                    expected,
                    ..Default::default()
                };
                self.write_tablet_raw(st, st.tablet_for(id), vec![op])
                    .await?
            }
            StatusPlace::Anchor(t, idx) => {
                let op = Self::anchor_status_op(id, from, to, HybridTime(0));
                self.write_tablet_raw(t, *idx, vec![op]).await?
            }
        };
        if r.applied {
            return Ok(Some(to.clone()));
        }
        self.txn_status(id, place).await
    }

    /// Decide `id` as `outcome` (a final status) unless it is decided already; returns the
    /// decision. For the coordinator only: it overrides the transaction's own `Pending`
    /// heartbeat, which nobody else writes.
    async fn decide(
        &self,
        id: &TxnId,
        place: &StatusPlace,
        outcome: TxnStatus,
    ) -> Result<TxnStatus> {
        // Usually there is no record yet (no heartbeat was needed): try that first.
        let mut current: Option<TxnStatus> = None;
        for _ in 0..8 {
            if let Some(s) = current.as_ref().filter(|s| s.is_final()) {
                return Ok(s.clone());
            }
            current = self
                .swap_status(id, place, current.as_ref(), &outcome)
                .await?;
        }
        Err(ClientError::Server {
            code: StatusCode::Internal,
            message: format!("transaction {}: status kept changing", txn::id_hex(id)),
        })
    }

    /// Remove `id`'s status record: every intent of the transaction is resolved, so nobody
    /// needs it again (one who still asks finds no record and sees no intent either).
    async fn forget(&self, id: &TxnId, place: &StatusPlace) -> Result<()> {
        match place {
            StatusPlace::System => {
                let st = self.status_table().await?;
                let op = KvOp {
                    key: id.to_vec(),
                    delete: true,
                    ..Default::default()
                };
                self.write_tablet_raw(st, st.tablet_for(id), vec![op])
                    .await
                    .map(|_| ())
            }
            StatusPlace::Anchor(t, idx) => {
                self.queue_forget(t, *idx, *id);
                Ok(())
            }
        }
    }

    /// Remove `id`'s record kept in anchor tablet `idx` of `table` soon: with the next
    /// commit anchored there ([`Client::take_forgets`]), or after [`FORGET_DELAY`] by a
    /// write of its own.
    fn queue_forget(&self, table: &Table, idx: usize, id: TxnId) {
        let tablet_id = table.tablet_id(idx);
        let first = {
            let mut all = self.inner.forgets.lock().unwrap_or_else(|e| e.into_inner());
            let f = all.entry(tablet_id.clone()).or_insert_with(|| Forgets {
                table: table.clone(),
                idx,
                ids: Vec::new(),
            });
            f.ids.push(id);
            f.ids.len() == 1
        };
        if first {
            let client = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(FORGET_DELAY).await;
                let Some((table, idx, ids)) = client.take_forgets(&tablet_id) else {
                    return;
                };
                let ops = ids.iter().map(Client::forget_op).collect();
                if let Err(e) = client.write_tablet_raw(&table, idx, ops).await {
                    tracing::debug!(error = %e, "removing status records");
                }
            });
        }
    }

    /// The records waiting for removal in anchor tablet `tablet_id` (taken: the caller
    /// removes them, or gives them back with [`Client::requeue_forgets`]).
    fn take_forgets(&self, tablet_id: &str) -> Option<(Table, usize, Vec<TxnId>)> {
        let mut all = self.inner.forgets.lock().unwrap_or_else(|e| e.into_inner());
        let f = all.remove(tablet_id)?;
        (!f.ids.is_empty()).then_some((f.table, f.idx, f.ids))
    }

    /// Give back records a refused or failed write did not remove.
    fn requeue_forgets(&self, table: &Table, idx: usize, ids: Vec<TxnId>) {
        for id in ids {
            self.queue_forget(table, idx, id);
        }
    }

    /// Resolve `ops` (one transaction's, in tablet `idx` of `table`) soon: with the next
    /// prewrite or commit sent there ([`Client::take_resolves`]), or after
    /// [`RESOLVE_DELAY`] by a write of their own. Until then readers that meet the intents
    /// resolve them from the status record, which stays until every tablet's are applied.
    fn queue_resolves(&self, table: &Table, idx: usize, ops: Vec<KvOp>, wait: Arc<ResolveWait>) {
        let tablet_id = table.tablet_id(idx);
        let first = {
            let mut all = self
                .inner
                .resolves
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let r = all.entry(tablet_id.clone()).or_insert_with(|| Resolves {
                table: table.clone(),
                idx,
                ops: Vec::new(),
                waits: Vec::new(),
            });
            r.ops.extend(ops);
            r.waits.push(wait);
            r.waits.len() == 1
        };
        if first {
            let client = self.clone();
            tokio::spawn(Box::pin(async move {
                tokio::time::sleep(RESOLVE_DELAY).await;
                let Some(r) = client.take_resolves(&tablet_id) else {
                    return;
                };
                if r.ops.is_empty() {
                    return client.resolves_applied(r.waits);
                }
                match client
                    .write_tablet_raw(&r.table, r.idx, r.ops.clone())
                    .await
                {
                    Ok((w, None)) if w.applied => client.resolves_applied(r.waits),
                    // The record stays; readers and the sweep settle the intents from it.
                    Ok(_) => tracing::debug!("resolving intents: write refused"),
                    Err(e) => tracing::debug!(error = %e, "resolving intents"),
                }
            }));
        }
    }

    /// The resolutions waiting in tablet `tablet_id` (taken: the caller writes them, then
    /// reports with [`Client::ride_done`]).
    pub(crate) fn take_resolves(&self, tablet_id: &str) -> Option<Resolves> {
        let mut all = self
            .inner
            .resolves
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.remove(tablet_id)
    }

    /// A write that carried `ride` is done: `applied` means its ops (so the resolutions)
    /// were applied; otherwise they wait for the next write again.
    fn ride_done(&self, ride: Option<Resolves>, applied: bool) {
        let Some(r) = ride else { return };
        if applied {
            self.resolves_applied(r.waits);
            return;
        }
        let Resolves {
            table,
            idx,
            mut ops,
            waits,
        } = r;
        // Requeued as one unit: the first wait carries every op, the others none.
        for (i, w) in waits.into_iter().enumerate() {
            let ops = if i == 0 {
                std::mem::take(&mut ops)
            } else {
                Vec::new()
            };
            self.queue_resolves(&table, idx, ops, w);
        }
    }

    fn resolves_applied(&self, waits: Vec<Arc<ResolveWait>>) {
        for w in waits {
            if w.tablets_left.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.queue_forget(&w.anchor.0, w.anchor.1, w.id);
            }
        }
    }

    /// The op that removes `id`'s record kept in the tablet it is sent to.
    fn forget_op(id: &TxnId) -> KvOp {
        KvOp {
            key: id.to_vec(),
            condition: Condition::TxnStatusDelete as i32,
            txn_id: id.to_vec(),
            ..Default::default()
        }
    }

    /// Keep `id`'s `Pending` heartbeat fresh while its commit runs, so nobody aborts it for
    /// being old. Writes nothing during the first interval (most commits finish well within
    /// it); runs until dropped, or until the transaction is decided.
    async fn keep_alive(&self, id: &TxnId, place: &StatusPlace) {
        let interval = Duration::from_micros(txn::HEARTBEAT_INTERVAL_MICROS);
        loop {
            tokio::time::sleep(interval).await;
            let current = match self.txn_status(id, place).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(txn = %txn::id_hex(id), error = %e, "reading a heartbeat");
                    continue;
                }
            };
            if current.as_ref().is_some_and(|s| s.is_final()) {
                return;
            }
            let beat = TxnStatus::Pending {
                heartbeat_us: wall_micros(),
            };
            if let Err(e) = self.swap_status(id, place, current.as_ref(), &beat).await {
                tracing::debug!(txn = %txn::id_hex(id), error = %e, "writing a heartbeat");
            }
        }
    }

    /// The outcome of the transaction `id` that wrote an intent at `written_at_us`, whose
    /// status record is where the intent says (`status_at`): its status, or `Aborted` once
    /// neither the intent nor the coordinator's heartbeat is within the timeout (the abort
    /// is recorded, so it can no longer commit); `None` while it is pending and alive.
    pub async fn txn_outcome(
        &self,
        id: &TxnId,
        status_at: Option<&StatusAt>,
        written_at_us: u64,
    ) -> Result<Option<TxnStatus>> {
        let place = self.status_place(status_at, None).await?;
        self.outcome_at(id, &place, written_at_us).await
    }

    async fn outcome_at(
        &self,
        id: &TxnId,
        place: &StatusPlace,
        written_at_us: u64,
    ) -> Result<Option<TxnStatus>> {
        let mut current = self.txn_status(id, place).await?;
        for _ in 0..8 {
            let heartbeat = match &current {
                Some(TxnStatus::Pending { heartbeat_us }) => Some(*heartbeat_us),
                Some(s) => return Ok(Some(s.clone())),
                None => None,
            };
            if !txn::abandoned(wall_micros(), written_at_us, heartbeat) {
                return Ok(None);
            }
            tracing::info!(txn = %txn::id_hex(id), "aborting an abandoned transaction");
            current = self
                .swap_status(id, place, current.as_ref(), &TxnStatus::Aborted)
                .await?;
        }
        Ok(None)
    }

    /// The outcome of the holder of the intent `c` met in `table` (see
    /// [`Client::txn_outcome`]).
    async fn outcome_of(&self, c: &Conflict, table: &Table) -> Result<Option<TxnStatus>> {
        let at = status_at_of(c);
        let place = self.status_place(at.as_ref(), Some(table)).await?;
        self.outcome_at(&txn_id_of(c)?, &place, c.written_at_us)
            .await
    }

    /// The op that resolves `id`'s intents on `key` as its final `status` says (`None` for
    /// a pending one: there is nothing to resolve yet).
    fn resolve_op(id: &TxnId, key: Vec<u8>, status: &TxnStatus) -> Option<KvOp> {
        let (condition, txn_ht) = match status {
            TxnStatus::Committed { commit_ht } => (Condition::ResolveCommit, *commit_ht),
            TxnStatus::Aborted => (Condition::ResolveAbort, 0),
            TxnStatus::Pending { .. } => return None,
        };
        Some(KvOp {
            key,
            condition: condition as i32,
            txn_id: id.to_vec(),
            txn_ht,
            ..Default::default()
        })
    }

    /// Something met the intent `c` on tablet `idx` of `table`: resolve it if its
    /// transaction is decided (or abandoned), else wait a moment. The caller retries.
    pub(crate) async fn resolve_lock(
        &self,
        table: &Table,
        idx: usize,
        c: &Conflict,
        started: Instant,
    ) -> Result<()> {
        let id = txn_id_of(c)?;
        match self.outcome_of(c, table).await? {
            Some(status) => {
                if let Some(op) = Self::resolve_op(&id, c.key.clone(), &status) {
                    self.write_tablet_raw(table, idx, vec![op]).await?;
                }
            }
            None => {
                if started.elapsed() > self.inner.timeout {
                    return Err(ClientError::TimedOut {
                        elapsed: started.elapsed(),
                        last: format!("key locked by transaction {}", txn::id_hex(&id)),
                    });
                }
                let waited = started.elapsed().as_millis() as u64;
                tokio::time::sleep(Duration::from_millis((1 + waited / 10).min(20))).await;
            }
        }
        Ok(())
    }
}

impl Transaction {
    pub fn id(&self) -> &TxnId {
        &self.id
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The snapshot time reads currently use.
    pub fn read_time(&self) -> HybridTime {
        self.read_ht
    }

    /// Start a new statement: under read committed, reads move to a fresh snapshot.
    pub fn new_statement(&mut self) {
        if self.isolation == Isolation::ReadCommitted {
            let now = self.client.inner.clock.now();
            self.read_ht = now;
            self.global_limit = now.add_micros(self.client.max_clock_skew_usec());
            self.local_limits.clear();
            self.exposed = false;
        }
    }

    fn remember(&mut self, table: &Table) -> String {
        let id = table.info.table_id.clone();
        self.tables
            .entry(id.clone())
            .or_insert_with(|| table.clone());
        id
    }

    /// Buffer a put of `key` (routed like [`Client::write`]).
    pub fn put(&mut self, table: &Table, key: &[u8], value: &[u8]) {
        self.put_with_ttl(table, table.tablet_for(key), key, Some(value.to_vec()), 0);
    }

    /// Buffer a delete of `key`.
    pub fn delete(&mut self, table: &Table, key: &[u8]) {
        self.put_with_ttl(table, table.tablet_for(key), key, None, 0);
    }

    /// Buffer a write of `key` in tablet `idx` (`None` deletes), with a TTL in ms (0: none).
    pub fn put_with_ttl(
        &mut self,
        table: &Table,
        idx: usize,
        key: &[u8],
        value: Option<Vec<u8>>,
        ttl_ms: u64,
    ) {
        let tid = self.remember(table);
        self.writes.insert(
            (tid, idx, key.to_vec()),
            Buffered {
                value,
                ttl_ms,
                since: self.read_ht,
                reapply: None,
            },
        );
    }

    /// Buffer a put of `key` that `reapply` can redo on a newer version of the key: if one
    /// is committed before this transaction commits, the commit redoes the write on it
    /// instead of failing — as PostgreSQL's UPDATE under read committed waits for the row
    /// and applies itself to the newest version. Only under read committed, only for a key
    /// this transaction has not written yet, and only while the transaction does not read
    /// the buffered value back (a read makes it part of what the transaction saw, so it
    /// can no longer change); otherwise this is [`Transaction::put`].
    pub fn put_reapplicable(&mut self, table: &Table, key: &[u8], value: &[u8], reapply: Reapply) {
        let idx = table.tablet_for(key);
        let tid = self.remember(table);
        let place = (tid, idx, key.to_vec());
        let reapply = (self.isolation == Isolation::ReadCommitted
            && !self.writes.contains_key(&place))
        .then_some(reapply);
        self.writes.insert(
            place,
            Buffered {
                value: Some(value.to_vec()),
                ttl_ms: 0,
                since: self.read_ht,
                reapply,
            },
        );
    }

    /// Read one key (own writes first).
    pub async fn get(&mut self, table: &Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_many(&[(table, key)])
            .await?
            .into_iter()
            .next()
            .flatten())
    }

    /// Read keys of any tables and tablets at the snapshot, together: if one of them needs
    /// a read restart before anything was handed out, all are read again transparently.
    pub async fn get_many(&mut self, keys: &[(&Table, &[u8])]) -> Result<Vec<Option<Vec<u8>>>> {
        let keys: Vec<(&Table, usize, &[u8])> = keys
            .iter()
            .map(|(t, k)| (*t, t.tablet_for(k), *k))
            .collect();
        self.get_many_in(&keys).await
    }

    /// [`Transaction::get_many`] with each key's tablet given (for layouts whose routing key
    /// is not the whole key, like [`Client::read_tablet`]).
    pub async fn get_many_in(
        &mut self,
        keys: &[(&Table, usize, &[u8])],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let places: Vec<Place> = keys
            .iter()
            .map(|(t, idx, k)| {
                let tid = self.remember(t);
                (tid, *idx, k.to_vec())
            })
            .collect();
        let started = Instant::now();
        'restart: loop {
            let mut out: Vec<Option<Vec<u8>>> = vec![None; places.len()];
            // Group the keys not written by this transaction per tablet.
            let mut per_tablet: BTreeMap<(String, usize), Vec<usize>> = BTreeMap::new();
            for (i, p) in places.iter().enumerate() {
                match self.writes.get_mut(p) {
                    Some(b) => {
                        // Seen now: it can no longer be redone on another version.
                        b.reapply = None;
                        out[i] = b.value.clone();
                    }
                    None => per_tablet.entry((p.0.clone(), p.1)).or_default().push(i),
                }
            }
            // Every tablet at once; each settles the locks it meets on its own.
            let this = &*self;
            let reads = per_tablet.iter().map(|((tid, idx), which)| {
                let table = &this.tables[tid];
                let ks: Vec<Vec<u8>> = which.iter().map(|&i| places[i].2.clone()).collect();
                let until = this.uncertain_until(tid, *idx);
                let client = &this.client;
                let read_ht = this.read_ht;
                async move {
                    loop {
                        let resp = client
                            .read_tablet_raw(table, *idx, &ks, Some(read_ht), Some(until))
                            .await?;
                        match &resp.locked {
                            Some(c) => client.resolve_lock(table, *idx, c, started).await?,
                            None => return Ok::<_, ClientError>(resp),
                        }
                    }
                }
            });
            let resps = futures::future::join_all(reads).await;
            let mut restart_at: Option<HybridTime> = None;
            for (((tid, idx), which), resp) in per_tablet.iter().zip(resps) {
                let resp = resp?;
                self.note_local_limit(tid, *idx, resp.local_limit);
                if resp.restart_ht != 0 {
                    restart_at = restart_at.max(Some(HybridTime(resp.restart_ht)));
                    continue;
                }
                for (&i, v) in which.iter().zip(resp.values) {
                    out[i] = v.found.then_some(v.value);
                }
            }
            if let Some(ht) = restart_at {
                self.restart(ht)?;
                continue 'restart;
            }
            self.exposed = true;
            if self.isolation == Isolation::Serializable {
                for p in places {
                    self.reads.insert(p, ());
                }
            }
            return Ok(out);
        }
    }

    /// The end of the uncertainty window for a read of tablet `idx` of table `tid`.
    fn uncertain_until(&self, tid: &str, idx: usize) -> HybridTime {
        match self.local_limits.get(&(tid.to_owned(), idx)) {
            Some(l) => self.global_limit.min(*l),
            None => self.global_limit,
        }
    }

    fn note_local_limit(&mut self, tid: &str, idx: usize, limit: u64) {
        if limit != 0 {
            self.local_limits
                .entry((tid.to_owned(), idx))
                .or_insert(HybridTime(limit));
        }
    }

    /// Move the snapshot up to `ht` if nothing was handed out yet, else fail.
    fn restart(&mut self, ht: HybridTime) -> Result<()> {
        if self.exposed {
            return Err(conflict(
                "restart read required: a concurrent write is within the clock-skew window",
            ));
        }
        self.read_ht = ht;
        Ok(())
    }

    /// Rows of tablet `idx` of `table` in `[start, end)` at the snapshot, own writes
    /// merged in, at most `limit` (0: the server's default). Returns the rows and whether
    /// the tablet has more after them.
    pub async fn scan(
        &mut self,
        table: &Table,
        idx: usize,
        start: Option<Vec<u8>>,
        end: Option<Vec<u8>>,
        limit: u32,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, bool)> {
        let tid = self.remember(table);
        let started = Instant::now();
        let resp = loop {
            let resp = self
                .client
                .scan_tablet_raw(
                    table,
                    idx,
                    start.clone(),
                    end.clone(),
                    limit,
                    Some(self.read_ht),
                    Some(self.uncertain_until(&tid, idx)),
                )
                .await?;
            self.note_local_limit(&tid, idx, resp.local_limit);
            if let Some(c) = &resp.locked {
                self.client.resolve_lock(table, idx, c, started).await?;
                continue;
            }
            if resp.restart_ht != 0 {
                self.restart(HybridTime(resp.restart_ht))?;
                continue;
            }
            break resp;
        };
        self.exposed = true;
        let more = resp.more;
        let last = resp.kvs.last().map(|kv| kv.key.clone());
        let mut rows: BTreeMap<Vec<u8>, Vec<u8>> =
            resp.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        // Own writes in the range (up to the last row returned if the tablet has more).
        let lo = (tid.clone(), idx, start.clone().unwrap_or_default());
        for ((t, i, k), b) in self.writes.range_mut(lo..) {
            if *t != tid || *i != idx {
                break;
            }
            if end.as_ref().is_some_and(|e| k >= e) {
                break;
            }
            if more && last.as_ref().is_some_and(|l| k > l) {
                break;
            }
            b.reapply = None;
            match &b.value {
                Some(v) => rows.insert(k.clone(), v.clone()),
                None => rows.remove(k),
            };
        }
        if self.isolation == Isolation::Serializable {
            for k in rows.keys() {
                self.reads.insert((tid.clone(), idx, k.clone()), ());
            }
            // What the scan covered: up to the end asked for, or through the last row the
            // tablet returned if it has more.
            let covered_end = match (more, &last) {
                (true, Some(l)) => Some([l.as_slice(), &[0]].concat()),
                _ => end,
            };
            self.ranges.push(ScannedRange {
                table: tid,
                idx,
                start: start.unwrap_or_default(),
                end: covered_end,
            });
        }
        Ok((rows.into_iter().collect(), more))
    }

    /// Remember the buffered writes, to go back to them with [`Transaction::rollback_to`]
    /// (SQL's SAVEPOINT).
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            writes: self.writes.clone(),
        }
    }

    /// Forget the writes buffered since `sp` (SQL's ROLLBACK TO SAVEPOINT). Reads made since
    /// stay validated under serializable, which can only make the commit stricter.
    pub fn rollback_to(&mut self, sp: Savepoint) {
        self.writes = sp.writes;
    }

    /// Every row of `table` at the snapshot, own writes merged in (like
    /// [`Client::scan_all`]).
    pub async fn scan_all(&mut self, table: &Table) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for idx in 0..table.tablets.len() {
            let mut start = None;
            loop {
                let (rows, more) = self.scan(table, idx, start.clone(), None, 10_000).await?;
                let last = rows.last().map(|(k, _)| k.clone());
                out.extend(rows);
                match crate::next_page(more, last) {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// Whether the transaction has buffered writes.
    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    /// Drop everything buffered; nothing was written.
    pub fn rollback(self) {}

    /// Commit: all writes become visible at one hybrid time, or none does. A lost conflict
    /// is a [`StatusCode::TxnConflict`] error; then nothing was written.
    pub async fn commit(self) -> Result<HybridTime> {
        if self.writes.is_empty() {
            return Ok(self.read_ht);
        }
        // Serializable: keys read but not written are validated too.
        let mut checks: Vec<Place> = Vec::new();
        if self.isolation == Isolation::Serializable {
            checks = self
                .reads
                .keys()
                .filter(|p| !self.writes.contains_key(*p))
                .cloned()
                .collect();
        }
        let mut tablets: BTreeMap<(String, usize), ()> = BTreeMap::new();
        for (t, i, _) in self.writes.keys().chain(checks.iter()) {
            tablets.insert((t.clone(), *i), ());
        }
        for r in &self.ranges {
            tablets.insert((r.table.clone(), r.idx), ());
        }
        if tablets.len() == 1 {
            self.commit_one_tablet(checks).await
        } else {
            self.commit_distributed(checks).await
        }
    }

    fn op_for(key: &[u8], b: &Buffered, condition: Condition, id: &[u8]) -> KvOp {
        KvOp {
            key: key.to_vec(),
            value: b.value.clone().unwrap_or_default(),
            delete: b.value.is_none(),
            ttl_ms: b.ttl_ms,
            condition: condition as i32,
            txn_id: id.to_vec(),
            txn_ht: b.since.0,
            ..Default::default()
        }
    }

    /// The fast path: one conditional write. Resending it after a lost answer is safe: the
    /// tablet's retry filter answers a resend of an applied commit instead of judging it
    /// again (its own versions would now look like a conflict).
    async fn commit_one_tablet(self, checks: Vec<Place>) -> Result<HybridTime> {
        let Some(((tid, idx, _), _)) = self
            .writes
            .iter()
            .next()
            .map(|(p, b)| (p.clone(), b.clone()))
        else {
            return Ok(self.read_ht);
        };
        let table = self.tables[&tid].clone();
        let mut ops: Vec<KvOp> = self
            .writes
            .iter()
            .map(|((_, _, k), b)| Self::op_for(k, b, Condition::Unchanged, &[]))
            .collect();
        for (_, _, k) in &checks {
            ops.push(KvOp {
                key: k.clone(),
                condition: Condition::UnchangedCheck as i32,
                txn_ht: self.read_ht.0,
                ..Default::default()
            });
        }
        // Checked in the same write, so at its own time: nothing to raise.
        for r in &self.ranges {
            ops.push(r.check(&self.id, self.read_ht, HybridTime(0)));
        }
        let started = Instant::now();
        loop {
            let (r, c) = self.write_carrying(&table, idx, ops.clone()).await?;
            match c {
                Some(c) if c.locked => {
                    self.client.resolve_lock(&table, idx, &c, started).await?;
                }
                Some(c) => {
                    // A read-committed write redone on the newer version (this commit holds
                    // no intents, so it may wait for others while it reads).
                    match self.redo(&table, idx, &c.key, started).await? {
                        Some(b) => replace_op(
                            &mut ops,
                            Self::op_for(&c.key, &b, Condition::Unchanged, &[]),
                        ),
                        None => {
                            tracing::debug!(key = ?String::from_utf8_lossy(&c.key), ht = r.ht.0, "one-tablet commit refused");
                            return Err(conflict(
                                "could not serialize access due to concurrent update",
                            ));
                        }
                    }
                }
                None => return Ok(r.ht),
            }
            if started.elapsed() > self.client.inner.timeout {
                return Err(conflict("commit timed out"));
            }
        }
    }

    /// The [`Reapply`] of the buffered write of `key` in tablet `idx` of `table`, if any.
    fn reapply_of(&self, table: &Table, idx: usize, key: &[u8]) -> Option<&Reapply> {
        let place = (table.info.table_id.clone(), idx, key.to_vec());
        self.writes.get(&place)?.reapply.as_ref()
    }

    /// The buffered write of `key` (tablet `idx` of `table`) redone on the key's newest
    /// committed version, which becomes its snapshot; `None` if the write has no
    /// [`Reapply`] or it declines (the key is gone, ...). An intent met on the key is
    /// waited for only as [`Transaction::may_wait`] allows.
    async fn redo(
        &self,
        table: &Table,
        idx: usize,
        key: &[u8],
        started: Instant,
    ) -> Result<Option<Buffered>> {
        let Some(reapply) = self.reapply_of(table, idx, key) else {
            return Ok(None);
        };
        let keys = [key.to_vec()];
        let resp = loop {
            let resp = self
                .client
                .read_tablet_raw(table, idx, &keys, None, None)
                .await?;
            match &resp.locked {
                None => break resp,
                Some(c) => {
                    if !self.settle(table, idx, c, true, started).await? {
                        return Ok(None);
                    }
                }
            }
        };
        let Some(newest) = resp.values.into_iter().next().filter(|v| v.found) else {
            return Ok(None);
        };
        Ok(reapply(&newest.value).map(|value| Buffered {
            value: Some(value),
            ttl_ms: 0,
            since: HybridTime(resp.read_ht),
            reapply: None,
        }))
    }

    /// Deal with another transaction's intent `c` met in tablet `idx` of `table` during this
    /// commit: a decided or abandoned holder's intent is resolved (true: try again). A
    /// pending holder is waited for (true, after a pause) only if `redoable` (the key's
    /// write can be redone once the holder is done) and [`Transaction::may_wait`] allows;
    /// otherwise false (this transaction fails).
    async fn settle(
        &self,
        table: &Table,
        idx: usize,
        c: &Conflict,
        redoable: bool,
        started: Instant,
    ) -> Result<bool> {
        let other = txn_id_of(c)?;
        match self.client.outcome_of(c, table).await? {
            Some(status) => {
                if let Some(op) = Client::resolve_op(&other, c.key.clone(), &status) {
                    self.client.write_tablet_raw(table, idx, vec![op]).await?;
                }
                Ok(true)
            }
            None if redoable
                && self.may_wait(&other, started)
                && started.elapsed() < self.client.inner.timeout =>
            {
                // The holder is mid-commit: its intents last a few Raft rounds.
                let pause = (started.elapsed() / 4)
                    .clamp(Duration::from_micros(200), Duration::from_millis(2));
                tokio::time::sleep(pause).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether this transaction, holding intents, may (still) wait for `other`'s, having
    /// waited since `started`: wait-die on the transaction ids, so that the waits with no
    /// end all go one way and no cycle (deadlock) can form, softened by a short grace for
    /// the other way ([`DIE_AFTER`]): a holder is usually done within a few Raft rounds,
    /// and in a cycle the waiter with the higher id gives up after the grace.
    fn may_wait(&self, other: &TxnId, started: Instant) -> bool {
        self.id < *other || started.elapsed() < DIE_AFTER
    }

    /// A commit over several tablets: anchored in one of them
    /// ([`Transaction::commit_anchored`]), or, for a serializable transaction that scanned
    /// ranges (whose checks need the commit time before the commit), with its status
    /// record in the status table ([`Transaction::commit_with_status_table`]).
    async fn commit_distributed(self, checks: Vec<Place>) -> Result<HybridTime> {
        if self.ranges.is_empty() {
            self.commit_anchored(checks).await
        } else {
            self.commit_with_status_table(checks).await
        }
    }

    /// Prewrite every tablet, commit the status record; the intents are resolved (and the
    /// record removed) in the background, after the answer.
    async fn commit_with_status_table(self, checks: Vec<Place>) -> Result<HybridTime> {
        let id = self.id;
        let place = StatusPlace::System;
        // The status table first: the first distributed commit creates it, which can take
        // seconds, and intents written before would age towards the timeout meanwhile.
        self.client.status_table().await?;
        let (per_tablet, _) = self.commit_ops(&checks, None);
        let (max_ht, mut failure) = self.prewrite_with_heartbeat(&per_tablet, &place).await;
        let commit_ht = max_ht.next().max(self.client.inner.clock.now());
        if failure.is_none() && !self.ranges.is_empty() {
            failure = self.check_ranges(commit_ht).await.err();
        }
        if let Some(e) = failure {
            return Err(self.abort(per_tablet, place, e).await);
        }
        let status = self
            .client
            .decide(
                &id,
                &place,
                TxnStatus::Committed {
                    commit_ht: commit_ht.0,
                },
            )
            .await;
        match status {
            Ok(TxnStatus::Committed { commit_ht }) => {
                Ok(self.committed(per_tablet, place, HybridTime(commit_ht)))
            }
            Ok(_) => {
                self.resolve_later(per_tablet, TxnStatus::Aborted, place);
                Err(conflict("transaction aborted: it ran past its timeout"))
            }
            // Unknown: the status write may or may not have happened. The intents stay until
            // a reader or the sweep resolves them by the status record.
            Err(e) => Err(e),
        }
    }

    /// The ops of a distributed commit: per participant tablet, its prewrites (write
    /// intents, and read intents for `checks`) naming `anchor` as where the status record
    /// is; and the anchor's own ops, written directly by the anchored commit (none without
    /// an anchor).
    fn commit_ops(
        &self,
        checks: &[Place],
        anchor: Option<&(String, usize)>,
    ) -> (PerTablet, Vec<KvOp>) {
        let id = self.id;
        let is_anchor = |t: &String, i: usize| anchor.is_some_and(|a| (&a.0, a.1) == (t, i));
        let intent = |mut op: KvOp| {
            if let Some((table_id, idx)) = anchor {
                op.status_table_id = table_id.clone();
                op.status_tablet = *idx as u32;
            }
            op
        };
        let mut per_tablet: PerTablet = BTreeMap::new();
        let mut own = Vec::new();
        for ((t, i, k), b) in &self.writes {
            if is_anchor(t, *i) {
                own.push(Self::op_for(k, b, Condition::Unchanged, &[]));
            } else {
                per_tablet
                    .entry((t.clone(), *i))
                    .or_default()
                    .push(intent(Self::op_for(k, b, Condition::IntentWrite, &id)));
            }
        }
        for (t, i, k) in checks {
            let anchored = is_anchor(t, *i);
            let op = KvOp {
                key: k.clone(),
                condition: if anchored {
                    Condition::UnchangedCheck
                } else {
                    Condition::IntentRead
                } as i32,
                txn_id: if anchored { Vec::new() } else { id.to_vec() },
                txn_ht: self.read_ht.0,
                ..Default::default()
            };
            if anchored {
                own.push(op);
            } else {
                per_tablet
                    .entry((t.clone(), *i))
                    .or_default()
                    .push(intent(op));
            }
        }
        (per_tablet, own)
    }

    /// Prewrite every tablet of `per_tablet` at once, keeping a heartbeat in the status
    /// record at `place` if that takes long (so that nobody takes the intents for abandoned
    /// ones). Returns the newest prewrite reply time (at least the snapshot) and the first
    /// failure.
    async fn prewrite_with_heartbeat(
        &self,
        per_tablet: &PerTablet,
        place: &StatusPlace,
    ) -> (HybridTime, Option<ClientError>) {
        let results = {
            let prewrites = async {
                let r = self.prewrite_all(per_tablet).await;
                // Test hook: a prewrite phase that outlasts the timeout.
                if failpoint_armed("txn_slow_prewrite") {
                    tokio::time::sleep(Duration::from_micros(
                        txn::DEFAULT_TIMEOUT_MICROS + 2_000_000,
                    ))
                    .await;
                }
                r
            };
            tokio::pin!(prewrites);
            tokio::select! {
                r = &mut prewrites => r,
                // It ends only once the transaction is decided (aborted by someone).
                _ = self.client.keep_alive(&self.id, place) => prewrites.await,
            }
        };
        let mut max_ht = self.read_ht;
        let mut failure = None;
        for r in results {
            match r {
                Ok(ht) => max_ht = max_ht.max(ht),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        failpoint("txn_after_prewrite");
        (max_ht, failure)
    }

    /// The transaction committed at `commit_ht`: resolve its intents in the background and
    /// return the commit time.
    fn committed(
        self,
        per_tablet: PerTablet,
        place: StatusPlace,
        commit_ht: HybridTime,
    ) -> HybridTime {
        failpoint("txn_after_commit");
        self.client.inner.clock.update(commit_ht);
        self.resolve_later(
            per_tablet,
            TxnStatus::Committed {
                commit_ht: commit_ht.0,
            },
            place,
        );
        commit_ht
    }

    /// Commit anchored in one participant tablet, the one with the most keys (as
    /// CockroachDB anchors its transaction record): prewrite intents on the others, which
    /// name the anchor as where the status record is; then one write to the anchor applies
    /// its own keys directly (checked as the one-tablet commit checks them) together with
    /// the record `Committed { commit_ht }` (compare-and-set from absent) — the commit
    /// point; the other intents are resolved and the record removed in the background.
    /// Three Raft writes for a two-tablet transaction instead of six.
    async fn commit_anchored(self, checks: Vec<Place>) -> Result<HybridTime> {
        let id = self.id;
        let mut count: BTreeMap<(String, usize), usize> = BTreeMap::new();
        for (t, i, _) in self.writes.keys().chain(checks.iter()) {
            *count.entry((t.clone(), *i)).or_default() += 1;
        }
        let Some(anchor) = count
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(place, _)| place.clone())
        else {
            return Ok(self.read_ht);
        };
        let table = self.tables[&anchor.0].clone();
        let idx = anchor.1;
        let place = StatusPlace::Anchor(table.clone(), idx);
        let (per_tablet, mut own) = self.commit_ops(&checks, Some(&anchor));
        let (max_ht, failure) = self.prewrite_with_heartbeat(&per_tablet, &place).await;
        if let Some(e) = failure {
            return Err(self.abort(per_tablet, place, e).await);
        }
        // Above every prewrite's reply time (docs/design/transactions.md).
        let commit_min = max_ht.next();
        let started = Instant::now();
        // What the record holds now, as far as we know (a heartbeat may have been written).
        let mut expected: Option<TxnStatus> = None;
        loop {
            let mut ops = own.clone();
            ops.push(Client::anchor_status_op(
                &id,
                expected.as_ref(),
                &TxnStatus::Committed { commit_ht: 0 },
                commit_min,
            ));
            // Records of earlier transactions anchored here, resolved since, go along.
            let forgets = self.client.take_forgets(&table.tablet_id(idx));
            if let Some((_, _, ids)) = &forgets {
                ops.extend(ids.iter().map(Client::forget_op));
            }
            // An error leaves the outcome unknown: the intents stay until a reader or the
            // sweep settles them by the record, whichever way it went.
            let written = self.write_carrying(&table, idx, ops).await;
            if let Some((t, i, ids)) = forgets {
                if !matches!(&written, Ok((r, None)) if r.applied) {
                    self.client.requeue_forgets(&t, i, ids);
                }
            }
            let (r, c) = written?;
            match c {
                // The write's own time (or commit_min): where the anchor's rows are.
                None if r.applied && !r.resent => {
                    return Ok(self.committed(per_tablet, place, r.ht.max(commit_min)));
                }
                // Refused by the record (our own heartbeat, or someone aborted us), or
                // applied by an earlier attempt whose answer was lost (then `r.ht` is a
                // later time than the commit's): the record says what happened.
                None => match self.client.txn_status(&id, &place).await? {
                    Some(TxnStatus::Committed { commit_ht }) => {
                        return Ok(self.committed(per_tablet, place, HybridTime(commit_ht)));
                    }
                    Some(TxnStatus::Aborted) if !r.applied => {
                        self.resolve_later(per_tablet, TxnStatus::Aborted, place);
                        return Err(conflict("transaction aborted: it ran past its timeout"));
                    }
                    other if r.applied => {
                        return Err(ClientError::Server {
                            code: StatusCode::Internal,
                            message: format!(
                                "transaction {}: commit applied but its record reads {other:?}",
                                txn::id_hex(&id)
                            ),
                        })
                    }
                    other => expected = other,
                },
                Some(c) if c.locked => {
                    let redoable = self.reapply_of(&table, idx, &c.key).is_some();
                    if !self.settle(&table, idx, &c, redoable, started).await? {
                        let e = conflict(format!(
                            "could not serialize access: key locked by transaction {}",
                            txn::id_hex(&txn_id_of(&c)?)
                        ));
                        return Err(self.abort(per_tablet, place, e).await);
                    }
                }
                Some(c) => match self.redo(&table, idx, &c.key, started).await? {
                    Some(b) => replace_op(
                        &mut own,
                        Self::op_for(&c.key, &b, Condition::Unchanged, &[]),
                    ),
                    None => {
                        let e = conflict("could not serialize access due to concurrent update");
                        return Err(self.abort(per_tablet, place, e).await);
                    }
                },
            }
            if started.elapsed() > self.client.inner.timeout {
                let e = conflict("commit timed out");
                return Err(self.abort(per_tablet, place, e).await);
            }
        }
    }

    /// Abort a distributed commit that failed with `e` before its commit point: record
    /// `Aborted` at `place` (so it can never commit), resolve its intents; returns `e`.
    async fn abort(self, per_tablet: PerTablet, place: StatusPlace, e: ClientError) -> ClientError {
        match self
            .client
            .decide(&self.id, &place, TxnStatus::Aborted)
            .await
        {
            Ok(status) => self.resolve_later(per_tablet, status, place),
            Err(err) => {
                tracing::warn!(txn = %txn::id_hex(&self.id), error = %err, "recording an abort")
            }
        }
        e
    }

    /// Serializable, distributed: check that no range this transaction scanned changed after
    /// its snapshot, once the commit time is chosen. Each check raises its tablet's time to
    /// `commit_ht`, so whatever lands in the range afterwards is above the commit: the
    /// transaction's reads hold at `commit_ht`, where its writes appear.
    async fn check_ranges(&self, commit_ht: HybridTime) -> Result<()> {
        let mut per_tablet: PerTablet = BTreeMap::new();
        for r in &self.ranges {
            per_tablet
                .entry((r.table.clone(), r.idx))
                .or_default()
                .push(r.check(&self.id, self.read_ht, commit_ht));
        }
        for r in self.prewrite_all(&per_tablet).await {
            r?;
        }
        Ok(())
    }

    /// [`Transaction::prewrite`] each tablet's ops, every tablet at once.
    async fn prewrite_all(&self, per_tablet: &PerTablet) -> Vec<Result<HybridTime>> {
        let calls = per_tablet
            .iter()
            .map(|((tid, idx), ops)| self.prewrite(&self.tables[tid], *idx, ops.clone()));
        futures::future::join_all(calls).await
    }

    /// Write `ops` to tablet `idx` of `table` with the resolutions waiting there riding
    /// along ([`Client::queue_resolves`]); they are applied exactly when the write is.
    async fn write_carrying(
        &self,
        table: &Table,
        idx: usize,
        mut ops: Vec<KvOp>,
    ) -> Result<(crate::WriteResult, Option<Conflict>)> {
        let ride = self.client.take_resolves(&table.tablet_id(idx));
        if let Some(r) = &ride {
            ops.extend(r.ops.iter().cloned());
        }
        let written = self.client.write_tablet_raw(table, idx, ops).await;
        self.client
            .ride_done(ride, matches!(&written, Ok((r, None)) if r.applied));
        written
    }

    /// Prewrite `ops` on one tablet; the returned time is one the commit must exceed.
    async fn prewrite(&self, table: &Table, idx: usize, mut ops: Vec<KvOp>) -> Result<HybridTime> {
        let started = Instant::now();
        loop {
            let (r, c) = self.write_carrying(table, idx, ops.clone()).await?;
            match c {
                None => return Ok(r.ht),
                Some(c) if c.locked => {
                    // A decided or abandoned holder is cleared out of the way; a pending one
                    // is waited for only by a write that can be redone, under wait-die.
                    let redoable = self.reapply_of(table, idx, &c.key).is_some();
                    if !self.settle(table, idx, &c, redoable, started).await? {
                        return Err(conflict(format!(
                            "could not serialize access: key locked by transaction {}",
                            txn::id_hex(&txn_id_of(&c)?)
                        )));
                    }
                }
                Some(c) => match self.redo(table, idx, &c.key, started).await? {
                    Some(b) => replace_op(
                        &mut ops,
                        Self::op_for(&c.key, &b, Condition::IntentWrite, &self.id),
                    ),
                    None => {
                        return Err(conflict(
                            "could not serialize access due to concurrent update (prewrite)",
                        ))
                    }
                },
            }
            if started.elapsed() > self.client.inner.timeout {
                return Err(conflict("prewrite timed out"));
            }
        }
    }

    /// Resolve every intent of this transaction as its final `status` says, in the
    /// background, then remove the status record. Best effort: what fails here is resolved
    /// later by readers or the sweep, from the status record, which then stays.
    fn resolve_later(self, per_tablet: PerTablet, status: TxnStatus, place: StatusPlace) {
        let Transaction {
            client, id, tables, ..
        } = self;
        if let StatusPlace::Anchor(t, i) = &place {
            // Ride along with other writes to those tablets (Client::queue_resolves).
            let wait = Arc::new(ResolveWait {
                tablets_left: AtomicUsize::new(per_tablet.len()),
                id,
                anchor: (t.clone(), *i),
            });
            if per_tablet.is_empty() {
                client.queue_forget(t, *i, id);
            }
            for ((tid, idx), ops) in &per_tablet {
                let ops: Vec<KvOp> = ops
                    .iter()
                    .filter_map(|o| Client::resolve_op(&id, o.key.clone(), &status))
                    .collect();
                client.queue_resolves(&tables[tid], *idx, ops, wait.clone());
            }
            return;
        }
        tokio::spawn(Box::pin(async move {
            let calls = per_tablet.iter().map(|((tid, idx), ops)| {
                let ops: Vec<KvOp> = ops
                    .iter()
                    .filter_map(|o| Client::resolve_op(&id, o.key.clone(), &status))
                    .collect();
                client.write_tablet_raw(&tables[tid], *idx, ops)
            });
            let mut resolved = true;
            for r in futures::future::join_all(calls).await {
                if let Err(e) = r {
                    tracing::debug!(txn = %txn::id_hex(&id), error = %e, "resolving intents");
                    resolved = false;
                }
            }
            if resolved {
                if let Err(e) = client.forget(&id, &place).await {
                    tracing::debug!(txn = %txn::id_hex(&id), error = %e, "removing a status record");
                }
            }
        }));
    }
}
