//! The newest-version cache: for recently written keys of a tablet, the newest MVCC version
//! ([`mvcc`](crate::mvcc)) held in memory, so a point read at or after it answers without
//! seeking the LSM tree (a memtable skiplist seek per run costs more than everything else
//! in a cached GET).
//!
//! One bounded cache ([`quick_cache`], weighted by bytes) is shared by every tablet of the
//! process; each tablet reaches it through its own [`Latest`] handle, whose id is part of
//! every cache key (a new id empties the tablet's view at once: snapshot install, delete).
//!
//! **Filled by the writer, and by readers that were not overtaken.** The tablet's apply
//! round records, after its batch is in the engine, the newest version of every key it wrote
//! ([`Latest::end_round`]). A reader that missed may record the newest version it found in
//! the engine (or that the key has none) with [`Latest::fill`], but only if no round began
//! since it took its [`Latest::ticket`] before reading: fills and the round's updates are
//! serialized by a lock, so a fill can never land after, and hide, a newer write.
//!
//! **Consistent with the engine.** An entry is only trusted while no round of the tablet is
//! between writing the engine and updating the cache: the round makes the handle's epoch odd
//! before the engine write ([`Latest::begin_round`]) and even after the cache update; a read
//! checks that the epoch was even and unchanged around its lookup, like a seqlock. A read
//! that loses the race simply goes to the engine.
//!
//! A cached version answers a read at `read_ht` only if it is at or below `read_ht`; older
//! reads (snapshots of transactions) always go to the engine.
//!
//! Keys are [`RowKey`]s: held inline when short, so an insert allocates nothing for its key
//! and compares it inside the cache entry it already loaded, without following a pointer
//! (in a pipelined BEDIS SET profile that pointer was one of four cache misses per insert).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use common::HybridTime;
use quick_cache::sync::Cache;
use quick_cache::{Equivalent, Weighter};

use crate::mvcc::Version;

/// Bytes of keys and values the process-wide cache holds (`AISQL_ROW_CACHE_MB` overrides).
const DEFAULT_CAPACITY_MB: u64 = 256;
/// Bookkeeping per entry, counted in its weight.
const ENTRY_OVERHEAD: u64 = 64;

/// The newest version of a key and its time.
#[derive(Clone, Debug)]
pub struct Newest {
    pub ht: HybridTime,
    pub version: Version,
}

impl Newest {
    /// The value a read at `at` sees, if this version is at or below `at` (else `None`:
    /// the read needs an older version, from the engine).
    pub fn value_at(&self, at: HybridTime) -> Option<Option<Vec<u8>>> {
        (self.ht <= at).then(|| self.version.clone().visible_at(at))
    }
}

/// Longest key held inline by a [`RowKey`] (the enum is then 48 bytes).
const INLINE: usize = 46;

/// A row key: inline up to [`INLINE`] bytes, else on the heap. Compares, hashes and borrows
/// as its bytes, so maps keyed by it answer lookups by `&[u8]`.
#[derive(Clone)]
pub enum RowKey {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl RowKey {
    pub fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            RowKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            RowKey::Heap(key.into())
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            RowKey::Inline { len, bytes } => &bytes[..*len as usize],
            RowKey::Heap(b) => b,
        }
    }
}

impl std::ops::Deref for RowKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for RowKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for RowKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for RowKey {}

impl Hash for RowKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_slice().hash(h);
    }
}

impl std::fmt::Debug for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

#[derive(PartialEq, Eq)]
struct Key {
    tablet: u64,
    key: RowKey,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.tablet.hash(h);
        self.key.as_slice().hash(h);
    }
}

/// A borrowed [`Key`] for lookups (hashes identically).
struct KeyRef<'a> {
    tablet: u64,
    key: &'a [u8],
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.tablet.hash(h);
        self.key.hash(h);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, k: &Key) -> bool {
        self.tablet == k.tablet && self.key == k.key.as_slice()
    }
}

