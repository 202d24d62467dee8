//! What the collection commands (hashes, lists, sets, sorted sets) share: reading a key as a
//! collection of one type, committing a change to it, SCAN-style option parsing and random
//! picks.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{err, parse_i64, Reply};
use crate::db::{Access, Change, Coll, ElemWrite, Kind, View};
use crate::frame::Frame;

/// The collection of type `kind` in `view`: `None` if the key is absent, WRONGTYPE if it
/// holds another type.
pub fn typed(view: &View, kind: Kind) -> Result<Option<Coll>, Reply> {
    match &view.meta {
        None => Ok(None),
        Some(m) if m.kind == kind => Ok(m.coll()),
        Some(_) => Err(err::wrongtype()),
    }
}

/// Commit `c` (the new header; a count of 0 deletes the key) and `writes` to `key` as read
/// in `view`, keeping its expiry. False: the key changed meanwhile, read it again.
pub async fn save(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
    view: &View,
    kind: Kind,
    c: Coll,
    writes: Vec<ElemWrite>,
) -> Result<bool, Reply> {
    let change = if c.count <= 0 {
        Change::Delete
    } else {
        Change::Put {
            kind,
            payload: c.encode(),
            expire_at_us: view.meta.as_ref().and_then(|m| m.expire_at_us),
        }
    };
    acc.commit(db, key, view.meta.as_ref(), change, c.gen, writes)
        .await
        .map_err(err::backend)
}

/// Options of HSCAN/SSCAN/ZSCAN after the cursor: `MATCH pattern`, `COUNT n` (a hint).
pub fn scan_opts(a: &[Vec<u8>]) -> Result<Option<Vec<u8>>, Reply> {
    parse_i64(&a[0])
        .filter(|c| *c >= 0)
        .ok_or_else(|| Frame::err("ERR invalid cursor"))?;
    let mut pattern = None;
    let mut i = 1;
    while i < a.len() {
        let Some(val) = a.get(i + 1) else {
            return Err(err::syntax());
        };
        match String::from_utf8_lossy(&a[i]).to_ascii_uppercase().as_str() {
            "MATCH" => pattern = Some(val.clone()),
            "COUNT" => {
                if parse_i64(val).ok_or_else(err::not_int)? < 1 {
                    return Err(err::syntax());
                }
            }
            _ => return Err(err::syntax()),
        }
        i += 2;
    }
    Ok(pattern)
}

/// The reply of a one-pass *SCAN: cursor 0 and the items.
pub fn scan_reply(items: Vec<Frame>) -> Frame {
    Frame::Array(vec![Frame::bulk("0"), Frame::Array(items)])
}

/// `numkeys key … [LIMIT limit]` of SINTERCARD/ZINTERCARD: the key count and the limit
/// (0: none). `bad_numkeys` gives the command's error for a numkeys that is not a positive
/// integer (it sees the parsed number, if any).
pub fn intercard_args(
    a: &[Vec<u8>],
    bad_numkeys: impl Fn(Option<i64>) -> Reply,
) -> Result<(usize, usize), Reply> {
    let n = match parse_i64(&a[0]) {
        Some(n) if n > 0 => n as usize,
        other => return Err(bad_numkeys(other)),
    };
    if n > a.len() - 1 {
        return Err(Frame::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let limit = match &a[1 + n..] {
        [] => 0,
        [l, v] if l.eq_ignore_ascii_case(b"limit") => match parse_i64(v) {
            Some(x) if x >= 0 => x as usize,
            _ => return Err(Frame::err("ERR LIMIT can't be negative")),
        },
        _ => return Err(err::syntax()),
    };
    Ok((n, limit))
}

/// A cardinality under a LIMIT (0: no limit).
pub fn limited(len: usize, limit: usize) -> Frame {
    Frame::Integer(if limit == 0 { len } else { len.min(limit) } as i64)
}

/// A random index below `n` (n > 0).
pub fn pick(n: usize) -> usize {
    (crate::db::random_u64() % n as u64) as usize
}

/// `k` distinct random indexes below `n` (k ≤ n), in random order.
pub fn pick_distinct(n: usize, k: usize) -> Vec<usize> {
    if k >= n {
        // All of them: in their order, as Redis returns a whole set.
        return (0..n).collect();
    }
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = i + pick(n - i);
        idx.swap(i, j);
    }
    idx.truncate(k.min(n));
    idx
}

/// HRANDFIELD / SRANDMEMBER / ZRANDMEMBER with a count: `count` ≥ 0 picks distinct items,
/// a negative count picks |count| items that may repeat.
pub fn random_picks(n: usize, count: i64) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    if count >= 0 {
        pick_distinct(n, count as usize)
    } else {
        (0..count.unsigned_abs()).map(|_| pick(n)).collect()
    }
}

