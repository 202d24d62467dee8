//! Commands: parse the arguments, apply them to the data, encode the reply. One module per
//! command family (as Redis's `t_string.c`, `db.c`, `server.c`); [`dispatch`] is the table.
//! Unknown commands and wrong arities get Redis's own error texts.

mod keys;
mod server;
mod strings;

use crate::db::Dbs;
use crate::frame::Frame;

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
    ("client", -2),
    ("command", -1),
    ("config", -2),
    ("copy", -3),
    ("dbsize", 1),
    ("decr", 2),
    ("decrby", 3),
    ("del", -2),
    ("echo", 2),
    ("exists", -2),
    ("expire", -3),
    ("expireat", -3),
    ("expiretime", 2),
    ("flushall", -1),
    ("flushdb", -1),
    ("function", -2),
    ("get", 2),
    ("getdel", 2),
    ("getex", -2),
    ("getrange", 4),
    ("getset", 3),
    ("hello", -1),
    ("incr", 2),
    ("incrby", 3),
    ("incrbyfloat", 3),
    ("info", -1),
    ("keys", 2),
    ("mget", -2),
    ("mset", -3),
    ("msetnx", -3),
    ("persist", 2),
    ("pexpire", -3),
    ("pexpireat", -3),
    ("pexpiretime", 2),
    ("ping", -1),
    ("psetex", 4),
    ("pttl", 2),
    ("quit", -1),
    ("randomkey", 1),
    ("rename", 3),
    ("renamenx", 3),
    ("reset", 1),
    ("scan", -2),
    ("select", 2),
    ("set", -3),
    ("setex", 4),
    ("setnx", 3),
    ("setrange", 4),
    ("strlen", 2),
    ("substr", 4),
    ("time", 1),
    ("touch", -2),
    ("ttl", 2),
    ("type", 2),
    ("unlink", -2),
];

/// Commands that read or write only the key in their first argument and leave the session
/// alone: consecutive ones on distinct keys may run concurrently (see `connection`).
const SINGLE_KEY: &[&str] = &[
    "append",
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

/// The key of `args` if it is a single-key command (see [`SINGLE_KEY`]).
pub fn single_key(args: &[Vec<u8>]) -> Option<&[u8]> {
    let name = args.first()?;
    let key = args.get(1)?;
    SINGLE_KEY
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c.as_bytes()))
        .then_some(key.as_slice())
}

/// The name of the command in `args` as metrics label it: its entry in [`COMMANDS`], or
/// `unknown`.
pub fn command_name(args: &[Vec<u8>]) -> &'static str {
    args.first()
        .and_then(|first| {
            COMMANDS
                .iter()
                .find(|(n, _)| first.eq_ignore_ascii_case(n.as_bytes()))
        })
        .map_or("unknown", |(n, _)| n)
}

/// Run one command.
pub async fn dispatch(s: &mut Session, dbs: &Dbs, args: Vec<Vec<u8>>) -> Reply {
    let Some(first) = args.first() else {
        return Frame::err("ERR empty command");
    };
    let name = lossy(first).to_ascii_lowercase();
    let Some(&(_, arity)) = COMMANDS.iter().find(|(n, _)| *n == name) else {
        let rest: String = args[1..]
            .iter()
            .take(20)
            .map(|a| format!("'{}' ", lossy(a)))
            .collect();
        return Frame::err(format!(
            "ERR unknown command '{}', with args beginning with: {rest}",
            lossy(first)
        ));
    };
    if !arity_ok(arity, args.len()) {
        return err::arity(&name);
    }
    let a = &args[1..];
    match name.as_str() {
        "ping" | "echo" | "quit" | "select" | "hello" | "auth" | "client" | "command"
        | "config" | "info" | "time" | "reset" | "function" => server::run(s, &name, a).await,
        "dbsize" | "flushdb" | "flushall" | "del" | "unlink" | "exists" | "touch" | "type"
        | "keys" | "scan" | "randomkey" | "expire" | "pexpire" | "expireat" | "pexpireat"
        | "ttl" | "pttl" | "expiretime" | "pexpiretime" | "persist" | "rename" | "renamenx"
        | "copy" => keys::run(s, dbs, &name, a).await,
        _ => strings::run(s, dbs, &name, a).await,
    }
}
