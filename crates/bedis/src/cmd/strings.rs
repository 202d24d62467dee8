//! String commands: GET SET (NX XX GET EX PX EXAT PXAT KEEPTTL) SETNX SETEX PSETEX MGET MSET
//! MSETNX GETSET GETDEL GETEX APPEND STRLEN GETRANGE SUBSTR SETRANGE INCR DECR INCRBY DECRBY
//! INCRBYFLOAT.

use super::{err, now_us, parse_f64, parse_i64, Reply, Session};
use crate::db::{Access, Change, Kind, Stored};
use crate::frame::{format_double, Frame};

const MAX_STRING: usize = 512 << 20;

/// The string payload of a value, or WRONGTYPE.
fn string_of(v: Option<&Stored>) -> Result<Option<&[u8]>, Reply> {
    match v {
        None => Ok(None),
        Some(s) if s.kind == Kind::String => Ok(Some(&s.payload)),
        Some(_) => Err(err::wrongtype()),
    }
}

fn expiry(v: Option<&Stored>) -> Option<u64> {
    v.and_then(|s| s.expire_at_us)
}

/// An expiry option value → absolute µs, or the error Redis gives for it.
fn expire_at(unit_ms: u64, absolute: bool, arg: &[u8], cmd: &str) -> Result<u64, Reply> {
    let n = parse_i64(arg).ok_or_else(err::not_int)?;
    if n <= 0 {
        return Err(Frame::err(format!(
            "ERR invalid expire time in '{cmd}' command"
        )));
    }
    let us = (n as u64)
        .checked_mul(unit_ms * 1000)
        .ok_or_else(|| Frame::err(format!("ERR invalid expire time in '{cmd}' command")))?;
    Ok(if absolute {
        us
    } else {
        now_us().saturating_add(us)
    })
}

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
        "get" => {
            let v = acc.get(db, &a[0]).await.map_err(be)?;
            Ok(string_of(v.as_ref())?
                .map(Frame::bulk)
                .unwrap_or(Frame::Null))
        }
        "set" => set(acc, db, a).await,
        "setnx" => {
            let set = acc
                .update(db, &a[0], |cur| match cur {
                    Some(_) => (Change::Keep, false),
                    None => (
                        Change::Put {
                            kind: Kind::String,
                            payload: a[1].clone(),
                            expire_at_us: None,
                        },
                        true,
                    ),
                })
                .await
                .map_err(be)?;
            Ok(Frame::Integer(set as i64))
        }
        "setex" | "psetex" => {
            let unit = if name == "setex" { 1000 } else { 1 };
            let at = expire_at(unit, false, &a[1], name)?;
            acc.put(db, &a[0], Kind::String, &a[2], Some(at))
                .await
                .map_err(be)?;
            Ok(Frame::ok())
        }
        "mget" => {
            let vals = acc.get_many(db, a).await.map_err(be)?;
            Ok(Frame::Array(
                vals.iter()
                    .map(|v| match v {
                        Some(s) if s.kind == Kind::String => Frame::bulk(s.payload.clone()),
                        _ => Frame::Null,
                    })
                    .collect(),
            ))
        }
        "mset" => {
            if !a.len().is_multiple_of(2) {
                return Err(err::arity("mset"));
            }
            for kv in a.chunks(2) {
                acc.put(db, &kv[0], Kind::String, &kv[1], None)
                    .await
                    .map_err(be)?;
            }
            Ok(Frame::ok())
        }
        "msetnx" => {
            if !a.len().is_multiple_of(2) {
                return Err(err::arity("msetnx"));
            }
            // Atomic: MSETNX runs in a serializable transaction (`cmd::ATOMIC`).
            let keys: Vec<Vec<u8>> = a.chunks(2).map(|kv| kv[0].clone()).collect();
            if acc
                .get_many(db, &keys)
                .await
                .map_err(be)?
                .iter()
                .any(|v| v.is_some())
            {
                return Ok(Frame::Integer(0));
            }
            for kv in a.chunks(2) {
                acc.put(db, &kv[0], Kind::String, &kv[1], None)
                    .await
                    .map_err(be)?;
            }
            Ok(Frame::Integer(1))
        }
        "getset" => {
            let old = acc
                .update(db, &a[0], |cur| match string_of(cur) {
                    Err(e) => (Change::Keep, Err(e)),
                    Ok(old) => (
                        Change::Put {
                            kind: Kind::String,
                            payload: a[1].clone(),
                            expire_at_us: None,
                        },
                        Ok(old.map(|o| o.to_vec())),
                    ),
                })
                .await
                .map_err(be)??;
            Ok(old.map(Frame::bulk).unwrap_or(Frame::Null))
        }
        "getdel" => {
            let old = acc
                .update(db, &a[0], |cur| match string_of(cur) {
                    Err(e) => (Change::Keep, Err(e)),
                    Ok(None) => (Change::Keep, Ok(None)),
                    Ok(Some(o)) => (Change::Delete, Ok(Some(o.to_vec()))),
                })
                .await
                .map_err(be)??;
            Ok(old.map(Frame::bulk).unwrap_or(Frame::Null))
        }
        "getex" => getex(acc, db, a).await,
        "append" => {
            let len = acc
                .update(db, &a[0], |cur| match string_of(cur) {
                    Err(e) => (Change::Keep, Err(e)),
                    Ok(old) => {
                        let mut v = old.map(|o| o.to_vec()).unwrap_or_default();
                        v.extend_from_slice(&a[1]);
                        if v.len() > MAX_STRING {
                            return (
                                Change::Keep,
                                Err(Frame::err(
                                    "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                                )),
                            );
                        }
                        let n = v.len() as i64;
                        (
                            Change::Put {
                                kind: Kind::String,
                                payload: v,
                                expire_at_us: expiry(cur),
                            },
                            Ok(n),
                        )
                    }
                })
                .await
                .map_err(be)??;
            Ok(Frame::Integer(len))
        }
        "strlen" => {
            let v = acc.get(db, &a[0]).await.map_err(be)?;
            Ok(Frame::Integer(
                string_of(v.as_ref())?.map(|s| s.len() as i64).unwrap_or(0),
            ))
        }
        "getrange" | "substr" => {
            let (Some(start), Some(end)) = (parse_i64(&a[1]), parse_i64(&a[2])) else {
                return Err(err::not_int());
            };
            let v = acc.get(db, &a[0]).await.map_err(be)?;
            let s = string_of(v.as_ref())?.unwrap_or(&[]);
            Ok(Frame::bulk(range(s, start, end)))
        }
        "setrange" => {
            let off = parse_i64(&a[1]).ok_or_else(err::not_int)?;
            if off < 0 {
                return Err(Frame::err("ERR offset is out of range"));
            }
            let off = off as usize;
            if off + a[2].len() > MAX_STRING {
                return Err(Frame::err(
                    "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                ));
            }
            let len = acc
                .update(db, &a[0], |cur| match string_of(cur) {
                    Err(e) => (Change::Keep, Err(e)),
                    Ok(old) => {
                        let mut v = old.map(|o| o.to_vec()).unwrap_or_default();
                        if a[2].is_empty() {
                            return (Change::Keep, Ok(v.len() as i64));
                        }
                        if v.len() < off + a[2].len() {
                            v.resize(off + a[2].len(), 0);
                        }
                        v[off..off + a[2].len()].copy_from_slice(&a[2]);
                        let n = v.len() as i64;
                        (
                            Change::Put {
                                kind: Kind::String,
                                payload: v,
                                expire_at_us: expiry(cur),
                            },
                            Ok(n),
                        )
                    }
                })
                .await
                .map_err(be)??;
            Ok(Frame::Integer(len))
        }
        "incr" | "decr" | "incrby" | "decrby" => {
            let by = match name {
                "incr" => 1,
                "decr" => -1,
                _ => parse_i64(&a[1]).ok_or_else(err::not_int)?,
            };
            let by = if name == "decrby" {
                by.checked_neg()
                    .ok_or_else(|| Frame::err("ERR decrement would overflow"))?
            } else {
                by
            };
            let n = acc
                .update(db, &a[0], |cur| {
                    let old = match string_of(cur) {
                        Err(e) => return (Change::Keep, Err(e)),
                        Ok(None) => 0,
                        Ok(Some(v)) => match parse_i64(v) {
                            Some(n) => n,
                            None => return (Change::Keep, Err(err::not_int())),
                        },
                    };
                    match old.checked_add(by) {
                        None => (
                            Change::Keep,
                            Err(Frame::err("ERR increment or decrement would overflow")),
                        ),
                        Some(n) => (
                            Change::Put {
                                kind: Kind::String,
                                payload: n.to_string().into_bytes(),
                                expire_at_us: expiry(cur),
                            },
                            Ok(n),
                        ),
                    }
                })
                .await
                .map_err(be)??;
            Ok(Frame::Integer(n))
        }
        "incrbyfloat" => {
            let by = parse_f64(&a[1]).ok_or_else(err::not_float)?;
            let v = acc
                .update(db, &a[0], |cur| {
                    let old = match string_of(cur) {
                        Err(e) => return (Change::Keep, Err(e)),
                        Ok(None) => 0.0,
                        Ok(Some(v)) => match parse_f64(v) {
                            Some(n) => n,
                            None => return (Change::Keep, Err(err::not_float())),
                        },
                    };
                    let n = old + by;
                    if !n.is_finite() {
                        return (
                            Change::Keep,
                            Err(Frame::err("ERR increment would produce NaN or Infinity")),
                        );
                    }
                    let text = format_double(n);
                    (
                        Change::Put {
                            kind: Kind::String,
                            payload: text.clone().into_bytes(),
                            expire_at_us: expiry(cur),
                        },
                        Ok(text),
                    )
                })
                .await
                .map_err(be)??;
            Ok(Frame::bulk(v))
        }
        _ => Err(Frame::err(format!("ERR unknown command '{name}'"))),
    }
}

/// Redis's GETRANGE indexing (negative from the end, inclusive end, clamped).
fn range(s: &[u8], start: i64, end: i64) -> Vec<u8> {
    let len = s.len() as i64;
    if len == 0 {
        return Vec::new();
    }
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (norm(start), norm(end).min(len - 1));
    if start > end || start >= len {
        return Vec::new();
    }
    s[start as usize..=end as usize].to_vec()
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms-ts | KEEPTTL]
async fn set(acc: &mut Access<'_>, db: usize, a: &[Vec<u8>]) -> Result<Reply, Reply> {
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut expire: Option<u64> = None;
    let mut i = 2;
    while i < a.len() {
        let opt = String::from_utf8_lossy(&a[i]).to_ascii_uppercase();
        match opt.as_str() {
            "NX" if !xx => nx = true,
            "XX" if !nx => xx = true,
            "GET" => get = true,
            "KEEPTTL" if expire.is_none() => keepttl = true,
            "EX" | "PX" | "EXAT" | "PXAT" if expire.is_none() && !keepttl && i + 1 < a.len() => {
                let (unit, abs) = match opt.as_str() {
                    "EX" => (1000, false),
                    "PX" => (1, false),
                    "EXAT" => (1000, true),
                    _ => (1, true),
                };
                expire = Some(expire_at(unit, abs, &a[i + 1], "set")?);
                i += 1;
            }
            _ => return Err(err::syntax()),
        }
        i += 1;
    }
    let value = a[1].clone();
    if !(nx || xx || get || keepttl) {
        // A plain SET overwrites whatever is there: no need to read it first.
        acc.put(db, &a[0], Kind::String, &value, expire)
            .await
            .map_err(err::backend)?;
        return Ok(Frame::ok());
    }
    let (done, old) = acc
        .update(db, &a[0], |cur| {
            if get {
                if let Err(e) = string_of(cur) {
                    return (Change::Keep, Err(e));
                }
            }
            let old = cur.map(|c| c.payload.clone());
            if (nx && cur.is_some()) || (xx && cur.is_none()) {
                return (Change::Keep, Ok((false, old)));
            }
            let exp = if keepttl { expiry(cur) } else { expire };
            (
                Change::Put {
                    kind: Kind::String,
                    payload: value.clone(),
                    expire_at_us: exp,
                },
                Ok((true, old)),
            )
        })
        .await
        .map_err(err::backend)??;
    if get {
        return Ok(old.map(Frame::bulk).unwrap_or(Frame::Null));
    }
    Ok(if done { Frame::ok() } else { Frame::Null })
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST]
async fn getex(acc: &mut Access<'_>, db: usize, a: &[Vec<u8>]) -> Result<Reply, Reply> {
    enum Ttl {
        Same,
        Persist,
        At(u64),
    }
    let ttl = match a.len() {
        1 => Ttl::Same,
        2 if a[1].eq_ignore_ascii_case(b"persist") => Ttl::Persist,
        3 => {
            let opt = String::from_utf8_lossy(&a[1]).to_ascii_uppercase();
            let (unit, abs) = match opt.as_str() {
                "EX" => (1000, false),
                "PX" => (1, false),
                "EXAT" => (1000, true),
                "PXAT" => (1, true),
                _ => return Err(err::syntax()),
            };
            Ttl::At(expire_at(unit, abs, &a[2], "getex")?)
        }
        _ => return Err(err::syntax()),
    };
    let v = acc
        .update(db, &a[0], |cur| match string_of(cur) {
            Err(e) => (Change::Keep, Err(e)),
            Ok(None) => (Change::Keep, Ok(None)),
            Ok(Some(v)) => {
                let change = match ttl {
                    Ttl::Same => Change::Keep,
                    Ttl::Persist if expiry(cur).is_none() => Change::Keep,
                    Ttl::Persist => Change::Put {
                        kind: Kind::String,
                        payload: v.to_vec(),
                        expire_at_us: None,
                    },
                    Ttl::At(at) => Change::Put {
                        kind: Kind::String,
                        payload: v.to_vec(),
                        expire_at_us: Some(at),
                    },
                };
                (change, Ok(Some(v.to_vec())))
            }
        })
        .await
        .map_err(err::backend)??;
    Ok(v.map(Frame::bulk).unwrap_or(Frame::Null))
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn getrange_indexing() {
        assert_eq!(range(b"This is a string", 0, 3), b"This");
        assert_eq!(range(b"This is a string", -3, -1), b"ing");
        assert_eq!(range(b"This is a string", 0, -1), b"This is a string");
        assert_eq!(range(b"This is a string", 10, 100), b"string");
        assert_eq!(range(b"abc", 5, 10), b"");
    }
}
