//! [`FjallEngine`]: the [`KvEngine`] over fjall. One fjall database per data directory
//! (a single journal shared by every keyspace, so one `fdatasync` makes every earlier write
//! of every column family durable), one keyspace per [`Cf`], except [`Cf::Data`]:
//!
//! **One keyspace per tablet for `Cf::Data`.** A `Cf::Data` key starts with its tablet's
//! 16-byte prefix. The engine stores it without that prefix in the tablet's own keyspace
//! (`data-<32 hex digits>`, created on the tablet's first write) and adds the prefix back
//! on every key it returns, so callers see one ordered family. Two reasons:
//! * fjall's memtable (a sorted map of `byteview` keys: a skiplist upstream, a B-tree in our
//!   vendored lsm-tree) compares the 4 bytes each key holds inline before it follows the
//!   key's heap pointer. With the prefix in front, those 4 bytes were the same for every
//!   key, and every comparison of an insert or a seek missed the cache; without it, they
//!   are the row key's first bytes.
//! * tablets applying at once no longer insert into one memtable.
//!
//! Keys no longer than a prefix (only unit tests write them) stay in the `data` keyspace.
//! Stores written before this layout kept every `Cf::Data` key in `data`: [`FjallEngine::open`]
//! moves them to their tablets' keyspaces, in atomic batches, before it returns.
//!
//! **Syncing without stalling writers.** fjall's own `persist(SyncData)` holds the journal
//! lock for the whole `fdatasync`, so every writer waits for the disk. [`FjallEngine::sync`]
//! instead flushes fjall's buffer to the OS under the lock (`PersistMode::Buffer`, fast) and
//! then `fdatasync`s the active journal file through a handle of its own, outside the lock.
//! This is complete because fjall seals a journal only after syncing it (`SyncAll` in
//! `Writer::rotate`): whatever was flushed before a rotation is durable with the sealed file,
//! and whatever was flushed after is in the newest `<n>.jnl`, which we sync.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use fjall::Readable;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Snapshot};

use crate::{Cf, CfStats, EngineStats, Kv, KvEngine, KvIter, Op, Result, StorageError, WriteBatch};

/// Length of the tablet prefix that starts every tablet's `Cf::Data` key.
const PREFIX: usize = 16;
/// Name prefix of the per-tablet `Cf::Data` keyspaces.
const TABLET_KS: &str = "data-";
/// Largest memtable of a tablet's keyspace (fjall's default). Smaller ones did not pay:
/// with 4 MiB a pipelined BEDIS `SET` cost ~10 % more server CPU (flushes and compactions
/// outweighed the cheaper inserts into smaller skiplists). The memtables of all tablets
/// together stay bounded by fjall's journal limit (512 MiB): past it, the tablets holding
/// the oldest journal flush. `AISQL_TABLET_MEMTABLE_MB` overrides it when a keyspace is
/// created.
const TABLET_MEMTABLE_MB: u64 = 64;
/// Keys moved per batch when migrating an older store.
const MIGRATE_BATCH: usize = 10_000;

type Prefix = [u8; PREFIX];
/// A key range within one tablet's keyspace.
type RestRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The fjall-backed engine.
pub struct FjallEngine {
    db: Database,
    families: [Keyspace; 5],
    /// The `Cf::Data` keyspace of each tablet prefix that has written.
    tablets: RwLock<BTreeMap<Prefix, Keyspace>>,
    dir: PathBuf,
    /// (journal number, open handle) of the journal last synced.
    journal: Mutex<Option<(u64, File)>>,
    /// Set when an fdatasync failed. The kernel may have dropped the dirty pages, so a later
    /// "successful" sync would prove nothing: every sync fails from then on.
    poisoned: std::sync::atomic::AtomicBool,
}

