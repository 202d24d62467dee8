//! Sorted-set commands: ZADD ZREM ZSCORE ZMSCORE ZINCRBY ZCARD ZCOUNT ZRANGE ZRANGEBYSCORE
//! ZREVRANGE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZLEXCOUNT ZRANK ZREVRANK ZPOPMIN
//! ZPOPMAX BZPOPMIN BZPOPMAX ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREMRANGEBYLEX ZUNIONSTORE
//! ZINTERSTORE ZUNION ZINTER ZDIFF ZDIFFSTORE ZSCAN ZRANDMEMBER.
//!
//! A member has two element rows: `0x00 ‖ member` → its score (f64 bits, BE), and the index
//! row `0x01 ‖ sortable(score) ‖ member`, so a scan of the index yields members in Redis's
//! order (by score, then by member bytes).

use std::collections::BTreeMap;

use super::coll::{
    positive_count, rand_count, random_picks, save, scan_opts, scan_reply, timeout_arg, typed,
    Blocker,
};
use super::keys::glob_match;
use super::{err, parse_f64, parse_i64, Reply, Session};
use crate::db::{Access, Coll, ElemWrite, Kind, View};
use crate::frame::Frame;

/// Sub-key of a member's score row.
fn member_sub(m: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + m.len());
    k.push(0);
    k.extend_from_slice(m);
    k
}

/// Scores as order-preserving bytes.
fn sortable(score: f64) -> [u8; 8] {
    let score = if score == 0.0 { 0.0 } else { score };
    let bits = score.to_bits();
    let ord = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    ord.to_be_bytes()
}

/// Sub-key of a member's index row.
fn index_sub(score: f64, m: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + m.len());
    k.push(1);
    k.extend_from_slice(&sortable(score));
    k.extend_from_slice(m);
    k
}

fn decode_score(d: &[u8]) -> Option<f64> {
    Some(f64::from_bits(u64::from_be_bytes(d.try_into().ok()?)))
}

/// Writes that set member `m` to `score` (its old score `old`, if any).
fn set_writes(m: &[u8], old: Option<f64>, score: f64, w: &mut Vec<ElemWrite>) {
    if let Some(o) = old {
        w.push((index_sub(o, m), None));
    }
    w.push((member_sub(m), Some(score.to_bits().to_be_bytes().to_vec())));
    w.push((index_sub(score, m), Some(Vec::new())));
}

fn remove_writes(m: &[u8], old: f64, w: &mut Vec<ElemWrite>) {
    w.push((member_sub(m), None));
    w.push((index_sub(old, m), None));
}

/// The sorted set at `key` as read, with every member in order (score, member).
async fn read_all(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
) -> Result<(View, Option<Coll>, Vec<(f64, Vec<u8>)>), Reply> {
    let view = acc.read(db, key, &[]).await.map_err(err::backend)?;
    let Some(c) = typed(&view, Kind::ZSet)? else {
        return Ok((view, None, Vec::new()));
    };
    let rows = acc
        .scan(db, key, &view, Some(&[1]), Some(&[2]), usize::MAX)
        .await
        .map_err(err::backend)?;
    let all = rows
        .into_iter()
        .filter(|(sub, _)| sub.len() >= 9)
        .map(|(sub, _)| {
            let ord = u64::from_be_bytes(sub[1..9].try_into().unwrap_or_default());
            let bits = if ord >> 63 == 1 {
                ord & !(1 << 63)
            } else {
                !ord
            };
            (f64::from_bits(bits), sub[9..].to_vec())
        })
        .collect();
    Ok((view, Some(c), all))
}

/// Members of the set or sorted set at `key` with their scores (a set's members score 1),
/// for ZUNIONSTORE and friends.
async fn read_weighted(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
) -> Result<Option<BTreeMap<Vec<u8>, f64>>, Reply> {
    let view = acc.read(db, key, &[]).await.map_err(err::backend)?;
    match view.meta.as_ref().map(|m| m.kind) {
        None => Ok(None),
        Some(Kind::Set) => Ok(Some(
            acc.scan_all(db, key, &view)
                .await
                .map_err(err::backend)?
                .into_iter()
                .map(|(m, _)| (m, 1.0))
                .collect(),
        )),
        Some(Kind::ZSet) => Ok(Some(
            read_all(acc, db, key)
                .await?
                .2
                .into_iter()
                .map(|(s, m)| (m, s))
                .collect(),
        )),
        Some(_) => Err(err::wrongtype()),
    }
}

