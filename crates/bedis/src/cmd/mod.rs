//! Commands: parse the arguments, apply them to the data, encode the reply. One module per
//! command family (as Redis's `t_string.c`, `db.c`, `server.c`); [`dispatch`] is the table.
//! Unknown commands and wrong arities get Redis's own error texts.

mod bits;
mod coll;
mod combine;
mod hashes;
pub mod keys;
mod lists;
mod server;
mod sets;
mod sort;
mod strings;
mod zsets;

use std::collections::BTreeSet;

use common::HybridTime;

use crate::db::{Access, Dbs};
use crate::frame::Frame;
pub use combine::Combiner;

pub use coll::{push_round, settle, Unblock, UNBLOCK};

/// Per-connection state.
pub struct Session {
    pub id: u64,
    pub db: usize,
    /// RESP protocol version (2 or 3).
    pub proto: u8,
    pub name: Option<Vec<u8>>,
    pub lib_name: Option<Vec<u8>>,
    pub lib_ver: Option<Vec<u8>>,
    pub addr: String,
    pub quit: bool,
    /// Commands queued since MULTI (None: not in MULTI).
    pub multi: Option<Vec<Vec<Vec<u8>>>>,
    /// A command failed to queue: EXEC will abort.
    pub multi_dirty: bool,
    /// WATCHed keys: database, key, the tablet's time when watched, and the key's expiry
    /// then (a key that expires while watched counts as changed, as in Redis).
    pub watched: Vec<(usize, Vec<u8>, HybridTime, Option<u64>)>,
    /// Where pub/sub messages for this connection go (None: a connection-less session).
    pub inbox: Option<crate::pubsub::Inbox>,
    pub channels: BTreeSet<Vec<u8>>,
    pub patterns: BTreeSet<Vec<u8>>,
    /// CLIENT REPLY: which replies are sent.
    pub replies: ReplyMode,
    /// Whether the client may run commands: true unless `requirepass` was set when it
    /// connected and it has not sent the right password yet (AUTH, HELLO ... AUTH). See
    /// [`password_required`].
    pub authenticated: bool,
}

/// CLIENT REPLY ON | OFF | SKIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Drop the reply of the next command only.
    SkipNext,
    /// Drop the reply of this command (the one after CLIENT REPLY SKIP).
    Skip,
}

impl Session {
    pub fn new(id: u64, addr: String, inbox: Option<crate::pubsub::Inbox>) -> Session {
        Session {
            id,
            db: 0,
            proto: 2,
            name: None,
            lib_name: None,
            lib_ver: None,
            addr,
            quit: false,
            multi: None,
            multi_dirty: false,
            watched: Vec::new(),
            inbox,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            replies: ReplyMode::On,
            authenticated: true,
        }
    }

    /// A connection-less session for running a single-key command on behalf of a client
    /// (pipelined waves, combined batches): only the database and protocol matter there.
    pub fn local(db: usize, proto: u8) -> Session {
        let mut s = Session::new(0, String::new(), None);
        s.db = db;
        s.proto = proto;
        s
    }

    /// Whether to send the reply of the command just run (CLIENT REPLY).
    pub fn take_reply(&mut self) -> bool {
        match self.replies {
            ReplyMode::On => true,
            ReplyMode::Off => false,
            ReplyMode::SkipNext => {
                self.replies = ReplyMode::Skip;
                false
            }
            ReplyMode::Skip => {
                self.replies = ReplyMode::On;
                false
            }
        }
    }

    /// Subscribed to anything (RESP2 then only takes the pub/sub commands).
    pub fn subscribed(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty()
    }
}

/// What a command returns.
pub type Reply = Frame;

/// Redis's errors.
pub mod err {
    use crate::frame::Frame;

    pub fn syntax() -> Frame {
        Frame::err("ERR syntax error")
    }
    pub fn not_int() -> Frame {
        Frame::err("ERR value is not an integer or out of range")
    }
    pub fn not_float() -> Frame {
        Frame::err("ERR value is not a valid float")
    }
    pub fn wrongtype() -> Frame {
        Frame::err("WRONGTYPE Operation against a key holding the wrong kind of value")
    }
    pub fn arity(cmd: &str) -> Frame {
        Frame::err(format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.to_ascii_lowercase()
        ))
    }
    pub fn backend(e: client::ClientError) -> Frame {
        Frame::err(format!("ERR {e}"))
    }
}

/// Parse a Redis integer argument strictly (no spaces, no '+', fits in i64).
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty()
        || s.starts_with('+')
        || s.trim() != s
        || (s.len() > 1 && s.starts_with('0'))
        || s.starts_with("-0")
    {
        return None;
    }
    s.parse().ok()
}