#[derive(Clone)]
struct Bytes;

impl Weighter<Key, Newest> for Bytes {
    fn weight(&self, k: &Key, v: &Newest) -> u64 {
        let data = match &v.version {
            Version::Put { data, .. } => data.len(),
            Version::Tombstone => 0,
        };
        (k.key.len() + data) as u64 + ENTRY_OVERHEAD
    }
}

type Shared = Cache<Key, Newest, Bytes, foldhash::fast::RandomState>;

static CACHE: LazyLock<Shared> = LazyLock::new(|| {
    let mb = common::tuning_knob("AISQL_ROW_CACHE_MB", DEFAULT_CAPACITY_MB);
    let bytes = mb.saturating_mul(1 << 20).max(1 << 20);
    Cache::with(
        (bytes / 256).max(1024) as usize,
        bytes,
        Bytes,
        foldhash::fast::RandomState::default(),
        Default::default(),
    )
});

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One tablet's view of the cache. The tablet's writer is the only caller of the `round`
/// methods and [`Latest::clear`]; readers call [`Latest::get`] from any thread.
pub struct Latest {
    /// This tablet's part of the cache keys; replaced by [`Latest::clear`].
    id: AtomicU64,
    /// Even: every entry of this tablet matches the engine. Odd: a round is writing.
    epoch: AtomicU64,
    /// Serializes readers' fills with the round's cache update and with `clear`.
    fill: Mutex<()>,
}

impl Default for Latest {
    fn default() -> Self {
        Self::new()
    }
}

impl Latest {
    pub fn new() -> Self {
        Self {
            id: AtomicU64::new(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            epoch: AtomicU64::new(0),
            fill: Mutex::new(()),
        }
    }

    /// A reader's permission to [`Latest::fill`], taken before it reads the engine (and
    /// before it picks its read time): `None` while a round is writing.
    pub fn ticket(&self) -> Option<u64> {
        let e = self.epoch.load(Ordering::SeqCst);
        e.is_multiple_of(2).then_some(e)
    }

    /// Record what a reader holding `ticket` found in the engine: the key's newest version,
    /// or `None` if it has none. Dropped if a round began (or the tablet was cleared) since.
    pub fn fill(&self, ticket: u64, key: &[u8], newest: Option<&Newest>) {
        let _one = self.fill.lock().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::SeqCst) != ticket {
            return;
        }
        let newest = newest.cloned().unwrap_or(Newest {
            ht: HybridTime::MIN,
            version: Version::Tombstone,
        });
        CACHE.insert(
            Key {
                tablet: self.id.load(Ordering::SeqCst),
                key: RowKey::new(key),
            },
            newest,
        );
    }

    /// The newest version of `key`, if cached and trustworthy now. `None`: ask the engine.
    /// It answers a read at `read_ht` only if `newest.ht <= read_ht` ([`Newest::value_at`]).
    pub fn get(&self, key: &[u8]) -> Option<Newest> {
        let before = self.epoch.load(Ordering::SeqCst);
        if !before.is_multiple_of(2) {
            return None;
        }
        let found = self.get_in_round(key)?;
        fence(Ordering::SeqCst);
        (self.epoch.load(Ordering::SeqCst) == before).then_some(found)
    }

    /// The writer's own lookup, between rounds or inside one before its engine write (the
    /// cache then matches the engine; the round's own writes are the caller's to overlay).
    pub fn get_in_round(&self, key: &[u8]) -> Option<Newest> {
        CACHE.get(&KeyRef {
            tablet: self.id.load(Ordering::SeqCst),
            key,
        })
    }

