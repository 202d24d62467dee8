//! `client` — how every query layer (and every tool) reaches data. Key types: [`Client`]
//! and [`Table`].
//!
//! * Metadata: table → tablets (hash ranges) → replicas come from the mserver leader and are
//!   cached; the cache is refreshed when calls keep failing.
//! * Routing: a key's tablet is the one whose hash range holds `partition_hash(key)` (or the
//!   only tablet of a range-partitioned table). Calls go to the cached leader, follow
//!   `NOT_LEADER` hints, fall through the replicas on errors, and retry with backoff until
//!   the deadline — so elections and restarts are invisible to callers except as latency.
//! * Local short-cut: a client created inside a dbserver ([`Client::with_local`]) calls that
//!   server's tablet service directly, without the network or protobuf encoding.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::{Hlc, HybridTime, StatusCode};
use rpc::mserver::mserver_service_client::MserverServiceClient;
use rpc::mserver::*;
use rpc::tablet::tablet_service_server::TabletService;
use rpc::tablet::*;
use rpc::wire::Method;
use tonic::transport::Channel;

pub use rpc::mserver::{ServerInfo, TableInfo, TabletLocation};
pub use rpc::tablet::{Condition, KvOp};
pub use txn::{Isolation, StatusAt, TxnStatus};
pub use txn_coord::{Reapply, Savepoint, Transaction};

mod requests;
mod txn_coord;

/// Outcome of [`Client::write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteResult {
    /// The hybrid time the write committed at.
    pub ht: HybridTime,
    /// False when an op's condition failed and nothing was written.
    pub applied: bool,
    /// The tablet had applied this write already (a resend after a lost answer): `ht` is
    /// a time at or above the write's, not the write's own.
    pub resent: bool,
}

/// Errors returned to callers.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{message}")]
    Server { code: StatusCode, message: String },
    #[error("timed out after {elapsed:?}: {last}")]
    TimedOut { elapsed: Duration, last: String },
    #[error("no mserver reachable at {addrs}: {last}")]
    NoMserver { addrs: String, last: String },
}

