//! Hash commands: HSET HMSET HSETNX HGET HMGET HGETALL HKEYS HVALS HDEL HEXISTS HLEN HSTRLEN
//! HINCRBY HINCRBYFLOAT HSCAN HRANDFIELD. A field is one element row (sub-key = the field,
//! data = the value), so HSET on a huge hash writes one row.

use super::coll::{rand_count, random_picks, save, scan_opts, scan_reply, typed};
use super::keys::glob_match;
use super::{err, parse_f64, parse_i64, Reply, Session};
use crate::db::{Access, Coll, Kind};
use crate::frame::{format_double, Frame};

pub(super) async fn run(s: &mut Session, acc: &mut Access<'_>, name: &str, a: &[Vec<u8>]) -> Reply {
    match run_inner(s.db, s.proto, acc, name, a).await {
        Ok(r) | Err(r) => r,
    }
}

async fn run_inner(
    db: usize,
    proto: u8,
    acc: &mut Access<'_>,
    name: &str,
    a: &[Vec<u8>],
) -> Result<Reply, Reply> {
    let be = err::backend;
    let key = &a[0];
    match name {
        "hset" | "hmset" | "hsetnx" => {
            if a.len() < 3 || a.len().is_multiple_of(2) || (name == "hsetnx" && a.len() != 3) {
                return Err(err::arity(name));
            }
            // The last value given for a field wins, as in Redis.
            let mut pairs: std::collections::BTreeMap<&[u8], &[u8]> = Default::default();
            for fv in a[1..].chunks(2) {
                pairs.insert(&fv[0], &fv[1]);
            }
            let fields: Vec<Vec<u8>> = pairs.keys().map(|f| f.to_vec()).collect();
            loop {
                let view = acc.read(db, key, &fields).await.map_err(be)?;
                let mut c = typed(&view, Kind::Hash)?.unwrap_or_else(Coll::fresh);
                let new = view.elems.iter().filter(|e| e.is_none()).count() as i64;
                if name == "hsetnx" && new == 0 {
                    return Ok(Frame::Integer(0));
                }
                c.count += new;
                let writes = pairs
                    .iter()
                    .map(|(f, v)| (f.to_vec(), Some(v.to_vec())))
                    .collect();
                if save(acc, db, key, &view, Kind::Hash, c, writes).await? {
                    return Ok(match name {
                        "hmset" => Frame::ok(),
                        _ => Frame::Integer(new),
                    });
                }
            }
        }
        "hget" | "hexists" | "hstrlen" => {
            if a.len() != 2 {
                return Err(err::arity(name));
            }
            let view = acc.read(db, key, &a[1..2]).await.map_err(be)?;
            typed(&view, Kind::Hash)?;
            let v = view.elems.into_iter().next().flatten();
            Ok(match name {
                "hget" => v.map(Frame::bulk).unwrap_or(Frame::Null),
                "hexists" => Frame::Integer(v.is_some() as i64),
                _ => Frame::Integer(v.map_or(0, |v| v.len() as i64)),
            })
        }
        "hmget" => {
            let view = acc.read(db, key, &a[1..]).await.map_err(be)?;
            typed(&view, Kind::Hash)?;
            Ok(Frame::Array(
                view.elems
                    .into_iter()
                    .map(|v| v.map(Frame::bulk).unwrap_or(Frame::Null))
                    .collect(),
            ))
        }
        "hlen" => {
            let view = acc.read(db, key, &[]).await.map_err(be)?;
            Ok(Frame::Integer(
                typed(&view, Kind::Hash)?.map_or(0, |c| c.count),
            ))
        }
        "hgetall" | "hkeys" | "hvals" => {
            let view = acc.read(db, key, &[]).await.map_err(be)?;
            typed(&view, Kind::Hash)?;
            let all = acc.scan_all(db, key, &view).await.map_err(be)?;
            Ok(match name {
                "hgetall" => Frame::Map(
                    all.into_iter()
                        .map(|(f, v)| (Frame::bulk(f), Frame::bulk(v)))
                        .collect(),
                ),
                "hkeys" => Frame::Array(all.into_iter().map(|(f, _)| Frame::bulk(f)).collect()),
                _ => Frame::Array(all.into_iter().map(|(_, v)| Frame::bulk(v)).collect()),
            })
        }
        "hdel" => {
            let mut fields = a[1..].to_vec();
            fields.sort();
            fields.dedup();
            loop {
                let view = acc.read(db, key, &fields).await.map_err(be)?;
                let Some(mut c) = typed(&view, Kind::Hash)? else {
                    return Ok(Frame::Integer(0));
                };
                let writes: Vec<_> = fields
                    .iter()
                    .zip(&view.elems)
                    .filter(|(_, v)| v.is_some())
                    .map(|(f, _)| (f.clone(), None))
                    .collect();
                let n = writes.len() as i64;
                if n == 0 {
                    return Ok(Frame::Integer(0));
                }
                c.count -= n;
                if save(acc, db, key, &view, Kind::Hash, c, writes).await? {
                    return Ok(Frame::Integer(n));
                }
            }
        }
        "hincrby" | "hincrbyfloat" => {
            if a.len() != 3 {
                return Err(err::arity(name));
            }
            let float = name == "hincrbyfloat";
            let by_i = parse_i64(&a[2]);
            let by_f = parse_f64(&a[2]);
            if !float && by_i.is_none() {
                return Err(err::not_int());
            }
            if float && by_f.is_none() {
                return Err(err::not_float());
            }
            if by_f.is_some_and(|f| !f.is_finite()) && float {
                return Err(Frame::err("ERR value is NaN or Infinity"));
            }
            loop {
                let view = acc.read(db, key, &a[1..2]).await.map_err(be)?;
                let mut c = typed(&view, Kind::Hash)?.unwrap_or_else(Coll::fresh);
                let old = view.elems[0].clone();
                if old.is_none() {
                    c.count += 1;
                }
                let (new, reply) = if float {
                    let cur = match &old {
                        None => 0.0,
                        Some(v) => parse_f64(v)
                            .ok_or_else(|| Frame::err("ERR hash value is not a float"))?,
                    };
                    let n = cur + by_f.unwrap_or(0.0);
                    if !n.is_finite() {
                        return Err(Frame::err("ERR increment would produce NaN or Infinity"));
                    }
                    let s = format_double(n);
                    (s.clone().into_bytes(), Frame::bulk(s))
                } else {
                    let cur = match &old {
                        None => 0,
                        Some(v) => parse_i64(v)
                            .ok_or_else(|| Frame::err("ERR hash value is not an integer"))?,
                    };
                    let n = cur
                        .checked_add(by_i.unwrap_or(0))
                        .ok_or_else(|| Frame::err("ERR increment or decrement would overflow"))?;
                    (n.to_string().into_bytes(), Frame::Integer(n))
                };
                let writes = vec![(a[1].clone(), Some(new))];
                if save(acc, db, key, &view, Kind::Hash, c, writes).await? {
                    return Ok(reply);
                }
            }
        }
        "hscan" => {
            let (opts, novalues) = match a.last() {
                Some(l) if a.len() > 2 && l.eq_ignore_ascii_case(b"novalues") => {
                    (&a[1..a.len() - 1], true)
                }
                _ => (&a[1..], false),
            };
            let pattern = scan_opts(opts)?;
            let view = acc.read(db, key, &[]).await.map_err(be)?;
            typed(&view, Kind::Hash)?;
            let all = acc.scan_all(db, key, &view).await.map_err(be)?;
            let mut items = Vec::new();
            for (f, v) in all {
                if pattern.as_ref().is_none_or(|p| glob_match(p, &f)) {
                    items.push(Frame::bulk(f));
                    if !novalues {
                        items.push(Frame::bulk(v));
                    }
                }
            }
            Ok(scan_reply(items))
        }
        "hrandfield" => {
            let count = match a.get(1) {
                Some(c) => Some(rand_count(c)?),
                None => None,
            };
            let with_values = match a.get(2) {
                None => false,
                Some(w) if w.eq_ignore_ascii_case(b"withvalues") && a.len() == 3 => true,
                Some(_) => return Err(err::syntax()),
            };
            let view = acc.read(db, key, &[]).await.map_err(be)?;
            let Some(_) = typed(&view, Kind::Hash)? else {
                return Ok(if count.is_some() {
                    Frame::Array(Vec::new())
                } else {
                    Frame::Null
                });
            };
            let all = acc.scan_all(db, key, &view).await.map_err(be)?;
            let Some(count) = count else {
                let i = super::coll::pick(all.len().max(1));
                return Ok(all
                    .get(i)
                    .map(|(f, _)| Frame::bulk(f.clone()))
                    .unwrap_or(Frame::Null));
            };
            let mut out = Vec::new();
            for i in random_picks(all.len(), count) {
                let (f, v) = &all[i];
                if with_values && proto >= 3 {
                    out.push(Frame::Array(vec![
                        Frame::bulk(f.clone()),
                        Frame::bulk(v.clone()),
                    ]));
                } else {
                    out.push(Frame::bulk(f.clone()));
                    if with_values {
                        out.push(Frame::bulk(v.clone()));
                    }
                }
            }
            Ok(Frame::Array(out))
        }
        _ => Err(Frame::err("ERR unknown hash command")),
    }
}