fn io(e: fjall::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

fn hex(p: &Prefix) -> String {
    p.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Prefix> {
    if s.len() != 2 * PREFIX {
        return None;
    }
    let mut p = [0u8; PREFIX];
    for (i, b) in p.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(p)
}

/// The tablet prefix of a `Cf::Data` key and the rest, or `None` for a key no longer than a
/// prefix (fjall keys cannot be empty).
fn split(key: &[u8]) -> Option<(Prefix, &[u8])> {
    if key.len() <= PREFIX {
        return None;
    }
    let p: Prefix = key.get(..PREFIX)?.try_into().ok()?;
    Some((p, &key[PREFIX..]))
}

/// [`split`] for a key of `cf`: only `Cf::Data` keys live in per-tablet keyspaces.
fn data_split(cf: Cf, key: &[u8]) -> Option<(Prefix, &[u8])> {
    if cf == Cf::Data {
        split(key)
    } else {
        None
    }
}

/// Where a range bound falls relative to the keys `p ‖ rest` of one tablet.
enum Side {
    /// Every key of the tablet is on the inner side of the bound.
    All,
    /// No key of the tablet is.
    None,
    /// The bound cuts the tablet at this bound on `rest`.
    At(Bound<Vec<u8>>),
}

/// Range bound `b` (the lower one if `is_lower`) restricted to the keys `p ‖ rest` of one
/// tablet (`rest` never empty).
fn restrict(b: &Bound<Vec<u8>>, p: &Prefix, is_lower: bool) -> Side {
    let (Bound::Included(k) | Bound::Excluded(k)) = b else {
        return Side::All;
    };
    let head = &k[..k.len().min(PREFIX)];
    // Whether `k` sorts below every key of the tablet (if not, above every key, or inside).
    let below = match head.cmp(&p[..head.len()]) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        // `k` is a prefix of `p`: every `p ‖ rest` is above it.
        std::cmp::Ordering::Equal if k.len() <= PREFIX => true,
        std::cmp::Ordering::Equal => {
            let rest = k[PREFIX..].to_vec();
            return Side::At(match b {
                Bound::Included(_) => Bound::Included(rest),
                _ => Bound::Excluded(rest),
            });
        }
    };
    // A lower bound below the tablet keeps all of it, an upper bound below it none.
    if below == is_lower {
        Side::All
    } else {
        Side::None
    }
}

/// Two sorted streams merged into one (keys never repeat across them).
struct Merge<'a> {
    a: std::iter::Peekable<KvIter<'a>>,
    b: std::iter::Peekable<KvIter<'a>>,
    reverse: bool,
}

impl Iterator for Merge<'_> {
    type Item = Result<Kv>;
    fn next(&mut self) -> Option<Self::Item> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(Err(_)), _) => true,
            (_, Some(Err(_))) => false,
            (Some(Ok((ka, _))), Some(Ok((kb, _)))) => (ka < kb) != self.reverse,
        };
        if take_a {
            self.a.next()
        } else {
            self.b.next()
        }
    }
}