impl ClientError {
    pub fn code(&self) -> StatusCode {
        match self {
            ClientError::Server { code, .. } => *code,
            ClientError::TimedOut { .. } => StatusCode::TimedOut,
            ClientError::NoMserver { .. } => StatusCode::ServiceUnavailable,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A dbserver's own tablet service, for calls that need no network.
#[derive(Clone)]
pub struct LocalTablets {
    /// The RPC address other servers know this dbserver by.
    pub rpc_addr: String,
    pub service: Arc<dyn TabletService>,
    /// The server's hybrid clock: the client shares it, so every time the server has seen
    /// (a write it acknowledged, a read it served) is below the client's next reading.
    pub clock: Arc<Hlc>,
}

/// What a call on this process's own dbserver returns (`TabletService` methods are
/// `async_trait`s).
type LocalReply<'s, T> =
    std::pin::Pin<Box<dyn Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send + 's>>;

/// A tablet call's response, which carries the call's status.
trait WithStatus {
    fn status(&self) -> Option<&rpc::common::Status>;
}

macro_rules! with_status {
    ($($t:ty),*) => {$(
        impl WithStatus for $t {
            fn status(&self) -> Option<&rpc::common::Status> {
                self.status.as_ref()
            }
        }
    )*};
}
with_status!(WriteResponse, WriteManyResponse, ReadResponse, ScanResponse);

/// A table handle: its info and tablet locations (sorted by hash range). Cheap to clone
/// (both are shared): a transaction keeps a handle of every table it touches.
#[derive(Clone, Debug)]
pub struct Table {
    pub info: Arc<TableInfo>,
    pub tablets: Arc<Vec<TabletLocation>>,
}

impl Table {
    /// Index of the tablet that holds `key`.
    pub fn tablet_for(&self, key: &[u8]) -> usize {
        if self.info.range_partitioned || self.tablets.len() <= 1 {
            return 0;
        }
        self.tablet_for_hash(common::keys::partition_hash(key))
    }

    /// The id of tablet `idx` (empty if there is none: the server answers NOT_FOUND).
    pub fn tablet_id(&self, idx: usize) -> String {
        self.tablets
            .get(idx)
            .map(|t| t.tablet_id.clone())
            .unwrap_or_default()
    }

    /// Index of the hash tablet that owns partition hash `h`.
    pub fn tablet_for_hash(&self, h: u16) -> usize {
        if self.info.range_partitioned || self.tablets.len() <= 1 {
            return 0;
        }
        let h = h as u32;
        self.tablets
            .iter()
            .position(|t| t.hash_start <= h && h < t.hash_end)
            .unwrap_or(0)
    }
}

struct Inner {
    mservers: Vec<String>,
    pool: rpc::ChannelPool,
    mserver_leader: Mutex<Option<String>>,
    leaders: RwLock<HashMap<String, String>>,
    local: Option<LocalTablets>,
    clock: Arc<Hlc>,
    timeout: Duration,
    /// Write batchers of tablets whose leader is on another server (see [`batcher`]).
    batchers: Mutex<HashMap<String, tokio::sync::mpsc::UnboundedSender<Batched>>>,
    /// The transaction status table, once opened (see `txn_coord`).
    status_table: tokio::sync::OnceCell<Table>,
    /// Tables looked up by id (where transactions anchored elsewhere keep their status).
    tables_by_id: RwLock<HashMap<String, Table>>,
    /// Status records to remove, per anchor tablet id (see `txn_coord::Forgets`).
    forgets: Mutex<HashMap<String, txn_coord::Forgets>>,
    /// Intents to resolve, per tablet id (see `txn_coord::Resolves`).
    resolves: Mutex<HashMap<String, txn_coord::Resolves>>,
    /// The clock-skew bound transactions assume (µs).
    max_clock_skew_usec: std::sync::atomic::AtomicU64,
    /// Names writes for the tablets' retry filters.
    requests: Arc<requests::Requests>,
}

/// A write waiting in a batcher. The answer is the outcome, or the ops back for the
/// single-write path (with its retries) when the batched call failed.
struct Batched {
    ops: Vec<KvOp>,
    request: RequestId,
    tx: tokio::sync::oneshot::Sender<Result<WriteOutcome, Vec<KvOp>>>,
}

/// What became of a write handed to a batcher.
enum Batch {
    Done(WriteResult, Option<rpc::tablet::Conflict>),
    /// Not batched (or the batched call failed): take the single-write path with these ops.
    Fallback(Vec<KvOp>),
    Lost,
}

/// Most writes per `WriteMany` call.
const MAX_BATCH: usize = 512;

/// The batcher of one remote tablet: folds every write queued while its previous call was in
/// flight into one `WriteMany` to the cached leader, as YugabyteDB's client batches
/// operations per tablet. One call in flight; ends when the client is gone.
async fn batcher(
    inner: std::sync::Weak<Inner>,
    tablet_id: String,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Batched>,
) {
    while let Some(first) = rx.recv().await {
        let mut waiting = vec![first];
        while waiting.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(b) => waiting.push(b),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        let addr = inner
            .leaders
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&tablet_id)
            .cloned();
        let mut writes = Vec::with_capacity(waiting.len());
        let mut senders = Vec::with_capacity(waiting.len());
        for b in waiting {
            writes.push(WriteBatch {
                ops: b.ops,
                request: Some(b.request),
            });
            senders.push(b.tx);
        }
        let answer = match (addr, inner.pool.clone()) {
            (Some(addr), pool) => {
                let req = WriteManyRequest {
                    tablet_id: tablet_id.clone(),
                    writes: writes.clone(),
                    propagated_ht: inner.clock.now().0,
                };
                pool.wire()
                    .call::<_, WriteManyResponse>(
                        &addr,
                        Method::WriteMany,
                        &req,
                        Some(inner.timeout),
                    )
                    .await
                    .ok()
            }
            (None, _) => None,
        };
        match answer {
            Some(r) if r.status.is_none() && r.outcomes.len() == senders.len() => {
                for (tx, o) in senders.into_iter().zip(r.outcomes) {
                    inner.clock.update(HybridTime(o.ht));
                    let _ = tx.send(Ok(o));
                }
            }
            _ => {
                for (tx, w) in senders.into_iter().zip(writes) {
                    let _ = tx.send(Err(w.ops));
                }
            }
        }
    }
}

/// A connection to an AiSQL cluster. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((10u64 << attempt.min(6)).min(500))
}

fn server_error(s: &rpc::common::Status) -> ClientError {
    ClientError::Server {
        code: StatusCode::from_i32(s.code),
        message: s.message.clone(),
    }
}

impl Client {
    /// A client of the cluster whose mservers are `mservers` (`host:port`).
    pub fn new(mservers: Vec<String>) -> Self {
        Self::build(mservers, rpc::ChannelPool::new(), None)
    }

    /// A client inside a dbserver: shares its channel pool and short-cuts calls to it.
    pub fn with_local(mservers: Vec<String>, pool: rpc::ChannelPool, local: LocalTablets) -> Self {
        Self::build(mservers, pool, Some(local))
    }

    fn build(mservers: Vec<String>, pool: rpc::ChannelPool, local: Option<LocalTablets>) -> Self {
        let clock = local
            .as_ref()
            .map(|l| l.clock.clone())
            .unwrap_or_else(|| Arc::new(Hlc::new()));
        Client {
            inner: Arc::new(Inner {
                mservers,
                pool,
                mserver_leader: Mutex::new(None),
                leaders: RwLock::new(HashMap::new()),
                local,
                clock,
                timeout: Duration::from_secs(30),
                batchers: Mutex::default(),
                status_table: tokio::sync::OnceCell::new(),
                tables_by_id: RwLock::default(),
                forgets: Mutex::default(),
                resolves: Mutex::default(),
                max_clock_skew_usec: std::sync::atomic::AtomicU64::new(
                    txn_coord::DEFAULT_MAX_CLOCK_SKEW_USEC,
                ),
                requests: Arc::new(requests::Requests::new()),
            }),
        }
    }

