//! Bit commands on strings: SETBIT GETBIT BITCOUNT BITPOS BITOP (bit 0 is the most
//! significant bit of the first byte, as in Redis), and LCS.

use super::{err, parse_i64, Reply};
use crate::db::{Access, Change, Kind, Stored};
use crate::frame::Frame;

/// Largest bit offset: 2^32 - 1 (a 512 MiB string).
const MAX_BIT: i64 = (1 << 32) - 1;

fn string_of(v: Option<&Stored>) -> Result<Vec<u8>, Reply> {
    match v {
        None => Ok(Vec::new()),
        Some(s) if s.kind == Kind::String => Ok(s.payload.clone()),
        Some(_) => Err(err::wrongtype()),
    }
}

/// A `[start end [BYTE|BIT]]` range over `len` bytes → a bit range `[from, to)`, or None
/// if empty.
fn bit_range(a: &[Vec<u8>], len: usize) -> Result<Option<(u64, u64)>, Reply> {
    let bits = len as i64 * 8;
    let (start, end, unit_bit) = match a {
        [] => return Ok((len > 0).then_some((0, len as u64 * 8))),
        [s] => (parse_i64(s).ok_or_else(err::not_int)?, i64::MAX, false),
        [s, e] => (
            parse_i64(s).ok_or_else(err::not_int)?,
            parse_i64(e).ok_or_else(err::not_int)?,
            false,
        ),
        [s, e, u] => {
            let unit_bit = if u.eq_ignore_ascii_case(b"bit") {
                true
            } else if u.eq_ignore_ascii_case(b"byte") {
                false
            } else {
                return Err(err::syntax());
            };
            (
                parse_i64(s).ok_or_else(err::not_int)?,
                parse_i64(e).ok_or_else(err::not_int)?,
                unit_bit,
            )
        }
        _ => return Err(err::syntax()),
    };
    let total = if unit_bit { bits } else { len as i64 };
    let norm = |i: i64| if i < 0 { (total + i).max(0) } else { i };
    let (s, e) = (norm(start), norm(end).min(total - 1));
    if total == 0 || s > e {
        return Ok(None);
    }
    Ok(Some(if unit_bit {
        (s as u64, e as u64 + 1)
    } else {
        (s as u64 * 8, (e as u64 + 1) * 8)
    }))
}

fn bit(v: &[u8], i: u64) -> bool {
    v.get((i / 8) as usize)
        .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
}

pub(super) async fn run(
    db: usize,
    acc: &mut Access<'_>,
    name: &str,
    a: &[Vec<u8>],
) -> Result<Reply, Reply> {
    let be = err::backend;
    match name {
        "setbit" => {
            let off = parse_i64(&a[1])
                .filter(|o| (0..=MAX_BIT).contains(o))
                .ok_or_else(|| Frame::err("ERR bit offset is not an integer or out of range"))?
                as u64;
            let on = match a[2].as_slice() {
                b"1" => true,
                b"0" => false,
                _ => return Err(Frame::err("ERR bit is not an integer or out of range")),
            };
            let old = acc
                .update(db, &a[0], |cur| {
                    let mut v = match string_of(cur) {
                        Ok(v) => v,
                        Err(e) => return (Change::Keep, Err(e)),
                    };
                    let byte = (off / 8) as usize;
                    if v.len() <= byte {
                        v.resize(byte + 1, 0);
                    }
                    let mask = 0x80u8 >> (off % 8);
                    let was = v[byte] & mask != 0;
                    if on {
                        v[byte] |= mask;
                    } else {
                        v[byte] &= !mask;
                    }
                    (
                        Change::Put {
                            kind: Kind::String,
                            payload: v,
                            expire_at_us: cur.and_then(|c| c.expire_at_us),
                        },
                        Ok(was),
                    )
                })
                .await
                .map_err(be)??;
            Ok(Frame::Integer(old as i64))
        }
        "getbit" => {
            let off = parse_i64(&a[1])
                .filter(|o| (0..=MAX_BIT).contains(o))
                .ok_or_else(|| Frame::err("ERR bit offset is not an integer or out of range"))?
                as u64;
            let v = string_of(acc.get(db, &a[0]).await.map_err(be)?.as_ref())?;
            Ok(Frame::Integer(bit(&v, off) as i64))
        }
        "bitcount" => {
            let v = string_of(acc.get(db, &a[0]).await.map_err(be)?.as_ref())?;
            if a.len() == 2 {
                return Err(err::syntax());
            }
            let Some((from, to)) = bit_range(&a[1..], v.len())? else {
                return Ok(Frame::Integer(0));
            };
            Ok(Frame::Integer(
                (from..to).filter(|&i| bit(&v, i)).count() as i64
            ))
        }
        "bitpos" => {
            let want = match a[1].as_slice() {
                b"1" => true,
                b"0" => false,
                _ => return Err(Frame::err("ERR The bit argument must be 1 or 0.")),
            };
            let v = string_of(acc.get(db, &a[0]).await.map_err(be)?.as_ref())?;
            let end_given = a.len() >= 4;
            if v.is_empty() {
                return Ok(Frame::Integer(if want { -1 } else { 0 }));
            }
            let Some((from, to)) = bit_range(&a[2..], v.len())? else {
                return Ok(Frame::Integer(-1));
            };
            if let Some(i) = (from..to).find(|&i| bit(&v, i) == want) {
                return Ok(Frame::Integer(i as i64));
            }
            // Looking for a clear bit past the end without an explicit end: the string is
            // padded with zeros on the right.
            Ok(Frame::Integer(if !want && !end_given {
                to as i64
            } else {
                -1
            }))
        }
        "bitop" => {
            let op = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
            let srcs = &a[2..];
            if !["and", "or", "xor", "not"].contains(&op.as_str()) {
                return Err(err::syntax());
            }
            if op == "not" && srcs.len() != 1 {
                return Err(Frame::err(
                    "ERR BITOP NOT must be called with a single source key.",
                ));
            }
            let mut vals = Vec::with_capacity(srcs.len());
            for k in srcs {
                vals.push(string_of(acc.get(db, k).await.map_err(be)?.as_ref())?);
            }
            let len = vals.iter().map(Vec::len).max().unwrap_or(0);
            let mut out = vec![0u8; len];
            for (i, o) in out.iter_mut().enumerate() {
                let mut it = vals.iter().map(|v| v.get(i).copied().unwrap_or(0));
                let first = it.next().unwrap_or(0);
                *o = match op.as_str() {
                    "and" => it.fold(first, |x, y| x & y),
                    "or" => it.fold(first, |x, y| x | y),
                    "xor" => it.fold(first, |x, y| x ^ y),
                    _ => !first,
                };
            }
            if out.is_empty() {
                acc.delete(db, &a[1]).await.map_err(be)?;
            } else {
                acc.put(db, &a[1], Kind::String, &out, None)
                    .await
                    .map_err(be)?;
            }
            Ok(Frame::Integer(len as i64))
        }
        "lcs" => {
            let mut vals = Vec::with_capacity(2);
            for k in &a[..2] {
                match acc.get(db, k).await.map_err(be)? {
                    None => vals.push(Vec::new()),
                    Some(v) if v.kind == Kind::String => vals.push(v.payload),
                    Some(_) => {
                        return Err(Frame::err(
                            "ERR The specified keys must contain string values",
                        ))
                    }
                }
            }
            lcs(&vals[0], &vals[1], &a[2..])
        }
        _ => Err(Frame::err("ERR unknown bit command")),
    }
}

