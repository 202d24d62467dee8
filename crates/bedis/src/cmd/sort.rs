//! SORT and SORT_RO: sort the elements of a list, set or sorted set (numerically, or by
//! bytes with ALPHA), optionally by the values of other keys (BY), fetching other keys (GET),
//! and storing the result as a list (STORE). The dispatcher runs it in a transaction, so the
//! keys it reads are one snapshot and STORE is atomic.

use super::{err, parse_f64, parse_i64, Reply};
use crate::db::{Access, Kind};
use crate::frame::Frame;

/// Substitute the first `*` of `pattern` with `elem` and read that key (or `key->field` of a
/// hash). None: no `*` in the pattern, or nothing there.
async fn lookup(
    acc: &mut Access<'_>,
    db: usize,
    pattern: &[u8],
    elem: &[u8],
) -> Result<Option<Vec<u8>>, Reply> {
    if pattern == b"#" {
        return Ok(Some(elem.to_vec()));
    }
    let Some(star) = pattern.iter().position(|&b| b == b'*') else {
        return Ok(None);
    };
    let mut key = pattern[..star].to_vec();
    key.extend_from_slice(elem);
    key.extend_from_slice(&pattern[star + 1..]);
    // `key->field` reads a hash field (the arrow after the star).
    let arrow = key
        .windows(2)
        .enumerate()
        .skip(star + elem.len())
        .find(|(_, w)| *w == b"->")
        .map(|(i, _)| i);
    match arrow {
        Some(i) if i + 2 < key.len() => {
            let (k, f) = (key[..i].to_vec(), key[i + 2..].to_vec());
            let view = acc.read(db, &k, &[f]).await.map_err(err::backend)?;
            Ok(match &view.meta {
                Some(m) if m.kind == Kind::Hash => view.elems.into_iter().next().flatten(),
                _ => None,
            })
        }
        _ => Ok(acc
            .get(db, &key)
            .await
            .map_err(err::backend)?
            .filter(|v| v.kind == Kind::String)
            .map(|v| v.payload)),
    }
}

/// The elements of the list, set or sorted set at `key` (lists in order, sorted sets by
/// score).
async fn elements(acc: &mut Access<'_>, db: usize, key: &[u8]) -> Result<Vec<Vec<u8>>, Reply> {
    let view = acc.read(db, key, &[]).await.map_err(err::backend)?;
    let Some(meta) = &view.meta else {
        return Ok(Vec::new());
    };
    let rows = match meta.kind {
        Kind::List | Kind::Set => acc.scan_all(db, key, &view).await,
        Kind::ZSet => {
            acc.scan(db, key, &view, Some(&[1]), Some(&[2]), usize::MAX)
                .await
        }
        _ => return Err(err::wrongtype()),
    }
    .map_err(err::backend)?;
    Ok(match meta.kind {
        Kind::List => rows.into_iter().map(|(_, v)| v).collect(),
        Kind::Set => rows.into_iter().map(|(m, _)| m).collect(),
        _ => rows
            .into_iter()
            .filter(|(s, _)| s.len() >= 9)
            .map(|(s, _)| s[9..].to_vec())
            .collect(),
    })
}

pub(super) async fn run(
    db: usize,
    acc: &mut Access<'_>,
    name: &str,
    a: &[Vec<u8>],
) -> Result<Reply, Reply> {
    let key = &a[0];
    let (mut by, mut limit, mut gets, mut desc, mut alpha, mut store) =
        (None, None, Vec::new(), false, false, None);
    let mut i = 1;
    while i < a.len() {
        let opt = String::from_utf8_lossy(&a[i]).to_ascii_uppercase();
        let left = a.len() - i - 1;
        match opt.as_str() {
            "ASC" => desc = false,
            "DESC" => desc = true,
            "ALPHA" => alpha = true,
            "BY" if left >= 1 => {
                by = Some(a[i + 1].clone());
                i += 1;
            }
            "GET" if left >= 1 => {
                gets.push(a[i + 1].clone());
                i += 1;
            }
            "STORE" if left >= 1 && name == "sort" => {
                store = Some(a[i + 1].clone());
                i += 1;
            }
            "LIMIT" if left >= 2 => {
                let off = parse_i64(&a[i + 1]).ok_or_else(err::not_int)?;
                let cnt = parse_i64(&a[i + 2]).ok_or_else(err::not_int)?;
                limit = Some((off, cnt));
                i += 2;
            }
            _ => return Err(err::syntax()),
        }
        i += 1;
    }
    let view = acc.read(db, key, &[]).await.map_err(err::backend)?;
    let is_zset = view.meta.as_ref().is_some_and(|m| m.kind == Kind::ZSet);
    let mut items = elements(acc, db, key).await?;
    // BY without a `*` means "do not sort"; sorted sets then keep their order.
    let dont_sort = by.as_ref().is_some_and(|b| !b.contains(&b'*'));
    if !dont_sort {
        let mut keyed: Vec<(Option<Vec<u8>>, Vec<u8>)> = Vec::with_capacity(items.len());
        for e in items {
            let k = match &by {
                Some(p) => lookup(acc, db, p, &e).await?,
                None => Some(e.clone()),
            };
            keyed.push((k, e));
        }
        if alpha {
            keyed.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
        } else {
            let mut nums = Vec::with_capacity(keyed.len());
            for (k, e) in keyed {
                let n = match &k {
                    None => 0.0,
                    Some(v) => parse_f64(v).ok_or_else(|| {
                        Frame::err("ERR One or more scores can't be converted into double")
                    })?,
                };
                nums.push((n, e));
            }
            nums.sort_by(|x, y| x.0.total_cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
            keyed = nums.into_iter().map(|(_, e)| (None, e)).collect();
        }
        items = keyed.into_iter().map(|(_, e)| e).collect();
        if desc {
            items.reverse();
        }
    } else if desc && is_zset {
        items.reverse();
    }
    if let Some((off, cnt)) = limit {
        let off = off.max(0) as usize;
        let cnt = if cnt < 0 { usize::MAX } else { cnt as usize };
        items = items.into_iter().skip(off).take(cnt).collect();
    }
    let mut out: Vec<Option<Vec<u8>>> = Vec::new();
    if gets.is_empty() {
        out = items.into_iter().map(Some).collect();
    } else {
        for e in &items {
            for g in &gets {
                out.push(lookup(acc, db, g, e).await?);
            }
        }
    }
    match store {
        Some(dst) => {
            acc.delete(db, &dst).await.map_err(err::backend)?;
            let n = out.len() as i64;
            if n > 0 {
                let vals: Vec<Vec<u8>> = out.into_iter().map(Option::unwrap_or_default).collect();
                let mut args = vec![dst];
                args.extend(vals);
                super::lists::push_all(acc, db, &args).await?;
            }
            Ok(Frame::Integer(n))
        }
        None => Ok(Frame::Array(
            out.into_iter()
                .map(|v| v.map(Frame::bulk).unwrap_or(Frame::Null))
                .collect(),
        )),
    }
}