    /// The same client with another per-call deadline (default 30 s).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        let i = &self.inner;
        Client {
            inner: Arc::new(Inner {
                mservers: i.mservers.clone(),
                pool: i.pool.clone(),
                mserver_leader: Mutex::new(None),
                leaders: RwLock::new(HashMap::new()),
                local: i.local.clone(),
                clock: i.clock.clone(),
                timeout,
                batchers: Mutex::default(),
                status_table: tokio::sync::OnceCell::new(),
                tables_by_id: RwLock::default(),
                forgets: Mutex::default(),
                resolves: Mutex::default(),
                max_clock_skew_usec: std::sync::atomic::AtomicU64::new(
                    txn_coord::DEFAULT_MAX_CLOCK_SKEW_USEC,
                ),
                requests: i.requests.clone(),
            }),
        }
    }

    // ---- mserver calls ------------------------------------------------------------------

    /// Call the mserver leader, finding it as needed.
    async fn mserver<R, F, Fut>(&self, f: F) -> Result<R>
    where
        F: Fn(MserverServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<(Option<rpc::common::Status>, R), tonic::Status>>,
    {
        let started = Instant::now();
        let mut last = String::from("no attempt");
        let mut attempt = 0u32;
        loop {
            let cached = self
                .inner
                .mserver_leader
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let mut order: Vec<String> = cached.into_iter().collect();
            order.extend(self.inner.mservers.iter().cloned());
            for addr in order {
                let Ok(ch) = self.inner.pool.get(&addr) else {
                    continue;
                };
                match f(MserverServiceClient::new(ch)).await {
                    Ok((None, r)) => {
                        *self
                            .inner
                            .mserver_leader
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = Some(addr);
                        return Ok(r);
                    }
                    Ok((Some(s), _)) if StatusCode::from_i32(s.code) == StatusCode::NotLeader => {
                        last = format!("{addr}: not the leader");
                        if !s.leader_hint.is_empty() {
                            *self
                                .inner
                                .mserver_leader
                                .lock()
                                .unwrap_or_else(|e| e.into_inner()) = Some(s.leader_hint.clone());
                        }
                    }
                    Ok((Some(s), _)) if StatusCode::from_i32(s.code).is_retryable() => {
                        last = format!("{addr}: {}", s.message)
                    }
                    Ok((Some(s), _)) => return Err(server_error(&s)),
                    Err(e) => last = format!("{addr}: {}", e.message()),
                }
            }
            if started.elapsed() > self.inner.timeout {
                return Err(ClientError::NoMserver {
                    addrs: self.inner.mservers.join(","),
                    last,
                });
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    pub async fn create_namespace(&self, name: &str, if_not_exists: bool) -> Result<()> {
        self.mserver(|mut c| {
            let req = CreateNamespaceRequest {
                name: name.to_owned(),
                if_not_exists,
            };
            async move {
                c.create_namespace(req)
                    .await
                    .map(|r| (r.into_inner().status, ()))
            }
        })
        .await
    }

    /// Delete a namespace that has no tables left.
    pub async fn delete_namespace(&self, name: &str, if_exists: bool) -> Result<()> {
        self.mserver(|mut c| {
            let req = rpc::mserver::DeleteNamespaceRequest {
                name: name.to_owned(),
                if_exists,
            };
            async move {
                c.delete_namespace(req)
                    .await
                    .map(|r| (r.into_inner().status, ()))
            }
        })
        .await
    }

    /// Create a table; returns once the catalog has it (see [`Client::wait_for_leaders`]).
    pub async fn create_table(&self, req: CreateTableRequest) -> Result<TableInfo> {
        self.mserver(|mut c| {
            let req = req.clone();
            async move {
                c.create_table(req).await.map(|r| {
                    let r = r.into_inner();
                    (r.status, r.table.unwrap_or_default())
                })
            }
        })
        .await
    }

    pub async fn delete_table(&self, namespace: &str, name: &str) -> Result<()> {
        self.mserver(|mut c| {
            let req = DeleteTableRequest {
                namespace_name: namespace.to_owned(),
                name: name.to_owned(),
            };
            async move {
                c.delete_table(req)
                    .await
                    .map(|r| (r.into_inner().status, ()))
            }
        })
        .await
    }

    /// Rename a table and/or replace its schema (see `AlterTableRequest`).
    pub async fn alter_table(&self, req: rpc::mserver::AlterTableRequest) -> Result<()> {
        self.mserver(|mut c| {
            let req = req.clone();
            async move {
                c.alter_table(req)
                    .await
                    .map(|r| (r.into_inner().status, ()))
            }
        })
        .await
    }

    pub async fn list_tables(&self) -> Result<ListTablesResponse> {
        self.mserver(|mut c| async move {
            c.list_tables(ListTablesRequest {})
                .await
                .map(|r| (r.get_ref().status.clone(), r.into_inner()))
        })
        .await
    }

    pub async fn list_servers(&self) -> Result<ListServersResponse> {
        self.mserver(|mut c| async move {
            c.list_servers(ListServersRequest {})
                .await
                .map(|r| (r.get_ref().status.clone(), r.into_inner()))
        })
        .await
    }

    pub async fn list_tablets(&self) -> Result<ListTabletsResponse> {
        self.mserver(|mut c| async move {
            c.list_tablets(ListTabletsRequest {})
                .await
                .map(|r| (r.get_ref().status.clone(), r.into_inner()))
        })
        .await
    }

    /// Look a table up (always asks the mserver).
    pub async fn open_table(&self, namespace: &str, name: &str) -> Result<Table> {
        self.locate_table(GetTableLocationsRequest {
            namespace_name: namespace.to_owned(),
            name: name.to_owned(),
            table_id: String::new(),
        })
        .await
    }

    /// Ask the mserver where the table `req` names is.
    async fn locate_table(&self, req: GetTableLocationsRequest) -> Result<Table> {
        let resp = self
            .mserver(|mut c| {
                let req = req.clone();
                async move {
                    c.get_table_locations(req)
                        .await
                        .map(|r| (r.get_ref().status.clone(), r.into_inner()))
                }
            })
            .await?;
        let mut tablets = resp.tablets;
        tablets.sort_by_key(|t| t.hash_start);
        Ok(Table {
            info: Arc::new(resp.table.unwrap_or_default()),
            tablets: Arc::new(tablets),
        })
    }

    /// The table with id `id`, from a cache filled on first use (placement changes are
    /// followed by [`Client::with_leader`] as for any table).
    pub(crate) async fn table_by_id(&self, id: &str) -> Result<Table> {
        if let Some(t) = self
            .inner
            .tables_by_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            return Ok(t.clone());
        }
        let t = self
            .locate_table(GetTableLocationsRequest {
                table_id: id.to_owned(),
                ..Default::default()
            })
            .await?;
        self.inner
            .tables_by_id
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), t.clone());
        Ok(t)
    }

    /// Wait until every tablet of the table has a leader that accepts reads.
    pub async fn wait_for_leaders(&self, table: &Table) -> Result<()> {
        for i in 0..table.tablets.len() {
            let tablet = table.tablets[i].tablet_id.clone();
            let req = ReadRequest {
                tablet_id: tablet,
                keys: vec![],
                ..Default::default()
            };
            self.with_leader(table, i, |addr| {
                self.send(addr, Method::Read, req.clone(), |s, r| s.read(r))
            })
            .await?;
        }
        Ok(())
    }

    // ---- tablet calls -------------------------------------------------------------------

    /// Call `method` on the dbserver at `addr` over the wire protocol.
    async fn remote<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        addr: &str,
        method: Method,
        req: &Req,
    ) -> Result<Resp, tonic::Status> {
        // No single call outlives the client's deadline, even on a connection whose peer
        // answers pings but never this call.
        let t = Some(self.inner.timeout);
        self.inner.pool.wire().call(addr, method, req, t).await
    }

