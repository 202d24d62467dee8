//! How Redis data lives in AiSQL tables, and [`Access`]: the one way commands read and write
//! it, either straight to the tablets or inside a transaction (MULTI/EXEC, multi-key
//! commands).
//!
//! Each numbered database `n` (0–15) is the hash-partitioned table `system_redis.db<n>`,
//! created on first use. Every row of a Redis key is routed by the Redis key itself, so one
//! key's rows live in one tablet and a single-key command is one single-tablet write: one
//! Raft round, atomic.
//!
//! Rows of a key (design: `docs/design/bedis.md`):
//! * **meta** `'k' ‖ key` → `type (1) ‖ expire_at (u64 BE µs; 0 = never) ‖ payload`. A
//!   string's payload is its bytes; a collection's is a [`Coll`] header (generation,
//!   version, element count, list head and tail).
//! * **elements** of a collection, one row each: `'e' ‖ len(key) u32 BE ‖ key ‖ sub` →
//!   `generation (u64 BE) ‖ data`. An element whose generation is not the meta's is a
//!   leftover of a deleted collection: it is treated as absent and overwritten.
//!
//! Every change of a key writes its meta row with a compare-and-set on the bytes it read
//! (a collection's version is bumped on each change), so concurrent clients on any dbserver
//! serialise per key, as Redis's single thread does. Inside a transaction the same code runs
//! with its reads and writes buffered in the transaction, which serialises instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use client::{Client, ClientError, Condition, KvOp, Table, Transaction};
use common::HybridTime;
use tokio::sync::OnceCell;

/// Number of databases (`SELECT 0` … `SELECT 15`).
pub const DATABASES: usize = 16;
const NAMESPACE: &str = "system_redis";
/// Elements deleted together with their key in one write; a bigger collection's remaining
/// elements are removed in the background after its meta row is gone.
const INLINE_DELETE: usize = 10_000;
const PAGE: u32 = 10_000;

/// Redis value types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String = 0,
    Hash = 1,
    List = 2,
    Set = 3,
    ZSet = 4,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
        }
    }

    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::String,
            1 => Kind::Hash,
            2 => Kind::List,
            3 => Kind::Set,
            4 => Kind::ZSet,
            _ => return None,
        })
    }
}

/// A decoded meta row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub kind: Kind,
    /// Absolute expiry in µs since the epoch.
    pub expire_at_us: Option<u64>,
    pub payload: Vec<u8>,
    /// The raw stored bytes (for compare-and-set).
    pub raw: Vec<u8>,
}

impl Stored {
    pub fn encode(kind: Kind, expire_at_us: Option<u64>, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(9 + payload.len());
        v.push(kind as u8);
        v.extend_from_slice(&expire_at_us.unwrap_or(0).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    pub fn decode(raw: Vec<u8>) -> Option<Stored> {
        if raw.len() < 9 {
            return None;
        }
        let kind = Kind::from_u8(raw[0])?;
        let e = u64::from_be_bytes(raw[1..9].try_into().ok()?);
        if kind != Kind::String && Coll::decode(&raw[9..]).is_none() {
            return None;
        }
        Some(Stored {
            kind,
            expire_at_us: (e != 0).then_some(e),
            payload: raw[9..].to_vec(),
            raw,
        })
    }

    /// The collection header of a hash, list, set or sorted set.
    pub fn coll(&self) -> Option<Coll> {
        if self.kind == Kind::String {
            return None;
        }
        Coll::decode(&self.payload)
    }
}

/// The meta payload of a collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coll {
    /// Chosen at creation: elements of an earlier collection under the same key differ.
    pub gen: u64,
    /// Bumped by every change, so the meta row's bytes change with every change.
    pub ver: u64,
    /// Number of elements (members, fields, list entries).
    pub count: i64,
    /// Lists: positions of the first entry and one past the last.
    pub head: i64,
    pub tail: i64,
}

impl Coll {
    /// A new, empty collection with a fresh generation.
    pub fn fresh() -> Coll {
        Coll {
            gen: random_u64(),
            ver: 0,
            count: 0,
            head: 0,
            tail: 0,
        }
    }

    /// The same collection under a new generation (a copy of it: COPY, RENAME, RESTORE).
    pub fn regenerated(self) -> Coll {
        Coll {
            gen: random_u64(),
            ..self
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40);
        v.extend_from_slice(&self.gen.to_be_bytes());
        v.extend_from_slice(&self.ver.to_be_bytes());
        v.extend_from_slice(&self.count.to_be_bytes());
        v.extend_from_slice(&self.head.to_be_bytes());
        v.extend_from_slice(&self.tail.to_be_bytes());
        v
    }

