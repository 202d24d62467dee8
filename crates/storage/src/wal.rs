//! [`Wal`]: the server's Raft write-ahead log — append-only segment files shared by every
//! Raft group on the server, outside the LSM tree (`docs/design/storage.md` §3).
//!
//! Before it, Raft entries were rows of a fjall keyspace: each append cost a memtable insert,
//! later a tombstone, a flush and compactions, all competing with the data for the two cores.
//! Here an append is a `memcpy` into a buffer; the group-commit thread writes the buffer and
//! `fdatasync`s the active segment once for every append queued meanwhile, from every group.
//!
//! **Files.** `<dir>/<seq:016x>.wal`, preallocated to [`SEGMENT_BYTES`]. A segment starts with
//! [`MAGIC`] and a version, then records `len u32 ‖ xxh3-64 of body u64 ‖ body`, where the body
//! is `kind u8 ‖ group (16 bytes) ‖ payload`. Kinds: an entry (`index u64 ‖ bytes`), a
//! truncation (`from u64`: entries ≥ from are gone), a purge (`up_to u64 ‖ mark`: entries
//! ≤ up_to are gone, `mark` is the caller's record of it), a vote, a destroyed group, and a
//! relocated entry (an entry copied forward out of a segment being cleaned; it replaces the
//! location of that index without truncating what follows).
//!
//! **Recovery** replays the segments in order into the in-memory index (per group: entry
//! index → file location, the vote, the purge mark). A record that is cut short or fails its
//! checksum ends the log if it is in the newest segment (a write torn by a crash, never
//! acknowledged); anywhere else it is corruption and opening fails.
//!
//! **Reclaiming space.** A new segment begins with every group's vote and purge mark, so an
//! older segment matters only for the entries still live in it. When the oldest segment holds
//! no live entry it is deleted; when more than [`MAX_SEALED`] segments are sealed and the
//! oldest is at most half live (a quiet group that never purges pins old segments), its live
//! entries are copied forward first. Whoever purges must first make durable whatever makes
//! those entries unnecessary (the Raft log store syncs the state machine's store).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::group_commit::{GroupCommit, SyncStats};
use crate::{Result, StorageError};

/// A Raft group's key in the log: the 16-byte id prefix its tablet also uses for its rows.
pub type GroupKey = [u8; 16];

/// First bytes of every segment.
pub const MAGIC: &[u8; 8] = b"AISQLWAL";
const VERSION: u32 = 1;
const HEADER: u64 = 12;
/// Size a segment is preallocated to; a segment is sealed when the next record would not fit
/// (a larger record gets a segment of its own size).
pub const SEGMENT_BYTES: u64 = 8 << 20;
/// Sealed segments kept before live entries are copied forward out of the oldest one.
pub const MAX_SEALED: usize = 4;
/// Writes are flushed to the file once this much is buffered, synced or not.
const FLUSH_AT: usize = 1 << 20;
const REC_HEAD: usize = 12;
const BODY_HEAD: usize = 17;
/// Largest accepted record body (a Raft entry is far smaller).
const MAX_BODY: u32 = 1 << 30;

const ENTRY: u8 = 1;
const TRUNCATE: u8 = 2;
const PURGE: u8 = 3;
const VOTE: u8 = 4;
const DESTROY: u8 = 5;
const RELOCATE: u8 = 6;

/// Where a record lives: segment, offset of the record, whole record length.
#[derive(Clone, Copy, Debug)]
struct Loc {
    seg: u64,
    pos: u64,
    len: u32,
}

#[derive(Default)]
struct Group {
    entries: BTreeMap<u64, Loc>,
    purged: Option<(u64, Vec<u8>)>,
    vote: Option<Vec<u8>>,
}

struct Inner {
    dir: PathBuf,
    groups: HashMap<GroupKey, Group>,
    /// Open segments by sequence number; the last one is the active one.
    segments: BTreeMap<u64, File>,
    active: u64,
    /// Bytes of the active segment written to the file.
    flushed: u64,
    /// Records not yet written to the file; they follow `flushed`.
    buf: Vec<u8>,
    /// An earlier write or fdatasync failed: the file's state is unknown, refuse everything.
    poisoned: bool,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StorageError {
    StorageError::Io(format!("{what} {}: {e}", path.display()))
}

fn corrupt(detail: String) -> StorageError {
    StorageError::Corrupt {
        what: "raft write-ahead log",
        detail,
    }
}

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("syncing directory", dir, e))
}

