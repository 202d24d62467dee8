//! Set commands: SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE SINTER
//! SUNION SDIFF SINTERSTORE SUNIONSTORE SDIFFSTORE SINTERCARD SSCAN. A member is one element
//! row (sub-key = the member, no data). Members come back in byte order.

use std::collections::BTreeSet;

use super::coll::{positive_count, rand_count, random_picks, save, scan_opts, scan_reply, typed};
use super::keys::glob_match;
use super::{err, Reply, Session};
use crate::db::{Access, Coll, Kind};
use crate::frame::Frame;

type Members = BTreeSet<Vec<u8>>;

pub(super) async fn run(s: &mut Session, acc: &mut Access<'_>, name: &str, a: &[Vec<u8>]) -> Reply {
    match run_inner(s.db, acc, name, a).await {
        Ok(r) | Err(r) => r,
    }
}

/// Every member of the set at `key` (empty if absent; WRONGTYPE for another type).
pub(super) async fn members(acc: &mut Access<'_>, db: usize, key: &[u8]) -> Result<Members, Reply> {
    let view = acc.read(db, key, &[]).await.map_err(err::backend)?;
    if typed(&view, Kind::Set)?.is_none() {
        return Ok(Members::new());
    }
    Ok(acc
        .scan_all(db, key, &view)
        .await
        .map_err(err::backend)?
        .into_iter()
        .map(|(m, _)| m)
        .collect())
}

/// Replace whatever `key` holds with the set `m` (deleting the key if `m` is empty).
pub(super) async fn store(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
    m: &Members,
) -> Result<(), Reply> {
    acc.delete(db, key).await.map_err(err::backend)?;
    if m.is_empty() {
        return Ok(());
    }
    let mut c = Coll::fresh();
    c.count = m.len() as i64;
    let writes = m.iter().map(|x| (x.clone(), Some(Vec::new()))).collect();
    let view = acc.read(db, key, &[]).await.map_err(err::backend)?;
    if !save(acc, db, key, &view, Kind::Set, c, writes).await? {
        // Only a transaction calls this (the dispatcher runs *STORE in one).
        return Err(Frame::err("ERR concurrent change to the destination key"));
    }
    Ok(())
}

/// Add (`add`) or remove members of the set at `key`; returns how many changed.
async fn add_remove(
    acc: &mut Access<'_>,
    db: usize,
    key: &[u8],
    members: &[Vec<u8>],
    add: bool,
) -> Result<i64, Reply> {
    let mut ms = members.to_vec();
    ms.sort();
    ms.dedup();
    loop {
        let view = acc.read(db, key, &ms).await.map_err(err::backend)?;
        let mut c = match typed(&view, Kind::Set)? {
            Some(c) => c,
            None if add => Coll::fresh(),
            None => return Ok(0),
        };
        let writes: Vec<_> = ms
            .iter()
            .zip(&view.elems)
            .filter(|(_, v)| v.is_some() != add)
            .map(|(m, _)| (m.clone(), add.then(Vec::new)))
            .collect();
        let n = writes.len() as i64;
        if n == 0 {
            return Ok(0);
        }
        c.count += if add { n } else { -n };
        if save(acc, db, key, &view, Kind::Set, c, writes).await? {
            return Ok(n);
        }
    }
}

fn array(m: impl IntoIterator<Item = Vec<u8>>) -> Frame {
    Frame::Array(m.into_iter().map(Frame::bulk).collect())
}

