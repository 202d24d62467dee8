//! Keyspace commands: DEL UNLINK EXISTS TOUCH TYPE KEYS SCAN RANDOMKEY DBSIZE FLUSHDB FLUSHALL
//! RENAME RENAMENX COPY
//! EXPIRE PEXPIRE EXPIREAT PEXPIREAT (NX XX GT LT) TTL PTTL EXPIRETIME PEXPIRETIME PERSIST.

use super::{err, now_us, parse_i64, Reply, Session};
use crate::db::{Access, Change, Coll, Kind, Stored, DATABASES};
use crate::frame::Frame;

pub(super) async fn run(s: &mut Session, acc: &mut Access<'_>, name: &str, a: &[Vec<u8>]) -> Reply {
    match run_inner(s, acc, name, a).await {
        Ok(r) | Err(r) => r,
    }
}

async fn run_inner(
    s: &mut Session,
    acc: &mut Access<'_>,
    name: &str,
    a: &[Vec<u8>],
) -> Result<Reply, Reply> {
    let db = s.db;
    let be = err::backend;
    match name {
        "del" | "unlink" => {
            let mut n = 0;
            for k in a {
                n += acc.delete(db, k).await.map_err(be)? as i64;
            }
            Ok(Frame::Integer(n))
        }
        "exists" | "touch" => {
            let vals = acc.get_many(db, a).await.map_err(be)?;
            Ok(Frame::Integer(
                vals.iter().filter(|v| v.is_some()).count() as i64
            ))
        }
        "type" => {
            let v = acc.get(db, &a[0]).await.map_err(be)?;
            Ok(Frame::Simple(
                v.map(|s| s.kind.name()).unwrap_or("none").into(),
            ))
        }
        "dbsize" => Ok(Frame::Integer(
            acc.scan_keys(db).await.map_err(be)?.len() as i64
        )),
        "flushdb" | "flushall" => {
            if a.len() > 1
                || a.first().is_some_and(|m| {
                    !m.eq_ignore_ascii_case(b"sync") && !m.eq_ignore_ascii_case(b"async")
                })
            {
                return Err(err::syntax());
            }
            let which: Vec<usize> = if name == "flushdb" {
                vec![db]
            } else {
                (0..DATABASES).collect()
            };
            for d in which {
                acc.dbs.flush(d).await.map_err(be)?;
            }
            Ok(Frame::ok())
        }
        "keys" => {
            let all = acc.scan_keys(db).await.map_err(be)?;
            Ok(Frame::Array(
                all.into_iter()
                    .filter(|(k, _)| glob_match(&a[0], k))
                    .map(|(k, _)| Frame::bulk(k))
                    .collect(),
            ))
        }
        "scan" => {
            parse_i64(&a[0])
                .filter(|c| *c >= 0)
                .ok_or_else(|| Frame::err("ERR invalid cursor"))?;
            let (mut pattern, mut kind) = (None, None);
            let mut i = 1;
            while i < a.len() {
                let opt = String::from_utf8_lossy(&a[i]).to_ascii_uppercase();
                let Some(val) = a.get(i + 1) else {
                    return Err(err::syntax());
                };
                match opt.as_str() {
                    "MATCH" => pattern = Some(val.clone()),
                    "COUNT" => {
                        let c = parse_i64(val).ok_or_else(err::not_int)?;
                        if c < 1 {
                            return Err(err::syntax());
                        }
                    }
                    "TYPE" => kind = Some(String::from_utf8_lossy(val).to_ascii_lowercase()),
                    _ => return Err(err::syntax()),
                }
                i += 2;
            }
            // One pass returns every key with cursor 0 (allowed: COUNT is only a hint).
            let all = acc.scan_keys(db).await.map_err(be)?;
            let keys = all
                .into_iter()
                .filter(|(k, v)| {
                    pattern.as_ref().is_none_or(|p| glob_match(p, k))
                        && kind.as_ref().is_none_or(|t| t == v.kind.name())
                })
                .map(|(k, _)| Frame::bulk(k))
                .collect();
            Ok(Frame::Array(vec![Frame::bulk("0"), Frame::Array(keys)]))
        }
        "randomkey" => {
            let all = acc.scan_keys(db).await.map_err(be)?;
            if all.is_empty() {
                return Ok(Frame::Null);
            }
            let i = (now_us() as usize) % all.len();
            Ok(Frame::bulk(all[i].0.clone()))
        }
        "ttl" | "pttl" | "expiretime" | "pexpiretime" => {
            let v = acc.get(db, &a[0]).await.map_err(be)?;
            let Some(v) = v else {
                return Ok(Frame::Integer(-2));
            };
            let Some(at) = v.expire_at_us else {
                return Ok(Frame::Integer(-1));
            };
            let now = now_us();
            Ok(Frame::Integer(match name {
                "ttl" => (at.saturating_sub(now) as i64 + 500_000) / 1_000_000,
                "pttl" => (at.saturating_sub(now) as i64 + 500) / 1000,
                "expiretime" => (at / 1_000_000) as i64,
                _ => (at / 1000) as i64,
            }))
        }
        "persist" => {
            let done = acc
                .update(db, &a[0], |cur| match cur {
                    Some(c) if c.expire_at_us.is_some() => (
                        Change::Put {
                            kind: c.kind,
                            payload: c.payload.clone(),
                            expire_at_us: None,
                        },
                        true,
                    ),
                    _ => (Change::Keep, false),
                })
                .await
                .map_err(be)?;
            Ok(Frame::Integer(done as i64))
        }
        "rename" | "renamenx" => {
            if acc.get(db, &a[0]).await.map_err(be)?.is_none() {
                return Err(Frame::err("ERR no such key"));
            }
            if a[0] == a[1] {
                return Ok(if name == "rename" {
                    Frame::ok()
                } else {
                    Frame::Integer(0)
                });
            }
            if name == "renamenx" && acc.get(db, &a[1]).await.map_err(be)?.is_some() {
                return Ok(Frame::Integer(0));
            }
            copy_key(acc, db, &a[0], db, &a[1]).await.map_err(be)?;
            acc.delete(db, &a[0]).await.map_err(be)?;
            Ok(if name == "rename" {
                Frame::ok()
            } else {
                Frame::Integer(1)
            })
        }
        "copy" => {
            let (mut dest_db, mut replace) = (db, false);
            let mut i = 2;
            while i < a.len() {
                match String::from_utf8_lossy(&a[i]).to_ascii_uppercase().as_str() {
                    "REPLACE" => replace = true,
                    "DB" if i + 1 < a.len() => {
                        dest_db = db_index(&a[i + 1])?;
                        i += 1;
                    }
                    _ => return Err(err::syntax()),
                }
                i += 1;
            }
            if dest_db == db && a[0] == a[1] {
                return Err(Frame::err(
                    "ERR source and destination objects are the same",
                ));
            }
            if acc.get(db, &a[0]).await.map_err(be)?.is_none() {
                return Ok(Frame::Integer(0));
            }
            if !replace && acc.get(dest_db, &a[1]).await.map_err(be)?.is_some() {
                return Ok(Frame::Integer(0));
            }
            copy_key(acc, db, &a[0], dest_db, &a[1]).await.map_err(be)?;
            Ok(Frame::Integer(1))
        }
        "dump" => {
            let view = acc.read(db, &a[0], &[]).await.map_err(be)?;
            let Some(meta) = view.meta.clone() else {
                return Ok(Frame::Null);
            };
            let elems = acc.scan_all(db, &a[0], &view).await.map_err(be)?;
            Ok(Frame::bulk(dump(&meta, &elems)))
        }
        "restore" => restore(acc, db, a).await,
        "move" => {
            let dest = db_index(&a[1])?;
            if dest == db {
                return Err(Frame::err(
                    "ERR source and destination objects are the same",
                ));
            }
            if acc.get(db, &a[0]).await.map_err(be)?.is_none()
                || acc.get(dest, &a[0]).await.map_err(be)?.is_some()
            {
                return Ok(Frame::Integer(0));
            }
            copy_key(acc, db, &a[0], dest, &a[0]).await.map_err(be)?;
            acc.delete(db, &a[0]).await.map_err(be)?;
            Ok(Frame::Integer(1))
        }
        "memory" => {
            let sub = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
            match sub.as_str() {
                "usage" if a.len() == 2 || (a.len() == 4 && a[2].eq_ignore_ascii_case(b"samples")) => {
                    let Some(v) = acc.get(db, &a[1]).await.map_err(be)? else {
                        return Ok(Frame::Null);
                    };
                    // An estimate: the key and its meta row, plus 32 bytes per element.
                    let elems = v.coll().map_or(0, |c| c.count);
                    Ok(Frame::Integer(
                        (a[1].len() + v.raw.len() + 16) as i64 + 32 * elems,
                    ))
                }
                "doctor" => Ok(Frame::bulk("Sam, I have no memory problems")),
                "purge" => Ok(Frame::ok()),
                "stats" => Ok(Frame::Map(Vec::new())),
                "malloc-stats" => Ok(Frame::bulk("Stats not supported for the current allocator")),
                _ => Err(Frame::err(format!(
                    "ERR unknown subcommand or wrong number of arguments for '{}'. Try MEMORY HELP.",
                    String::from_utf8_lossy(&a[0])
                ))),
            }
        }
        "object" => {
            let sub = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
            let key = match (sub.as_str(), a.get(1)) {
                ("help", _) => {
                    return Ok(Frame::Array(
                        [
                            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                            "ENCODING <key>",
                            "FREQ <key>",
                            "IDLETIME <key>",
                            "REFCOUNT <key>",
                            "HELP",
                        ]
                        .into_iter()
                        .map(|l| Frame::Simple(l.into()))
                        .collect(),
                    ))
                }
                ("encoding" | "freq" | "idletime" | "refcount", Some(k)) if a.len() == 2 => k,
                _ => {
                    return Err(Frame::err(format!(
                        "ERR unknown subcommand or wrong number of arguments for '{}'. Try OBJECT HELP.",
                        String::from_utf8_lossy(&a[0])
                    )))
                }
            };
            let Some(v) = acc.get(db, key).await.map_err(be)? else {
                return Ok(Frame::Null);
            };
            Ok(match sub.as_str() {
                "encoding" => Frame::bulk(encoding(&v)),
                "refcount" => Frame::Integer(1),
                _ => Frame::Integer(0),
            })
        }
        _ => expire(acc, db, name, a).await,
    }
}