/// Parse a Redis float argument (accepts "inf", rejects NaN).
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.trim() != s {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => s.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// Microseconds since the epoch.
pub fn now_us() -> u64 {
    common::hlc::wall_micros()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Arity check: `n` > 0 means exactly n arguments (command included), `n` < 0 at least -n.
fn arity_ok(n: i32, got: usize) -> bool {
    if n >= 0 {
        got == n as usize
    } else {
        got >= (-n) as usize
    }
}

/// Every command: name and arity (Redis's convention: n = exactly n arguments with the name,
/// -n = at least n).
pub const COMMANDS: &[(&str, i32)] = &[
    ("append", 3),
    ("auth", -2),
    ("bgsave", -1),
    ("bitcount", -2),
    ("bitop", -4),
    ("bitpos", -3),
    ("blmove", 6),
    ("blmpop", -5),
    ("blpop", -3),
    ("brpop", -3),
    ("brpoplpush", 4),
    ("bzmpop", -5),
    ("bzpopmax", -3),
    ("bzpopmin", -3),
    ("client", -2),
    ("command", -1),
    ("config", -2),
    ("copy", -3),
    ("dbsize", 1),
    ("decr", 2),
    ("decrby", 3),
    ("del", -2),
    ("discard", 1),
    ("dump", 2),
    ("echo", 2),
    ("exec", 1),
    ("exists", -2),
    ("expire", -3),
    ("expireat", -3),
    ("expiretime", 2),
    ("flushall", -1),
    ("flushdb", -1),
    ("function", -2),
    ("get", 2),
    ("getbit", 3),
    ("getdel", 2),
    ("getex", -2),
    ("getrange", 4),
    ("getset", 3),
    ("hdel", -3),
    ("hello", -1),
    ("hexists", 3),
    ("hget", 3),
    ("hgetall", 2),
    ("hincrby", 4),
    ("hincrbyfloat", 4),
    ("hkeys", 2),
    ("hlen", 2),
    ("hmget", -3),
    ("hmset", -4),
    ("hrandfield", -2),
    ("hscan", -3),
    ("hset", -4),
    ("hsetnx", 4),
    ("hstrlen", 3),
    ("hvals", 2),
    ("incr", 2),
    ("incrby", 3),
    ("incrbyfloat", 3),
    ("info", -1),
    ("keys", 2),
    ("lindex", 3),
    ("linsert", 5),
    ("lastsave", 1),
    ("lcs", -3),
    ("llen", 2),
    ("lmpop", -4),
    ("lmove", 5),
    ("lpop", -2),
    ("lpos", -3),
    ("lpush", -3),
    ("lpushx", -3),
    ("lrange", 4),
    ("lrem", 4),
    ("lset", 4),
    ("ltrim", 4),
    ("memory", -2),
    ("mget", -2),
    ("move", 3),
    ("mset", -3),
    ("msetnx", -3),
    ("multi", 1),
    ("object", -2),
    ("persist", 2),
    ("pexpire", -3),
    ("pexpireat", -3),
    ("pexpiretime", 2),
    ("ping", -1),
    ("psetex", 4),
    ("psubscribe", -2),
    ("pttl", 2),
    ("publish", 3),
    ("pubsub", -2),
    ("punsubscribe", -1),
    ("quit", -1),
    ("randomkey", 1),
    ("rename", 3),
    ("restore", -4),
    ("renamenx", 3),
    ("reset", 1),
    ("rpop", -2),
    ("rpoplpush", 3),
    ("rpush", -3),
    ("rpushx", -3),
    ("sadd", -3),
    ("save", 1),
    ("scan", -2),
    ("scard", 2),
    ("sdiff", -2),
    ("sdiffstore", -3),
    ("select", 2),
    ("set", -3),
    ("setbit", 4),
    ("shutdown", -1),
    ("setex", 4),
    ("setnx", 3),
    ("setrange", 4),
    ("sinter", -2),
    ("sintercard", -3),
    ("sinterstore", -3),
    ("sismember", 3),
    ("smembers", 2),
    ("smismember", -3),
    ("smove", 4),
    ("sort", -2),
    ("sort_ro", -2),
    ("spop", -2),
    ("srandmember", -2),
    ("srem", -3),
    ("sscan", -3),
    ("strlen", 2),
    ("subscribe", -2),
    ("substr", 4),
    ("sunion", -2),
    ("sunionstore", -3),
    ("time", 1),
    ("touch", -2),
    ("ttl", 2),
    ("type", 2),
    ("unlink", -2),
    ("unsubscribe", -1),
    ("unwatch", 1),
    ("watch", -2),
    ("zadd", -4),
    ("zcard", 2),
    ("zcount", 4),
    ("zdiff", -3),
    ("zdiffstore", -4),
    ("zincrby", 4),
    ("zinter", -3),
    ("zintercard", -3),
    ("zinterstore", -4),
    ("zlexcount", 4),
    ("zmpop", -4),
    ("zmscore", -3),
    ("zpopmax", -2),
    ("zpopmin", -2),
    ("zrandmember", -2),
    ("zrange", -4),
    ("zrangebylex", -4),
    ("zrangebyscore", -4),
    ("zrangestore", -5),
    ("zrank", 3),
    ("zrem", -3),
    ("zremrangebylex", 4),
    ("zremrangebyrank", 4),
    ("zremrangebyscore", 4),
    ("zrevrange", -4),
    ("zrevrangebylex", -4),
    ("zrevrangebyscore", -4),
    ("zrevrank", 3),
    ("zscan", -3),
    ("zscore", 3),
    ("zunion", -3),
    ("zunionstore", -4),
];

/// Commands that read or write only the key in their first argument and leave the session
/// alone: consecutive ones on distinct keys may run concurrently (see `connection`).
const SINGLE_KEY: &[&str] = &[
    "append",
    "hdel",
    "hexists",
    "hget",
    "hgetall",
    "hincrby",
    "hincrbyfloat",
    "hkeys",
    "hlen",
    "hmget",
    "hmset",
    "hset",
    "hsetnx",
    "hstrlen",
    "hvals",
    "lindex",
    "llen",
    "lpush",
    "lrange",
    "rpush",
    "sadd",
    "scard",
    "sismember",
    "smembers",
    "srem",
    "zadd",
    "zcard",
    "zincrby",
    "zrem",
    "zscore",
    "decr",
    "decrby",
    "expire",
    "expireat",
    "expiretime",
    "get",
    "getdel",
    "getex",
    "getrange",
    "getset",
    "incr",
    "incrby",
    "incrbyfloat",
    "persist",
    "pexpire",
    "pexpireat",
    "pexpiretime",
    "psetex",
    "pttl",
    "set",
    "setex",
    "setnx",
    "setrange",
    "strlen",
    "substr",
    "ttl",
    "type",
];

/// Whether a new connection must authenticate first (`requirepass` is set).
pub fn password_required() -> bool {
    server::required_password().is_some()
}

/// Whether `args` is a command that may wait for data (BLPOP, BZPOPMIN, ...).
pub fn is_blocking(args: &[Vec<u8>]) -> bool {
    matches!(
        command_name(args),
        "blpop" | "brpop" | "blmove" | "brpoplpush" | "blmpop" | "bzpopmin" | "bzpopmax" | "bzmpop"
    )
}

/// A command of [`COMMANDS`], found once per request.
struct Known {
    name: &'static str,
    arity: i32,
    single_key: bool,
    /// Combined per key when concurrent (see `combine.rs`).
    combined: bool,
}

/// [`COMMANDS`] by name: one hash lookup per request instead of scans of the lists.
static KNOWN: std::sync::LazyLock<
    std::collections::HashMap<&'static str, Known, foldhash::fast::FixedState>,
> = std::sync::LazyLock::new(|| {
    COMMANDS
        .iter()
        .map(|&(name, arity)| {
            let known = Known {
                name,
                arity,
                single_key: SINGLE_KEY.contains(&name),
                combined: combine::COMBINED.contains(&name),
            };
            (name, known)
        })
        .collect()
});

/// The entry of the command named `first` (any case).
fn lookup(first: &[u8]) -> Option<&'static Known> {
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..first.len())?;
    for (l, c) in lower.iter_mut().zip(first) {
        *l = c.to_ascii_lowercase();
    }
    KNOWN.get(std::str::from_utf8(lower).ok()?)
}