/// Replace whatever `key` holds with the sorted set `members` (deleting it if empty).
async fn store(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
    members: &BTreeMap<Vec<u8>, f64>,
) -> Result<(), Reply> {
    acc.delete(db, key).await.map_err(err::backend)?;
    if members.is_empty() {
        return Ok(());
    }
    let view = acc.read(db, key, &[]).await.map_err(err::backend)?;
    let mut c = Coll::fresh();
    c.count = members.len() as i64;
    let mut w = Vec::new();
    for (m, s) in members {
        set_writes(m, None, *s, &mut w);
    }
    if !save(acc, db, key, &view, Kind::ZSet, c, w).await? {
        return Err(Frame::err("ERR concurrent change to the destination key"));
    }
    Ok(())
}

/// Remove `victims` (score, member) from the sorted set `c` read in `view`.
async fn remove(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
    view: &View,
    mut c: Coll,
    victims: &[(f64, Vec<u8>)],
) -> Result<bool, Reply> {
    if victims.is_empty() {
        return Ok(true);
    }
    let mut w = Vec::new();
    for (s, m) in victims {
        remove_writes(m, *s, &mut w);
    }
    c.count -= victims.len() as i64;
    save(acc, db, key, view, Kind::ZSet, c, w).await
}

pub(super) async fn run(s: &mut Session, acc: &mut Access<'_>, name: &str, a: &[Vec<u8>]) -> Reply {
    match run_inner(s, acc, name, a).await {
        Ok(r) | Err(r) => r,
    }
}

fn score_arg(b: &[u8]) -> Result<f64, Reply> {
    parse_f64(b).ok_or_else(err::not_float)
}

/// A score bound of ZRANGEBYSCORE and friends: `1.5`, `(1.5`, `-inf`, `+inf`.
#[derive(Clone, Copy)]
struct ScoreBound {
    v: f64,
    excl: bool,
}

impl ScoreBound {
    fn parse(b: &[u8]) -> Result<ScoreBound, Reply> {
        let bad = || Frame::err("ERR min or max is not a float");
        let (excl, rest) = match b.first() {
            Some(b'(') => (true, &b[1..]),
            _ => (false, b),
        };
        Ok(ScoreBound {
            v: parse_f64(rest).ok_or_else(bad)?,
            excl,
        })
    }
    fn above_min(&self, s: f64) -> bool {
        if self.excl {
            s > self.v
        } else {
            s >= self.v
        }
    }
    fn below_max(&self, s: f64) -> bool {
        if self.excl {
            s < self.v
        } else {
            s <= self.v
        }
    }
}

/// A lex bound: `-`, `+`, `[x` (inclusive), `(x` (exclusive).
#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

impl LexBound {
    fn parse(b: &[u8]) -> Result<LexBound, Reply> {
        match b.first() {
            Some(b'-') if b.len() == 1 => Ok(LexBound::Min),
            Some(b'+') if b.len() == 1 => Ok(LexBound::Max),
            Some(b'[') => Ok(LexBound::Incl(b[1..].to_vec())),
            Some(b'(') => Ok(LexBound::Excl(b[1..].to_vec())),
            _ => Err(Frame::err("ERR min or max not valid string range item")),
        }
    }
    fn above_min(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Incl(x) => m >= &x[..],
            LexBound::Excl(x) => m > &x[..],
        }
    }
    fn below_max(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(x) => m <= &x[..],
            LexBound::Excl(x) => m < &x[..],
        }
    }
}

