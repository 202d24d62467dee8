//! Connection and server commands: PING ECHO QUIT SELECT HELLO AUTH RESET CLIENT (ID SETNAME
//! GETNAME SETINFO LIST INFO) COMMAND (COUNT DOCS INFO) CONFIG (GET SET RESETSTAT REWRITE) INFO
//! TIME.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use super::{err, parse_i64, Reply, Session, COMMANDS};
use crate::db::DATABASES;
use crate::frame::Frame;

/// The Redis version BEDIS reports (the command set it follows).
pub const REDIS_VERSION: &str = "7.0.15";

/// CONFIG values: accepted and reported, most change nothing in BEDIS.
fn config() -> &'static Mutex<BTreeMap<String, String>> {
    static CONFIG: OnceLock<Mutex<BTreeMap<String, String>>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let pairs = [
            ("appendonly", "yes"),
            ("save", ""),
            ("databases", "16"),
            ("maxmemory", "0"),
            ("maxmemory-policy", "noeviction"),
            ("timeout", "0"),
            ("tcp-keepalive", "300"),
            ("proto-max-bulk-len", "536870912"),
            ("maxclients", "10000"),
            ("hash-max-listpack-entries", "128"),
            ("hash-max-listpack-value", "64"),
            ("hash-max-ziplist-entries", "128"),
            ("hash-max-ziplist-value", "64"),
            ("list-max-listpack-size", "-2"),
            ("list-max-ziplist-size", "-2"),
            ("list-compress-depth", "0"),
            ("set-max-intset-entries", "512"),
            ("set-max-listpack-entries", "128"),
            ("zset-max-listpack-entries", "128"),
            ("zset-max-listpack-value", "64"),
            ("zset-max-ziplist-entries", "128"),
            ("zset-max-ziplist-value", "64"),
            ("lazyfree-lazy-user-del", "no"),
            ("lazyfree-lazy-user-flush", "no"),
            ("notify-keyspace-events", ""),
            ("slowlog-log-slower-than", "10000"),
            ("latency-tracking", "no"),
            ("appendfsync", "always"),
            ("requirepass", ""),
            ("port", "6879"),
        ];
        Mutex::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    })
}

/// Known CONFIG keys whose values are memory sizes (`100mb`), yes/no, or integers; CONFIG
/// SET refuses a malformed value for them (and sets nothing), as Redis does. Other keys take
/// any value.
const MEMORY_KEYS: &[&str] = &[
    "maxmemory",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
];
const BOOL_KEYS: &[&str] = &[
    "appendonly",
    "lazyfree-lazy-user-del",
    "lazyfree-lazy-user-flush",
    "latency-tracking",
];
const INT_KEYS: &[&str] = &[
    "databases",
    "timeout",
    "tcp-keepalive",
    "maxclients",
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "hash-max-ziplist-entries",
    "hash-max-ziplist-value",
    "list-max-listpack-size",
    "list-max-ziplist-size",
    "list-compress-depth",
    "set-max-intset-entries",
    "set-max-listpack-entries",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "zset-max-ziplist-entries",
    "zset-max-ziplist-value",
    "slowlog-log-slower-than",
    "port",
];

/// `notify-keyspace-events` flags in Redis's canonical form (`A` for every class, then
/// `K`, `E`, `m`), or None if a character is not a flag.
fn keyspace_events(v: &str) -> Option<String> {
    const CLASSES: &str = "g$lshzxetd";
    let mut set = std::collections::BTreeSet::new();
    for c in v.chars() {
        match c {
            'A' => set.extend(CLASSES.chars()),
            c if CLASSES.contains(c) || "nKEm".contains(c) => {
                set.insert(c);
            }
            _ => return None,
        }
    }
    let mut out = String::new();
    if CLASSES.chars().all(|c| set.contains(&c)) {
        out.push('A');
        if set.contains(&'n') {
            out.push('n');
        }
    } else {
        out.extend(CLASSES.chars().chain(['n']).filter(|c| set.contains(c)));
    }
    out.extend("KEm".chars().filter(|c| set.contains(c)));
    Some(out)
}