/// The key of `args` if it is a single-key command (see [`SINGLE_KEY`]).
pub fn single_key(args: &[Vec<u8>]) -> Option<&[u8]> {
    let known = lookup(args.first()?)?;
    let key = args.get(1)?;
    known.single_key.then_some(key.as_slice())
}

/// Longest key a wave's plain SETs take together (see [`plain_sets`]); longer ones run alone,
/// so a key the store refuses fails only its own SET.
const PLAIN_SET_MAX_KEY: usize = 1024;

/// Whether `args` is a plain `SET key value` (no options) that [`plain_sets`] may run with
/// others: its reply never depends on what the key held.
pub fn is_plain_set(args: &[Vec<u8>]) -> bool {
    args.len() == 3 && args[0].eq_ignore_ascii_case(b"set") && args[1].len() <= PLAIN_SET_MAX_KEY
}

/// Whether a wave's plain SETs may skip [`dispatch`]: nothing about the session or the
/// server's settings makes them do more than store their value.
pub fn plain_sets_allowed(s: &Session) -> bool {
    s.authenticated && !s.subscribed() && s.multi.is_none() && !notify_new_keys()
}

/// Run plain SETs (see [`is_plain_set`]) of one connection's wave on database `db`, the keys
/// of each tablet in one call; replies in order. Each SET means what it means alone: stored
/// unconditionally, durable and replicated before its reply.
pub async fn plain_sets(dbs: &Dbs, db: usize, sets: &[Vec<Vec<u8>>]) -> Vec<Reply> {
    let items: Vec<(&[u8], &[u8])> = sets
        .iter()
        .map(|a| (a[1].as_slice(), a[2].as_slice()))
        .collect();
    let results = dbs.put_strings(db, &items).await;
    let touched: Vec<(usize, Vec<u8>)> =
        if server::NOTIFY_KEYSPACE.load(std::sync::atomic::Ordering::Relaxed) {
            items
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|((k, _), _)| (db, k.to_vec()))
                .collect()
        } else {
            Vec::new()
        };
    notify(dbs, "set", &touched);
    results
        .into_iter()
        .map(|r| match r {
            Ok(()) => Frame::ok(),
            Err(e) => err::backend(e),
        })
        .collect()
}

/// The name of the command in `args` as metrics label it: its entry in [`COMMANDS`], or
/// `unknown`.
pub fn command_name(args: &[Vec<u8>]) -> &'static str {
    args.first()
        .and_then(|first| lookup(first))
        .map_or("unknown", |k| k.name)
}