    /// A round is about to write the engine: readers stop trusting the cache.
    pub fn begin_round(&self) {
        if self.epoch.load(Ordering::SeqCst).is_multiple_of(2) {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The round's batch is in the engine: record the newest version of each key it wrote,
    /// then let readers trust the cache again.
    pub fn end_round(&self, written: impl IntoIterator<Item = (RowKey, Newest)>) {
        let _one = self.fill.lock().unwrap_or_else(|e| e.into_inner());
        let tablet = self.id.load(Ordering::SeqCst);
        for (key, newest) in written {
            CACHE.insert(Key { tablet, key }, newest);
        }
        if !self.epoch.load(Ordering::SeqCst).is_multiple_of(2) {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Forget every entry of this tablet (its rows are being replaced or deleted). Old
    /// entries become unreachable and age out of the shared cache.
    pub fn clear(&self) {
        let _one = self.fill.lock().unwrap_or_else(|e| e.into_inner());
        self.id
            .store(NEXT_ID.fetch_add(1, Ordering::Relaxed), Ordering::SeqCst);
        // Tickets taken before the clear must not fill the new view with old rows.
        self.epoch.fetch_add(2, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &[u8], ht: u64) -> Newest {
        Newest {
            ht: HybridTime(ht),
            version: Version::Put {
                data: v.to_vec(),
                expire_at_micros: None,
            },
        }
    }

    #[test]
    fn row_keys_compare_and_hash_as_their_bytes() {
        let short = b"user:1".to_vec();
        let long = vec![7u8; INLINE + 1];
        let mut map = std::collections::HashMap::new();
        for k in [&short, &long, &Vec::new(), &vec![0u8; INLINE]] {
            let r = RowKey::new(k);
            assert_eq!(r.as_slice(), &k[..]);
            map.insert(r, k.len());
        }
        assert!(matches!(RowKey::new(&short), RowKey::Inline { .. }));
        assert!(matches!(RowKey::new(&long), RowKey::Heap(_)));
        assert_eq!(map.get(&short[..]), Some(&short.len()));
        assert_eq!(map.get(&long[..]), Some(&long.len()));
        assert_eq!(map.get(&[0u8; INLINE][..]), Some(&INLINE));
        assert_eq!(map.get(&b"user:2"[..]), None);
    }

    #[test]
    fn only_trusted_between_rounds_and_at_or_after_the_version() {
        let l = Latest::new();
        assert!(l.get(b"k").is_none());
        l.begin_round();
        l.end_round([(RowKey::new(b"k"), put(b"v", 5))]);
        let n = l.get(b"k").expect("cached");
        assert_eq!(n.value_at(HybridTime(10)), Some(Some(b"v".to_vec())));
        assert_eq!(
            n.value_at(HybridTime(4)),
            None,
            "older read goes to the engine"
        );
        l.begin_round();
        assert!(l.get(b"k").is_none(), "round in progress");
        assert!(l.get_in_round(b"k").is_some());
        l.end_round([]);
        assert!(l.get(b"k").is_some());
        l.clear();
        assert!(l.get(b"k").is_none());
        let other = Latest::new();
        assert!(other.get(b"k").is_none(), "tablets do not share keys");
    }

    #[test]
    fn a_fill_is_dropped_once_a_round_began_or_the_tablet_was_cleared() {
        let l = Latest::new();
        let t = l.ticket().expect("no round");
        l.fill(t, b"absent", None);
        let n = l.get(b"absent").expect("filled");
        assert_eq!(n.value_at(HybridTime(1)), Some(None));
        let t = l.ticket().expect("no round");
        l.begin_round();
        assert!(l.ticket().is_none());
        l.end_round([(RowKey::new(b"k"), put(b"new", 7))]);
        l.fill(t, b"k", Some(&put(b"old", 3)));
        assert_eq!(
            l.get(b"k").and_then(|n| n.value_at(HybridTime(9))),
            Some(Some(b"new".to_vec()))
        );
        let t = l.ticket().expect("no round");
        l.clear();
        l.fill(t, b"k", Some(&put(b"old", 3)));
        assert!(l.get(b"k").is_none());
    }
}