/// The CONFIG SET error for `value` of `key`, if it is malformed.
fn invalid_config(key: &[u8], value: &[u8]) -> Option<Frame> {
    let key = String::from_utf8_lossy(key).to_ascii_lowercase();
    let v = String::from_utf8_lossy(value).to_ascii_lowercase();
    let why = if key == "notify-keyspace-events" {
        keyspace_events(&String::from_utf8_lossy(value))
            .is_none()
            .then_some("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
    } else if MEMORY_KEYS.contains(&key.as_str()) {
        let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit_ok = matches!(
            &v[digits.len()..],
            "" | "b" | "k" | "kb" | "m" | "mb" | "g" | "gb"
        );
        (!unit_ok || digits.parse::<u64>().is_err()).then_some("argument must be a memory value")
    } else if BOOL_KEYS.contains(&key.as_str()) {
        (v != "yes" && v != "no").then_some("argument must be 'yes' or 'no'")
    } else if INT_KEYS.contains(&key.as_str()) {
        v.parse::<i64>()
            .is_err()
            .then_some("argument couldn't be parsed into an integer")
    } else {
        None
    }?;
    Some(Frame::err(format!(
        "ERR CONFIG SET failed (possibly related to argument '{key}') - {why}"
    )))
}

/// Whether `notify-keyspace-events` is set: checked on every write without locking the
/// CONFIG table.
pub static NOTIFY_KEYSPACE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// A CONFIG value ("" if unset).
pub fn config_value(key: &str) -> String {
    config()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .cloned()
        .unwrap_or_default()
}

/// The default user's password (`CONFIG SET requirepass`), if one is set.
pub fn required_password() -> Option<String> {
    Some(config_value("requirepass")).filter(|p| !p.is_empty())
}

/// AUTH as `user` with `password`: OK and authenticated, or WRONGPASS (which also leaves a
/// client that was authenticated so, as in Redis).
fn authenticate(s: &mut Session, user: &[u8], password: &[u8]) -> Reply {
    let ok = user == b"default" && required_password().is_none_or(|p| p.as_bytes() == password);
    if !ok {
        return Frame::err("WRONGPASS invalid username-password pair or user is disabled.");
    }
    s.authenticated = true;
    Frame::ok()
}

pub(super) async fn run(s: &mut Session, name: &str, a: &[Vec<u8>]) -> Reply {
    let up = |i: usize| {
        a.get(i)
            .map(|x| String::from_utf8_lossy(x).to_ascii_uppercase())
            .unwrap_or_default()
    };
    match name {
        "ping" => match a.len() {
            0 => Frame::Simple("PONG".into()),
            1 => Frame::bulk(a[0].clone()),
            _ => err::arity("ping"),
        },
        "echo" => Frame::bulk(a[0].clone()),
        "quit" => {
            s.quit = true;
            Frame::ok()
        }
        "reset" => {
            s.db = 0;
            s.proto = 2;
            s.name = None;
            Frame::Simple("RESET".into())
        }
        "select" => match parse_i64(&a[0]) {
            Some(n) if (0..DATABASES as i64).contains(&n) => {
                s.db = n as usize;
                Frame::ok()
            }
            Some(_) => Frame::err("ERR DB index is out of range"),
            None => err::not_int(),
        },
        // The only user is `default`, with the password `requirepass` (none: `nopass`).
        "auth" if a.len() == 1 && required_password().is_none() => Frame::err(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        "auth" if a.len() == 1 => authenticate(s, b"default", &a[0]),
        "auth" if a.len() == 2 => authenticate(s, &a[0], &a[1]),
        "auth" => err::syntax(),
        "hello" => hello(s, a),
        "time" => {
            let us = super::now_us();
            Frame::Array(vec![Frame::bulk((us / 1_000_000).to_string()), Frame::bulk((us % 1_000_000).to_string())])
        }
        "client" => match up(0).as_str() {
            "ID" => Frame::Integer(s.id as i64),
            "SETNAME" if a.len() == 2 => {
                if a[1].iter().any(|&b| b <= b' ' || b > b'~') {
                    return Frame::err("ERR Client names cannot contain spaces, newlines or special characters.");
                }
                s.name = (!a[1].is_empty()).then(|| a[1].clone());
                Frame::ok()
            }
            "GETNAME" => s.name.clone().map(Frame::bulk).unwrap_or(Frame::Null),
            "SETINFO" if a.len() == 3 => {
                match up(1).as_str() {
                    "LIB-NAME" => s.lib_name = Some(a[2].clone()),
                    "LIB-VER" => s.lib_ver = Some(a[2].clone()),
                    _ => return Frame::err(format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(&a[1]))),
                }
                Frame::ok()
            }
            "LIST" | "INFO" => Frame::bulk(format!(
                "id={} addr={} laddr= fd=0 name={} age=0 idle=0 flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=client|list user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
                s.id,
                s.addr,
                String::from_utf8_lossy(s.name.as_deref().unwrap_or_default()),
                s.db,
                s.proto,
                String::from_utf8_lossy(s.lib_name.as_deref().unwrap_or_default()),
                String::from_utf8_lossy(s.lib_ver.as_deref().unwrap_or_default()),
            )),
            "REPLY" if a.len() == 2 => match up(1).as_str() {
                "ON" => {
                    s.replies = super::ReplyMode::On;
                    Frame::ok()
                }
                "OFF" => {
                    s.replies = super::ReplyMode::Off;
                    Frame::ok()
                }
                "SKIP" => {
                    s.replies = super::ReplyMode::SkipNext;
                    Frame::ok()
                }
                _ => err::syntax(),
            },
            "NO-EVICT" | "NO-TOUCH" if a.len() == 2 => Frame::ok(),
            "SETNAME" | "SETINFO" | "REPLY" => err::arity("client"),
            other => Frame::err(format!("ERR unknown subcommand '{}'. Try CLIENT HELP.", other.to_ascii_lowercase())),
        },
        "command" => match up(0).as_str() {
            "" => Frame::Array(COMMANDS.iter().map(|(n, ar)| command_info(n, *ar)).collect()),
            "COUNT" => Frame::Integer(COMMANDS.len() as i64),
            "DOCS" => Frame::Map(Vec::new()),
            "INFO" => Frame::Array(
                a[1..]
                    .iter()
                    .map(|n| {
                        let n = String::from_utf8_lossy(n).to_ascii_lowercase();
                        COMMANDS.iter().find(|(c, _)| *c == n).map(|(c, ar)| command_info(c, *ar)).unwrap_or(Frame::NullArray)
                    })
                    .collect(),
            ),
            other => Frame::err(format!("ERR unknown subcommand '{}'. Try COMMAND HELP.", other.to_ascii_lowercase())),
        },
        "config" => match up(0).as_str() {
            "GET" if a.len() >= 2 => {
                let cfg = config().lock().unwrap_or_else(|e| e.into_inner());
                let mut out = Vec::new();
                for pat in &a[1..] {
                    for (k, v) in cfg.iter() {
                        if super::keys::glob_match(&pat.to_ascii_lowercase(), k.as_bytes()) && !out.iter().any(|(kk, _): &(Frame, Frame)| *kk == Frame::bulk(k.clone())) {
                            out.push((Frame::bulk(k.clone()), Frame::bulk(v.clone())));
                        }
                    }
                }
                Frame::Map(out)
            }
            "SET" if a.len() >= 3 && a.len() % 2 == 1 => {
                if let Some(e) = a[1..].chunks(2).find_map(|kv| invalid_config(&kv[0], &kv[1])) {
                    return e;
                }
                let mut cfg = config().lock().unwrap_or_else(|e| e.into_inner());
                for kv in a[1..].chunks(2) {
                    let key = String::from_utf8_lossy(&kv[0]).to_ascii_lowercase();
                    let mut value = String::from_utf8_lossy(&kv[1]).into_owned();
                    if key == "notify-keyspace-events" {
                        value = keyspace_events(&value).unwrap_or_default();
                        NOTIFY_KEYSPACE.store(!value.is_empty(), std::sync::atomic::Ordering::Relaxed);
                    }
                    cfg.insert(key, value);
                }
                Frame::ok()
            }
            "RESETSTAT" | "REWRITE" => Frame::ok(),
            "GET" | "SET" => err::arity("config"),
            other => Frame::err(format!("ERR unknown subcommand '{}'. Try CONFIG HELP.", other.to_ascii_lowercase())),
        },
        "info" => Frame::bulk(info(s, a)),
        // No Lua functions: an empty library set that can be flushed and listed.
        "function" => match up(0).as_str() {
            "FLUSH" => Frame::ok(),
            "LIST" => Frame::Array(vec![]),
            other => Frame::err(format!("ERR unknown subcommand '{}'. Try FUNCTION HELP.", other.to_ascii_lowercase())),
        },
        _ => Frame::err(format!("ERR unknown command '{name}'")),
    }
}

fn command_info(name: &str, arity: i32) -> Frame {
    Frame::Array(vec![
        Frame::bulk(name),
        Frame::Integer(arity as i64),
        Frame::Array(vec![]),
        Frame::Integer(if arity.abs() >= 2 { 1 } else { 0 }),
        Frame::Integer(if arity.abs() >= 2 { 1 } else { 0 }),
        Frame::Integer(if arity.abs() >= 2 { 1 } else { 0 }),
    ])
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
fn hello(s: &mut Session, a: &[Vec<u8>]) -> Reply {
    let mut proto = s.proto;
    let mut i = 0;
    if let Some(v) = a.first() {
        match parse_i64(v) {
            Some(p @ 2..=3) => proto = p as u8,
            Some(_) => return Frame::err("NOPROTO unsupported protocol version"),
            None => return Frame::err("ERR Protocol version is not an integer or out of range"),
        }
        i = 1;
    }
    while i < a.len() {
        let opt = String::from_utf8_lossy(&a[i]).to_ascii_uppercase();
        match opt.as_str() {
            "AUTH" if i + 2 < a.len() => {
                if let e @ Frame::Error(_) = authenticate(s, &a[i + 1], &a[i + 2]) {
                    return e;
                }
                i += 3;
            }
            "SETNAME" if i + 1 < a.len() => {
                s.name = Some(a[i + 1].clone());
                i += 2;
            }
            _ => {
                return Frame::err(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&a[i])
                ))
            }
        }
    }
    if !s.authenticated {
        return Frame::err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    s.proto = proto;
    Frame::Map(vec![
        (Frame::bulk("server"), Frame::bulk("redis")),
        (Frame::bulk("version"), Frame::bulk(REDIS_VERSION)),
        (Frame::bulk("proto"), Frame::Integer(proto as i64)),
        (Frame::bulk("id"), Frame::Integer(s.id as i64)),
        (Frame::bulk("mode"), Frame::bulk("standalone")),
        (Frame::bulk("role"), Frame::bulk("master")),
        (Frame::bulk("modules"), Frame::Array(vec![])),
    ])
}

fn info(s: &Session, args: &[Vec<u8>]) -> String {
    const DEFAULT: &[&str] = &[
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "cpu",
        "modules",
        "errorstats",
        "cluster",
        "keyspace",
    ];
    let mut want: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        if !want.iter().any(|w| w == n) {
            want.push(n.to_owned());
        }
    };
    if args.is_empty() {
        DEFAULT.iter().for_each(|n| add(n));
    }
    for a in args {
        match String::from_utf8_lossy(a).to_ascii_lowercase().as_str() {
            "default" => DEFAULT.iter().for_each(|n| add(n)),
            "all" | "everything" => {
                DEFAULT.iter().for_each(|n| add(n));
                add("commandstats");
                add("latencystats");
            }
            other => add(other),
        }
    }
    let cpu = {
        // utime and stime (fields 14 and 15 of /proc/self/stat), in clock ticks of 10 ms.
        let t = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let f: Vec<&str> = t
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
        (tick(11), tick(12))
    };
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 4096;
    let mut out = String::new();
    for w in want {
        let body = match w.as_str() {
            "server" => format!(
                "redis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\naisql_version:{}\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:6879\r\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::process::id()
            ),
            "clients" => format!(
                "connected_clients:{}\r\nblocked_clients:{}\r\n",
                crate::CONNECTED_CLIENTS.load(std::sync::atomic::Ordering::Relaxed),
                crate::BLOCKED_CLIENTS.load(std::sync::atomic::Ordering::Relaxed)
            ),
            "memory" => format!(
                "used_memory:{rss}\r\nused_memory_rss:{rss}\r\nmem_allocator:libc\r\n"
            ),
            "persistence" => "loading:0\r\naof_enabled:1\r\nrdb_changes_since_last_save:0\r\n".to_owned(),
            "stats" => "total_connections_received:0\r\ntotal_commands_processed:0\r\nexpired_keys:0\r\nevicted_keys:0\r\n".to_owned(),
            "replication" => "role:master\r\nconnected_slaves:0\r\nmaster_repl_offset:0\r\n".to_owned(),
            "cpu" => format!(
                "used_cpu_sys:{:.6}\r\nused_cpu_user:{:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n",
                cpu.1, cpu.0
            ),
            "modules" | "errorstats" | "latencystats" => String::new(),
            "cluster" => "cluster_enabled:0\r\n".to_owned(),
            "keyspace" => format!("# current db: db{}\r\n", s.db),
            "commandstats" => {
                "cmdstat_info:calls=1,usec=0,usec_per_call=0.00,rejected_calls=0,failed_calls=0\r\n"
                    .to_owned()
            }
            _ => continue,
        };
        let title = match w.as_str() {
            "cpu" => "CPU".to_owned(),
            "commandstats" => "Commandstats".to_owned(),
            "errorstats" => "Errorstats".to_owned(),
            "latencystats" => "Latencystats".to_owned(),
            other => {
                let mut c = other.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            }
        };
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        out.push_str(&format!("# {title}\r\n{body}"));
    }
    out
}