/// Commands that touch several keys and must do so atomically: outside MULTI they run in
/// a transaction of their own.
const ATOMIC: &[&str] = &[
    "bitop",
    "copy",
    "lmove",
    "move",
    "mset",
    "msetnx",
    "rename",
    "renamenx",
    "rpoplpush",
    "sdiffstore",
    "sinterstore",
    "smove",
    "sort",
    "sort_ro",
    "sunionstore",
    "zdiffstore",
    "zinterstore",
    "zrangestore",
    "zunionstore",
];

/// Commands that read several keys: outside MULTI they read one snapshot.
const SNAPSHOT: &[&str] = &[
    "lcs",
    "sdiff",
    "sinter",
    "sintercard",
    "sunion",
    "zdiff",
    "zinter",
    "zintercard",
    "zunion",
];

/// Commands a RESP2 connection may send while subscribed.
const SUBSCRIBED_OK: &[&str] = &[
    "subscribe",
    "psubscribe",
    "unsubscribe",
    "punsubscribe",
    "ping",
    "quit",
    "reset",
];

/// Commands that run at once even inside MULTI.
const NOT_QUEUED: &[&str] = &["exec", "discard", "multi", "watch", "quit", "reset"];

/// Run one command.
pub async fn dispatch(s: &mut Session, dbs: &Dbs, args: Vec<Vec<u8>>) -> Reply {
    let Some(first) = args.first() else {
        return Frame::err("ERR empty command");
    };
    let Some(&Known {
        name,
        arity,
        combined,
        ..
    }) = lookup(first)
    else {
        let rest: String = args[1..]
            .iter()
            .take(20)
            .map(|a| format!("'{}' ", lossy(a)))
            .collect();
        s.multi_dirty |= s.multi.is_some();
        return Frame::err(format!(
            "ERR unknown command '{}', with args beginning with: {rest}",
            lossy(first)
        ));
    };
    if !arity_ok(arity, args.len()) {
        s.multi_dirty |= s.multi.is_some();
        return err::arity(name);
    }
    if !s.authenticated && !matches!(name, "auth" | "hello" | "quit" | "reset") {
        s.multi_dirty |= s.multi.is_some();
        return Frame::err("NOAUTH Authentication required.");
    }
    if s.proto < 3 && s.subscribed() && !SUBSCRIBED_OK.contains(&name) {
        return Frame::err(format!("ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"));
    }
    if let Some(queue) = &mut s.multi {
        if ["save", "shutdown", "bgsave"].contains(&name) {
            s.multi_dirty = true;
            return Frame::err("ERR Command not allowed inside a transaction");
        }
        if !NOT_QUEUED.contains(&name) {
            queue.push(args);
            return Frame::Simple("QUEUED".into());
        }
    }
    let a = &args[1..];
    match name {
        "multi" => {
            if s.multi.is_some() {
                return Frame::err("ERR MULTI calls can not be nested");
            }
            s.multi = Some(Vec::new());
            s.multi_dirty = false;
            Frame::ok()
        }
        "discard" => match s.multi.take() {
            None => Frame::err("ERR DISCARD without MULTI"),
            Some(_) => {
                s.watched.clear();
                Frame::ok()
            }
        },
        "exec" => exec(s, dbs).await,
        "watch" => {
            if s.multi.is_some() {
                return Frame::err("ERR WATCH inside MULTI is not allowed");
            }
            let mut acc = Access::direct(dbs);
            for k in a {
                match acc.watch_point(s.db, k).await {
                    Ok((ht, expiry)) => s.watched.push((s.db, k.clone(), ht, expiry)),
                    Err(e) => return err::backend(e),
                }
            }
            Frame::ok()
        }
        "unwatch" => {
            s.watched.clear();
            Frame::ok()
        }
        "blmove" | "brpoplpush" => blocking_move(s, dbs, name, a).await,
        "del" | "unlink" | "exists" | "touch" if a.len() > 1 => {
            atomic(s, dbs, name, a, name == "exists" || name == "touch").await
        }
        n if ATOMIC.contains(&n) => atomic(s, dbs, n, a, false).await,
        n if SNAPSHOT.contains(&n) => atomic(s, dbs, n, a, true).await,
        n if combined => combine::run_combined(s, dbs, n, a).await,
        n => combine::run_direct(s, dbs, n, a).await,
    }
}