impl FjallEngine {
    /// Open (creating if needed) the store under `path`. Fails, without modifying anything,
    /// if the directory holds something fjall cannot recover.
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| StorageError::DataDir {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        // Never initialize a store over files we do not recognise: a missing `version` file in
        // a non-empty directory means damage or a wrong path, not a new store.
        let has_files = std::fs::read_dir(path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if has_files && !path.join("version").exists() {
            return Err(StorageError::DataDir {
                path: path.display().to_string(),
                detail: "the directory holds files but no store `version` file; refusing to create a store over them".into(),
            });
        }
        let db = Database::builder(path)
            .manual_journal_persist(true)
            .open()
            .map_err(|e| StorageError::DataDir {
                path: path.display().to_string(),
                detail: format!("cannot open the store: {e}"),
            })?;
        let open = |cf: Cf| {
            db.keyspace(cf.name(), KeyspaceCreateOptions::default)
                .map_err(io)
        };
        let families = [
            open(Cf::Data)?,
            open(Cf::RaftLog)?,
            open(Cf::RaftMeta)?,
            open(Cf::Meta)?,
            open(Cf::Intents)?,
        ];
        let mut tablets = BTreeMap::new();
        for name in db.list_keyspace_names() {
            let Some(p) = name.strip_prefix(TABLET_KS).and_then(unhex) else {
                continue;
            };
            tablets.insert(
                p,
                db.keyspace(&name, KeyspaceCreateOptions::default)
                    .map_err(io)?,
            );
        }
        let engine = Self {
            db,
            families,
            tablets: RwLock::new(tablets),
            dir: path.to_path_buf(),
            journal: Mutex::new(None),
            poisoned: std::sync::atomic::AtomicBool::new(false),
        };
        engine.migrate_shared_data()?;
        Ok(engine)
    }

    /// Move `Cf::Data` keys that an older store kept in the shared `data` keyspace to their
    /// tablets' keyspaces. Each batch moves its keys atomically, so a crash midway leaves
    /// every key in exactly one place and the next open carries on.
    fn migrate_shared_data(&self) -> Result<()> {
        let shared = &self.families[0];
        let mut moved = 0usize;
        // Keys shorter than a prefix sort before or among the prefixes; `split` skips them.
        let from = vec![0u8; PREFIX];
        loop {
            let mut batch = self.db.batch();
            let mut n = 0;
            for g in self
                .db
                .snapshot()
                .range::<Vec<u8>, _>(shared, (Bound::Included(from.clone()), Bound::Unbounded))
            {
                let (k, v) = g.into_inner().map_err(io)?;
                let Some((p, rest)) = split(&k) else {
                    continue;
                };
                let ks = self.tablet_ks(&p)?;
                batch.insert(&ks, rest.to_vec(), v);
                batch.remove(shared, k);
                n += 1;
                if n >= MIGRATE_BATCH {
                    break;
                }
            }
            if n == 0 {
                break;
            }
            batch.commit().map_err(io)?;
            moved += n;
        }
        if moved > 0 {
            self.db.persist(PersistMode::SyncAll).map_err(io)?;
            tracing::info!(
                rows = moved,
                "moved the store's rows to one keyspace per tablet"
            );
        }
        Ok(())
    }

    /// The `Cf::Data` keyspace of tablet `p`, if it has one.
    fn find_tablet(&self, p: &Prefix) -> Option<Keyspace> {
        self.tablets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(p)
            .cloned()
    }

    /// The `Cf::Data` keyspace of tablet `p`, created if needed.
    fn tablet_ks(&self, p: &Prefix) -> Result<Keyspace> {
        if let Some(ks) = self.find_tablet(p) {
            return Ok(ks);
        }
        let mut map = self.tablets.write().unwrap_or_else(|e| e.into_inner());
        if let Some(ks) = map.get(p) {
            return Ok(ks.clone());
        }
        let name = format!("{TABLET_KS}{}", hex(p));
        let mb = common::tuning_knob("AISQL_TABLET_MEMTABLE_MB", TABLET_MEMTABLE_MB).max(1);
        let ks = self
            .db
            .keyspace(&name, || {
                KeyspaceCreateOptions::default().max_memtable_size(mb << 20)
            })
            .map_err(io)?;
        map.insert(*p, ks.clone());
        Ok(ks)
    }

    /// A `Cf::Data` scan: the tablets' keyspaces the range touches, in order, merged with
    /// the shared keyspace's short keys.
    fn scan_data(
        &self,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> KvIter<'static> {
        let snap = self.db.snapshot();
        // (tablet, its keyspace, the range within it)
        let mut parts: Vec<(Prefix, Keyspace, RestRange)> = Vec::new();
        for (p, ks) in self
            .tablets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let lo = match restrict(&start, p, true) {
                Side::None => continue,
                Side::All => Bound::Unbounded,
                Side::At(b) => b,
            };
            let hi = match restrict(&end, p, false) {
                Side::None => continue,
                Side::All => Bound::Unbounded,
                Side::At(b) => b,
            };
            parts.push((*p, ks.clone(), (lo, hi)));
        }
        if reverse {
            parts.reverse();
        }
        let tablets_snap = snap.clone();
        let tablets = parts.into_iter().flat_map(move |(p, ks, range)| {
            let it = tablets_snap.range::<Vec<u8>, _>(&ks, range);
            let map = move |g: fjall::Guard| {
                g.into_inner()
                    .map(|(k, v)| {
                        let mut key = Vec::with_capacity(PREFIX + k.len());
                        key.extend_from_slice(&p);
                        key.extend_from_slice(&k);
                        (key, v.to_vec())
                    })
                    .map_err(io)
            };
            let it: KvIter<'static> = if reverse {
                Box::new(it.rev().map(map))
            } else {
                Box::new(it.map(map))
            };
            it
        });
        let shared = scan_ks(&snap, &self.families[0], start, end, reverse);
        Box::new(Merge {
            a: (Box::new(tablets) as KvIter<'static>).peekable(),
            b: shared.peekable(),
            reverse,
        })
    }