/// Give `f` `len` bytes of written zeros, so appends overwrite allocated, initialized blocks
/// and an `fdatasync` writes only the data (with `fallocate`'s unwritten extents, each sync
/// also wrote the inode to record the extents it converted).
fn preallocate(f: &File, len: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    f.sync_all()
}

/// Create segment `seq` in `dir`: preallocated to `size`, header written and synced.
fn create_segment(dir: &Path, seq: u64, size: u64) -> Result<File> {
    let path = seg_path(dir, seq);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io_err("creating", &path, e))?;
    preallocate(&f, size).map_err(|e| io_err("preallocating", &path, e))?;
    write_header(&f, &path)?;
    Ok(f)
}

/// Write and sync a segment's [`MAGIC`] and version.
fn write_header(f: &File, path: &Path) -> Result<()> {
    let mut head = MAGIC.to_vec();
    head.extend_from_slice(&VERSION.to_le_bytes());
    f.write_all_at(&head, 0)
        .and_then(|_| f.sync_data())
        .map_err(|e| io_err("writing", path, e))
}

/// Apply one record of `group` to the index (recovery and live writes share this).
fn apply_record(
    groups: &mut HashMap<GroupKey, Group>,
    kind: u8,
    group: &GroupKey,
    payload: &[u8],
    loc: Loc,
) {
    if kind == DESTROY {
        groups.remove(group);
    } else {
        groups.entry(*group).or_default().apply(kind, payload, loc);
    }
}

impl Group {
    /// Apply one record to the group's index.
    fn apply(&mut self, kind: u8, payload: &[u8], loc: Loc) {
        let index = |p: &[u8]| {
            p.get(..8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        };
        match kind {
            ENTRY => {
                if let Some(i) = index(payload) {
                    if self
                        .entries
                        .last_key_value()
                        .is_some_and(|(&last, _)| last >= i)
                    {
                        let _ = self.entries.split_off(&i);
                    }
                    self.entries.insert(i, loc);
                }
            }
            RELOCATE => {
                if let Some(i) = index(payload) {
                    self.entries.insert(i, loc);
                }
            }
            TRUNCATE => {
                if let Some(i) = index(payload) {
                    let _ = self.entries.split_off(&i);
                }
            }
            PURGE => {
                if let Some(i) = index(payload) {
                    self.entries = self.entries.split_off(&i.saturating_add(1));
                    if i == u64::MAX {
                        self.entries.clear();
                    }
                    self.purged = Some((i, payload[8..].to_vec()));
                }
            }
            VOTE => self.vote = Some(payload.to_vec()),
            _ => {}
        }
    }
}

impl Inner {
    fn file(&self, seq: u64) -> Result<&File> {
        self.segments
            .get(&seq)
            .ok_or_else(|| corrupt(format!("segment {seq:016x} is not open")))
    }