/// LCS a b [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: Redis's dynamic programme and its
/// walk back through the table, range by range.
fn lcs(a: &[u8], b: &[u8], opts: &[Vec<u8>]) -> Result<Reply, Reply> {
    let (mut getlen, mut getidx, mut withlen, mut minlen) = (false, false, false, 0i64);
    let mut i = 0;
    while i < opts.len() {
        match String::from_utf8_lossy(&opts[i])
            .to_ascii_uppercase()
            .as_str()
        {
            "IDX" => getidx = true,
            "LEN" => getlen = true,
            "WITHMATCHLEN" => withlen = true,
            "MINMATCHLEN" if i + 1 < opts.len() => {
                minlen = parse_i64(&opts[i + 1]).ok_or_else(err::not_int)?.max(0);
                i += 1;
            }
            _ => return Err(err::syntax()),
        }
        i += 1;
    }
    if getlen && getidx {
        return Err(Frame::err(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen + 1).saturating_mul(blen + 1);
    if cells.saturating_mul(4) > 512 << 20 {
        return Err(Frame::err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let mut t = vec![0u32; cells];
    let at = |i: usize, j: usize| j + i * (blen + 1);
    for i in 1..=alen {
        for j in 1..=blen {
            t[at(i, j)] = if a[i - 1] == b[j - 1] {
                t[at(i - 1, j - 1)] + 1
            } else {
                t[at(i - 1, j)].max(t[at(i, j - 1)])
            };
        }
    }
    let total = t[at(alen, blen)];
    if getlen {
        return Ok(Frame::Integer(total as i64));
    }
    let mut result = vec![0u8; total as usize];
    let mut idx = total as usize;
    let mut matches = Vec::new();
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0usize, 0usize, 0usize);
    let (mut i, mut j) = (alen, blen);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == alen {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[at(i - 1, j)] > t[at(i, j - 1)] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        if emit {
            let len = (a_end - a_start + 1) as i64;
            if minlen == 0 || len >= minlen {
                let mut m = vec![
                    Frame::Array(vec![
                        Frame::Integer(a_start as i64),
                        Frame::Integer(a_end as i64),
                    ]),
                    Frame::Array(vec![
                        Frame::Integer(b_start as i64),
                        Frame::Integer(b_end as i64),
                    ]),
                ];
                if withlen {
                    m.push(Frame::Integer(len));
                }
                matches.push(Frame::Array(m));
            }
            a_start = alen;
        }
    }
    if getidx {
        return Ok(Frame::Map(vec![
            (Frame::bulk("matches"), Frame::Array(matches)),
            (Frame::bulk("len"), Frame::Integer(total as i64)),
        ]));
    }
    Ok(Frame::bulk(result))
}