    pub fn decode(b: &[u8]) -> Option<Coll> {
        if b.len() != 40 {
            return None;
        }
        let w = |i: usize| -> Option<[u8; 8]> { b[i * 8..i * 8 + 8].try_into().ok() };
        Some(Coll {
            gen: u64::from_be_bytes(w(0)?),
            ver: u64::from_be_bytes(w(1)?),
            count: i64::from_be_bytes(w(2)?),
            head: i64::from_be_bytes(w(3)?),
            tail: i64::from_be_bytes(w(4)?),
        })
    }
}

/// A generation unlikely to repeat anywhere: splitmix64 over the clock, the process id and a
/// counter.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut z = common::hlc::wall_micros()
        ^ ((std::process::id() as u64) << 40)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// First byte of a meta row's key.
const META: u8 = b'm';
/// First byte of an element row's key.
const ELEM: u8 = b'f';
/// Bytes of [`key_hash`] in every row key.
const HASH: usize = 3;

/// Three bytes of a fixed hash of a Redis key, put right after the row tag: the rows of a
/// tablet then differ in their first four bytes, which is what fjall's memtable compares
/// without following a key's pointer (keys like `user:1` and `user:2` would not). Stable
/// forever: it decides where rows live. (FNV-1a, then a splitmix64 finaliser so that the
/// bytes do not follow the 16-bit partition hash, itself FNV-1a.)
fn key_hash(key: &[u8]) -> [u8; HASH] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    let b = h.to_be_bytes();
    [b[0], b[1], b[2]]
}

/// The row key of `key`'s meta row: `'m' ‖ hash ‖ key`.
pub fn meta_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + HASH + key.len());
    k.push(META);
    k.extend_from_slice(&key_hash(key));
    k.extend_from_slice(key);
    k
}

/// First bytes of the rows of the layout before [`key_hash`] (see [`Dbs::upgrade_rows`]).
const OLD_META: u8 = b'k';
const OLD_ELEM: u8 = b'e';

/// Today's key of a row of the earlier layout (`'k' ‖ key` or `'e' ‖ len ‖ key ‖ sub`,
/// with `value`), and the expiry its meta row carries (0: none).
fn upgraded_row_key(old: &[u8], value: &[u8]) -> (Vec<u8>, u64) {
    let rest = old.get(1..).unwrap_or_default();
    if old.first() == Some(&OLD_META) {
        let at = Stored::decode(value.to_vec())
            .and_then(|m| m.expire_at_us)
            .unwrap_or(0);
        return (meta_key(rest), at);
    }
    let len = rest
        .get(..4)
        .and_then(|l| <[u8; 4]>::try_from(l).ok())
        .map_or(0, u32::from_be_bytes) as usize;
    let key = rest.get(4..4 + len).unwrap_or_default();
    (elem_key(key, rest.get(4 + len..).unwrap_or_default()), 0)
}

/// The Redis key of a meta row's key.
fn key_of_meta(row: &[u8]) -> Option<&[u8]> {
    row.get(1 + HASH..)
}

/// The common prefix of `key`'s element rows: `'f' ‖ hash ‖ len(key) ‖ key`.
fn elem_prefix(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + HASH + 4 + key.len() + 16);
    k.push(ELEM);
    k.extend_from_slice(&key_hash(key));
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k
}

fn elem_key(key: &[u8], sub: &[u8]) -> Vec<u8> {
    let mut k = elem_prefix(key);
    k.extend_from_slice(sub);
    k
}

/// The smallest key above every key that starts with `prefix` (None: there is none).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut e = prefix.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xFF {
            e.push(last + 1);
            return Some(e);
        }
    }
    None
}