    /// Logical end of the active segment (file plus buffer).
    fn end(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    /// Append one record to the buffer; returns its location. `parts` make up the payload.
    fn push(&mut self, kind: u8, group: &GroupKey, parts: &[&[u8]]) -> Loc {
        let body_len = BODY_HEAD + parts.iter().map(|p| p.len()).sum::<usize>();
        let pos = self.end();
        let start = self.buf.len();
        self.buf.reserve(REC_HEAD + body_len);
        self.buf.extend_from_slice(&(body_len as u32).to_le_bytes());
        self.buf.extend_from_slice(&[0; 8]);
        self.buf.push(kind);
        self.buf.extend_from_slice(group);
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        let sum = xxhash_rust::xxh3::xxh3_64(&self.buf[start + REC_HEAD..]);
        self.buf[start + 4..start + REC_HEAD].copy_from_slice(&sum.to_le_bytes());
        Loc {
            seg: self.active,
            pos,
            len: (REC_HEAD + body_len) as u32,
        }
    }

    /// Write a record and apply it to the in-memory index; rotates first if it would not fit.
    fn record(&mut self, kind: u8, group: &GroupKey, parts: &[&[u8]]) -> Result<()> {
        if self.poisoned {
            return Err(StorageError::Io(
                "the write-ahead log failed earlier; restart the server to recover".into(),
            ));
        }
        let len = (REC_HEAD + BODY_HEAD + parts.iter().map(|p| p.len()).sum::<usize>()) as u64;
        if self.end() + len > SEGMENT_BYTES && self.end() > HEADER {
            self.rotate(len)?;
        }
        let loc = self.push(kind, group, parts);
        // The payload as just buffered: no copy of the entry.
        let payload = &self.buf[self.buf.len() + REC_HEAD + BODY_HEAD - loc.len as usize..];
        apply_record(&mut self.groups, kind, group, payload, loc);
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the buffer to the active segment (no sync).
    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let at = self.flushed;
        let r = self.file(self.active)?.write_all_at(&self.buf, at);
        if let Err(e) = r {
            self.poisoned = true;
            return Err(io_err("writing", &seg_path(&self.dir, self.active), e));
        }
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn sync_active(&mut self) -> Result<()> {
        self.flush()?;
        let r = self.file(self.active)?.sync_data();
        r.map_err(|e| {
            self.poisoned = true;
            io_err("fdatasync of", &seg_path(&self.dir, self.active), e)
        })
    }

    /// Seal the active segment (durably) and start the next one with every group's vote and
    /// purge mark. `need`: the size of the record that did not fit.
    fn rotate(&mut self, need: u64) -> Result<()> {
        self.sync_active()?;
        let seq = self.active + 1;
        let f = create_segment(&self.dir, seq, SEGMENT_BYTES.max(need + HEADER))?;
        self.segments.insert(seq, f);
        self.active = seq;
        self.flushed = HEADER;
        let keys: Vec<GroupKey> = self.groups.keys().copied().collect();
        for k in keys {
            let (vote, purged) = match self.groups.get(&k) {
                Some(g) => (g.vote.clone(), g.purged.clone()),
                None => continue,
            };
            if let Some(v) = vote {
                self.push(VOTE, &k, &[&v]);
            }
            if let Some((i, mark)) = purged {
                self.push(PURGE, &k, &[&i.to_le_bytes(), &mark]);
            }
        }
        self.sync_active()?;
        fsync_dir(&self.dir)?;
        self.clean()
    }

    /// Read one whole record and check it.
    fn read_record(&mut self, loc: Loc) -> Result<Vec<u8>> {
        if loc.seg == self.active && loc.pos + u64::from(loc.len) > self.flushed {
            self.flush()?;
        }
        let mut rec = vec![0; loc.len as usize];
        self.file(loc.seg)?
            .read_exact_at(&mut rec, loc.pos)
            .map_err(|e| io_err("reading", &seg_path(&self.dir, loc.seg), e))?;
        match parse(&rec) {
            Parsed::Record { len, .. } if len == rec.len() => Ok(rec),
            _ => Err(corrupt(format!(
                "record at {:016x}:{} fails its checksum",
                loc.seg, loc.pos
            ))),
        }
    }

    /// Delete old segments no live entry needs (copying a few live entries forward when too
    /// many segments are sealed).
    fn clean(&mut self) -> Result<()> {
        loop {
            let Some(oldest) = self.segments.keys().next().copied() else {
                return Ok(());
            };
            if oldest == self.active {
                return Ok(());
            }
            let sealed = self.segments.len() - 1;
            let mut live = Vec::new();
            let mut bytes = 0u64;
            for (k, g) in &self.groups {
                for (&i, loc) in &g.entries {
                    if loc.seg == oldest {
                        live.push((*k, i, *loc));
                        bytes += u64::from(loc.len);
                    }
                }
            }
            let copy_forward = sealed > MAX_SEALED && bytes <= SEGMENT_BYTES / 2;
            if !live.is_empty() && !copy_forward {
                return Ok(());
            }
            for (k, i, loc) in live {
                let rec = self.read_record(loc)?;
                let data = &rec[REC_HEAD + BODY_HEAD + 8..];
                let new = self.push(RELOCATE, &k, &[&i.to_le_bytes(), data]);
                if let Some(g) = self.groups.get_mut(&k) {
                    g.entries.insert(i, new);
                }
            }
            // Purge marks, relocations and the records of newer segments must be durable
            // before the oldest copy of anything goes.
            self.sync_active()?;
            self.segments.remove(&oldest);
            let path = seg_path(&self.dir, oldest);
            std::fs::remove_file(&path).map_err(|e| io_err("removing", &path, e))?;
            tracing::debug!(segment = oldest, "raft log segment removed");
        }
    }
}

enum Parsed<'a> {
    /// A whole, checked record of `len` bytes.
    Record { len: usize, body: &'a [u8] },
    /// Zeros (the preallocated tail) or a record cut short or failing its checksum.
    End,
}

fn parse(b: &[u8]) -> Parsed<'_> {
    if b.len() < REC_HEAD {
        return Parsed::End;
    }
    let body_len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if body_len < BODY_HEAD as u32 || body_len > MAX_BODY {
        return Parsed::End;
    }
    let len = REC_HEAD + body_len as usize;
    if b.len() < len {
        return Parsed::End;
    }
    let mut sum = [0; 8];
    sum.copy_from_slice(&b[4..REC_HEAD]);
    let body = &b[REC_HEAD..len];
    if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(sum) {
        return Parsed::End;
    }
    Parsed::Record { len, body }
}

/// The server's Raft log.
pub struct Wal {
    inner: Arc<Mutex<Inner>>,
    commit: GroupCommit,
}

impl Wal {
    /// Open (creating if needed) the log in `dir` and replay it.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("creating", dir, e))?;
        let mut seqs = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| io_err("listing", dir, e))? {
            let e = e.map_err(|e| io_err("listing", dir, e))?;
            let name = e.file_name();
            if let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".wal"))
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            groups: HashMap::new(),
            segments: BTreeMap::new(),
            active: 0,
            flushed: HEADER,
            buf: Vec::new(),
            poisoned: false,
        };
        let n = seqs.len();
        for (i, &seq) in seqs.iter().enumerate() {
            let newest = i + 1 == n;
            let path = seg_path(dir, seq);
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_err("opening", &path, e))?;
            let data = std::fs::read(&path).map_err(|e| io_err("reading", &path, e))?;
            if data.len() < HEADER as usize
                || &data[..8] != MAGIC
                || data[8..12] != VERSION.to_le_bytes()
            {
                if newest && data.iter().all(|&b| b == 0) {
                    // Created, never written: a crash during rotation.
                    write_header(&f, &path)?;
                } else {
                    return Err(corrupt(format!("{} is not a segment", path.display())));
                }
            }
            let mut pos = HEADER as usize;
            while let Parsed::Record { len, body } = parse(&data[pos.min(data.len())..]) {
                let kind = body[0];
                let mut group = [0; 16];
                group.copy_from_slice(&body[1..BODY_HEAD]);
                let loc = Loc {
                    seg: seq,
                    pos: pos as u64,
                    len: len as u32,
                };
                apply_record(&mut inner.groups, kind, &group, &body[BODY_HEAD..], loc);
                pos += len;
            }
            let rest = &data[pos.min(data.len())..];
            if !rest.iter().all(|&b| b == 0) {
                if !newest {
                    return Err(corrupt(format!(
                        "{} is damaged at offset {pos}",
                        path.display()
                    )));
                }
                // A write torn by a crash: never acknowledged. Zero it so the next records
                // are not followed by stale bytes.
                tracing::warn!(segment = %path.display(), offset = pos, "raft log: discarding a torn tail");
                let zeros = vec![0; rest.len()];
                f.write_all_at(&zeros, pos as u64)
                    .and_then(|_| f.sync_data())
                    .map_err(|e| io_err("repairing", &path, e))?;
            }
            if newest {
                inner.active = seq;
                inner.flushed = pos as u64;
            }
            inner.segments.insert(seq, f);
        }
        if inner.segments.is_empty() {
            let f = create_segment(dir, 1, SEGMENT_BYTES)?;
            fsync_dir(dir)?;
            inner.segments.insert(1, f);
            inner.active = 1;
            inner.flushed = HEADER;
        }
        let inner = Arc::new(Mutex::new(inner));
        let for_sync = inner.clone();
        // The syncer's own handle on the active segment, so the fdatasync runs unlocked. A
        // rotation in between synced the segment it sealed, and so everything before it.
        let mut handle: Option<(u64, File)> = None;
        let commit = GroupCommit::start_with("raft-wal-sync", move || {
            {
                let mut g = for_sync.lock().unwrap_or_else(|e| e.into_inner());
                if g.poisoned {
                    return Err("the write-ahead log failed earlier".into());
                }
                g.flush().map_err(|e| e.to_string())?;
                if handle.as_ref().map(|(s, _)| *s) != Some(g.active) {
                    let f = g
                        .file(g.active)
                        .map_err(|e| e.to_string())?
                        .try_clone()
                        .map_err(|e| format!("cloning a handle on the raft log: {e}"))?;
                    handle = Some((g.active, f));
                }
            }
            match &handle {
                Some((_, f)) => f.sync_data().map_err(|e| {
                    let mut g = for_sync.lock().unwrap_or_else(|e| e.into_inner());
                    g.poisoned = true;
                    format!("fdatasync of the raft log: {e}")
                }),
                None => Ok(()),
            }
        });
        Ok(Self { inner, commit })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append entries `(index, bytes)` of `group`, replacing any at or after the first index.
    /// Not durable until a later [`Wal::sync_then`] reports so.
    pub fn append<'a>(
        &self,
        group: &GroupKey,
        entries: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> Result<()> {
        let mut g = self.lock();
        for (i, data) in entries {
            g.record(ENTRY, group, &[&i.to_le_bytes(), data])?;
        }
        Ok(())
    }

    /// Remove `group`'s entries from `from` on.
    pub fn truncate(&self, group: &GroupKey, from: u64) -> Result<()> {
        self.lock().record(TRUNCATE, group, &[&from.to_le_bytes()])
    }

    /// Remove `group`'s entries up to `up_to` and remember `mark` (returned by
    /// [`Wal::purged`]). The caller must already have made durable whatever replaces them.
    pub fn purge(&self, group: &GroupKey, up_to: u64, mark: &[u8]) -> Result<()> {
        let mut g = self.lock();
        g.record(PURGE, group, &[&up_to.to_le_bytes(), mark])?;
        g.clean()
    }

    /// Record `group`'s vote.
    pub fn save_vote(&self, group: &GroupKey, vote: &[u8]) -> Result<()> {
        self.lock().record(VOTE, group, &[vote])
    }

    /// Forget `group` entirely.
    pub fn destroy(&self, group: &GroupKey) -> Result<()> {
        let mut g = self.lock();
        if !g.groups.contains_key(group) {
            return Ok(());
        }
        g.record(DESTROY, group, &[])
    }

    /// `group`'s last saved vote.
    pub fn vote(&self, group: &GroupKey) -> Option<Vec<u8>> {
        self.lock().groups.get(group).and_then(|g| g.vote.clone())
    }

    /// `group`'s last purge: `(up_to, mark)`.
    pub fn purged(&self, group: &GroupKey) -> Option<(u64, Vec<u8>)> {
        self.lock().groups.get(group).and_then(|g| g.purged.clone())
    }

    /// The entries of `group` with index in `from..to` (those that exist), oldest first.
    pub fn read(&self, group: &GroupKey, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut g = self.lock();
        let locs: Vec<(u64, Loc)> = match g.groups.get(group) {
            Some(grp) if from < to => grp.entries.range(from..to).map(|(i, l)| (*i, *l)).collect(),
            _ => return Ok(Vec::new()),
        };
        let mut out = Vec::with_capacity(locs.len());
        for (i, loc) in locs {
            let mut rec = g.read_record(loc)?;
            rec.drain(..REC_HEAD + BODY_HEAD + 8);
            out.push((i, rec));
        }
        Ok(out)
    }

    /// The newest entry of `group`.
    pub fn last(&self, group: &GroupKey) -> Result<Option<(u64, Vec<u8>)>> {
        let last = {
            let g = self.lock();
            g.groups
                .get(group)
                .and_then(|grp| grp.entries.keys().next_back().copied())
        };
        match last {
            Some(i) => Ok(self.read(group, i, i + 1)?.pop()),
            None => Ok(None),
        }
    }

    /// Every group with anything in the log.
    pub fn groups(&self) -> Vec<GroupKey> {
        self.lock().groups.keys().copied().collect()
    }

    /// Run `cb` once every record written before this call is durable.
    pub fn sync_then(&self, cb: impl FnOnce(std::result::Result<(), String>) + Send + 'static) {
        self.commit.sync_then(cb)
    }

    /// Make every record written so far durable (blocking).
    pub fn sync(&self) -> Result<()> {
        self.lock().sync_active()
    }

    /// Group-commit counters.
    pub fn stats(&self) -> &SyncStats {
        self.commit.stats()
    }

    /// Sync what is buffered and stop the syncer.
    pub fn shutdown(&self) {
        self.commit.shutdown();
        let _ = self.sync();
    }

    /// Files of the log, oldest first (for tests and diagnostics).
    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: GroupKey = [7; 16];
    const H: GroupKey = [9; 16];

    fn entries(w: &Wal, g: &GroupKey) -> Vec<u64> {
        w.read(g, 0, u64::MAX)
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn replay_applies_every_kind_of_record() {
        let dir = tempfile::tempdir().unwrap();
        {
            let w = Wal::open(dir.path()).unwrap();
            for i in 1..=10u64 {
                w.append(&G, [(i, format!("e{i}").as_bytes())]).unwrap();
            }
            w.append(&H, [(1, &b"h1"[..])]).unwrap();
            w.truncate(&G, 9).unwrap();
            w.append(&G, [(9, &b"new9"[..])]).unwrap();
            w.purge(&G, 3, b"mark3").unwrap();
            w.save_vote(&G, b"vote").unwrap();
            w.destroy(&H).unwrap();
            w.sync().unwrap();
            w.shutdown();
        }
        let w = Wal::open(dir.path()).unwrap();
        assert_eq!(entries(&w, &G), vec![4, 5, 6, 7, 8, 9]);
        assert_eq!(w.last(&G).unwrap(), Some((9, b"new9".to_vec())));
        assert_eq!(w.read(&G, 5, 6).unwrap(), vec![(5, b"e5".to_vec())]);
        assert_eq!(w.purged(&G), Some((3, b"mark3".to_vec())));
        assert_eq!(w.vote(&G), Some(b"vote".to_vec()));
        assert!(entries(&w, &H).is_empty());
        assert_eq!(w.groups(), vec![G]);
        w.shutdown();
    }

    #[test]
    fn a_torn_tail_is_dropped_and_writing_resumes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let w = Wal::open(dir.path()).unwrap();
            w.append(&G, [(1, &b"one"[..]), (2, &b"two"[..])]).unwrap();
            w.sync().unwrap();
            w.shutdown();
        }
        // Damage the last record's body.
        let path = seg_path(dir.path(), 1);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        let second = HEADER + (REC_HEAD + BODY_HEAD + 8 + 3) as u64;
        f.write_all_at(b"X", second + (REC_HEAD + BODY_HEAD + 8) as u64)
            .unwrap();
        drop(f);
        {
            let w = Wal::open(dir.path()).unwrap();
            assert_eq!(entries(&w, &G), vec![1]);
            w.append(&G, [(2, &b"deux"[..])]).unwrap();
            w.sync().unwrap();
            w.shutdown();
        }
        let w = Wal::open(dir.path()).unwrap();
        assert_eq!(w.read(&G, 2, 3).unwrap(), vec![(2, b"deux".to_vec())]);
        w.shutdown();
    }

    #[test]
    fn old_segments_are_reclaimed_and_quiet_groups_survive() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![5u8; 1 << 20];
        {
            let w = Wal::open(dir.path()).unwrap();
            // A quiet group with one entry in the first segment, a busy one purging behind.
            w.append(&H, [(1, &b"quiet"[..])]).unwrap();
            w.save_vote(&H, b"h-vote").unwrap();
            for i in 1..=400u64 {
                w.append(&G, [(i, &big[..])]).unwrap();
                if i % 50 == 0 {
                    w.purge(&G, i - 10, b"m").unwrap();
                }
            }
            w.sync().unwrap();
            assert!(w.segment_count() <= MAX_SEALED + 2, "{}", w.segment_count());
            w.shutdown();
        }
        let w = Wal::open(dir.path()).unwrap();
        assert_eq!(w.read(&H, 1, 2).unwrap(), vec![(1, b"quiet".to_vec())]);
        assert_eq!(w.vote(&H), Some(b"h-vote".to_vec()));
        assert_eq!(entries(&w, &G), (391..=400).collect::<Vec<_>>());
        assert_eq!(w.read(&G, 400, 401).unwrap()[0].1, big);
        w.shutdown();
    }
}