    /// The number of the newest journal file (`<n>.jnl`) in the store directory.
    fn newest_journal(&self) -> Result<u64> {
        let mut newest = None;
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| StorageError::Io(format!("listing {}: {e}", self.dir.display())))?;
        for e in entries.flatten() {
            let name = e.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jnl"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                newest = newest.max(Some(n));
            }
        }
        newest.ok_or_else(|| StorageError::Io(format!("no journal in {}", self.dir.display())))
    }

    /// fdatasync the active journal outside fjall's journal lock.
    fn sync_journal(&self) -> Result<()> {
        let mut slot = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        // Still the newest journal? A rotation creates <n+1>.jnl; journals are deleted oldest
        // first, so if <n> is gone, newer ones exist too.
        let current = slot.as_ref().map(|(n, _)| *n);
        let stale = match current {
            Some(n) => {
                self.dir.join(format!("{}.jnl", n + 1)).exists()
                    || !self.dir.join(format!("{n}.jnl")).exists()
            }
            None => true,
        };
        if stale {
            let n = self.newest_journal()?;
            let path = self.dir.join(format!("{n}.jnl"));
            let f = File::open(&path)
                .map_err(|e| StorageError::Io(format!("opening {}: {e}", path.display())))?;
            *slot = Some((n, f));
        }
        match slot.as_ref() {
            Some((_, f)) => f.sync_data().map_err(|e| {
                self.poisoned.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::error!(error = %e, "fdatasync of the journal failed; the store refuses further syncs");
                StorageError::Io(format!("fdatasync of the journal: {e}"))
            }),
            None => Ok(()),
        }
    }

    fn ks(&self, cf: Cf) -> &Keyspace {
        match cf {
            Cf::Data => &self.families[0],
            Cf::RaftLog => &self.families[1],
            Cf::RaftMeta => &self.families[2],
            Cf::Meta => &self.families[3],
            Cf::Intents => &self.families[4],
        }
    }
}