/// The `count` argument of HRANDFIELD/SRANDMEMBER/ZRANDMEMBER (Redis bounds it so the reply
/// cannot be absurd).
pub fn rand_count(arg: &[u8]) -> Result<i64, Reply> {
    let c = parse_i64(arg).ok_or_else(err::not_int)?;
    if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&c) {
        return Err(Frame::err("ERR value is out of range"));
    }
    Ok(c)
}

/// A positive `count` argument (LPOP, SPOP, ZPOPMIN …).
pub fn positive_count(arg: &[u8]) -> Result<usize, Reply> {
    match parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => Err(Frame::err("ERR value is out of range, must be positive")),
    }
}

/// A blocking command's timeout in seconds (BLPOP …): a non-negative float, 0 = forever.
pub fn timeout_arg(arg: &[u8]) -> Result<Option<std::time::Duration>, Reply> {
    let t = super::parse_f64(arg)
        .filter(|t| t.is_finite())
        .ok_or_else(|| Frame::err("ERR timeout is not a float or out of range"))?;
    if t < 0.0 {
        return Err(Frame::err("ERR timeout is negative"));
    }
    Ok((t > 0.0).then(|| std::time::Duration::from_secs_f64(t)))
}

/// While a blocking command waits, a key of another type is just "nothing to pop yet" (as in
/// Redis, which checks the type only when the command starts): WRONGTYPE after the first
/// attempt becomes `None`.
pub fn ignore_wrongtype_after_first<T>(
    first: bool,
    r: Result<Option<T>, Reply>,
) -> Result<Option<T>, Reply> {
    match r {
        Err(Frame::Error(e)) if !first && e.starts_with("WRONGTYPE") => Ok(None),
        other => other,
    }
}

/// The waiting of a blocking command (BLPOP, BZPOPMIN …) between its attempts.
///
/// Blocked clients are served first come, first served, as in Redis: each gets a ticket when
/// it first waits, and after a push wakes them, a client makes its next attempt only once
/// every client with an older ticket has made its attempt for that push (or left). So of
/// four clients blocked on one key, the first pops first. (The order holds among the clients
/// of one server; across servers they race.)
pub struct Blocker {
    deadline: Option<tokio::time::Instant>,
    /// 0 until the first wait; then this client's place in the queue (and it is counted in
    /// INFO's `blocked_clients` until dropped).
    ticket: AtomicU64,
    /// The push round this client last woke up for.
    round: AtomicU64,
}

/// CLIENT UNBLOCK's handle on one connection's blocking command (set as a task-local for
/// the command's duration).
#[derive(Default)]
pub struct Unblock {
    notify: tokio::sync::Notify,
    /// Set while the command waits (CLIENT UNBLOCK answers 0 otherwise).
    blocked: std::sync::atomic::AtomicBool,
    /// Whether the unblocked command answers `-UNBLOCKED` instead of its timeout reply.
    error: std::sync::atomic::AtomicBool,
}

impl Unblock {
    /// Wake the command as if it timed out (or with `-UNBLOCKED` when `error`); false if it
    /// is not blocked.
    pub fn unblock(&self, error: bool) -> bool {
        if !self.blocked.load(Ordering::Acquire) {
            return false;
        }
        self.error.store(error, Ordering::Release);
        self.notify.notify_one();
        true
    }

    /// Whether the command was unblocked with ERROR.
    pub fn wants_error(&self) -> bool {
        self.error.load(Ordering::Acquire)
    }
}

tokio::task_local! {
    /// The running blocking command's [`Unblock`].
    pub static UNBLOCK: std::sync::Arc<Unblock>;
}