/// Run a command through `acc` (directly, or inside a transaction).
async fn run(s: &mut Session, acc: &mut Access<'_>, name: &str, a: &[Vec<u8>]) -> Reply {
    match name {
        // Every write is durable before its reply: there is nothing to save.
        "save" => Frame::ok(),
        "bgsave" => Frame::Simple("Background saving started".into()),
        "lastsave" => Frame::Integer((now_us() / 1_000_000) as i64),
        "shutdown" => Frame::err(
            "ERR SHUTDOWN is not available through BEDIS: stop the dbserver (aisql, SIGTERM)",
        ),
        "client" if a[0].eq_ignore_ascii_case(b"list") || a[0].eq_ignore_ascii_case(b"kill") => {
            clients(s, acc.dbs, a)
        }
        "client" if a[0].eq_ignore_ascii_case(b"unblock") => client_unblock(acc.dbs, a),
        "ping" | "echo" | "quit" | "select" | "hello" | "auth" | "client" | "command"
        | "config" | "info" | "time" | "reset" | "function" => {
            if name == "reset" {
                s.multi = None;
                s.watched.clear();
                unsubscribe(s, acc.dbs, false, &[]);
                unsubscribe(s, acc.dbs, true, &[]);
            }
            if name == "ping" && s.proto < 3 && s.subscribed() {
                return Frame::Array(vec![
                    Frame::bulk("pong"),
                    Frame::bulk(a.first().cloned().unwrap_or_default()),
                ]);
            }
            server::run(s, name, a).await
        }
        "subscribe" | "psubscribe" => {
            let pattern = name == "psubscribe";
            let mut replies = Vec::new();
            for ch in a {
                if let Some(inbox) = &s.inbox {
                    acc.dbs.pubsub.subscribe(pattern, ch, s.id, inbox);
                }
                if pattern {
                    s.patterns.insert(ch.clone());
                } else {
                    s.channels.insert(ch.clone());
                }
                replies.push(Frame::Push(vec![
                    Frame::bulk(name),
                    Frame::bulk(ch.clone()),
                    Frame::Integer((s.channels.len() + s.patterns.len()) as i64),
                ]));
            }
            Frame::Seq(replies)
        }
        "unsubscribe" | "punsubscribe" => {
            Frame::Seq(unsubscribe(s, acc.dbs, name == "punsubscribe", a))
        }
        "publish" => Frame::Integer(acc.dbs.pubsub.publish(&a[0], &a[1])),
        "pubsub" => {
            let sub = lossy(&a[0]).to_ascii_lowercase();
            match (sub.as_str(), a.len()) {
                ("channels", 1 | 2) => Frame::Array(
                    acc.dbs
                        .pubsub
                        .channels(a.get(1).map(|p| p.as_slice()))
                        .into_iter()
                        .map(Frame::bulk)
                        .collect(),
                ),
                ("numsub", _) => Frame::Array(
                    a[1..]
                        .iter()
                        .flat_map(|c| {
                            [
                                Frame::bulk(c.clone()),
                                Frame::Integer(acc.dbs.pubsub.numsub(c)),
                            ]
                        })
                        .collect(),
                ),
                ("numpat", 1) => Frame::Integer(acc.dbs.pubsub.numpat()),
                ("shardchannels", 1 | 2) => Frame::Array(Vec::new()),
                ("shardnumsub", _) => Frame::Array(
                    a[1..]
                        .iter()
                        .flat_map(|c| [Frame::bulk(c.clone()), Frame::Integer(0)])
                        .collect(),
                ),
                _ => Frame::err(format!(
                    "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                    lossy(&a[0])
                )),
            }
        }
        "dbsize" | "flushdb" | "flushall" | "del" | "unlink" | "exists" | "touch" | "type"
        | "keys" | "scan" | "randomkey" | "expire" | "pexpire" | "expireat" | "pexpireat"
        | "ttl" | "pttl" | "expiretime" | "pexpiretime" | "persist" | "rename" | "renamenx"
        | "copy" | "object" | "memory" | "move" | "dump" | "restore" => {
            keys::run(s, acc, name, a).await
        }
        "setbit" | "getbit" | "bitcount" | "bitpos" | "bitop" | "lcs" => {
            match bits::run(s.db, acc, name, a).await {
                Ok(r) | Err(r) => r,
            }
        }
        n if n.starts_with('h') => hashes::run(s, acc, name, a).await,
        n if n.starts_with('z') || n.starts_with("bz") => zsets::run(s, acc, name, a).await,
        "lpush" | "rpush" | "lpushx" | "rpushx" | "lpop" | "rpop" | "llen" | "lrange"
        | "lindex" | "lset" | "linsert" | "lrem" | "ltrim" | "lpos" | "lmove" | "rpoplpush"
        | "blpop" | "brpop" | "lmpop" | "blmpop" => lists::run(s, acc, name, a).await,
        "sort" | "sort_ro" => match sort::run(s.db, acc, name, a).await {
            Ok(r) | Err(r) => r,
        },
        "sadd" | "srem" | "smembers" | "sismember" | "smismember" | "scard" | "spop"
        | "srandmember" | "smove" | "sinter" | "sunion" | "sdiff" | "sinterstore"
        | "sunionstore" | "sdiffstore" | "sintercard" | "sscan" => sets::run(s, acc, name, a).await,
        // Inside a transaction the blocking moves do not block: BLMOVE as LMOVE (nil when
        // empty), BRPOPLPUSH as RPOPLPUSH.
        "blmove" => lists::run(s, acc, name, a).await,
        "brpoplpush" => lists::run(s, acc, "rpoplpush", &a[..2]).await,
        "multi" | "exec" | "discard" | "watch" | "unwatch" => {
            Frame::err(format!("ERR {name} is not allowed here"))
        }
        _ => strings::run(s, acc, name, a).await,
    }
}