/// An element row's value: the generation, then the data.
fn elem_value(gen: u64, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + data.len());
    v.extend_from_slice(&gen.to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// The data of an element row if it belongs to generation `gen`.
fn elem_data(gen: u64, raw: Vec<u8>) -> Option<Vec<u8>> {
    (raw.len() >= 8 && raw[..8] == gen.to_be_bytes()).then(|| raw[8..].to_vec())
}

/// What a read-modify-write of a meta row decides.
pub enum Change {
    /// Leave the key as it is.
    Keep,
    /// Store this payload with this expiry.
    Put {
        kind: Kind,
        payload: Vec<u8>,
        expire_at_us: Option<u64>,
    },
    /// Delete the key (with its elements).
    Delete,
}

/// One element write: `sub` gets `data`, or is deleted (`None`).
pub type ElemWrite = (Vec<u8>, Option<Vec<u8>>);

/// A key as read: its meta row and the element rows asked for, at one snapshot.
pub struct View {
    pub meta: Option<Stored>,
    /// The data of each element asked for (None: absent or of another generation).
    pub elems: Vec<Option<Vec<u8>>>,
    /// The snapshot (direct reads only), to scan the key's elements at the same time.
    at: Option<HybridTime>,
}

impl View {
    pub fn coll(&self) -> Option<Coll> {
        self.meta.as_ref().and_then(|m| m.coll())
    }
}

/// The databases of one BEDIS server (shared by all its connections).
pub struct Dbs {
    client: Client,
    tables: Vec<OnceCell<Arc<Table>>>,
    /// Tablets of a database's table per live dbserver (see [`Dbs::table`]).
    tablets_per_server: u32,
    /// Signalled after every write this server makes to a list or sorted set, so blocked
    /// BLPOP/BZPOPMIN … callers look again at once (they also poll, for other servers).
    pub pushed: tokio::sync::Notify,
    pub pubsub: crate::pubsub::Hub,
    /// The connections of this server (CLIENT LIST, CLIENT KILL).
    pub clients: std::sync::Mutex<std::collections::BTreeMap<u64, ClientEntry>>,
    /// Keys changed while `expired` keyspace events are on, with the expiry last seen (see
    /// `cmd::watch_expiries`).
    pub expiring: std::sync::Mutex<std::collections::HashMap<DbKey, Option<u64>>>,
    /// Concurrent writes to one key, combined (see `cmd/combine.rs`).
    pub combiner: crate::cmd::Combiner,
    /// This server's own handle, for background work that outlives a command.
    me: std::sync::Weak<Dbs>,
}

/// What CLIENT LIST shows of a connection, and how CLIENT KILL closes it.
pub struct ClientEntry {
    pub addr: String,
    pub name: Vec<u8>,
    pub db: usize,
    pub proto: u8,
    pub since: std::time::Instant,
    pub kill: std::sync::Arc<tokio::sync::Notify>,
    /// While the client runs a blocking command: CLIENT UNBLOCK's handle on it.
    pub unblock: Option<std::sync::Arc<crate::cmd::Unblock>>,
}

/// A key in one of the databases.
pub type DbKey = (usize, Vec<u8>);

/// Errors reaching the data.
pub type DbResult<T> = Result<T, ClientError>;

impl Dbs {
    pub fn new(client: Client, tablets_per_server: u32) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            combiner: Default::default(),
            client,
            tables: (0..DATABASES).map(|_| OnceCell::new()).collect(),
            tablets_per_server,
            pushed: tokio::sync::Notify::new(),
            pubsub: crate::pubsub::Hub::default(),
            clients: Default::default(),
            expiring: Default::default(),
        })
    }

    /// Plain SETs of many keys of database `db`: each stores its string unconditionally, as
    /// [`Access::put`] does, but the keys of one tablet go in one call (their writes share a
    /// Raft entry). Results in order; a failed call fails each of its keys.
    pub async fn put_strings(&self, db: usize, items: &[(&[u8], &[u8])]) -> Vec<DbResult<()>> {
        let t = match self.table(db).await {
            Ok(t) => t,
            Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut by_tablet: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (i, (key, _)) in items.iter().enumerate() {
            by_tablet.entry(t.tablet_for(key)).or_default().push(i);
        }
        let calls = by_tablet.into_iter().map(|(idx, which)| {
            let t = &t;
            async move {
                // Built per attempt from the borrowed items: no copy of the ops to keep.
                let build = |i: usize| {
                    let (key, value) = items[which[i]];
                    vec![KvOp {
                        key: meta_key(key),
                        value: Stored::encode(Kind::String, None, value),
                        ..Default::default()
                    }]
                };
                let r = self
                    .client
                    .write_tablet_each(t, idx, which.len(), build)
                    .await;
                (which, r)
            }
        });
        let mut results: Vec<DbResult<()>> = items.iter().map(|_| Ok(())).collect();
        for (which, r) in futures::future::join_all(calls).await {
            if let Err(e) = r {
                for i in which {
                    results[i] = Err(e.clone());
                }
            }
        }
        results
    }

    /// Remove the element rows of generation `gen` of `key` in the background (its meta row
    /// is already gone or replaced).
    pub async fn cleanup(&self, db: usize, key: &[u8], gen: u64) -> DbResult<()> {
        let t = self.table(db).await?;
        let client = self.client.clone();
        let prefix = elem_prefix(key);
        let idx = t.tablet_for(key);
        tokio::spawn(async move {
            let Some(end) = prefix_end(&prefix) else {
                return;
            };
            let mut from = prefix.clone();
            loop {
                let resp = match client
                    .scan_tablet(&t, idx, Some(from.clone()), Some(end.clone()), 1000)
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "BEDIS element cleanup stopped");
                        return;
                    }
                };
                let last = resp.kvs.last().map(|kv| kv.key.clone());
                // One conditional delete per row: a row re-written by a newer collection
                // under the same key is left alone.
                for kv in resp.kvs {
                    if elem_data(gen, kv.value.clone()).is_none() {
                        continue;
                    }
                    let op = KvOp {
                        key: kv.key,
                        delete: true,
                        condition: Condition::IfEquals as i32,
                        expected: kv.value,
                        ..Default::default()
                    };
                    if let Err(e) = client.write_tablet(&t, idx, vec![op]).await {
                        tracing::warn!(error = %e, "BEDIS element cleanup stopped");
                        return;
                    }
                }
                match client::next_page(resp.more, last) {
                    Some(k) => from = k,
                    None => return,
                }
            }
        });
        Ok(())
    }

    /// A shared handle on this server (None while it shuts down).
    pub fn shared(&self) -> Option<Arc<Dbs>> {
        self.me.upgrade()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table of database `db`, created on first use.
    pub async fn table(&self, db: usize) -> DbResult<Arc<Table>> {
        let cell = &self.tables[db.min(DATABASES - 1)];
        cell.get_or_try_init(|| async {
            let name = format!("db{db}");
            self.client.create_namespace(NAMESPACE, true).await?;
            // As YugabyteDB sizes tables (shards per tablet server): few tablets per server
            // make each tablet's Raft entries carry more writes (on one 2-core server, 2
            // tablets took ~35 % more pipelined SETs than 8), and every server leads some.
            let live = match self.client.list_servers().await {
                Ok(r) => r.servers.iter().filter(|s| s.alive).count().max(1),
                Err(_) => 1,
            };
            let num_tablets = (self.tablets_per_server * live as u32).clamp(1, 64);
            self.client
                .create_table(rpc::mserver::CreateTableRequest {
                    namespace_name: NAMESPACE.into(),
                    name: name.clone(),
                    num_tablets,
                    if_not_exists: true,
                    ..Default::default()
                })
                .await?;
            let t = self.client.open_table(NAMESPACE, &name).await?;
            self.client.wait_for_leaders(&t).await?;
            self.upgrade_rows(&t).await?;
            Ok(Arc::new(t))
        })
        .await
        .cloned()
    }

    /// Move rows written before row keys carried [`key_hash`] (meta rows `'k' ‖ key`,
    /// element rows `'e' ‖ len(key) ‖ key ‖ sub`) to today's keys. Runs before this server
    /// first uses the table, and finishes only when a scan finds no old row, so no server
    /// serves a database with rows still to move. Each row moves in one single-tablet
    /// write (both keys route by the Redis key), conditional on the old row being unchanged
    /// and the new one absent, so servers upgrading at once never overwrite each other.
    /// (Every server must run this version: an older one would keep writing old rows.)
    async fn upgrade_rows(&self, t: &Table) -> DbResult<()> {
        let mut moved = 0usize;
        for idx in 0..t.tablets.len() {
            for tag in [OLD_META, OLD_ELEM] {
                loop {
                    let resp = self
                        .client
                        .scan_tablet(t, idx, Some(vec![tag]), Some(vec![tag + 1]), 500)
                        .await?;
                    if resp.kvs.is_empty() {
                        break;
                    }
                    let moves: Vec<[KvOp; 2]> = resp
                        .kvs
                        .into_iter()
                        .map(|kv| {
                            let (key, expire_at_us) = upgraded_row_key(&kv.key, &kv.value);
                            [
                                KvOp {
                                    key: kv.key,
                                    delete: true,
                                    condition: Condition::IfEquals as i32,
                                    expected: kv.value.clone(),
                                    ..Default::default()
                                },
                                KvOp {
                                    key,
                                    value: kv.value,
                                    expire_at_us,
                                    condition: Condition::IfAbsent as i32,
                                    ..Default::default()
                                },
                            ]
                        })
                        .collect();
                    moved += moves.len();
                    let all: Vec<KvOp> = moves.iter().flatten().cloned().collect();
                    if self.client.write_tablet(t, idx, all).await?.applied {
                        continue;
                    }
                    // Some row moved or changed meanwhile: one row at a time, and an old row
                    // whose new key is taken is only removed.
                    for [old, new] in moves {
                        let w = self
                            .client
                            .write_tablet(t, idx, vec![old.clone(), new])
                            .await?;
                        if !w.applied {
                            self.client.write_tablet(t, idx, vec![old]).await?;
                        }
                    }
                }
            }
        }
        if moved > 0 {
            tracing::info!(rows = moved, table = %t.info.name, "BEDIS rows moved to hashed row keys");
        }
        Ok(())
    }

    /// The table of database `db` if it exists (never creates it).
    pub async fn existing_table(&self, db: usize) -> DbResult<Option<Arc<Table>>> {
        let cell = &self.tables[db.min(DATABASES - 1)];
        if let Some(t) = cell.get() {
            return Ok(Some(t.clone()));
        }
        match self.client.open_table(NAMESPACE, &format!("db{db}")).await {
            Ok(_) => self.table(db).await.map(Some),
            Err(e) if e.code() == common::StatusCode::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Delete every row of database `db` (not atomic: tablet by tablet, page by page).
    pub async fn flush(&self, db: usize) -> DbResult<()> {
        let Some(t) = self.existing_table(db).await? else {
            return Ok(());
        };
        for idx in 0..t.tablets.len() {
            loop {
                let resp = self.client.scan_tablet(&t, idx, None, None, 1000).await?;
                if resp.kvs.is_empty() {
                    break;
                }
                let ops = resp
                    .kvs
                    .into_iter()
                    .map(|kv| KvOp {
                        key: kv.key,
                        delete: true,
                        ..Default::default()
                    })
                    .collect();
                self.client.write_tablet(&t, idx, ops).await?;
            }
        }
        Ok(())
    }
}

fn decode_meta(raw: Option<Vec<u8>>) -> DbResult<Option<Stored>> {
    match raw {
        None => Ok(None),
        Some(raw) => Stored::decode(raw)
            .map(Some)
            .ok_or_else(|| ClientError::Server {
                code: common::StatusCode::InvalidArgument,
                message: "stored value of this key is not a BEDIS value".into(),
            }),
    }
}

/// How a command reaches the data: straight to the tablets (each change a compare-and-set
/// on the key's meta row), or inside a transaction (reads at its snapshot, writes buffered
/// until it commits; [`Access::commit`] then always succeeds).
pub struct Access<'a> {
    pub dbs: &'a Dbs,
    txn: Option<&'a mut Transaction>,
    /// Keys changed through this access, in order (for keyspace notifications).
    pub touched: Vec<(usize, Vec<u8>)>,
    /// Keys this access created (for `new` keyspace events; plain SETs are only checked
    /// while those are on).
    pub created: Vec<(usize, Vec<u8>)>,
    /// In a transaction: element rows of replaced collections (database, key, generation)
    /// to remove in the background once the transaction has committed — not before, or an
    /// aborted transaction would lose a live collection's elements. See [`Dbs::cleanup`].
    pub cleanups: Vec<(usize, Vec<u8>, u64)>,
}

impl<'a> Access<'a> {
    pub fn direct(dbs: &'a Dbs) -> Self {
        Access {
            dbs,
            txn: None,
            touched: Vec::new(),
            created: Vec::new(),
            cleanups: Vec::new(),
        }
    }

    pub fn in_txn(dbs: &'a Dbs, txn: &'a mut Transaction) -> Self {
        Access {
            dbs,
            txn: Some(txn),
            touched: Vec::new(),
            created: Vec::new(),
            cleanups: Vec::new(),
        }
    }

    /// Whether this access is inside a transaction (blocking commands do not block there).
    pub fn transactional(&self) -> bool {
        self.txn.is_some()
    }

    /// `key`'s meta row and the element rows `subs`, at one snapshot.
    pub async fn read(&mut self, db: usize, key: &[u8], subs: &[Vec<u8>]) -> DbResult<View> {
        let t = self.dbs.table(db).await?;
        let idx = t.tablet_for(key);
        let mut keys = Vec::with_capacity(1 + subs.len());
        keys.push(meta_key(key));
        keys.extend(subs.iter().map(|s| elem_key(key, s)));
        let (mut vals, at) = match self.txn.as_deref_mut() {
            Some(txn) => {
                let ks: Vec<(&Table, usize, &[u8])> =
                    keys.iter().map(|k| (&*t, idx, k.as_slice())).collect();
                (txn.get_many_in(&ks).await?, None)
            }
            None => {
                let (v, at) = self.dbs.client.read_tablet_at(&t, idx, &keys, None).await?;
                (v, Some(at))
            }
        };
        let meta = decode_meta(if vals.is_empty() {
            None
        } else {
            vals.remove(0)
        })?;
        let gen = meta.as_ref().and_then(|m| m.coll()).map(|c| c.gen);
        let elems = vals
            .into_iter()
            .map(|v| v.and_then(|raw| elem_data(gen?, raw)))
            .collect();
        Ok(View { meta, elems, at })
    }

    /// The live meta row of `key`.
    pub async fn get(&mut self, db: usize, key: &[u8]) -> DbResult<Option<Stored>> {
        Ok(self.read(db, key, &[]).await?.meta)
    }

    /// Meta rows of many keys. Outside a transaction: one read per tablet, every tablet at
    /// the same time (as Redis answers MGET at one instant); inside one, at its snapshot.
    pub async fn get_many(&mut self, db: usize, keys: &[Vec<u8>]) -> DbResult<Vec<Option<Stored>>> {
        if self.txn.is_some() || keys.len() <= 1 {
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                out.push(self.get(db, k).await?);
            }
            return Ok(out);
        }
        let t = self.dbs.table(db).await?;
        // (tablet, meta keys) groups, and where each key's answer is.
        let mut groups: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
        let mut place = Vec::with_capacity(keys.len());
        for k in keys {
            let idx = t.tablet_for(k);
            let g = match groups.iter().position(|(i, _)| *i == idx) {
                Some(g) => g,
                None => {
                    groups.push((idx, Vec::new()));
                    groups.len() - 1
                }
            };
            place.push((g, groups[g].1.len()));
            groups[g].1.push(meta_key(k));
        }
        let mut vals = self.dbs.client.read_keys_at_one_time(&t, &groups).await?;
        place
            .into_iter()
            .map(|(g, i)| {
                decode_meta(
                    vals.get_mut(g)
                        .and_then(|v| v.get_mut(i))
                        .and_then(Option::take),
                )
            })
            .collect()
    }

    /// The elements of `key`'s collection (as read in `view`) with sub-keys in
    /// `[start, end)` (`None`: unbounded), in sub-key order, at most `limit`, at `view`'s
    /// snapshot: `(sub, data)` pairs.
    pub async fn scan(
        &mut self,
        db: usize,
        key: &[u8],
        view: &View,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        limit: usize,
    ) -> DbResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let Some(c) = view.coll() else {
            return Ok(Vec::new());
        };
        let t = self.dbs.table(db).await?;
        let idx = t.tablet_for(key);
        let prefix = elem_prefix(key);
        let mut from = elem_key(key, start.unwrap_or_default());
        let to = match end {
            Some(e) => Some(elem_key(key, e)),
            None => prefix_end(&prefix),
        };
        let mut out = Vec::new();
        loop {
            let want = (limit - out.len()).min(PAGE as usize) as u32;
            let (rows, more) = match self.txn.as_deref_mut() {
                Some(txn) => txn.scan(&t, idx, Some(from), to.clone(), want).await?,
                None => {
                    let r = self
                        .dbs
                        .client
                        .scan_tablet_at(&t, idx, Some(from), to.clone(), want, view.at)
                        .await?;
                    (
                        r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect(),
                        r.more,
                    )
                }
            };
            let last = rows.last().map(|(k, _)| k.clone());
            for (k, v) in rows {
                if let Some(d) = elem_data(c.gen, v) {
                    out.push((k[prefix.len()..].to_vec(), d));
                }
            }
            match client::next_page(more && out.len() < limit, last) {
                Some(k) => from = k,
                None => return Ok(out),
            }
        }
    }

    /// Every element of `key`'s collection as read in `view`.
    pub async fn scan_all(
        &mut self,
        db: usize,
        key: &[u8],
        view: &View,
    ) -> DbResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan(db, key, view, None, None, usize::MAX).await
    }

    /// Write `key`'s meta row (compare-and-set against `old`, as read) and element rows of
    /// generation `gen`, atomically. False: the key changed since `old` was read and nothing
    /// was written (read again). A collection's version is bumped here.
    pub async fn commit(
        &mut self,
        db: usize,
        key: &[u8],
        old: Option<&Stored>,
        change: Change,
        gen: u64,
        elems: Vec<ElemWrite>,
    ) -> DbResult<bool> {
        let noop = matches!(change, Change::Keep) && elems.is_empty();
        let creates = old.is_none() && matches!(change, Change::Put { .. });
        let done = self.commit_inner(db, key, old, change, gen, elems).await?;
        if done && !noop {
            self.touched.push((db, key.to_vec()));
            if creates {
                self.created.push((db, key.to_vec()));
            }
        }
        Ok(done)
    }

    async fn commit_inner(
        &mut self,
        db: usize,
        key: &[u8],
        old: Option<&Stored>,
        change: Change,
        gen: u64,
        elems: Vec<ElemWrite>,
    ) -> DbResult<bool> {
        let t = self.dbs.table(db).await?;
        let idx = t.tablet_for(key);
        let meta = match change {
            Change::Keep if elems.is_empty() => return Ok(true),
            // Elements alone still re-write the meta row, so the compare-and-set covers them.
            Change::Keep => match old {
                Some(o) => Some((o.raw.clone(), o.expire_at_us)),
                None => return Ok(true),
            },
            Change::Put {
                kind,
                mut payload,
                expire_at_us,
            } => {
                if let Some(mut c) = Coll::decode(&payload).filter(|_| kind != Kind::String) {
                    c.ver = old
                        .and_then(|o| o.coll())
                        .map_or(c.ver, |o| o.ver.max(c.ver))
                        .wrapping_add(1);
                    payload = c.encode();
                }
                Some((Stored::encode(kind, expire_at_us, &payload), expire_at_us))
            }
            Change::Delete => None,
        };
        if let Some(txn) = self.txn.as_deref_mut() {
            let ttl = |at: Option<u64>| {
                at.map_or(0, |at| {
                    (at.saturating_sub(common::hlc::wall_micros()) / 1000).max(1)
                })
            };
            match meta {
                Some((v, at)) => txn.put_with_ttl(&t, idx, &meta_key(key), Some(v), ttl(at)),
                None => txn.put_with_ttl(&t, idx, &meta_key(key), None, 0),
            }
            for (sub, data) in elems {
                let v = data.map(|d| elem_value(gen, &d));
                txn.put_with_ttl(&t, idx, &elem_key(key, &sub), v, 0);
            }
            return Ok(true);
        }
        let (condition, expected) = match old {
            Some(o) => (Condition::IfEquals, o.raw.clone()),
            None => (Condition::IfAbsent, Vec::new()),
        };
        let mut ops = Vec::with_capacity(1 + elems.len());
        ops.push(match meta {
            Some((value, at)) => KvOp {
                key: meta_key(key),
                value,
                expire_at_us: at.unwrap_or(0),
                condition: condition as i32,
                expected,
                ..Default::default()
            },
            None => KvOp {
                key: meta_key(key),
                delete: true,
                condition: condition as i32,
                expected,
                ..Default::default()
            },
        });
        for (sub, data) in elems {
            ops.push(match data {
                Some(d) => KvOp {
                    key: elem_key(key, &sub),
                    value: elem_value(gen, &d),
                    ..Default::default()
                },
                None => KvOp {
                    key: elem_key(key, &sub),
                    delete: true,
                    ..Default::default()
                },
            });
        }
        Ok(self.dbs.client.write_tablet(&t, idx, ops).await?.applied)
    }

    /// Unconditionally store a string (or a raw meta payload) under `key`, replacing whatever
    /// it held.
    pub async fn put(
        &mut self,
        db: usize,
        key: &[u8],
        kind: Kind,
        payload: &[u8],
        expire_at_us: Option<u64>,
    ) -> DbResult<()> {
        if self.txn.is_some() {
            let old = self.get(db, key).await?;
            let change = Change::Put {
                kind,
                payload: payload.to_vec(),
                expire_at_us,
            };
            self.commit_replacing(db, key, old.as_ref(), change).await?;
            return Ok(());
        }
        let creates = crate::cmd::notify_new_keys() && self.get(db, key).await?.is_none();
        let t = self.dbs.table(db).await?;
        let op = KvOp {
            key: meta_key(key),
            value: Stored::encode(kind, expire_at_us, payload),
            expire_at_us: expire_at_us.unwrap_or(0),
            ..Default::default()
        };
        self.dbs
            .client
            .write_tablet(&t, t.tablet_for(key), vec![op])
            .await?;
        // Only a write that happened is a keyspace event.
        if creates {
            self.created.push((db, key.to_vec()));
        }
        self.touched.push((db, key.to_vec()));
        Ok(())
    }

    /// Commit `change` to `key`, which was read as `old`; if `old` is a collection that the
    /// change replaces or deletes, its elements go too (the first [`INLINE_DELETE`] in the
    /// same write, the rest in the background once the key is gone).
    async fn commit_replacing(
        &mut self,
        db: usize,
        key: &[u8],
        old: Option<&Stored>,
        change: Change,
    ) -> DbResult<bool> {
        let replaced = match (&change, old.and_then(|o| o.coll())) {
            (Change::Keep, _) | (_, None) => None,
            (Change::Put { kind, payload, .. }, Some(c))
                if Some(*kind) == old.map(|o| o.kind)
                    && Coll::decode(payload).is_some_and(|n| n.gen == c.gen) =>
            {
                None
            }
            (_, Some(c)) => Some(c),
        };
        let Some(c) = replaced else {
            return self.commit(db, key, old, change, 0, Vec::new()).await;
        };
        let view = View {
            meta: old.cloned(),
            elems: Vec::new(),
            at: None,
        };
        let elems = self
            .scan(db, key, &view, None, None, INLINE_DELETE + 1)
            .await?;
        let rest = elems.len() > INLINE_DELETE;
        let writes = elems
            .into_iter()
            .take(INLINE_DELETE)
            .map(|(sub, _)| (sub, None))
            .collect();
        let done = self.commit(db, key, old, change, c.gen, writes).await?;
        if done && rest {
            if self.txn.is_some() {
                self.cleanups.push((db, key.to_vec(), c.gen));
            } else {
                self.dbs.cleanup(db, key, c.gen).await?;
            }
        }
        Ok(done)
    }

    /// Delete `key` (with its elements) if it exists; returns whether it did.
    pub async fn delete(&mut self, db: usize, key: &[u8]) -> DbResult<bool> {
        loop {
            let Some(old) = self.get(db, key).await? else {
                return Ok(false);
            };
            if self
                .commit_replacing(db, key, Some(&old), Change::Delete)
                .await?
            {
                return Ok(true);
            }
        }
    }

    /// Read-modify-write `key`'s meta row atomically: `f` sees the current value and
    /// decides; it is called again if another writer changed the key in between. Returns
    /// what `f` returned alongside its decision, for the last (successful) call.
    pub async fn update<R>(
        &mut self,
        db: usize,
        key: &[u8],
        mut f: impl FnMut(Option<&Stored>) -> (Change, R),
    ) -> DbResult<R> {
        loop {
            let current = self.get(db, key).await?;
            let (change, result) = f(current.as_ref());
            if self
                .commit_replacing(db, key, current.as_ref(), change)
                .await?
            {
                return Ok(result);
            }
        }
    }

    /// Every live key of database `db` with its meta row (none if the database was never
    /// used).
    pub async fn scan_keys(&mut self, db: usize) -> DbResult<Vec<(Vec<u8>, Stored)>> {
        let Some(t) = self.dbs.existing_table(db).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for idx in 0..t.tablets.len() {
            let mut from = vec![META];
            loop {
                let (rows, more) = match self.txn.as_deref_mut() {
                    Some(txn) => {
                        txn.scan(&t, idx, Some(from), Some(vec![META + 1]), PAGE)
                            .await?
                    }
                    None => {
                        let r = self
                            .dbs
                            .client
                            .scan_tablet(&t, idx, Some(from), Some(vec![META + 1]), PAGE)
                            .await?;
                        (
                            r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect(),
                            r.more,
                        )
                    }
                };
                let last = rows.last().map(|(k, _)| k.clone());
                out.extend(
                    rows.into_iter()
                        .filter_map(|(k, v)| Some((key_of_meta(&k)?.to_vec(), Stored::decode(v)?))),
                );
                match client::next_page(more, last) {
                    Some(k) => from = k,
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// Fail unless `key`'s meta row has had no new version since `since` (WATCH): a write of
    /// nothing that the tablet refuses if the key changed. Ok(false): it changed.
    pub async fn unchanged_since(
        &self,
        db: usize,
        key: &[u8],
        since: HybridTime,
    ) -> DbResult<bool> {
        let t = self.dbs.table(db).await?;
        let op = KvOp {
            key: meta_key(key),
            condition: Condition::UnchangedCheck as i32,
            txn_ht: since.0,
            ..Default::default()
        };
        Ok(self
            .dbs
            .client
            .write_tablet(&t, t.tablet_for(key), vec![op])
            .await?
            .applied)
    }

    /// Where a WATCH of `key` starts: the tablet's hybrid time of a read of its meta row,
    /// and the key's expiry then.
    pub async fn watch_point(
        &mut self,
        db: usize,
        key: &[u8],
    ) -> DbResult<(HybridTime, Option<u64>)> {
        let view = self.read(db, key, &[]).await?;
        let at = view.at.unwrap_or_default();
        Ok((at, view.meta.and_then(|m| m.expire_at_us)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_and_coll_round_trip() {
        let c = Coll {
            gen: 7,
            ver: 3,
            count: -1,
            head: -5,
            tail: 9,
        };
        let raw = Stored::encode(Kind::List, Some(42), &c.encode());
        let s = Stored::decode(raw).unwrap();
        assert_eq!(s.kind, Kind::List);
        assert_eq!(s.expire_at_us, Some(42));
        assert_eq!(s.coll(), Some(c));
        // A collection type with a malformed header does not decode.
        assert!(Stored::decode(Stored::encode(Kind::Hash, None, b"xx")).is_none());
        assert!(Stored::decode(vec![9; 20]).is_none());
    }

    #[test]
    fn element_keys_of_different_keys_never_collide() {
        // "ab" + sub "c" vs "a" + sub "bc": the length prefix keeps them apart.
        assert_ne!(elem_key(b"ab", b"c"), elem_key(b"a", b"bc"));
        let p = elem_prefix(b"k");
        assert!(elem_key(b"k", b"\xff\xff") < prefix_end(&p).unwrap());
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(elem_data(5, elem_value(5, b"x")), Some(b"x".to_vec()));
        assert_eq!(elem_data(6, elem_value(5, b"x")), None);
    }
}