    /// Send `req` to the dbserver at `addr`: through `local` if it is this process's own
    /// dbserver, else over the wire protocol. Returns the response's status with it.
    async fn send<Req, Resp>(
        &self,
        addr: String,
        method: Method,
        req: Req,
        local: impl for<'s> FnOnce(&'s dyn TabletService, tonic::Request<Req>) -> LocalReply<'s, Resp>,
    ) -> Result<(Option<rpc::common::Status>, Resp), tonic::Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default + WithStatus,
    {
        let r: Resp = match &self.inner.local {
            Some(l) if l.rpc_addr == addr => local(l.service.as_ref(), tonic::Request::new(req))
                .await?
                .into_inner(),
            _ => self.remote(&addr, method, &req).await?,
        };
        Ok((r.status().cloned(), r))
    }

    /// Run `f` against the leader of tablet `idx` of `table`, following leader changes.
    async fn with_leader<R, F, Fut>(&self, table: &Table, idx: usize, f: F) -> Result<R>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<(Option<rpc::common::Status>, R), tonic::Status>>,
    {
        let started = Instant::now();
        // Borrowed: the common case (the cached leader answers) copies no placement.
        let mut tablet = std::borrow::Cow::Borrowed(table.tablets.get(idx).ok_or_else(|| {
            ClientError::Server {
                code: StatusCode::NotFound,
                message: format!("table {} has no tablets", table.info.name),
            }
        })?);
        let id = tablet.tablet_id.clone();
        let mut next = tablet
            .replicas
            .iter()
            .position(|r| r.is_leader)
            .unwrap_or(0);
        let mut last;
        let mut attempt = 0u32;
        loop {
            let cached = self
                .inner
                .leaders
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&id)
                .cloned();
            let addr = match cached {
                Some(a) => a,
                None if tablet.replicas.is_empty() => String::new(),
                None => tablet.replicas[next % tablet.replicas.len()]
                    .rpc_addr
                    .clone(),
            };
            let mut hinted = false;
            match f(addr.clone()).await {
                Ok((None, r)) => {
                    if self
                        .inner
                        .leaders
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&id)
                        != Some(&addr)
                    {
                        self.inner
                            .leaders
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id, addr);
                    }
                    return Ok(r);
                }
                Ok((Some(s), _)) => {
                    let code = StatusCode::from_i32(s.code);
                    last = format!("{addr}: {}", s.message);
                    match code {
                        StatusCode::NotLeader
                            if !s.leader_hint.is_empty() && s.leader_hint != addr =>
                        {
                            self.inner
                                .leaders
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(id.clone(), s.leader_hint.clone());
                            hinted = true;
                        }
                        StatusCode::NotLeader
                        | StatusCode::ServiceUnavailable
                        | StatusCode::NotFound
                        | StatusCode::TimedOut
                        | StatusCode::ShuttingDown => {
                            self.inner
                                .leaders
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .remove(&id);
                            next += 1;
                        }
                        _ => return Err(server_error(&s)),
                    }
                }
                Err(e) => {
                    last = format!("{addr}: {}", e.message());
                    self.inner
                        .leaders
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    next += 1;
                }
            }
            if started.elapsed() > self.inner.timeout {
                return Err(ClientError::TimedOut {
                    elapsed: started.elapsed(),
                    last,
                });
            }
            attempt += 1;
            if !hinted || attempt > 3 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            if attempt == 4 || attempt.is_multiple_of(8) {
                // Placement may have changed: refresh this tablet's replicas. A table dropped
                // (or dropped and made anew) meanwhile ends the retries.
                let gone = || ClientError::Server {
                    code: StatusCode::NotFound,
                    message: format!(
                        "table {}.{} was dropped (tablet {id} is gone)",
                        table.info.namespace_name, table.info.name
                    ),
                };
                match self
                    .open_table(&table.info.namespace_name, &table.info.name)
                    .await
                {
                    Ok(fresh) => match fresh.tablets.iter().find(|t| t.tablet_id == id).cloned() {
                        Some(t) => tablet = std::borrow::Cow::Owned(t),
                        None => return Err(gone()),
                    },
                    Err(e) if e.code() == StatusCode::NotFound => return Err(gone()),
                    Err(_) => {}
                }
            }
        }
    }

    /// Apply `ops` atomically to the tablet that owns `partition_key` (every op's key must
    /// belong to that tablet). With conditions on the ops, `applied` tells whether they held
    /// (if not, nothing was written).
    pub async fn write(
        &self,
        table: &Table,
        partition_key: &[u8],
        ops: Vec<KvOp>,
    ) -> Result<WriteResult> {
        self.write_tablet(table, table.tablet_for(partition_key), ops)
            .await
    }

    /// Apply `ops` atomically to tablet `idx` of `table` (see [`Client::write`]). A key
    /// locked by a transaction is resolved (or waited for) and the write retried.
    pub async fn write_tablet(
        &self,
        table: &Table,
        idx: usize,
        ops: Vec<KvOp>,
    ) -> Result<WriteResult> {
        let started = Instant::now();
        loop {
            match self.write_tablet_raw(table, idx, ops.clone()).await? {
                (_, Some(c)) if c.locked => {
                    self.resolve_lock(table, idx, &c, started).await?;
                }
                (r, _) => return Ok(r),
            }
        }
    }

    /// Apply `count` independent writes to tablet `idx` of `table` in one call, write `i`'s
    /// ops made by `build(i)`: each write is atomic on its own, as one
    /// [`Client::write_tablet`] would be, and they share the tablet's next Raft entry.
    /// Results come in order. Writes stopped by a transaction's lock are resolved and retried
    /// one by one. Each attempt builds its request afresh (an in-process call consumes it),
    /// so a caller building from borrowed data copies its ops once, not once more to keep.
    pub async fn write_tablet_each(
        &self,
        table: &Table,
        idx: usize,
        count: usize,
        build: impl Fn(usize) -> Vec<KvOp>,
    ) -> Result<Vec<WriteResult>> {
        let started = Instant::now();
        let tablet_id = table.tablet_id(idx);
        // One name per write for every attempt, as in `write_tablet_raw`.
        let running = self.inner.requests.start_many(&tablet_id, count);
        let resp = self
            .with_leader(table, idx, |addr| {
                let req = WriteManyRequest {
                    tablet_id: tablet_id.clone(),
                    writes: running
                        .ids()
                        .enumerate()
                        .map(|(i, id)| WriteBatch {
                            ops: build(i),
                            request: Some(id),
                        })
                        .collect(),
                    propagated_ht: self.inner.clock.now().0,
                };
                self.send(addr, Method::WriteMany, req, |s, r| s.write_many(r))
            })
            .await?;
        if resp.outcomes.len() != count {
            return Err(ClientError::Server {
                code: StatusCode::Internal,
                message: format!(
                    "tablet {} answered {} of {} writes",
                    tablet_id,
                    resp.outcomes.len(),
                    count
                ),
            });
        }
        let mut results = Vec::with_capacity(count);
        for (i, o) in resp.outcomes.into_iter().enumerate() {
            let ht = HybridTime(o.ht);
            self.inner.clock.update(ht);
            results.push(match o.conflict {
                Some(c) if c.locked => {
                    self.resolve_lock(table, idx, &c, started).await?;
                    self.write_tablet(table, idx, build(i)).await?
                }
                _ => WriteResult {
                    ht,
                    applied: o.applied,
                    resent: o.resent,
                },
            });
        }
        Ok(results)
    }

    /// [`Client::write_tablet`] without lock resolution: the transaction rules' verdict
    /// comes back as is.
    pub(crate) async fn write_tablet_raw(
        &self,
        table: &Table,
        idx: usize,
        ops: Vec<KvOp>,
    ) -> Result<(WriteResult, Option<rpc::tablet::Conflict>)> {
        let tablet_id = table.tablet_id(idx);
        // One name for every attempt: a tablet that applied an earlier one answers the next.
        let running = self.inner.requests.start(&tablet_id);
        // A remote leader we know: go through the tablet's batcher.
        let ops = match self.batched_write(&tablet_id, ops, running.id()).await {
            Batch::Done(result, conflict) => return Ok((result, conflict)),
            Batch::Fallback(ops) => ops,
            Batch::Lost => {
                return Err(ClientError::Server {
                    code: StatusCode::Internal,
                    message: "write batcher stopped".into(),
                })
            }
        };
        let req = WriteRequest {
            tablet_id,
            ops,
            propagated_ht: 0,
            request: None,
        };
        let resp = self
            .with_leader(table, idx, |addr| {
                let mut req = req.clone();
                req.propagated_ht = self.inner.clock.now().0;
                req.request = Some(running.id());
                self.send(addr, Method::Write, req, |s, r| s.write(r))
            })
            .await?;
        let ht = HybridTime(resp.ht);
        self.inner.clock.update(ht);
        Ok((
            WriteResult {
                ht,
                applied: resp.applied,
                resent: resp.resent,
            },
            resp.conflict,
        ))
    }

    /// Send `ops` through the batcher of `tablet_id` if its cached leader is another server;
    /// gives the ops back if not, or if the batched call failed.
    async fn batched_write(&self, tablet_id: &str, ops: Vec<KvOp>, request: RequestId) -> Batch {
        let remote = match self
            .inner
            .leaders
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tablet_id)
        {
            Some(addr) => self
                .inner
                .local
                .as_ref()
                .is_none_or(|l| &l.rpc_addr != addr),
            None => false,
        };
        if !remote {
            return Batch::Fallback(ops);
        }
        let queue = {
            let mut batchers = self
                .inner
                .batchers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            batchers
                .entry(tablet_id.to_owned())
                .or_insert_with(|| {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    tokio::spawn(batcher(
                        Arc::downgrade(&self.inner),
                        tablet_id.to_owned(),
                        rx,
                    ));
                    tx
                })
                .clone()
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Err(e) = queue.send(Batched { ops, request, tx }) {
            return Batch::Fallback(e.0.ops);
        }
        match rx.await {
            Ok(Ok(o)) => Batch::Done(
                WriteResult {
                    ht: HybridTime(o.ht),
                    applied: o.applied,
                    resent: o.resent,
                },
                o.conflict,
            ),
            Ok(Err(ops)) => Batch::Fallback(ops),
            // Unanswered: the ops are gone with the batcher, and may or may not have applied.
            Err(_) => Batch::Lost,
        }
    }

    /// Put one key.
    pub async fn put(&self, table: &Table, key: &[u8], value: &[u8]) -> Result<HybridTime> {
        self.write(
            table,
            key,
            vec![KvOp {
                key: key.to_vec(),
                value: value.to_vec(),
                ..Default::default()
            }],
        )
        .await
        .map(|r| r.ht)
    }

    /// Delete one key.
    pub async fn delete(&self, table: &Table, key: &[u8]) -> Result<HybridTime> {
        self.write(
            table,
            key,
            vec![KvOp {
                key: key.to_vec(),
                delete: true,
                ..Default::default()
            }],
        )
        .await
        .map(|r| r.ht)
    }

    /// Read keys that live in the same tablet as `keys[0]`, linearizably (or at `read_ht`).
    pub async fn read(
        &self,
        table: &Table,
        keys: &[Vec<u8>],
        read_ht: Option<HybridTime>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        self.read_tablet(table, table.tablet_for(first), keys, read_ht)
            .await
    }

    /// Read keys of tablet `idx` (for layouts whose routing key is a prefix of the key).
    pub async fn read_tablet(
        &self,
        table: &Table,
        idx: usize,
        keys: &[Vec<u8>],
        read_ht: Option<HybridTime>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(self.read_tablet_at(table, idx, keys, read_ht).await?.0)
    }

    /// [`Client::read_tablet`], also returning the hybrid time the values were read at
    /// (to read more of the tablet at the same snapshot with [`Client::scan_tablet_at`]).
    pub async fn read_tablet_at(
        &self,
        table: &Table,
        idx: usize,
        keys: &[Vec<u8>],
        read_ht: Option<HybridTime>,
    ) -> Result<(Vec<Option<Vec<u8>>>, HybridTime)> {
        let started = Instant::now();
        let resp = loop {
            let resp = self
                .read_tablet_raw(table, idx, keys, read_ht, None)
                .await?;
            match &resp.locked {
                Some(c) => self.resolve_lock(table, idx, c, started).await?,
                None => break resp,
            }
        };
        let ht = HybridTime(resp.read_ht);
        Ok((
            resp.values
                .into_iter()
                .map(|v| v.found.then_some(v.value))
                .collect(),
            ht,
        ))
    }

    /// One read call to tablet `idx`: intents in the way and restarts come back as is.
    pub(crate) async fn read_tablet_raw(
        &self,
        table: &Table,
        idx: usize,
        keys: &[Vec<u8>],
        read_ht: Option<HybridTime>,
        uncertain_until: Option<HybridTime>,
    ) -> Result<ReadResponse> {
        let req = ReadRequest {
            tablet_id: table.tablet_id(idx),
            keys: keys.to_vec(),
            read_ht: read_ht.map(|h| h.0).unwrap_or(0),
            propagated_ht: 0,
            uncertain_until: uncertain_until.map(|h| h.0).unwrap_or(0),
            txn_status: false,
        };
        self.read_request(table, idx, req).await
    }

    /// The status records of transactions anchored in tablet `idx` (keys: their ids).
    pub(crate) async fn read_status_raw(
        &self,
        table: &Table,
        idx: usize,
        ids: &[Vec<u8>],
    ) -> Result<ReadResponse> {
        let req = ReadRequest {
            tablet_id: table.tablet_id(idx),
            keys: ids.to_vec(),
            txn_status: true,
            ..Default::default()
        };
        self.read_request(table, idx, req).await
    }

    async fn read_request(
        &self,
        table: &Table,
        idx: usize,
        req: ReadRequest,
    ) -> Result<ReadResponse> {
        let resp = self
            .with_leader(table, idx, |addr| {
                let mut req = req.clone();
                req.propagated_ht = self.inner.clock.now().0;
                self.send(addr, Method::Read, req, |s, r| s.read(r))
            })
            .await?;
        self.inner.clock.update(HybridTime(resp.read_ht));
        Ok(resp)
    }

    /// Read one key.
    pub async fn get(&self, table: &Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .read(table, &[key.to_vec()], None)
            .await?
            .into_iter()
            .next()
            .flatten())
    }

    /// Rows of tablet `idx` with keys in `[start, end)`, at most `limit` (0 = server default).
    pub async fn scan_tablet(
        &self,
        table: &Table,
        idx: usize,
        start: Option<Vec<u8>>,
        end: Option<Vec<u8>>,
        limit: u32,
    ) -> Result<ScanResponse> {
        self.scan_tablet_at(table, idx, start, end, limit, None)
            .await
    }

    /// [`Client::scan_tablet`] at hybrid time `read_ht` (a snapshot an earlier read returned),
    /// or now.
    pub async fn scan_tablet_at(
        &self,
        table: &Table,
        idx: usize,
        start: Option<Vec<u8>>,
        end: Option<Vec<u8>>,
        limit: u32,
        read_ht: Option<HybridTime>,
    ) -> Result<ScanResponse> {
        let started = Instant::now();
        loop {
            let resp = self
                .scan_tablet_raw(table, idx, start.clone(), end.clone(), limit, read_ht, None)
                .await?;
            match &resp.locked {
                Some(c) => self.resolve_lock(table, idx, c, started).await?,
                None => return Ok(resp),
            }
        }
    }

    /// One scan call to tablet `idx`: intents in the way and restarts come back as is.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn scan_tablet_raw(
        &self,
        table: &Table,
        idx: usize,
        start: Option<Vec<u8>>,
        end: Option<Vec<u8>>,
        limit: u32,
        read_ht: Option<HybridTime>,
        uncertain_until: Option<HybridTime>,
    ) -> Result<ScanResponse> {
        let req = ScanRequest {
            tablet_id: table.tablet_id(idx),
            start,
            end,
            limit,
            read_ht: read_ht.map(|h| h.0).unwrap_or(0),
            propagated_ht: 0,
            uncertain_until: uncertain_until.map(|h| h.0).unwrap_or(0),
        };
        let resp = self
            .with_leader(table, idx, |addr| {
                let mut req = req.clone();
                req.propagated_ht = self.inner.clock.now().0;
                self.send(addr, Method::Scan, req, |s, r| s.scan(r))
            })
            .await?;
        self.inner.clock.update(HybridTime(resp.read_ht));
        Ok(resp)
    }

    /// Every live row of the table (tablet by tablet; keys sorted within a tablet), as of
    /// one snapshot, as a PostgreSQL statement sees one: the time the first tablet was read
    /// at. (Tablets read at their own "now" one after the other could show part of a
    /// transaction that commits meanwhile.) A version on a later tablet in the clock-skew
    /// window above that time restarts the scan above it, at most [`SCAN_RESTARTS`] times
    /// (under a steady stream of writes every pass could find one); then the scan keeps
    /// its time without the window.
    pub async fn scan_all(&self, table: &Table) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let started = Instant::now();
        let mut at = OneTime::default();
        'again: loop {
            let mut out = Vec::new();
            for idx in 0..table.tablets.len() {
                let mut start = None;
                loop {
                    let resp = self
                        .scan_tablet_raw(
                            table,
                            idx,
                            start.clone(),
                            None,
                            10_000,
                            at.read_ht,
                            at.uncertain_until(self.max_clock_skew_usec()),
                        )
                        .await?;
                    if let Some(c) = &resp.locked {
                        self.resolve_lock(table, idx, c, started).await?;
                        continue;
                    }
                    if !at.settle(resp.restart_ht, resp.read_ht) {
                        continue 'again;
                    }
                    let more = resp.more;
                    let mut last = None;
                    for kv in resp.kvs {
                        last = Some(kv.key.clone());
                        out.push((kv.key, kv.value));
                    }
                    match next_page(more, last) {
                        Some(k) => start = Some(k),
                        None => break,
                    }
                }
            }
            return Ok(out);
        }
    }
}

