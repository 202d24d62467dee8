//! Keyspace commands: DEL UNLINK EXISTS TOUCH TYPE KEYS SCAN RANDOMKEY DBSIZE FLUSHDB FLUSHALL
//! RENAME RENAMENX COPY
//! EXPIRE PEXPIRE EXPIREAT PEXPIREAT (NX XX GT LT) TTL PTTL EXPIRETIME PEXPIRETIME PERSIST.

use super::{err, now_us, parse_i64, Reply, Session};
use crate::db::{Change, Dbs, DATABASES};
use crate::frame::Frame;

pub(super) async fn run(s: &mut Session, dbs: &Dbs, name: &str, a: &[Vec<u8>]) -> Reply {
    match run_inner(s, dbs, name, a).await {
        Ok(r) | Err(r) => r,
    }
}

async fn run_inner(s: &mut Session, dbs: &Dbs, name: &str, a: &[Vec<u8>]) -> Result<Reply, Reply> {
    let db = s.db;
    let be = err::backend;
    match name {
        "del" | "unlink" => {
            let mut n = 0;
            for k in a {
                n += dbs.delete(db, k).await.map_err(be)? as i64;
            }
            Ok(Frame::Integer(n))
        }
        "exists" | "touch" => {
            let vals = dbs.get_many(db, a).await.map_err(be)?;
            Ok(Frame::Integer(
                vals.iter().filter(|v| v.is_some()).count() as i64
            ))
        }
        "type" => {
            let v = dbs.get(db, &a[0]).await.map_err(be)?;
            Ok(Frame::Simple(
                v.map(|s| s.kind.name()).unwrap_or("none").into(),
            ))
        }
        "dbsize" => Ok(Frame::Integer(
            dbs.scan_all(db).await.map_err(be)?.len() as i64
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
                for (k, _) in dbs.scan_all(d).await.map_err(be)? {
                    dbs.delete(d, &k).await.map_err(be)?;
                }
            }
            Ok(Frame::ok())
        }
        "keys" => {
            let all = dbs.scan_all(db).await.map_err(be)?;
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
            let all = dbs.scan_all(db).await.map_err(be)?;
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
            let all = dbs.scan_all(db).await.map_err(be)?;
            if all.is_empty() {
                return Ok(Frame::Null);
            }
            let i = (now_us() as usize) % all.len();
            Ok(Frame::bulk(all[i].0.clone()))
        }
        "ttl" | "pttl" | "expiretime" | "pexpiretime" => {
            let v = dbs.get(db, &a[0]).await.map_err(be)?;
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
            let done = dbs
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
            // Not atomic across the two keys until multi-key transactions land (issue 3).
            let Some(v) = dbs.get(db, &a[0]).await.map_err(be)? else {
                return Err(Frame::err("ERR no such key"));
            };
            if a[0] == a[1] {
                return Ok(if name == "rename" {
                    Frame::ok()
                } else {
                    Frame::Integer(0)
                });
            }
            if name == "renamenx" && dbs.get(db, &a[1]).await.map_err(be)?.is_some() {
                return Ok(Frame::Integer(0));
            }
            dbs.put(db, &a[1], v.kind, &v.payload, v.expire_at_us)
                .await
                .map_err(be)?;
            dbs.delete(db, &a[0]).await.map_err(be)?;
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
                        dest_db = parse_i64(&a[i + 1])
                            .filter(|n| (0..DATABASES as i64).contains(n))
                            .ok_or_else(|| Frame::err("ERR DB index is out of range"))?
                            as usize;
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
            let Some(v) = dbs.get(db, &a[0]).await.map_err(be)? else {
                return Ok(Frame::Integer(0));
            };
            if !replace && dbs.get(dest_db, &a[1]).await.map_err(be)?.is_some() {
                return Ok(Frame::Integer(0));
            }
            dbs.put(dest_db, &a[1], v.kind, &v.payload, v.expire_at_us)
                .await
                .map_err(be)?;
            Ok(Frame::Integer(1))
        }
        _ => expire(dbs, db, name, a).await,
    }
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX | XX | GT | LT]
async fn expire(dbs: &Dbs, db: usize, name: &str, a: &[Vec<u8>]) -> Result<Reply, Reply> {
    let n = parse_i64(&a[1]).ok_or_else(err::not_int)?;
    let (unit_us, absolute) = match name {
        "expire" => (1_000_000i64, false),
        "pexpire" => (1000, false),
        "expireat" => (1_000_000, true),
        _ => (1000, true),
    };
    let overflow = || Frame::err(format!("ERR invalid expire time in '{name}' command"));
    let mut at = n.checked_mul(unit_us).ok_or_else(overflow)?;
    if !absolute {
        at = at.checked_add(now_us() as i64).ok_or_else(overflow)?;
    }
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
    let done = dbs
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
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    fn m(p: &[u8], s: &[u8], depth: usize) -> bool {
        if depth > 1000 {
            return false;
        }
        let (mut pi, mut si) = (0, 0);
        while pi < p.len() {
            match p[pi] {
                b'*' => {
                    while pi + 1 < p.len() && p[pi + 1] == b'*' {
                        pi += 1;
                    }
                    if pi + 1 == p.len() {
                        return true;
                    }
                    return (si..=s.len()).any(|k| m(&p[pi + 1..], &s[k..], depth + 1));
                }
                b'?' => {
                    if si >= s.len() {
                        return false;
                    }
                    si += 1;
                }
                b'[' => {
                    if si >= s.len() {
                        return false;
                    }
                    pi += 1;
                    let not = p.get(pi) == Some(&b'^');
                    if not {
                        pi += 1;
                    }
                    let mut matched = false;
                    while pi < p.len() && p[pi] != b']' {
                        if p[pi] == b'\\' && pi + 1 < p.len() {
                            pi += 1;
                            matched |= p[pi] == s[si];
                        } else if pi + 2 < p.len() && p[pi + 1] == b'-' && p[pi + 2] != b']' {
                            let (lo, hi) = (p[pi].min(p[pi + 2]), p[pi].max(p[pi + 2]));
                            matched |= lo <= s[si] && s[si] <= hi;
                            pi += 2;
                        } else {
                            matched |= p[pi] == s[si];
                        }
                        pi += 1;
                    }
                    if matched == not {
                        return false;
                    }
                    si += 1;
                }
                b'\\' if pi + 1 < p.len() => {
                    pi += 1;
                    if si >= s.len() || p[pi] != s[si] {
                        return false;
                    }
                    si += 1;
                }
                c => {
                    if si >= s.len() || c != s[si] {
                        return false;
                    }
                    si += 1;
                }
            }
            pi += 1;
        }
        si == s.len()
    }
    m(pattern, s, 0)
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
    }
}
