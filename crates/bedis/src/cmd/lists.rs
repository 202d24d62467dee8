//! List commands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LINSERT LREM
//! LTRIM LPOS LMOVE RPOPLPUSH BLPOP BRPOP BLMOVE.
//!
//! An entry is one element row whose sub-key is its position (an i64, order-preserving);
//! the meta header holds `head` (first position) and `tail` (one past the last). Pushes and
//! pops at either end write only the entries they touch; LINSERT and LREM rewrite the
//! entries after the change, as Redis moves them in memory.

use super::coll::{
    ignore_wrongtype_after_first, positive_count, save, timeout_arg, typed, Blocker,
};
use super::{err, parse_i64, Reply, Session};
use crate::db::{Access, Coll, ElemWrite, Kind, View};
use crate::frame::Frame;

/// The sub-key of position `p`: big-endian with the sign bit flipped, so byte order is
/// numeric order.
pub fn pos(p: i64) -> Vec<u8> {
    ((p as u64) ^ (1 << 63)).to_be_bytes().to_vec()
}

pub(super) async fn run(s: &mut Session, acc: &mut Access<'_>, name: &str, a: &[Vec<u8>]) -> Reply {
    match run_inner(s.db, acc, name, a).await {
        Ok(r) | Err(r) => r,
    }
}

/// Which end of a list.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

fn end_arg(b: &[u8]) -> Result<End, Reply> {
    if b.eq_ignore_ascii_case(b"left") {
        Ok(End::Left)
    } else if b.eq_ignore_ascii_case(b"right") {
        Ok(End::Right)
    } else {
        Err(err::syntax())
    }
}

/// The list at `key` as read (`None`: absent).
async fn read_list(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
) -> Result<(View, Option<Coll>), Reply> {
    let view = acc.read(db, key, &[]).await.map_err(err::backend)?;
    let c = typed(&view, Kind::List)?;
    Ok((view, c))
}

/// Entries `[from, to)` (list indexes, 0 = head) of the list `c` read in `view`.
async fn entries(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
    view: &View,
    c: &Coll,
    from: i64,
    to: i64,
) -> Result<Vec<Vec<u8>>, Reply> {
    if from >= to {
        return Ok(Vec::new());
    }
    let rows = acc
        .scan(
            db,
            key,
            view,
            Some(&pos(c.head + from)),
            Some(&pos(c.head + to)),
            (to - from) as usize,
        )
        .await
        .map_err(err::backend)?;
    Ok(rows.into_iter().map(|(_, v)| v).collect())
}

/// Push `values` at `end` of the list at `key` (creating it unless `only_existing`);
/// returns the new length (0 if nothing was pushed).
async fn push(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
    values: &[Vec<u8>],
    end: End,
    only_existing: bool,
) -> Result<i64, Reply> {
    loop {
        let (view, c) = read_list(acc, db, key).await?;
        let mut c = match c {
            Some(c) => c,
            None if only_existing => return Ok(0),
            None => Coll::fresh(),
        };
        let mut writes: Vec<ElemWrite> = Vec::with_capacity(values.len());
        for v in values {
            let p = match end {
                End::Left => {
                    c.head -= 1;
                    c.head
                }
                End::Right => {
                    c.tail += 1;
                    c.tail - 1
                }
            };
            writes.push((pos(p), Some(v.clone())));
        }
        c.count += values.len() as i64;
        if save(acc, db, key, &view, Kind::List, c, writes).await? {
            super::coll::notify_pushed(acc.dbs);
            return Ok(c.count);
        }
    }
}

/// RPUSH `a[1..]` onto the list `a[0]` (SORT … STORE).
pub(super) async fn push_all(acc: &mut Access<'_>, db: usize, a: &[Vec<u8>]) -> Result<i64, Reply> {
    push(acc, db, &a[0], &a[1..], End::Right, false).await
}

/// `numkeys key … <where> [COUNT n]` of LMPOP/ZMPOP, parsed.
pub(super) struct MpopArgs<'a> {
    pub keys: &'a [Vec<u8>],
    /// LEFT/RIGHT or MIN/MAX.
    pub wh: &'a [u8],
    pub count: usize,
}

/// Parse `numkeys key … <where> [COUNT n]` of LMPOP/ZMPOP.
pub(super) fn mpop_args(a: &[Vec<u8>]) -> Result<MpopArgs<'_>, Reply> {
    let n = match parse_i64(&a[0]) {
        Some(n) if n > 0 => n as usize,
        _ => return Err(Frame::err("ERR numkeys should be greater than 0")),
    };
    if n >= a.len() - 1 {
        return Err(err::syntax());
    }
    let keys = &a[1..1 + n];
    let rest = &a[1 + n..];
    let count = match rest {
        [_] => 1,
        [_, c, v] if c.eq_ignore_ascii_case(b"count") => match parse_i64(v) {
            Some(x) if x > 0 => x as usize,
            _ => return Err(Frame::err("ERR count should be greater than 0")),
        },
        _ => return Err(err::syntax()),
    };
    Ok(MpopArgs {
        keys,
        wh: &rest[0],
        count,
    })
}