impl Client {
    /// Point reads of keys in several tablets of `table`, all at one time: the time of the
    /// first tablet's read, as [`Client::scan_all`] does (reading each tablet at its own "now"
    /// could show one tablet's part of a transaction without another's). `groups` are
    /// (tablet index, keys); the answer is one value list per group, in order.
    pub async fn read_keys_at_one_time(
        &self,
        table: &Table,
        groups: &[(usize, Vec<Vec<u8>>)],
    ) -> Result<Vec<Vec<Option<Vec<u8>>>>> {
        let started = Instant::now();
        let mut at = OneTime::default();
        'again: loop {
            let mut out = Vec::with_capacity(groups.len());
            for (idx, keys) in groups {
                loop {
                    let uncertain = at.uncertain_until(self.max_clock_skew_usec());
                    let resp = self
                        .read_tablet_raw(table, *idx, keys, at.read_ht, uncertain)
                        .await?;
                    if let Some(c) = &resp.locked {
                        self.resolve_lock(table, *idx, c, started).await?;
                        continue;
                    }
                    if !at.settle(resp.restart_ht, resp.read_ht) {
                        continue 'again;
                    }
                    out.push(
                        resp.values
                            .into_iter()
                            .map(|v| v.found.then_some(v.value))
                            .collect(),
                    );
                    break;
                }
            }
            return Ok(out);
        }
    }
}