/// A database number argument (COPY … DB, MOVE).
fn db_index(arg: &[u8]) -> Result<usize, Reply> {
    let n = parse_i64(arg).ok_or_else(err::not_int)?;
    if !(0..DATABASES as i64).contains(&n) {
        return Err(Frame::err("ERR DB index is out of range"));
    }
    Ok(n as usize)
}

/// DUMP's payload: `"AQ" ‖ version 1 ‖ type ‖ payload ‖ elements ‖ FNV-1a 64 of all
/// before it`. Lengths are u32 BE. A collection's payload is its header (a fresh generation
/// is chosen on RESTORE).
fn dump(meta: &Stored, elems: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"AQ\x01".to_vec();
    out.push(meta.kind as u8);
    let put = |b: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    };
    put(&meta.payload, &mut out);
    out.extend_from_slice(&(elems.len() as u32).to_be_bytes());
    for (sub, data) in elems {
        put(sub, &mut out);
        put(data, &mut out);
    }
    let sum = fnv64(&out);
    out.extend_from_slice(&sum.to_be_bytes());
    out
}

fn fnv64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A DUMP payload's parts: type, payload, elements (None: not ours or damaged).
#[allow(clippy::type_complexity)]
fn undump(b: &[u8]) -> Option<(Kind, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>)> {
    if b.len() < 16 || !b.starts_with(b"AQ\x01") {
        return None;
    }
    let (body, sum) = b.split_at(b.len() - 8);
    if fnv64(body) != u64::from_be_bytes(sum.try_into().ok()?) {
        return None;
    }
    let kind = Kind::from_u8(body[3])?;
    let mut pos = 4;
    let take = |pos: &mut usize| -> Option<Vec<u8>> {
        let n = u32::from_be_bytes(body.get(*pos..*pos + 4)?.try_into().ok()?) as usize;
        let v = body.get(*pos + 4..*pos + 4 + n)?.to_vec();
        *pos += 4 + n;
        Some(v)
    };
    let payload = take(&mut pos)?;
    let n = u32::from_be_bytes(body.get(pos..pos + 4)?.try_into().ok()?) as usize;
    pos += 4;
    let mut elems = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let sub = take(&mut pos)?;
        let data = take(&mut pos)?;
        elems.push((sub, data));
    }
    (pos == body.len()).then_some((kind, payload, elems))
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]
async fn restore(acc: &mut Access<'_>, db: usize, a: &[Vec<u8>]) -> Result<Reply, Reply> {
    let be = err::backend;
    let ttl = parse_i64(&a[1]).ok_or_else(err::not_int)?;
    if ttl < 0 {
        return Err(Frame::err("ERR Invalid TTL value, must be >= 0"));
    }
    let (mut replace, mut abs) = (false, false);
    let mut i = 3;
    while i < a.len() {
        match String::from_utf8_lossy(&a[i]).to_ascii_uppercase().as_str() {
            "REPLACE" => replace = true,
            "ABSTTL" => abs = true,
            "IDLETIME" | "FREQ" if i + 1 < a.len() => {
                if parse_i64(&a[i + 1]).is_none_or(|v| v < 0) {
                    return Err(Frame::err("ERR Invalid IDLETIME value, must be >= 0"));
                }
                i += 1;
            }
            _ => return Err(err::syntax()),
        }
        i += 1;
    }
    let Some((kind, payload, elems)) = undump(&a[2]) else {
        return Err(Frame::err("ERR DUMP payload version or checksum are wrong"));
    };
    let expire = match (ttl, abs) {
        (0, _) => None,
        (t, true) => Some((t as u64).saturating_mul(1000)),
        (t, false) => Some(now_us().saturating_add((t as u64).saturating_mul(1000))),
    };
    if acc.get(db, &a[0]).await.map_err(be)?.is_some() {
        if !replace {
            return Err(Frame::err("BUSYKEY Target key name already exists."));
        }
        acc.delete(db, &a[0]).await.map_err(be)?;
    }
    if expire.is_some_and(|e| e <= now_us()) {
        return Ok(Frame::ok());
    }
    let (payload, gen) = match Coll::decode(&payload).filter(|_| kind != Kind::String) {
        Some(c) => {
            let fresh = c.regenerated();
            (fresh.encode(), fresh.gen)
        }
        None if kind == Kind::String => (payload, 0),
        None => return Err(Frame::err("ERR Bad data format")),
    };
    let change = Change::Put {
        kind,
        payload,
        expire_at_us: expire,
    };
    let writes = elems.into_iter().map(|(s, d)| (s, Some(d))).collect();
    let old = acc.get(db, &a[0]).await.map_err(be)?;
    if !acc
        .commit(db, &a[0], old.as_ref(), change, gen, writes)
        .await
        .map_err(be)?
    {
        return Err(Frame::err("BUSYKEY Target key name already exists."));
    }
    Ok(Frame::ok())
}