async fn run_inner(
    db: usize,
    acc: &mut Access<'_>,
    name: &str,
    a: &[Vec<u8>],
) -> Result<Reply, Reply> {
    let be = err::backend;
    let key = &a[0];
    match name {
        "sadd" => Ok(Frame::Integer(
            add_remove(acc, db, key, &a[1..], true).await?,
        )),
        "srem" => Ok(Frame::Integer(
            add_remove(acc, db, key, &a[1..], false).await?,
        )),
        "sismember" | "smismember" => {
            let view = acc.read(db, key, &a[1..]).await.map_err(be)?;
            typed(&view, Kind::Set)?;
            let found = view
                .elems
                .iter()
                .map(|v| Frame::Integer(v.is_some() as i64));
            Ok(if name == "sismember" {
                found.into_iter().next().unwrap_or(Frame::Integer(0))
            } else {
                Frame::Array(found.collect())
            })
        }
        "scard" => {
            let view = acc.read(db, key, &[]).await.map_err(be)?;
            Ok(Frame::Integer(
                typed(&view, Kind::Set)?.map_or(0, |c| c.count),
            ))
        }
        "smembers" => Ok(array(members(acc, db, key).await?)),
        "sscan" => {
            let pattern = scan_opts(&a[1..])?;
            let m = members(acc, db, key).await?;
            Ok(scan_reply(
                m.into_iter()
                    .filter(|x| pattern.as_ref().is_none_or(|p| glob_match(p, x)))
                    .map(Frame::bulk)
                    .collect(),
            ))
        }
        "srandmember" => {
            let count = match a.get(1) {
                Some(c) if a.len() == 2 => Some(rand_count(c)?),
                Some(_) => return Err(err::syntax()),
                None => None,
            };
            let all: Vec<Vec<u8>> = members(acc, db, key).await?.into_iter().collect();
            Ok(match count {
                None if all.is_empty() => Frame::Null,
                None => Frame::bulk(all[super::coll::pick(all.len())].clone()),
                Some(c) => array(
                    random_picks(all.len(), c)
                        .into_iter()
                        .map(|i| all[i].clone()),
                ),
            })
        }
        "spop" => {
            let count = match a.get(1) {
                Some(c) if a.len() == 2 => Some(positive_count(c)?),
                Some(_) => return Err(err::syntax()),
                None => None,
            };
            loop {
                let view = acc.read(db, key, &[]).await.map_err(be)?;
                let Some(mut c) = typed(&view, Kind::Set)? else {
                    return Ok(if count.is_some() {
                        Frame::Array(Vec::new())
                    } else {
                        Frame::Null
                    });
                };
                let all = acc.scan_all(db, key, &view).await.map_err(be)?;
                let picked: Vec<Vec<u8>> =
                    super::coll::pick_distinct(all.len(), count.unwrap_or(1))
                        .into_iter()
                        .map(|i| all[i].0.clone())
                        .collect();
                if picked.is_empty() {
                    return Ok(Frame::Array(Vec::new()));
                }
                c.count -= picked.len() as i64;
                let writes = picked.iter().map(|m| (m.clone(), None)).collect();
                if save(acc, db, key, &view, Kind::Set, c, writes).await? {
                    return Ok(match count {
                        None => Frame::bulk(picked[0].clone()),
                        Some(_) => array(picked),
                    });
                }
            }
        }
        "smove" => {
            // Atomic: the dispatcher runs SMOVE in a transaction.
            let (src, dst, m) = (&a[0], &a[1], &a[2]);
            let sv = acc
                .read(db, src, std::slice::from_ref(m))
                .await
                .map_err(be)?;
            typed(&sv, Kind::Set)?;
            let dv = acc.read(db, dst, &[]).await.map_err(be)?;
            typed(&dv, Kind::Set)?;
            if sv.elems[0].is_none() {
                return Ok(Frame::Integer(0));
            }
            if src == dst {
                return Ok(Frame::Integer(1));
            }
            add_remove(acc, db, src, std::slice::from_ref(m), false).await?;
            add_remove(acc, db, dst, std::slice::from_ref(m), true).await?;
            Ok(Frame::Integer(1))
        }
        "sinter" | "sunion" | "sdiff" => Ok(array(combine(acc, db, name, a).await?)),
        "sinterstore" | "sunionstore" | "sdiffstore" => {
            let op = &name[..name.len() - 5];
            let m = combine(acc, db, op, &a[1..]).await?;
            store(acc, db, &a[0], &m).await?;
            Ok(Frame::Integer(m.len() as i64))
        }
        "sintercard" => {
            let (n, limit) = super::coll::intercard_args(a, |_| {
                Frame::err("ERR numkeys should be greater than 0")
            })?;
            let m = combine(acc, db, "sinter", &a[1..1 + n]).await?;
            Ok(super::coll::limited(m.len(), limit))
        }
        _ => Err(Frame::err("ERR unknown set command")),
    }
}

/// SINTER / SUNION / SDIFF of the sets at `keys`.
async fn combine(
    acc: &mut Access<'_>,
    db: usize,
    op: &str,
    keys: &[Vec<u8>],
) -> Result<Members, Reply> {
    let mut sets = Vec::with_capacity(keys.len());
    for k in keys {
        sets.push(members(acc, db, k).await?);
    }
    let mut it = sets.into_iter();
    let first = it.next().unwrap_or_default();
    Ok(it.fold(first, |acc_set, s| match op {
        "sinter" => acc_set.intersection(&s).cloned().collect(),
        "sunion" => acc_set.union(&s).cloned().collect(),
        _ => acc_set.difference(&s).cloned().collect(),
    }))
}