/// Read restarts [`Client::scan_all`] and [`Client::read_keys_at_one_time`] make before they
/// keep their time without the clock-skew window.
const SCAN_RESTARTS: u32 = 3;

/// The one time a multi-tablet read ([`Client::scan_all`], [`Client::read_keys_at_one_time`])
/// reads every tablet at: unset until the first tablet answers, then pinned; a version in the
/// clock-skew window moves it and the read starts over (at most [`SCAN_RESTARTS`] times).
#[derive(Default)]
struct OneTime {
    read_ht: Option<HybridTime>,
    restarts: u32,
}

impl OneTime {
    /// The end of the uncertainty window to read with (none before the time is pinned, or
    /// once the restarts are used up).
    fn uncertain_until(&self, max_skew_usec: u64) -> Option<HybridTime> {
        self.read_ht
            .filter(|_| self.restarts < SCAN_RESTARTS)
            .map(|r| r.add_micros(max_skew_usec))
    }

    /// Take a tablet's answer: false if it asked for a restart (at `restart_ht`, non-zero),
    /// and the read must start over; else pin the time to its `read_ht` if still unset.
    fn settle(&mut self, restart_ht: u64, read_ht: u64) -> bool {
        if restart_ht != 0 {
            self.read_ht = Some(HybridTime(restart_ht));
            self.restarts += 1;
            return false;
        }
        self.read_ht.get_or_insert(HybridTime(read_ht));
        true
    }
}

/// Where the next page of a tablet scan starts: just after `last` if the tablet has more.
pub fn next_page(more: bool, last: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let mut k = last.filter(|_| more)?;
    k.push(0);
    Some(k)
}