/// Pushes so far on this server (see [`notify_pushed`]).
static PUSH_ROUND: AtomicU64 = AtomicU64::new(0);
static NEXT_TICKET: AtomicU64 = AtomicU64::new(1);
/// Blocked clients by ticket → the push round of their latest attempt.
static QUEUE: std::sync::Mutex<std::collections::BTreeMap<u64, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
/// Signalled whenever [`QUEUE`] changes.
static QUEUE_CHANGED: std::sync::LazyLock<tokio::sync::Notify> =
    std::sync::LazyLock::new(tokio::sync::Notify::new);
/// Longest a client waits for older clients' attempts (a safety net: they always make one).
const TURN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

/// Wake the blocked clients of this server: a list or sorted set got entries.
pub fn notify_pushed(dbs: &crate::db::Dbs) {
    PUSH_ROUND.fetch_add(1, Ordering::AcqRel);
    dbs.pushed.notify_waiters();
}

/// The number of pushes so far: compare it before and after a command to know whether to
/// [`settle`].
pub fn push_round() -> u64 {
    PUSH_ROUND.load(Ordering::Acquire)
}

/// After a command that pushed (one not blocked itself): wait until every client blocked on
/// this server has made its attempt for the newest push, so this client's next command sees
/// what they popped, as in Redis, which serves blocked clients before the next command. At
/// most [`TURN_TIMEOUT`]; at once when nobody is blocked.
pub async fn settle() {
    wait_for_queue(|q| {
        let round = PUSH_ROUND.load(Ordering::Acquire);
        q.values().all(|r| *r >= round)
    })
    .await;
}

/// Wait until `ready` holds for the blocked-client queue, or [`TURN_TIMEOUT`] has passed.
async fn wait_for_queue(ready: impl Fn(&std::collections::BTreeMap<u64, u64>) -> bool) {
    let deadline = tokio::time::Instant::now() + TURN_TIMEOUT;
    loop {
        let changed = QUEUE_CHANGED.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if ready(&queue()) || tokio::time::timeout_at(deadline, changed).await.is_err() {
            return;
        }
    }
}

fn queue() -> std::sync::MutexGuard<'static, std::collections::BTreeMap<u64, u64>> {
    QUEUE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Blocker {
    fn drop(&mut self) {
        let ticket = *self.ticket.get_mut();
        if ticket != 0 {
            queue().remove(&ticket);
            QUEUE_CHANGED.notify_waiters();
            crate::BLOCKED_CLIENTS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Blocker {
    pub fn new(timeout: Option<std::time::Duration>) -> Self {
        Blocker {
            deadline: timeout.map(|t| tokio::time::Instant::now() + t),
            ticket: AtomicU64::new(0),
            round: AtomicU64::new(0),
        }
    }

    /// After an attempt that found nothing: wait for a push on this server (`pushed`, taken
    /// before that attempt) or 50 ms, as a push on another server is only seen by polling;
    /// then for this client's turn. False once the timeout has passed.
    pub async fn wait(&self, pushed: tokio::sync::futures::Notified<'_>) -> bool {
        let mut ticket = self.ticket.load(Ordering::Relaxed);
        if ticket == 0 {
            ticket = NEXT_TICKET.fetch_add(1, Ordering::Relaxed);
            self.ticket.store(ticket, Ordering::Relaxed);
            crate::BLOCKED_CLIENTS.fetch_add(1, Ordering::Relaxed);
            queue().insert(ticket, PUSH_ROUND.load(Ordering::Acquire));
        } else {
            queue().insert(ticket, self.round.load(Ordering::Relaxed));
        }
        QUEUE_CHANGED.notify_waiters();
        let now = tokio::time::Instant::now();
        let tick = now + std::time::Duration::from_millis(50);
        let wake = match self.deadline {
            Some(d) if d <= now => return false,
            Some(d) => d.min(tick),
            None => tick,
        };
        let unblock = UNBLOCK.try_with(|u| u.clone()).ok();
        if let Some(u) = &unblock {
            u.blocked.store(true, Ordering::Release);
        }
        let unblocked = async {
            match &unblock {
                Some(u) => u.notify.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = pushed => {}
            _ = tokio::time::sleep_until(wake) => {}
            _ = unblocked => return false,
        }
        let round = PUSH_ROUND.load(Ordering::Acquire);
        self.round.store(round, Ordering::Relaxed);
        wait_for_queue(|q| q.range(..ticket).all(|(_, r)| *r >= round)).await;
        true
    }
}