/// Pop up to `count` from `end` of the first non-empty list of `keys` (LMPOP, BLPOP …),
/// waiting with `blocker` (outside transactions) while they are all empty. While waiting, a
/// key of another type counts as empty. None: nothing before the timeout.
async fn pop_first(
    acc: &mut Access<'_>,
    db: usize,
    keys: &[Vec<u8>],
    end: End,
    count: usize,
    blocker: Option<Blocker>,
) -> Result<Option<(Vec<u8>, Vec<Vec<u8>>)>, Reply> {
    let mut first = true;
    loop {
        let dbs = acc.dbs;
        let pushed = dbs.pushed.notified();
        for k in keys {
            let got = pop(acc, db, k, end, count).await;
            if let Some(v) = ignore_wrongtype_after_first(first, got)? {
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

/// Pop up to `n` entries from `end` of the list at `key` (None: no such list).
async fn pop(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
    end: End,
    n: usize,
) -> Result<Option<Vec<Vec<u8>>>, Reply> {
    loop {
        let (view, c) = read_list(acc, db, key).await?;
        let Some(mut c) = c else {
            return Ok(None);
        };
        let n = (n as i64).min(c.count);
        let (from, to) = match end {
            End::Left => (0, n),
            End::Right => (c.count - n, c.count),
        };
        let mut got = entries(acc, db, key, &view, &c, from, to).await?;
        let writes = (from..to).map(|i| (pos(c.head + i), None)).collect();
        match end {
            End::Left => c.head += n,
            End::Right => {
                c.tail -= n;
                got.reverse();
            }
        }
        c.count -= n;
        if n == 0 || save(acc, db, key, &view, Kind::List, c, writes).await? {
            return Ok(Some(got));
        }
    }
}

/// Replace the whole content of the list `c` (read in `view`) with `items`, writing only
/// the positions that change.
async fn rewrite(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
    view: &View,
    mut c: Coll,
    old: &[Vec<u8>],
    items: Vec<Vec<u8>>,
) -> Result<bool, Reply> {
    let mut writes = Vec::new();
    for (i, v) in items.iter().enumerate() {
        if old.get(i) != Some(v) {
            writes.push((pos(c.head + i as i64), Some(v.clone())));
        }
    }
    for i in items.len()..old.len() {
        writes.push((pos(c.head + i as i64), None));
    }
    c.count = items.len() as i64;
    c.tail = c.head + c.count;
    save(acc, db, key, view, Kind::List, c, writes).await
}

/// Redis's start/stop indexes (negative from the end) → `[from, to)` within `len`.
fn span(start: i64, stop: i64, len: i64) -> (i64, i64) {
    let norm = |i: i64| if i < 0 { len + i } else { i };
    let from = norm(start).clamp(0, len);
    let to = (norm(stop) + 1).min(len);
    (from, to.max(from))
}

async fn run_inner(
    db: usize,
    acc: &mut Access<'_>,
    name: &str,
    a: &[Vec<u8>],
) -> Result<Reply, Reply> {
    let key = &a[0];
    match name {
        "lpush" | "rpush" | "lpushx" | "rpushx" => {
            let end = if name.starts_with('l') {
                End::Left
            } else {
                End::Right
            };
            Ok(Frame::Integer(
                push(acc, db, key, &a[1..], end, name.ends_with('x')).await?,
            ))
        }
        "lpop" | "rpop" => {
            let end = if name == "lpop" {
                End::Left
            } else {
                End::Right
            };
            let count = match a.get(1) {
                Some(c) if a.len() == 2 => Some(positive_count(c)?),
                Some(_) => return Err(err::arity(name)),
                None => None,
            };
            Ok(
                match (pop(acc, db, key, end, count.unwrap_or(1)).await?, count) {
                    (None, Some(_)) => Frame::NullArray,
                    (None, None) => Frame::Null,
                    (Some(v), Some(_)) => Frame::Array(v.into_iter().map(Frame::bulk).collect()),
                    (Some(v), None) => v.into_iter().next().map(Frame::bulk).unwrap_or(Frame::Null),
                },
            )
        }
        "llen" => {
            let (_, c) = read_list(acc, db, key).await?;
            Ok(Frame::Integer(c.map_or(0, |c| c.count)))
        }
        "lrange" => {
            let (start, stop) = (
                parse_i64(&a[1]).ok_or_else(err::not_int)?,
                parse_i64(&a[2]).ok_or_else(err::not_int)?,
            );
            let (view, c) = read_list(acc, db, key).await?;
            let Some(c) = c else {
                return Ok(Frame::Array(Vec::new()));
            };
            let (from, to) = span(start, stop, c.count);
            let items = entries(acc, db, key, &view, &c, from, to).await?;
            Ok(Frame::Array(items.into_iter().map(Frame::bulk).collect()))
        }
        "lindex" => {
            let i = parse_i64(&a[1]).ok_or_else(err::not_int)?;
            let (view, c) = read_list(acc, db, key).await?;
            let Some(c) = c else {
                return Ok(Frame::Null);
            };
            let i = if i < 0 { c.count + i } else { i };
            if i < 0 || i >= c.count {
                return Ok(Frame::Null);
            }
            let v = entries(acc, db, key, &view, &c, i, i + 1).await?;
            Ok(v.into_iter().next().map(Frame::bulk).unwrap_or(Frame::Null))
        }
        "lset" => {
            let i = parse_i64(&a[1]).ok_or_else(err::not_int)?;
            loop {
                let (view, c) = read_list(acc, db, key).await?;
                let Some(c) = c else {
                    return Err(Frame::err("ERR no such key"));
                };
                let i = if i < 0 { c.count + i } else { i };
                if i < 0 || i >= c.count {
                    return Err(Frame::err("ERR index out of range"));
                }
                let writes = vec![(pos(c.head + i), Some(a[2].clone()))];
                if save(acc, db, key, &view, Kind::List, c, writes).await? {
                    return Ok(Frame::ok());
                }
            }
        }
        "linsert" => {
            let before = if a[1].eq_ignore_ascii_case(b"before") {
                true
            } else if a[1].eq_ignore_ascii_case(b"after") {
                false
            } else {
                return Err(err::syntax());
            };
            loop {
                let (view, c) = read_list(acc, db, key).await?;
                let Some(c) = c else {
                    return Ok(Frame::Integer(0));
                };
                let old = entries(acc, db, key, &view, &c, 0, c.count).await?;
                let Some(at) = old.iter().position(|v| *v == a[2]) else {
                    return Ok(Frame::Integer(-1));
                };
                let mut items = old.clone();
                items.insert(if before { at } else { at + 1 }, a[3].clone());
                let len = items.len() as i64;
                if rewrite(acc, db, key, &view, c, &old, items).await? {
                    super::coll::notify_pushed(acc.dbs);
                    return Ok(Frame::Integer(len));
                }
            }
        }
        "lrem" => {
            let count = parse_i64(&a[1]).ok_or_else(err::not_int)?;
            loop {
                let (view, c) = read_list(acc, db, key).await?;
                let Some(c) = c else {
                    return Ok(Frame::Integer(0));
                };
                let old = entries(acc, db, key, &view, &c, 0, c.count).await?;
                let mut remove = vec![false; old.len()];
                let limit = if count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                let mut n = 0;
                let order: Box<dyn Iterator<Item = usize>> = if count < 0 {
                    Box::new((0..old.len()).rev())
                } else {
                    Box::new(0..old.len())
                };
                for i in order {
                    if n < limit && old[i] == a[2] {
                        remove[i] = true;
                        n += 1;
                    }
                }
                if n == 0 {
                    return Ok(Frame::Integer(0));
                }
                let items = old
                    .iter()
                    .zip(&remove)
                    .filter(|(_, r)| !**r)
                    .map(|(v, _)| v.clone())
                    .collect();
                if rewrite(acc, db, key, &view, c, &old, items).await? {
                    return Ok(Frame::Integer(n as i64));
                }
            }
        }
        "ltrim" => {
            let (start, stop) = (
                parse_i64(&a[1]).ok_or_else(err::not_int)?,
                parse_i64(&a[2]).ok_or_else(err::not_int)?,
            );
            loop {
                let (view, c) = read_list(acc, db, key).await?;
                let Some(mut c) = c else {
                    return Ok(Frame::ok());
                };
                let (from, to) = span(start, stop, c.count);
                let writes: Vec<ElemWrite> = (0..from)
                    .chain(to..c.count)
                    .map(|i| (pos(c.head + i), None))
                    .collect();
                if writes.is_empty() {
                    return Ok(Frame::ok());
                }
                c.tail = c.head + to;
                c.head += from;
                c.count = to - from;
                if save(acc, db, key, &view, Kind::List, c, writes).await? {
                    return Ok(Frame::ok());
                }
            }
        }
        "lpos" => lpos(acc, db, a).await,
        "lmpop" | "blmpop" => {
            let (blocker, a) = if name == "blmpop" {
                (Some(Blocker::new(timeout_arg(&a[0])?)), &a[1..])
            } else {
                (None, a)
            };
            let MpopArgs { keys, wh, count } = mpop_args(a)?;
            let end = end_arg(wh)?;
            Ok(match pop_first(acc, db, keys, end, count, blocker).await? {
                Some((k, v)) => Frame::Array(vec![
                    Frame::bulk(k),
                    Frame::Array(v.into_iter().map(Frame::bulk).collect()),
                ]),
                None => Frame::NullArray,
            })
        }
        "lmove" | "rpoplpush" => {
            let (from, to) = if name == "lmove" {
                (end_arg(&a[2])?, end_arg(&a[3])?)
            } else {
                (End::Right, End::Left)
            };
            Ok(lmove(acc, db, &a[0], &a[1], from, to)
                .await?
                .map(Frame::bulk)
                .unwrap_or(Frame::Null))
        }
        "blmove" => {
            let (from, to) = (end_arg(&a[2])?, end_arg(&a[3])?);
            let blocker = Blocker::new(timeout_arg(&a[4])?);
            loop {
                let dbs = acc.dbs;
                let pushed = dbs.pushed.notified();
                if let Some(v) = lmove(acc, db, &a[0], &a[1], from, to).await? {
                    return Ok(Frame::bulk(v));
                }
                if acc.transactional() || !blocker.wait(pushed).await {
                    return Ok(Frame::Null);
                }
            }
        }
        "blpop" | "brpop" => {
            let end = if name == "blpop" {
                End::Left
            } else {
                End::Right
            };
            let (keys, t) = a.split_at(a.len() - 1);
            let blocker = Blocker::new(timeout_arg(&t[0])?);
            Ok(
                match pop_first(acc, db, keys, end, 1, Some(blocker)).await? {
                    Some((k, v)) => {
                        Frame::Array(std::iter::once(k).chain(v).map(Frame::bulk).collect())
                    }
                    None => Frame::NullArray,
                },
            )
        }
        _ => Err(Frame::err("ERR unknown list command")),
    }
}

/// LMOVE: pop from `from` of `src`, push at `to` of `dst` (atomic: the dispatcher runs it
/// in a transaction). None: `src` is empty.
async fn lmove(
    acc: &mut Access<'_>,
    db: usize,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<Vec<u8>>, Reply> {
    // Both types are checked before anything moves, as in Redis.
    let (_, sc) = read_list(acc, db, src).await?;
    if sc.is_none() {
        return Ok(None);
    }
    read_list(acc, db, dst).await?;
    let Some(v) = pop(acc, db, src, from, 1)
        .await?
        .and_then(|v| v.into_iter().next())
    else {
        return Ok(None);
    };
    push(acc, db, dst, std::slice::from_ref(&v), to, false).await?;
    Ok(Some(v))
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
async fn lpos(acc: &mut Access<'_>, db: usize, a: &[Vec<u8>]) -> Result<Reply, Reply> {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<i64>, 0i64);
    let mut i = 2;
    while i < a.len() {
        let Some(v) = a.get(i + 1) else {
            return Err(err::syntax());
        };
        let n = parse_i64(v).ok_or_else(err::not_int)?;
        match String::from_utf8_lossy(&a[i]).to_ascii_uppercase().as_str() {
            "RANK" => {
                if n == 0 || n == i64::MIN {
                    return Err(Frame::err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"));
                }
                rank = n;
            }
            "COUNT" if n < 0 => return Err(Frame::err("ERR COUNT can't be negative")),
            "COUNT" => count = Some(n),
            "MAXLEN" if n < 0 => return Err(Frame::err("ERR MAXLEN can't be negative")),
            "MAXLEN" => maxlen = n,
            _ => return Err(err::syntax()),
        }
        i += 2;
    }
    let (view, c) = read_list(acc, db, &a[0]).await?;
    let none = || {
        if count.is_some() {
            Frame::Array(Vec::new())
        } else {
            Frame::Null
        }
    };
    let Some(c) = c else {
        return Ok(none());
    };
    let items = entries(acc, db, &a[0], &view, &c, 0, c.count).await?;
    let len = items.len();
    let scan_len = if maxlen == 0 {
        len
    } else {
        (maxlen as usize).min(len)
    };
    let order: Vec<usize> = if rank > 0 {
        (0..scan_len).collect()
    } else {
        (len - scan_len..len).rev().collect()
    };
    let mut skip = rank.unsigned_abs() - 1;
    let want = match count {
        Some(0) => usize::MAX,
        Some(n) => n as usize,
        None => 1,
    };
    let mut found = Vec::new();
    for i in order {
        if items[i] == a[1] {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(Frame::Integer(i as i64));
            if found.len() >= want {
                break;
            }
        }
    }
    Ok(match count {
        Some(_) => Frame::Array(found),
        None => found.into_iter().next().unwrap_or_else(none),
    })
}