/// What a ZRANGE-family command selects.
enum By {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

/// Redis's start/stop rank indexes → `[from, to)` within `len`.
fn span(start: i64, stop: i64, len: i64) -> (usize, usize) {
    let norm = |i: i64| if i < 0 { len + i } else { i };
    let from = norm(start).clamp(0, len);
    let to = (norm(stop) + 1).min(len);
    (from as usize, to.max(from) as usize)
}

/// Select from `all` (in ascending order): `rev` walks from the top, and for score and lex
/// ranges `min`/`max` are given in the walking order (as ZREVRANGEBYSCORE takes max first).
fn select(
    all: Vec<(f64, Vec<u8>)>,
    by: &By,
    rev: bool,
    limit: Option<(i64, i64)>,
) -> Vec<(f64, Vec<u8>)> {
    let mut items = all;
    if rev {
        items.reverse();
    }
    let len = items.len() as i64;
    let picked: Vec<(f64, Vec<u8>)> = match by {
        By::Rank(start, stop) => {
            let (from, to) = span(*start, *stop, len);
            items.drain(from..to).collect()
        }
        By::Score(a, b) => {
            let (min, max) = if rev { (b, a) } else { (a, b) };
            items
                .into_iter()
                .filter(|(s, _)| min.above_min(*s) && max.below_max(*s))
                .collect()
        }
        By::Lex(a, b) => {
            let (min, max) = if rev { (b, a) } else { (a, b) };
            items
                .into_iter()
                .filter(|(_, m)| min.above_min(m) && max.below_max(m))
                .collect()
        }
    };
    match limit {
        Some((off, count)) if off >= 0 => {
            let it = picked.into_iter().skip(off as usize);
            if count < 0 {
                it.collect()
            } else {
                it.take(count as usize).collect()
            }
        }
        Some(_) => Vec::new(),
        None => picked,
    }
}

fn reply_items(items: Vec<(f64, Vec<u8>)>, with_scores: bool, proto: u8) -> Frame {
    let mut out = Vec::with_capacity(items.len() * if with_scores { 2 } else { 1 });
    for (s, m) in items {
        if with_scores && proto >= 3 {
            out.push(Frame::Array(vec![Frame::bulk(m), Frame::Score(s)]));
        } else {
            out.push(Frame::bulk(m));
            if with_scores {
                out.push(Frame::Score(s));
            }
        }
    }
    Frame::Array(out)
}

async fn run_inner(
    s: &mut Session,
    acc: &mut Access<'_>,
    name: &str,
    a: &[Vec<u8>],
) -> Result<Reply, Reply> {
    let db = s.db;
    let be = err::backend;
    let key = &a[0];
    match name {
        "zadd" | "zincrby" => {
            let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
                (false, false, false, false, false, name == "zincrby");
            let mut i = 1;
            if name == "zadd" {
                while i < a.len() {
                    match String::from_utf8_lossy(&a[i]).to_ascii_uppercase().as_str() {
                        "NX" => nx = true,
                        "XX" => xx = true,
                        "GT" => gt = true,
                        "LT" => lt = true,
                        "CH" => ch = true,
                        "INCR" => incr = true,
                        _ => break,
                    }
                    i += 1;
                }
            }
            let rest = &a[i..];
            if rest.is_empty() || !rest.len().is_multiple_of(2) {
                return Err(err::syntax());
            }
            if nx && xx {
                return Err(Frame::err(
                    "ERR XX and NX options at the same time are not compatible",
                ));
            }
            if ((gt || lt) && nx) || (gt && lt) {
                return Err(Frame::err(
                    "ERR GT, LT, and/or NX options at the same time are not compatible",
                ));
            }
            if incr && rest.len() != 2 {
                return Err(Frame::err(
                    "ERR INCR option supports a single increment-element pair",
                ));
            }
            let mut pairs: Vec<(f64, Vec<u8>)> = Vec::new();
            for p in rest.chunks(2) {
                pairs.push((score_arg(&p[0])?, p[1].clone()));
            }
            let subs: Vec<Vec<u8>> = pairs.iter().map(|(_, m)| member_sub(m)).collect();
            loop {
                let view = acc.read(db, key, &subs).await.map_err(be)?;
                let mut c = typed(&view, Kind::ZSet)?.unwrap_or_else(Coll::fresh);
                let mut w = Vec::new();
                let (mut added, mut changed) = (0i64, 0i64);
                let mut seen: BTreeMap<Vec<u8>, Option<f64>> = BTreeMap::new();
                let mut result = None;
                for ((score, m), old) in pairs.iter().zip(&view.elems) {
                    let old = match seen.get(m) {
                        Some(prev) => *prev,
                        None => old.as_deref().and_then(decode_score),
                    };
                    let mut new = *score;
                    if incr {
                        new += old.unwrap_or(0.0);
                        if new.is_nan() {
                            return Err(Frame::err("ERR resulting score is not a number (NaN)"));
                        }
                    }
                    let skip = match old {
                        None => xx,
                        Some(o) => nx || (gt && new <= o) || (lt && new >= o),
                    };
                    if skip {
                        continue;
                    }
                    result = Some(new);
                    match old {
                        None => added += 1,
                        Some(o) if o == new => {
                            continue;
                        }
                        Some(_) => changed += 1,
                    }
                    set_writes(m, old, new, &mut w);
                    seen.insert(m.clone(), Some(new));
                }
                c.count += added;
                let done = w.is_empty() || save(acc, db, key, &view, Kind::ZSet, c, w).await?;
                if done {
                    super::coll::notify_pushed(acc.dbs);
                    return Ok(if incr {
                        result.map(Frame::Score).unwrap_or(Frame::Null)
                    } else {
                        Frame::Integer(added + if ch { changed } else { 0 })
                    });
                }
            }
        }
        "zrem" => {
            let mut ms = a[1..].to_vec();
            ms.sort();
            ms.dedup();
            let subs: Vec<Vec<u8>> = ms.iter().map(|m| member_sub(m)).collect();
            loop {
                let view = acc.read(db, key, &subs).await.map_err(be)?;
                let Some(c) = typed(&view, Kind::ZSet)? else {
                    return Ok(Frame::Integer(0));
                };
                let victims: Vec<(f64, Vec<u8>)> = ms
                    .iter()
                    .zip(&view.elems)
                    .filter_map(|(m, v)| Some((decode_score(v.as_deref()?)?, m.clone())))
                    .collect();
                if remove(acc, db, key, &view, c, &victims).await? {
                    return Ok(Frame::Integer(victims.len() as i64));
                }
            }
        }
        "zscore" | "zmscore" => {
            let subs: Vec<Vec<u8>> = a[1..].iter().map(|m| member_sub(m)).collect();
            let view = acc.read(db, key, &subs).await.map_err(be)?;
            typed(&view, Kind::ZSet)?;
            let scores: Vec<Frame> = view
                .elems
                .iter()
                .map(|v| {
                    v.as_deref()
                        .and_then(decode_score)
                        .map(Frame::Score)
                        .unwrap_or(Frame::Null)
                })
                .collect();
            Ok(if name == "zscore" {
                scores.into_iter().next().unwrap_or(Frame::Null)
            } else {
                Frame::Array(scores)
            })
        }
        "zcard" => {
            let view = acc.read(db, key, &[]).await.map_err(be)?;
            Ok(Frame::Integer(
                typed(&view, Kind::ZSet)?.map_or(0, |c| c.count),
            ))
        }
        "zcount" | "zlexcount" => {
            let by = if name == "zcount" {
                By::Score(ScoreBound::parse(&a[1])?, ScoreBound::parse(&a[2])?)
            } else {
                By::Lex(LexBound::parse(&a[1])?, LexBound::parse(&a[2])?)
            };
            let (_, _, all) = read_all(acc, db, key).await?;
            Ok(Frame::Integer(select(all, &by, false, None).len() as i64))
        }
        "zrange" | "zrangestore" => {
            let (dst, a) = if name == "zrangestore" {
                (Some(&a[0]), &a[1..])
            } else {
                (None, a)
            };
            if a.len() < 3 {
                return Err(err::arity(name));
            }
            let (mut byscore, mut bylex, mut rev, mut ws, mut limit) =
                (false, false, false, false, None);
            let mut i = 3;
            while i < a.len() {
                match String::from_utf8_lossy(&a[i]).to_ascii_uppercase().as_str() {
                    "BYSCORE" => byscore = true,
                    "BYLEX" => bylex = true,
                    "REV" => rev = true,
                    "WITHSCORES" if dst.is_none() => ws = true,
                    "LIMIT" if i + 2 < a.len() => {
                        limit = Some((
                            parse_i64(&a[i + 1]).ok_or_else(err::not_int)?,
                            parse_i64(&a[i + 2]).ok_or_else(err::not_int)?,
                        ));
                        i += 2;
                    }
                    _ => return Err(err::syntax()),
                }
                i += 1;
            }
            if byscore && bylex {
                return Err(err::syntax());
            }
            if limit.is_some() && !byscore && !bylex {
                return Err(Frame::err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"));
            }
            if ws && bylex {
                return Err(Frame::err(
                    "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
                ));
            }
            let by = if byscore {
                By::Score(ScoreBound::parse(&a[1])?, ScoreBound::parse(&a[2])?)
            } else if bylex {
                By::Lex(LexBound::parse(&a[1])?, LexBound::parse(&a[2])?)
            } else {
                By::Rank(
                    parse_i64(&a[1]).ok_or_else(err::not_int)?,
                    parse_i64(&a[2]).ok_or_else(err::not_int)?,
                )
            };
            let (_, _, all) = read_all(acc, db, &a[0]).await?;
            let items = select(all, &by, rev, limit);
            match dst {
                Some(d) => {
                    let n = items.len() as i64;
                    store(
                        acc,
                        db,
                        d,
                        &items.into_iter().map(|(s, m)| (m, s)).collect(),
                    )
                    .await?;
                    Ok(Frame::Integer(n))
                }
                None => Ok(reply_items(items, ws, s.proto)),
            }
        }
        "zrangebyscore" | "zrevrangebyscore" | "zrangebylex" | "zrevrangebylex" | "zrevrange" => {
            let rev = name.starts_with("zrev");
            let (mut ws, mut limit) = (false, None);
            let mut i = 3;
            while i < a.len() {
                match String::from_utf8_lossy(&a[i]).to_ascii_uppercase().as_str() {
                    "WITHSCORES" if !name.ends_with("lex") => ws = true,
                    "LIMIT" if i + 2 < a.len() && name != "zrevrange" => {
                        limit = Some((
                            parse_i64(&a[i + 1]).ok_or_else(err::not_int)?,
                            parse_i64(&a[i + 2]).ok_or_else(err::not_int)?,
                        ));
                        i += 2;
                    }
                    _ => return Err(err::syntax()),
                }
                i += 1;
            }
            let by = if name == "zrevrange" {
                By::Rank(
                    parse_i64(&a[1]).ok_or_else(err::not_int)?,
                    parse_i64(&a[2]).ok_or_else(err::not_int)?,
                )
            } else if name.ends_with("lex") {
                By::Lex(LexBound::parse(&a[1])?, LexBound::parse(&a[2])?)
            } else {
                By::Score(ScoreBound::parse(&a[1])?, ScoreBound::parse(&a[2])?)
            };
            let (_, _, all) = read_all(acc, db, key).await?;
            Ok(reply_items(select(all, &by, rev, limit), ws, s.proto))
        }
        "zrank" | "zrevrank" => {
            let (_, _, all) = read_all(acc, db, key).await?;
            let Some(i) = all.iter().position(|(_, m)| *m == a[1]) else {
                return Ok(Frame::Null);
            };
            Ok(Frame::Integer(if name == "zrank" {
                i as i64
            } else {
                (all.len() - 1 - i) as i64
            }))
        }
        "zpopmin" | "zpopmax" => {
            let count = match a.get(1) {
                Some(c) if a.len() == 2 => Some(positive_count(c)?),
                Some(_) => return Err(err::syntax()),
                None => None,
            };
            let popped = zpop(acc, db, key, name == "zpopmax", count.unwrap_or(1)).await?;
            let popped = popped.unwrap_or_default();
            if count.is_none() && s.proto >= 3 {
                return Ok(match popped.into_iter().next() {
                    Some((sc, m)) => Frame::Array(vec![Frame::bulk(m), Frame::Score(sc)]),
                    None => Frame::Array(Vec::new()),
                });
            }
            Ok(reply_items(
                popped,
                true,
                if count.is_some() { s.proto } else { 2 },
            ))
        }
        "bzpopmin" | "bzpopmax" => {
            let (keys, t) = a.split_at(a.len() - 1);
            let blocker = Blocker::new(timeout_arg(&t[0])?);
            let max = name == "bzpopmax";
            Ok(
                match zpop_first(acc, db, keys, max, 1, Some(blocker)).await? {
                    Some((k, v)) => match v.into_iter().next() {
                        Some((sc, m)) => {
                            Frame::Array(vec![Frame::bulk(k), Frame::bulk(m), Frame::Score(sc)])
                        }
                        None => Frame::NullArray,
                    },
                    None => Frame::NullArray,
                },
            )
        }
        "zmpop" | "bzmpop" => {
            let (blocker, a) = if name == "bzmpop" {
                (Some(Blocker::new(timeout_arg(&a[0])?)), &a[1..])
            } else {
                (None, a)
            };
            let super::lists::MpopArgs { keys, wh, count } = super::lists::mpop_args(a)?;
            let max = if wh.eq_ignore_ascii_case(b"max") {
                true
            } else if wh.eq_ignore_ascii_case(b"min") {
                false
            } else {
                return Err(err::syntax());
            };
            Ok(
                match zpop_first(acc, db, keys, max, count, blocker).await? {
                    Some((k, v)) => {
                        let items = v
                            .into_iter()
                            .map(|(sc, m)| Frame::Array(vec![Frame::bulk(m), Frame::Score(sc)]))
                            .collect();
                        Frame::Array(vec![Frame::bulk(k), Frame::Array(items)])
                    }
                    None => Frame::NullArray,
                },
            )
        }
        "zremrangebyrank" | "zremrangebyscore" | "zremrangebylex" => {
            let by = match name {
                "zremrangebyrank" => By::Rank(
                    parse_i64(&a[1]).ok_or_else(err::not_int)?,
                    parse_i64(&a[2]).ok_or_else(err::not_int)?,
                ),
                "zremrangebyscore" => {
                    By::Score(ScoreBound::parse(&a[1])?, ScoreBound::parse(&a[2])?)
                }
                _ => By::Lex(LexBound::parse(&a[1])?, LexBound::parse(&a[2])?),
            };
            loop {
                let (view, c, all) = read_all(acc, db, key).await?;
                let Some(c) = c else {
                    return Ok(Frame::Integer(0));
                };
                let victims = select(all, &by, false, None);
                if remove(acc, db, key, &view, c, &victims).await? {
                    return Ok(Frame::Integer(victims.len() as i64));
                }
            }
        }
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let op = &name[..name.len() - 5];
            let (m, _) = combine(acc, db, op, &a[1..], name).await?;
            let n = m.len() as i64;
            store(acc, db, &a[0], &m).await?;
            Ok(Frame::Integer(n))
        }
        "zintercard" => {
            let (n, limit) = super::coll::intercard_args(a, |parsed| match parsed {
                Some(_) => {
                    Frame::err("ERR at least 1 input key is needed for 'zintercard' command")
                }
                None => err::not_int(),
            })?;
            let (m, _) = combine(acc, db, "zinter", &a[..1 + n], name).await?;
            Ok(super::coll::limited(m.len(), limit))
        }
        "zunion" | "zinter" | "zdiff" => {
            let (m, ws) = combine(acc, db, name, a, name).await?;
            let mut items: Vec<(f64, Vec<u8>)> = m.into_iter().map(|(m, s)| (s, m)).collect();
            items.sort_by(|x, y| x.0.total_cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
            Ok(reply_items(items, ws, s.proto))
        }
        "zscan" => {
            let pattern = scan_opts(&a[1..])?;
            let (_, _, all) = read_all(acc, db, key).await?;
            let mut items = Vec::new();
            for (sc, m) in all {
                if pattern.as_ref().is_none_or(|p| glob_match(p, &m)) {
                    items.push(Frame::bulk(m));
                    items.push(Frame::Score(sc));
                }
            }
            Ok(scan_reply(items))
        }
        "zrandmember" => {
            let count = match a.get(1) {
                Some(c) => Some(rand_count(c)?),
                None => None,
            };
            let ws = match a.get(2) {
                None => false,
                Some(w) if w.eq_ignore_ascii_case(b"withscores") && a.len() == 3 => true,
                Some(_) => return Err(err::syntax()),
            };
            let (_, c, all) = read_all(acc, db, key).await?;
            if c.is_none() {
                return Ok(if count.is_some() {
                    Frame::Array(Vec::new())
                } else {
                    Frame::Null
                });
            }
            let Some(count) = count else {
                let i = super::coll::pick(all.len().max(1));
                return Ok(all
                    .get(i)
                    .map(|(_, m)| Frame::bulk(m.clone()))
                    .unwrap_or(Frame::Null));
            };
            let picked = random_picks(all.len(), count)
                .into_iter()
                .map(|i| all[i].clone())
                .collect();
            Ok(reply_items(picked, ws, s.proto))
        }
        _ => Err(Frame::err("ERR unknown sorted set command")),
    }
}

/// Pop up to `count` members from the first non-empty sorted set of `keys` (ZMPOP,
/// BZPOPMIN …), waiting with `blocker` (outside transactions) while they are all empty, as
/// `lists::pop_first` does. None: nothing before the timeout.
async fn zpop_first(
    acc: &mut Access<'_>,
    db: usize,
    keys: &[Vec<u8>],
    max: bool,
    count: usize,
    blocker: Option<Blocker>,
) -> Result<Option<(Vec<u8>, Vec<(f64, Vec<u8>)>)>, Reply> {
    let mut first = true;
    loop {
        let dbs = acc.dbs;
        let pushed = dbs.pushed.notified();
        for k in keys {
            let got = zpop(acc, db, k, max, count).await;
            if let Some(v) = super::coll::ignore_wrongtype_after_first(first, got)? {
                if !v.is_empty() {
                    return Ok(Some((k.clone(), v)));
                }
            }
        }
        first = false;
        match &blocker {
            Some(b) if !acc.transactional() && b.wait(pushed).await => {}
            _ => return Ok(None),
        }
    }
}

/// Pop up to `n` members from the bottom (or the `max` end) of the sorted set at `key`.
async fn zpop(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
    max: bool,
    n: usize,
) -> Result<Option<Vec<(f64, Vec<u8>)>>, Reply> {
    loop {
        let (view, c, mut all) = read_all(acc, db, key).await?;
        let Some(c) = c else {
            return Ok(None);
        };
        if max {
            all.reverse();
        }
        all.truncate(n);
        if remove(acc, db, key, &view, c, &all).await? {
            return Ok(Some(all));
        }
    }
}

/// ZUNION/ZINTER/ZDIFF(STORE) numkeys key … [WEIGHTS w …] [AGGREGATE SUM|MIN|MAX]
/// [WITHSCORES]: the result and whether WITHSCORES was given.
async fn combine(
    acc: &mut Access<'_>,
    db: usize,
    op: &str,
    a: &[Vec<u8>],
    cmd: &str,
) -> Result<(BTreeMap<Vec<u8>, f64>, bool), Reply> {
    let n = match parse_i64(&a[0]) {
        Some(n) if n > 0 => n as usize,
        Some(_) => {
            return Err(Frame::err(format!(
                "ERR at least 1 input key is needed for '{cmd}' command"
            )))
        }
        None => return Err(err::not_int()),
    };
    if n > a.len() - 1 {
        return Err(err::syntax());
    }
    let keys = &a[1..1 + n];
    let mut weights = vec![1.0; n];
    let mut agg = "sum".to_string();
    let mut ws = false;
    let mut i = 1 + n;
    while i < a.len() {
        match String::from_utf8_lossy(&a[i]).to_ascii_uppercase().as_str() {
            "WEIGHTS" if op != "zdiff" && i + n < a.len() => {
                for (j, w) in weights.iter_mut().enumerate() {
                    *w = parse_f64(&a[i + 1 + j])
                        .ok_or_else(|| Frame::err("ERR weight value is not a float"))?;
                }
                i += n;
            }
            "AGGREGATE" if op != "zdiff" && i + 1 < a.len() => {
                agg = String::from_utf8_lossy(&a[i + 1]).to_ascii_lowercase();
                if !["sum", "min", "max"].contains(&agg.as_str()) {
                    return Err(err::syntax());
                }
                i += 1;
            }
            "WITHSCORES" if !cmd.ends_with("store") => ws = true,
            _ => return Err(err::syntax()),
        }
        i += 1;
    }
    let mut sets = Vec::with_capacity(n);
    for k in keys {
        sets.push(read_weighted(acc, db, k).await?);
    }
    let fold = |x: f64, y: f64| match agg.as_str() {
        "min" => x.min(y),
        "max" => x.max(y),
        _ => {
            let s = x + y;
            if s.is_nan() {
                0.0
            } else {
                s
            }
        }
    };
    let weigh = |s: f64, w: f64| {
        let v = s * w;
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    let mut it = sets.into_iter().zip(weights);
    let Some((first, w0)) = it.next() else {
        return Ok((BTreeMap::new(), ws));
    };
    let mut out: BTreeMap<Vec<u8>, f64> = first
        .unwrap_or_default()
        .into_iter()
        .map(|(m, s)| (m, if op == "zdiff" { s } else { weigh(s, w0) }))
        .collect();
    for (set, w) in it {
        let set = set.unwrap_or_default();
        match op {
            "zunion" => {
                for (m, s) in set {
                    let v = weigh(s, w);
                    out.entry(m).and_modify(|x| *x = fold(*x, v)).or_insert(v);
                }
            }
            "zinter" => {
                out = out
                    .into_iter()
                    .filter_map(|(m, x)| set.get(&m).map(|s| (m, fold(x, weigh(*s, w)))))
                    .collect();
            }
            _ => out.retain(|m, _| !set.contains_key(m)),
        }
    }
    Ok((out, ws))
}