/// The keyspace-notification class (as in `notify-keyspace-events`) and event name of a
/// command that changed keys.
fn event_of(name: &str) -> (char, &str) {
    let class = match name {
        "del" | "unlink" | "expire" | "pexpire" | "expireat" | "pexpireat" | "persist"
        | "rename" | "renamenx" | "copy" | "move" | "restore" => 'g',
        n if n.starts_with('h') => 'h',
        n if n.starts_with('z') || n.starts_with("bz") => 'z',
        "lpush" | "rpush" | "lpushx" | "rpushx" | "lpop" | "rpop" | "blpop" | "brpop" | "lset"
        | "linsert" | "lrem" | "ltrim" | "lmove" | "rpoplpush" | "blmove" | "brpoplpush"
        | "lmpop" | "blmpop" => 'l',
        "sadd" | "srem" | "spop" | "smove" | "sinterstore" | "sunionstore" | "sdiffstore" => 's',
        "expired" => 'x',
        "new" => 'n',
        _ => '$',
    };
    let event = match name {
        "setnx" | "setex" | "psetex" | "getset" | "mset" | "msetnx" | "bitop" => "set",
        "unlink" | "getdel" => "del",
        "pexpire" | "expireat" | "pexpireat" => "expire",
        "incr" | "incrby" => "incrby",
        "decr" | "decrby" => "decrby",
        "hmset" | "hsetnx" => "hset",
        "lpushx" => "lpush",
        "rpushx" => "rpush",
        "blpop" => "lpop",
        "brpop" => "rpop",
        "zincrby" => "zincr",
        "bzpopmin" => "zpopmin",
        "bzpopmax" => "zpopmax",
        "renamenx" => "rename",
        "sort" => "sortstore",
        n => n,
    };
    (class, event)
}

/// Publish keyspace notifications for the keys a command changed, if
/// `notify-keyspace-events` asks for them (its K, E and class flags; A = every class).
fn notify(dbs: &Dbs, name: &str, touched: &[(usize, Vec<u8>)]) {
    if touched.is_empty() || !server::NOTIFY_KEYSPACE.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let flags = server::config_value("notify-keyspace-events");
    if flags.is_empty() {
        return;
    }
    if flags.contains('x') || flags.contains('A') {
        let mut expiring = dbs.expiring.lock().unwrap_or_else(|e| e.into_inner());
        for t in touched {
            if expiring.len() < MAX_EXPIRY_WATCH {
                expiring.entry(t.clone()).or_insert(None);
            }
        }
    }
    let (class, event) = event_of(name);
    let all = flags.contains('A') && "g$lshzxet".contains(class);
    if !(all || flags.contains(class)) {
        return;
    }
    let mut seen: Vec<&(usize, Vec<u8>)> = Vec::new();
    for t in touched {
        if seen.contains(&t) {
            continue;
        }
        seen.push(t);
        let (db, key) = t;
        if flags.contains('K') {
            let mut ch = format!("__keyspace@{db}__:").into_bytes();
            ch.extend_from_slice(key);
            dbs.pubsub.publish(&ch, event.as_bytes());
        }
        if flags.contains('E') {
            let ch = format!("__keyevent@{db}__:{event}");
            dbs.pubsub.publish(ch.as_bytes(), key);
        }
    }
}

/// Whether `new` keyspace events are on (then a plain SET first reads whether its key exists).
pub fn notify_new_keys() -> bool {
    server::NOTIFY_KEYSPACE.load(std::sync::atomic::Ordering::Relaxed)
        && server::config_value("notify-keyspace-events").contains('n')
}

/// Most keys watched for `expired` events at once.
const MAX_EXPIRY_WATCH: usize = 100_000;