impl KvEngine for FjallEngine {
    // Reads go through a snapshot: fjall's plain `Keyspace::get`/`range` read at the newest
    // sequence number, which shows a batch that is still being inserted item by item (half
    // of an applied Raft entry). A snapshot reads at the newest *published* batch.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some((p, rest)) = data_split(cf, key) {
            let Some(ks) = self.find_tablet(&p) else {
                return Ok(None);
            };
            let snap = self.db.snapshot();
            return Ok(snap.get(&ks, rest).map_err(io)?.map(|v| v.to_vec()));
        }
        let snap = self.db.snapshot();
        Ok(snap.get(self.ks(cf), key).map_err(io)?.map(|v| v.to_vec()))
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut b = self.db.batch();
        // The ops of a batch are nearly always one tablet's: look its keyspace up once.
        let mut last: Option<(Prefix, Keyspace)> = None;
        let mut data_ks = |p: Prefix| -> Result<Keyspace> {
            match &last {
                Some((lp, ks)) if *lp == p => Ok(ks.clone()),
                _ => {
                    let ks = self.tablet_ks(&p)?;
                    last = Some((p, ks.clone()));
                    Ok(ks)
                }
            }
        };
        for op in batch.ops {
            match op {
                Op::Put(cf, k, v) => match data_split(cf, &k) {
                    Some((p, rest)) => b.insert(&data_ks(p)?, rest, v),
                    None => b.insert(self.ks(cf), k, v),
                },
                Op::Delete(cf, k) => match data_split(cf, &k) {
                    Some((p, rest)) => b.remove(&data_ks(p)?, rest),
                    None => b.remove(self.ks(cf), k),
                },
            }
        }
        b.commit().map_err(io)
    }

    fn scan(
        &self,
        cf: Cf,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> KvIter<'_> {
        if cf == Cf::Data {
            return self.scan_data(start, end, reverse);
        }
        scan_ks(&self.db.snapshot(), self.ks(cf), start, end, reverse)
    }

    fn sync(&self) -> Result<()> {
        if self.poisoned.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StorageError::Io(
                "an earlier fdatasync failed; restart the server to recover from the journal"
                    .into(),
            ));
        }
        self.db.persist(PersistMode::Buffer).map_err(io)?;
        self.sync_journal()
    }

    fn disk_space(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    fn forget_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<()> {
        let (Cf::Data, Ok(p)) = (cf, Prefix::try_from(prefix)) else {
            return Ok(());
        };
        let ks = self
            .tablets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&p);
        match ks {
            // Readers still holding the handle keep reading it; fjall removes the files
            // once the last handle is gone.
            Some(ks) => self.db.delete_keyspace(ks).map_err(io),
            None => Ok(()),
        }
    }

    fn stats(&self) -> EngineStats {
        let column_families = Cf::ALL
            .iter()
            .map(|&cf| {
                let mut all = vec![self.ks(cf).clone()];
                if cf == Cf::Data {
                    all.extend(
                        self.tablets
                            .read()
                            .unwrap_or_else(|e| e.into_inner())
                            .values()
                            .cloned(),
                    );
                }
                // fjall's thresholds (keyspace `local_backpressure`): a stall from 20 level-0
                // tables on, a halt with 4 sealed memtables. For the per-tablet keyspaces of
                // `Cf::Data`: sizes add up, level-0 and sealed counts are the worst tablet's.
                let mut s = CfStats {
                    name: cf.name(),
                    ..Default::default()
                };
                for ks in &all {
                    let l0 = ks.l0_table_count() as u64;
                    let sealed = ks.sealed_memtable_count() as u64;
                    s.disk_bytes += ks.disk_space();
                    s.tables += ks.table_count() as u64;
                    s.l0_tables = s.l0_tables.max(l0);
                    s.sealed_memtables = s.sealed_memtables.max(sealed);
                    s.write_stalled |= l0 >= 20 || sealed >= 4;
                }
                s
            })
            .collect();
        EngineStats {
            disk_bytes: self.disk_space(),
            journal_bytes: self.db.journal_disk_space().unwrap_or(0),
            journals: self.db.journal_count() as u64,
            write_buffer_bytes: self.db.write_buffer_size(),
            compactions_completed: self.db.compactions_completed() as u64,
            compactions_running: self.db.active_compactions() as u64,
            compaction_seconds: self.db.time_compacting().as_secs_f64(),
            column_families,
        }
    }
}

/// A range scan of one keyspace at `snap`, keys and values copied out.
fn scan_ks(
    snap: &Snapshot,
    ks: &Keyspace,
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    reverse: bool,
) -> KvIter<'static> {
    let it = snap.range::<Vec<u8>, _>(ks, (start, end));
    let map = |g: fjall::Guard| {
        g.into_inner()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .map_err(io)
    };
    if reverse {
        Box::new(it.rev().map(map))
    } else {
        Box::new(it.map(map))
    }
}