/// Redis's name for how a value is encoded (OBJECT ENCODING), by its size as Redis would
/// pick it; BEDIS stores every value the same way.
fn encoding(v: &Stored) -> &'static str {
    let count = v.coll().map_or(0, |c| c.count);
    match v.kind {
        Kind::String if parse_i64(&v.payload).is_some() => "int",
        Kind::String if v.payload.len() <= 44 => "embstr",
        Kind::String => "raw",
        Kind::List => "quicklist",
        Kind::Hash | Kind::ZSet | Kind::Set if count <= 128 => "listpack",
        Kind::ZSet => "skiplist",
        _ => "hashtable",
    }
}

/// Write a copy of `src` (in `src_db`) under `dst` (in `dst_db`), replacing it: its meta
/// row with a fresh generation, and its elements. Atomic when `acc` is a transaction (the
/// dispatcher runs RENAME and COPY in one).
pub(super) async fn copy_key(
    acc: &mut Access<'_>,
    src_db: usize,
    src: &[u8],
    dst_db: usize,
    dst: &[u8],
) -> Result<(), client::ClientError> {
    let view = acc.read(src_db, src, &[]).await?;
    let Some(meta) = view.meta.clone() else {
        return Ok(());
    };
    let elems = acc.scan_all(src_db, src, &view).await?;
    loop {
        let old = acc.get(dst_db, dst).await?;
        if old.is_some() {
            acc.delete(dst_db, dst).await?;
            continue;
        }
        let (payload, gen) = match meta.coll() {
            Some(c) => {
                let fresh = c.regenerated();
                (fresh.encode(), fresh.gen)
            }
            None => (meta.payload.clone(), 0),
        };
        let change = Change::Put {
            kind: meta.kind,
            payload,
            expire_at_us: meta.expire_at_us,
        };
        let writes = elems
            .iter()
            .map(|(s, d)| (s.clone(), Some(d.clone())))
            .collect();
        if acc.commit(dst_db, dst, None, change, gen, writes).await? {
            return Ok(());
        }
    }
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX | XX | GT | LT]
async fn expire(
    acc: &mut Access<'_>,
    db: usize,
    name: &str,
    a: &[Vec<u8>],
) -> Result<Reply, Reply> {
    let n = parse_i64(&a[1]).ok_or_else(err::not_int)?;
    let (unit_ms, absolute) = match name {
        "expire" => (1000i64, false),
        "pexpire" => (1, false),
        "expireat" => (1000, true),
        _ => (1, true),
    };
    // In milliseconds, with Redis's overflow checks; then µs (saturating: far future).
    let overflow = || Frame::err(format!("ERR invalid expire time in '{name}' command"));
    let mut at_ms = n.checked_mul(unit_ms).ok_or_else(overflow)?;
    if !absolute {
        at_ms = at_ms
            .checked_add((now_us() / 1000) as i64)
            .ok_or_else(overflow)?;
    }
    let at = at_ms.saturating_mul(1000);
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &a[2..] {
        match String::from_utf8_lossy(opt).to_ascii_uppercase().as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            other => return Err(Frame::err(format!("ERR Unsupported option {other}"))),
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Frame::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Frame::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let done = acc
        .update(db, &a[0], |cur| {
            let Some(c) = cur else {
                return (Change::Keep, false);
            };
            let old = c.expire_at_us.map(|e| e as i64);
            let ok = match old {
                None => !xx && !gt,
                Some(o) => !nx && (!gt || at > o) && (!lt || at < o),
            };
            if !ok {
                return (Change::Keep, false);
            }
            if at <= now_us() as i64 {
                (Change::Delete, true)
            } else {
                (
                    Change::Put {
                        kind: c.kind,
                        payload: c.payload.clone(),
                        expire_at_us: Some(at as u64),
                    },
                    true,
                )
            }
        })
        .await
        .map_err(err::backend)?;
    Ok(Frame::Integer(done as i64))
}

/// Redis's glob-style matching (`*`, `?`, `[...]` with ranges and `^`, `\` escapes).
/// Iterative, backtracking only to the last `*`: O(pattern × subject), so patterns like
/// `a*a*a*…b` cannot blow up.
pub fn glob_match(p: &[u8], s: &[u8]) -> bool {
    // Redis gives up (no match) past 1000 nested stars; so do we, for the same answers.
    if p.iter().filter(|&&c| c == b'*').count() > 1000 {
        return false;
    }
    /// Match one pattern element at `p[pi..]` against byte `c`: Some(element length) if it
    /// matches, None if not. `*` is handled by the caller.
    fn one(p: &[u8], mut pi: usize, c: u8) -> (bool, usize) {
        let start = pi;
        match p[pi] {
            b'?' => (true, 1),
            b'\\' if pi + 1 < p.len() => (p[pi + 1] == c, 2),
            b'[' => {
                pi += 1;
                let not = p.get(pi) == Some(&b'^');
                if not {
                    pi += 1;
                }
                let mut matched = false;
                while pi < p.len() && p[pi] != b']' {
                    if p[pi] == b'\\' && pi + 1 < p.len() {
                        pi += 1;
                        matched |= p[pi] == c;
                    } else if pi + 2 < p.len() && p[pi + 1] == b'-' && p[pi + 2] != b']' {
                        let (lo, hi) = (p[pi].min(p[pi + 2]), p[pi].max(p[pi + 2]));
                        matched |= lo <= c && c <= hi;
                        pi += 2;
                    } else {
                        matched |= p[pi] == c;
                    }
                    pi += 1;
                }
                // Past the closing bracket (or the end of an unclosed class).
                let end = (pi + 1).min(p.len());
                (matched != not, end - start)
            }
            x => (x == c, 1),
        }
    }
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            while pi < p.len() && p[pi] == b'*' {
                pi += 1;
            }
            if pi == p.len() {
                return true;
            }
            star = Some((pi, si));
            continue;
        }
        if pi < p.len() {
            let (ok, len) = one(p, pi, s[si]);
            if ok {
                pi += len;
                si += 1;
                continue;
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h*llo", b"heeeello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-b]llo", b"hbllo"));
        assert!(glob_match(b"a\\*b", b"a*b"));
        assert!(!glob_match(b"a\\*b", b"axb"));
        assert!(!glob_match(b"key:*", b"other"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"?", b""));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
        assert!(glob_match(b"*[0-9]", b"abc7"));
        // Pathological nesting stays fast (Redis's "very long nested loops" regression).
        let p = b"a*"
            .repeat(40)
            .into_iter()
            .chain(*b"b")
            .collect::<Vec<u8>>();
        assert!(!glob_match(&p, &[b'a'; 200]));
    }
}
