//! How Redis data lives in AiSQL tables.
//!
//! Each numbered database `n` (0–15) is the hash-partitioned table `system_redis.db<n>`,
//! created on first use. A Redis key is the row key (and the partition key), so one key's
//! data lives in one tablet and single-key commands are single-tablet writes: one Raft round.
//!
//! Stored value: `type (1 byte) ‖ expire_at (u64 BE, µs since the epoch; 0 = never) ‖ payload`.
//! The expiry is also given to the tablet (`expire_at_us`), so expired keys vanish from reads
//! at once (lazy expiry) and their versions are removed by MVCC garbage collection (active
//! expiry); keeping it in the value lets TTL report it. Read-modify-write commands (INCR,
//! APPEND, SET NX/XX/GET, EXPIRE …) are compare-and-set loops on the stored bytes, so
//! concurrent clients on any dbserver never lose an update.

use std::sync::Arc;

use client::{Client, ClientError, Condition, KvOp, Table};
use tokio::sync::OnceCell;

/// Number of databases (`SELECT 0` … `SELECT 15`).
pub const DATABASES: usize = 16;
const NAMESPACE: &str = "system_redis";

/// Redis types stored so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String = 0,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
        }
    }
}

/// A decoded stored value.
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
        let kind = match raw[0] {
            0 => Kind::String,
            _ => return None,
        };
        let e = u64::from_be_bytes(raw[1..9].try_into().ok()?);
        Some(Stored {
            kind,
            expire_at_us: (e != 0).then_some(e),
            payload: raw[9..].to_vec(),
            raw,
        })
    }
}

/// What a read-modify-write decides.
pub enum Change {
    /// Leave the key as it is.
    Keep,
    /// Store this payload with this expiry.
    Put {
        kind: Kind,
        payload: Vec<u8>,
        expire_at_us: Option<u64>,
    },
    /// Delete the key.
    Delete,
}

/// The databases of one BEDIS server (shared by all its connections).
pub struct Dbs {
    client: Client,
    tables: Vec<OnceCell<Arc<Table>>>,
    num_tablets: u32,
}

/// Errors reaching the data.
pub type DbResult<T> = Result<T, ClientError>;

impl Dbs {
    pub fn new(client: Client, num_tablets: u32) -> Self {
        Self {
            client,
            tables: (0..DATABASES).map(|_| OnceCell::new()).collect(),
            num_tablets,
        }
    }

    /// The table of database `db`, created on first use.
    pub async fn table(&self, db: usize) -> DbResult<Arc<Table>> {
        let cell = &self.tables[db.min(DATABASES - 1)];
        cell.get_or_try_init(|| async {
            let name = format!("db{db}");
            self.client.create_namespace(NAMESPACE, true).await?;
            self.client
                .create_table(rpc::mserver::CreateTableRequest {
                    namespace_name: NAMESPACE.into(),
                    name: name.clone(),
                    num_tablets: self.num_tablets,
                    if_not_exists: true,
                    ..Default::default()
                })
                .await?;
            let t = self.client.open_table(NAMESPACE, &name).await?;
            self.client.wait_for_leaders(&t).await?;
            Ok(Arc::new(t))
        })
        .await
        .cloned()
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

    /// The live value of `key`.
    pub async fn get(&self, db: usize, key: &[u8]) -> DbResult<Option<Stored>> {
        let t = self.table(db).await?;
        Ok(self.client.get(&t, key).await?.and_then(Stored::decode))
    }

    /// Values of many keys (one read per key).
    pub async fn get_many(&self, db: usize, keys: &[Vec<u8>]) -> DbResult<Vec<Option<Stored>>> {
        let t = self.table(db).await?;
        let futs = keys.iter().map(|k| {
            let t = t.clone();
            async move {
                self.client
                    .get(&t, k)
                    .await
                    .map(|v| v.and_then(Stored::decode))
            }
        });
        let mut out = Vec::with_capacity(keys.len());
        for f in futs {
            out.push(f.await?);
        }
        Ok(out)
    }

    /// Unconditionally store `payload` under `key`.
    pub async fn put(
        &self,
        db: usize,
        key: &[u8],
        kind: Kind,
        payload: &[u8],
        expire_at_us: Option<u64>,
    ) -> DbResult<()> {
        let t = self.table(db).await?;
        let op = KvOp {
            key: key.to_vec(),
            value: Stored::encode(kind, expire_at_us, payload),
            expire_at_us: expire_at_us.unwrap_or(0),
            ..Default::default()
        };
        self.client.write(&t, key, vec![op]).await.map(|_| ())
    }

    /// Delete `key` if it exists; returns whether it did.
    pub async fn delete(&self, db: usize, key: &[u8]) -> DbResult<bool> {
        let t = self.table(db).await?;
        let op = KvOp {
            key: key.to_vec(),
            delete: true,
            condition: Condition::IfPresent as i32,
            ..Default::default()
        };
        Ok(self.client.write(&t, key, vec![op]).await?.applied)
    }

    /// Read-modify-write `key` atomically: `f` sees the current value and decides; it is
    /// called again if another writer changed the key in between. Returns what `f` returned
    /// alongside its decision, for the last (successful) call.
    pub async fn update<R>(
        &self,
        db: usize,
        key: &[u8],
        mut f: impl FnMut(Option<&Stored>) -> (Change, R),
    ) -> DbResult<R> {
        let t = self.table(db).await?;
        loop {
            let current = match self.client.get(&t, key).await? {
                Some(raw) => Some(Stored::decode(raw).ok_or_else(|| ClientError::Server {
                    code: common::StatusCode::InvalidArgument,
                    message: "stored value of this key is not a BEDIS value".into(),
                })?),
                None => None,
            };
            let (change, result) = f(current.as_ref());
            let (condition, expected) = match &current {
                Some(c) => (Condition::IfEquals, c.raw.clone()),
                None => (Condition::IfAbsent, Vec::new()),
            };
            let op = match change {
                Change::Keep => return Ok(result),
                Change::Put {
                    kind,
                    payload,
                    expire_at_us,
                } => KvOp {
                    key: key.to_vec(),
                    value: Stored::encode(kind, expire_at_us, &payload),
                    expire_at_us: expire_at_us.unwrap_or(0),
                    condition: condition as i32,
                    expected,
                    ..Default::default()
                },
                Change::Delete => KvOp {
                    key: key.to_vec(),
                    delete: true,
                    condition: condition as i32,
                    expected,
                    ..Default::default()
                },
            };
            if self.client.write(&t, key, vec![op]).await?.applied {
                return Ok(result);
            }
        }
    }

    /// Every live key of database `db` with its value (none if the database was never used).
    pub async fn scan_all(&self, db: usize) -> DbResult<Vec<(Vec<u8>, Stored)>> {
        let Some(t) = self.existing_table(db).await? else {
            return Ok(Vec::new());
        };
        Ok(self
            .client
            .scan_all(&t)
            .await?
            .into_iter()
            .filter_map(|(k, v)| Stored::decode(v).map(|s| (k, s)))
            .collect())
    }
}