/// Publish `expired` keyspace events (class `x`) while they are enabled: every 50 ms, look
/// at the keys changed since they were (`Dbs::expiring`). A key seen with an expiry and then
/// found gone after that time expired; a key without expiry is forgotten, and so is one
/// deleted by a command (DEL and the like publish `del`). Per server and best effort (like
/// Redis's own pub/sub): keys written through other dbservers, or before a restart, are not
/// watched. Runs until the server stops.
pub async fn watch_expiries(dbs: std::sync::Arc<Dbs>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tick.tick().await;
        let keys: Vec<(crate::db::DbKey, Option<u64>)> = {
            let e = dbs.expiring.lock().unwrap_or_else(|e| e.into_inner());
            if e.is_empty() {
                continue;
            }
            e.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        for ((db, key), seen) in keys {
            let now = now_us();
            let found = Access::direct(&dbs).get(db, &key).await;
            let next = match (found, seen) {
                (Err(_), _) => continue,
                (Ok(Some(v)), _) => v.expire_at_us.filter(|&at| at > now),
                (Ok(None), Some(at)) if at <= now + 1_000 => {
                    notify(&dbs, "expired", &[(db, key.clone())]);
                    None
                }
                (Ok(None), _) => None,
            };
            let mut e = dbs.expiring.lock().unwrap_or_else(|e| e.into_inner());
            match next {
                Some(at) => {
                    e.insert((db, key), Some(at));
                }
                None => {
                    e.remove(&(db, key));
                }
            }
        }
    }
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: 1 if that client was blocked and is woken.
fn client_unblock(dbs: &Dbs, a: &[Vec<u8>]) -> Frame {
    if a.len() < 2 || a.len() > 3 {
        return err::arity("client|unblock");
    }
    let Some(id) = parse_i64(&a[1]) else {
        return err::not_int();
    };
    let error = match a.get(2).map(|m| m.to_ascii_uppercase()) {
        None => false,
        Some(m) if m == b"TIMEOUT" => false,
        Some(m) if m == b"ERROR" => true,
        Some(_) => return Frame::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let list = dbs.clients.lock().unwrap_or_else(|e| e.into_inner());
    let woken = list
        .get(&(id as u64))
        .and_then(|c| c.unblock.as_ref())
        .is_some_and(|u| u.unblock(error));
    Frame::Integer(woken as i64)
}

/// CLIENT LIST [ID id …] and CLIENT KILL (old form `addr`, or filters `ID`, `ADDR`,
/// `SKIPME`), over this server's connections.
fn clients(s: &Session, dbs: &Dbs, a: &[Vec<u8>]) -> Frame {
    let list = dbs.clients.lock().unwrap_or_else(|e| e.into_inner());
    if a[0].eq_ignore_ascii_case(b"list") {
        let ids: Vec<u64> = match a.get(1) {
            Some(o) if o.eq_ignore_ascii_case(b"id") => a[2..]
                .iter()
                .filter_map(|x| parse_i64(x).map(|v| v as u64))
                .collect(),
            Some(o) if o.eq_ignore_ascii_case(b"type") => Vec::new(),
            Some(_) => return err::syntax(),
            None => Vec::new(),
        };
        let mut out = String::new();
        for (id, c) in list.iter() {
            if !ids.is_empty() && !ids.contains(id) {
                continue;
            }
            out.push_str(&format!(
                "id={id} addr={} laddr= fd=0 name={} age={} idle=0 flags={} db={} sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=client|list user=default redir=-1 resp={}\n",
                c.addr,
                lossy(&c.name),
                c.since.elapsed().as_secs(),
                if c.unblock.is_some() { "b" } else { "N" },
                c.db,
                c.proto
            ));
        }
        return Frame::bulk(out);
    }
    // CLIENT KILL
    if a.len() == 2 {
        let addr = lossy(&a[1]);
        return match list.values().find(|c| c.addr == addr) {
            Some(c) => {
                c.kill.notify_one();
                Frame::ok()
            }
            None => Frame::err("ERR No such client"),
        };
    }
    let (mut id, mut addr, mut skipme) = (None, None, true);
    let mut i = 1;
    while i + 1 < a.len() {
        let v = &a[i + 1];
        match lossy(&a[i]).to_ascii_lowercase().as_str() {
            "id" => match parse_i64(v) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return Frame::err("ERR client-id should be greater than 0"),
            },
            "addr" => addr = Some(lossy(v)),
            "skipme" if v.eq_ignore_ascii_case(b"yes") => skipme = true,
            "skipme" if v.eq_ignore_ascii_case(b"no") => skipme = false,
            "type" | "user" | "laddr" | "maxage" => {}
            _ => return err::syntax(),
        }
        i += 2;
    }
    if i != a.len() {
        return err::syntax();
    }
    let mut n = 0;
    for (cid, c) in list.iter() {
        if id.is_some_and(|x| x != *cid) || addr.as_ref().is_some_and(|x| *x != c.addr) {
            continue;
        }
        if skipme && *cid == s.id {
            continue;
        }
        c.kill.notify_one();
        n += 1;
    }
    Frame::Integer(n)
}

/// (P)UNSUBSCRIBE from `names` (all when empty); one reply per channel or pattern.
fn unsubscribe(s: &mut Session, dbs: &Dbs, pattern: bool, names: &[Vec<u8>]) -> Vec<Frame> {
    let kind = if pattern {
        "punsubscribe"
    } else {
        "unsubscribe"
    };
    let names: Vec<Vec<u8>> = if names.is_empty() {
        let set = if pattern { &s.patterns } else { &s.channels };
        set.iter().cloned().collect()
    } else {
        names.to_vec()
    };
    if names.is_empty() {
        return vec![Frame::Push(vec![
            Frame::bulk(kind),
            Frame::Null,
            Frame::Integer((s.channels.len() + s.patterns.len()) as i64),
        ])];
    }
    names
        .into_iter()
        .map(|n| {
            dbs.pubsub.unsubscribe(pattern, &n, s.id);
            if pattern {
                s.patterns.remove(&n);
            } else {
                s.channels.remove(&n);
            }
            Frame::Push(vec![
                Frame::bulk(kind),
                Frame::bulk(n),
                Frame::Integer((s.channels.len() + s.patterns.len()) as i64),
            ])
        })
        .collect()
}

/// Most attempts of a transaction that keeps conflicting with concurrent writers.
const TXN_ATTEMPTS: u32 = 100;

/// Run one command in a transaction of its own (serializable; `read_only`: a snapshot),
/// retried on conflicts.
async fn atomic(s: &mut Session, dbs: &Dbs, name: &str, a: &[Vec<u8>], read_only: bool) -> Reply {
    let isolation = if read_only {
        client::Isolation::Snapshot
    } else {
        client::Isolation::Serializable
    };
    let mut attempt = 0;
    loop {
        let mut txn = dbs.client().begin(isolation);
        let mut acc = Access::in_txn(dbs, &mut txn);
        let reply = run(s, &mut acc, name, a).await;
        let touched = std::mem::take(&mut acc.touched);
        let created = std::mem::take(&mut acc.created);
        let cleanups = std::mem::take(&mut acc.cleanups);
        if matches!(reply, Frame::Error(_)) || !txn.has_writes() {
            return reply;
        }
        match txn.commit().await {
            Ok(_) => {
                committed(dbs, cleanups).await;
                notify(dbs, "new", &created);
                notify(dbs, name, &touched);
                return reply;
            }
            Err(e) if retry(&e, &mut attempt).await => continue,
            Err(e) => return err::backend(e),
        }
    }
}

/// After a transaction committed: wake blocked clients and start removing the elements
/// of collections it replaced.
async fn committed(dbs: &Dbs, cleanups: Vec<(usize, Vec<u8>, u64)>) {
    coll::notify_pushed(dbs);
    for (db, key, gen) in cleanups {
        if let Err(e) = dbs.cleanup(db, &key, gen).await {
            tracing::warn!(error = %e, "BEDIS element cleanup not started");
        }
    }
}

/// Whether to try a transaction again after `e` (a conflict, and attempts are left);
/// waits a little first.
async fn retry(e: &client::ClientError, attempt: &mut u32) -> bool {
    if e.code() != common::StatusCode::TxnConflict || *attempt >= TXN_ATTEMPTS {
        return false;
    }
    *attempt += 1;
    let ms = (1u64 << (*attempt).min(6)) + crate::db::random_u64() % 5;
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    true
}

/// EXEC: run the queued commands in one serializable transaction, unless a WATCHed key
/// changed (then a null reply and nothing runs).
async fn exec(s: &mut Session, dbs: &Dbs) -> Reply {
    let Some(queue) = s.multi.take() else {
        return Frame::err("ERR EXEC without MULTI");
    };
    let watched = std::mem::take(&mut s.watched);
    if std::mem::take(&mut s.multi_dirty) {
        return Frame::err("EXECABORT Transaction discarded because of previous errors.");
    }
    let mut attempt = 0;
    let start = (s.db, s.proto);
    loop {
        (s.db, s.proto) = start;
        let mut txn = dbs.client().begin(client::Isolation::Serializable);
        let mut acc = Access::in_txn(dbs, &mut txn);
        // Each watched key is read in the transaction (validated at commit), and checked
        // to have no write since WATCH up to now: together, none up to the commit.
        for (db, key, since, expiry) in &watched {
            if expiry.is_some_and(|e| e <= now_us()) {
                return Frame::NullArray;
            }
            if let Err(e) = acc.get(*db, key).await {
                return err::backend(e);
            }
            match acc.unchanged_since(*db, key, *since).await {
                Ok(true) => {}
                Ok(false) => return Frame::NullArray,
                Err(e) => return err::backend(e),
            }
        }
        let mut replies = Vec::with_capacity(queue.len());
        let mut events = Vec::new();
        for args in &queue {
            let name = lossy(&args[0]).to_ascii_lowercase();
            replies.push(run(s, &mut acc, &name, &args[1..]).await);
            events.push((
                name,
                std::mem::take(&mut acc.touched),
                std::mem::take(&mut acc.created),
            ));
        }
        let cleanups = std::mem::take(&mut acc.cleanups);
        if !txn.has_writes() {
            return Frame::Array(replies);
        }
        match txn.commit().await {
            Ok(_) => {
                committed(dbs, cleanups).await;
                for (name, touched, created) in &events {
                    notify(dbs, "new", created);
                    notify(dbs, name, touched);
                }
                return Frame::Array(replies);
            }
            Err(e) if retry(&e, &mut attempt).await => continue,
            Err(e) => return err::backend(e),
        }
    }
}

/// BLMOVE / BRPOPLPUSH: wait until the source has an entry, then move it atomically.
async fn blocking_move(s: &mut Session, dbs: &Dbs, name: &str, a: &[Vec<u8>]) -> Reply {
    let (args, timeout) = if name == "blmove" {
        (a[..4].to_vec(), &a[4])
    } else {
        (
            vec![
                a[0].clone(),
                a[1].clone(),
                b"RIGHT".to_vec(),
                b"LEFT".to_vec(),
            ],
            &a[2],
        )
    };
    let blocker = match coll::timeout_arg(timeout) {
        Ok(t) => coll::Blocker::new(t),
        Err(e) => return e,
    };
    let mut first = true;
    loop {
        let pushed = dbs.pushed.notified();
        let reply = atomic(s, dbs, "lmove", &args, false).await;
        // While waiting, a *source* of another type is "nothing yet" (see coll.rs); a
        // destination of the wrong type is the command's error once there is an entry.
        let wrongtype = matches!(&reply, Frame::Error(e) if e.starts_with("WRONGTYPE"));
        let source_wrong = wrongtype
            && !first
            && Access::direct(dbs)
                .get(s.db, &args[0])
                .await
                .ok()
                .flatten()
                .is_some_and(|v| v.kind != crate::db::Kind::List);
        let nothing = matches!(reply, Frame::Null) || source_wrong;
        if !nothing {
            return reply;
        }
        if !blocker.wait(pushed).await {
            return Frame::Null;
        }
        first = false;
    }
}
