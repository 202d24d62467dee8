//! Typing and evaluation of terms: a literal, bind marker, collection literal or function
//! call becomes a [`Value`] of the column's type. Also the text formats CQL accepts
//! (timestamps, dates, times, durations, inet, uuid) and the JSON mapping of
//! `SELECT JSON`, `INSERT JSON`, `toJson()` and `fromJson()`.

use std::net::IpAddr;

use serde_json::Value as Json;

use crate::error::{CqlError, Result};
use crate::frame::Bound;
use crate::parser::{Lit, Term};
use crate::types::{self, CqlType, Value};

/// An evaluated term.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Unset,
    Null,
    V(Value),
}

/// Bound values and the statement clock.
pub struct Binds<'a> {
    pub values: &'a [Bound],
    pub now_ms: i64,
}

pub const DATE_EPOCH: i64 = 1 << 31;

fn lit_kind(l: &Lit) -> (&'static str, String) {
    match l {
        Lit::Str(s) => ("STRING", s.clone()),
        Lit::Int(s) => ("INTEGER", s.clone()),
        Lit::Float(s) => ("FLOAT", s.clone()),
        Lit::Bool(b) => ("BOOLEAN", b.to_string()),
        Lit::Uuid(s) => ("UUID", s.clone()),
        Lit::Blob(b) => ("HEX", hex(b)),
        Lit::Duration(s) => ("DURATION", s.clone()),
        Lit::NaN => ("FLOAT", "NaN".into()),
        Lit::Infinity(n) => ("FLOAT", if *n { "-Infinity" } else { "Infinity" }.into()),
    }
}

pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + b.len() * 2);
    s.push_str("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn mismatch(l: &Lit, ty: &CqlType, col: &str) -> CqlError {
    let (k, text) = lit_kind(l);
    CqlError::invalid(format!(
        "Invalid {k} constant ({text}) for \"{col}\" of type {}",
        ty.cql_name()
    ))
}

pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    uuid::Uuid::parse_str(s).ok().map(|u| *u.as_bytes())
}

/// Parse a decimal literal into (unscaled, scale).
pub fn parse_decimal(s: &str) -> Option<(i128, i32)> {
    let s = s.trim();
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    let digits = format!("{int}{frac}");
    let unscaled: i128 = if digits.is_empty() || digits == "-" || digits == "+" {
        0
    } else {
        digits.parse().ok()?
    };
    Some((unscaled, (frac.len() as i32).checked_sub(exp)?))
}

pub fn decimal_string(unscaled: i128, scale: i32) -> String {
    if !(-10_000..=10_000).contains(&scale) {
        return format!("{unscaled}E{}", -(scale as i64));
    }
    if scale <= 0 {
        let mut s = unscaled.to_string();
        if scale < 0 && unscaled != 0 {
            s.push_str(&format!("E+{}", -scale));
        }
        return s;
    }
    let neg = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let s = if digits.len() > scale {
        format!(
            "{}.{}",
            &digits[..digits.len() - scale],
            &digits[digits.len() - scale..]
        )
    } else {
        format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
    };
    if neg {
        format!("-{s}")
    } else {
        s
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn parse_ymd(s: &str) -> Option<i64> {
    let neg = s.starts_with('-');
    let body = if neg { &s[1..] } else { s };
    let mut it = body.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    if y > 1_000_000 {
        return None;
    }
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(if neg { -y } else { y }, m, d))
}

/// Nanoseconds of `hh:mm[:ss[.fffffffff]]`.
fn parse_hms(s: &str) -> Option<i64> {
    let mut it = s.splitn(3, ':');
    let h: i64 = it.next()?.trim().parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let (sec, frac) = match it.next() {
        Some(rest) => match rest.split_once('.') {
            Some((a, f)) => (a.parse::<i64>().ok()?, f),
            None => (rest.parse::<i64>().ok()?, ""),
        },
        None => (0, ""),
    };
    if h > 23 || m > 59 || sec > 59 || frac.len() > 9 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let frac_ns: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(((h * 60 + m) * 60 + sec) * 1_000_000_000 + frac_ns)
}

/// Milliseconds since the epoch of a CQL timestamp string.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let (date, rest) = match s.find(['T', ' ']) {
        Some(i) if i >= 8 => (&s[..i], s[i + 1..].trim()),
        _ => (s, ""),
    };
    // Split off a zone: Z, +hh[:]mm, -hh[:]mm, or a name like UTC/GMT.
    let (time, zone_min) = split_zone(rest)?;
    let (date, zone_min) = if rest.is_empty() {
        let (d, z) = split_zone_date(date)?;
        (d, z)
    } else {
        (date, zone_min)
    };
    let days = parse_ymd(date)?;
    let ns = if time.is_empty() { 0 } else { parse_hms(time)? };
    Some(days * 86_400_000 + ns / 1_000_000 - zone_min * 60_000)
}

fn split_zone(s: &str) -> Option<(&str, i64)> {
    if s.is_empty() {
        return Some((s, 0));
    }
    if let Some(t) = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("UTC"))
        .or_else(|| s.strip_suffix("GMT"))
    {
        return Some((t.trim(), 0));
    }
    if let Some(i) = s.rfind(['+', '-']) {
        let (t, z) = (&s[..i], &s[i..]);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let digits: String = z[1..].chars().filter(|c| c.is_ascii_digit()).collect();
        let (h, m) = match digits.len() {
            2 => (digits.parse::<i64>().ok()?, 0),
            4 => (
                digits[..2].parse::<i64>().ok()?,
                digits[2..].parse::<i64>().ok()?,
            ),
            _ => return None,
        };
        return Some((t.trim(), sign * (h * 60 + m)));
    }
    Some((s, 0))
}

fn split_zone_date(s: &str) -> Option<(&str, i64)> {
    // "2011-02-03+0000": a zone right after the date.
    if s.len() > 10 && s.as_bytes()[0].is_ascii_digit() && s.is_char_boundary(10) {
        let (d, z) = s.split_at(10);
        let (_, zone) = split_zone(z)?;
        return Some((d, zone));
    }
    Some((s, 0))
}

pub fn format_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

pub fn format_date(d: u32) -> String {
    let (y, m, dd) = civil_from_days(d as i64 - DATE_EPOCH);
    format!("{y:04}-{m:02}-{dd:02}")
}

pub fn format_time(ns: i64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:09}",
        ns / 3_600_000_000_000,
        ns / 60_000_000_000 % 60,
        ns / 1_000_000_000 % 60,
        ns % 1_000_000_000
    )
}

/// Parse a duration: `1h30m`, `-2d`, ISO 8601 `P1Y2M3DT4H`, `P2W`.
pub fn parse_duration(s: &str) -> Option<(i32, i32, i64)> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (mut months, mut days, mut nanos) = (0i64, 0i64, 0i64);
    if let Some(iso) = body.strip_prefix('P').or_else(|| body.strip_prefix('p')) {
        let mut in_time = false;
        let mut num = String::new();
        for c in iso.chars() {
            match c {
                '0'..='9' => num.push(c),
                'T' | 't' => in_time = true,
                _ => {
                    let n: i64 = num.parse().ok()?;
                    num.clear();
                    match (c.to_ascii_uppercase(), in_time) {
                        ('Y', false) => months = months.checked_add(n.checked_mul(12)?)?,
                        ('M', false) => months = months.checked_add(n)?,
                        ('W', false) => days = days.checked_add(n.checked_mul(7)?)?,
                        ('D', false) => days = days.checked_add(n)?,
                        ('H', true) => {
                            nanos = nanos.checked_add(n.checked_mul(3_600_000_000_000)?)?
                        }
                        ('M', true) => nanos = nanos.checked_add(n.checked_mul(60_000_000_000)?)?,
                        ('S', true) => nanos = nanos.checked_add(n.checked_mul(1_000_000_000)?)?,
                        _ => return None,
                    }
                }
            }
        }
        if !num.is_empty() {
            return None;
        }
    } else {
        let b = body.to_ascii_lowercase();
        let b = b.as_bytes();
        let mut i = 0;
        if b.is_empty() {
            return None;
        }
        while i < b.len() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let n: i64 = std::str::from_utf8(&b[start..i]).ok()?.parse().ok()?;
            let ustart = i;
            while i < b.len() && !b[i].is_ascii_digit() {
                i += 1;
            }
            match std::str::from_utf8(&b[ustart..i]).ok()? {
                "y" => months = months.checked_add(n.checked_mul(12)?)?,
                "mo" => months = months.checked_add(n)?,
                "w" => days = days.checked_add(n.checked_mul(7)?)?,
                "d" => days = days.checked_add(n)?,
                "h" => nanos = nanos.checked_add(n.checked_mul(3_600_000_000_000)?)?,
                "m" => nanos = nanos.checked_add(n.checked_mul(60_000_000_000)?)?,
                "s" => nanos = nanos.checked_add(n.checked_mul(1_000_000_000)?)?,
                "ms" => nanos = nanos.checked_add(n.checked_mul(1_000_000)?)?,
                "us" | "µs" => nanos = nanos.checked_add(n.checked_mul(1000)?)?,
                "ns" => nanos = nanos.checked_add(n)?,
                _ => return None,
            }
        }
    }
    let sign = if neg { -1 } else { 1 };
    Some((
        i32::try_from(sign * months).ok()?,
        i32::try_from(sign * days).ok()?,
        nanos.checked_mul(sign)?,
    ))
}

pub fn format_duration(months: i32, days: i32, nanos: i64) -> String {
    if months == 0 && days == 0 && nanos == 0 {
        return "0s".into();
    }
    let neg = months < 0 || days < 0 || nanos < 0;
    let (m, d, mut n) = (
        months.unsigned_abs() as u64,
        days.unsigned_abs() as u64,
        nanos.unsigned_abs(),
    );
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if m / 12 > 0 {
        s.push_str(&format!("{}y", m / 12));
    }
    if m % 12 > 0 {
        s.push_str(&format!("{}mo", m % 12));
    }
    if d > 0 {
        s.push_str(&format!("{d}d"));
    }
    for (unit, size) in [
        ("h", 3_600_000_000_000u64),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1000),
        ("ns", 1),
    ] {
        if n >= size {
            s.push_str(&format!("{}{unit}", n / size));
            n %= size;
        }
    }
    s
}

/// A literal typed as `ty` (for column `col`, named in errors).
pub fn lit_value(l: &Lit, ty: &CqlType, col: &str) -> Result<Value> {
    use CqlType as T;
    let bad = || mismatch(l, ty, col);
    let int = |s: &str| s.parse::<i128>().map_err(|_| bad());
    Ok(match (l, ty.base()) {
        (Lit::Str(s), T::Text) => Value::Text(s.clone()),
        (Lit::Str(s), T::Ascii) => {
            if !s.is_ascii() {
                return Err(CqlError::invalid(format!(
                    "Invalid ASCII character in string literal {s}"
                )));
            }
            Value::Text(s.clone())
        }
        (Lit::Str(s), T::Timestamp) => Value::Timestamp(parse_timestamp(s).ok_or_else(|| {
            CqlError::invalid(format!("Unable to coerce '{s}' to a formatted date (long)"))
        })?),
        (Lit::Str(s), T::Date) => {
            let days = match s.parse::<i64>() {
                Ok(d) => d - DATE_EPOCH,
                Err(_) => parse_ymd(s.trim()).ok_or_else(|| {
                    CqlError::invalid(format!("Unable to coerce '{s}' to a formatted date (long)"))
                })?,
            };
            Value::Date(u32::try_from(days + DATE_EPOCH).map_err(|_| {
                CqlError::invalid(format!("Unable to coerce '{s}' to a formatted date (long)"))
            })?)
        }
        (Lit::Str(s), T::Time) => Value::Time(match s.parse::<i64>() {
            Ok(n) => n,
            Err(_) => parse_hms(s).ok_or_else(|| {
                CqlError::invalid(format!("Unable to coerce '{s}' to a formatted time (long)"))
            })?,
        }),
        (Lit::Str(s), T::Inet) => {
            Value::Inet(s.trim().parse::<IpAddr>().map_err(|_| {
                CqlError::invalid(format!("Unable to make inet address from '{s}'"))
            })?)
        }
        (Lit::Str(s), T::Duration) => {
            let (months, days, nanos) = parse_duration(s).ok_or_else(|| {
                CqlError::invalid(format!("Unable to convert '{s}' to a duration"))
            })?;
            Value::Duration {
                months,
                days,
                nanos,
            }
        }
        (Lit::Str(s), T::Uuid | T::Timeuuid) => Value::Uuid(parse_uuid(s).ok_or_else(bad)?),
        (Lit::Int(s), T::Tinyint | T::Smallint | T::Int | T::Bigint | T::Counter | T::Varint) => {
            Value::Int(int(s)?)
        }
        (Lit::Int(s), T::Float) => Value::Float(s.parse().map_err(|_| bad())?),
        (Lit::Int(s), T::Double) => Value::Double(s.parse().map_err(|_| bad())?),
        (Lit::Int(s) | Lit::Float(s), T::Decimal) => {
            let (unscaled, scale) = parse_decimal(s).ok_or_else(bad)?;
            Value::Decimal { unscaled, scale }
        }
        (Lit::Int(s), T::Timestamp) => Value::Timestamp(s.parse().map_err(|_| bad())?),
        (Lit::Int(s), T::Date) => Value::Date(s.parse().map_err(|_| {
            CqlError::invalid(format!(
                "Unable to make unsigned int (for date) from: '{s}'"
            ))
        })?),
        (Lit::Int(s), T::Time) => Value::Time(s.parse().map_err(|_| bad())?),
        (Lit::Float(s), T::Float) => Value::Float(s.parse().map_err(|_| bad())?),
        (Lit::Float(s), T::Double) => Value::Double(s.parse().map_err(|_| bad())?),
        (Lit::NaN, T::Float) => Value::Float(f32::NAN),
        (Lit::NaN, T::Double) => Value::Double(f64::NAN),
        (Lit::Infinity(n), T::Float) => {
            Value::Float(if *n { f32::NEG_INFINITY } else { f32::INFINITY })
        }
        (Lit::Infinity(n), T::Double) => {
            Value::Double(if *n { f64::NEG_INFINITY } else { f64::INFINITY })
        }
        (Lit::Bool(b), T::Boolean) => Value::Bool(*b),
        (Lit::Uuid(s), T::Uuid | T::Timeuuid) => {
            let u = parse_uuid(s).ok_or_else(bad)?;
            if matches!(ty.base(), T::Timeuuid) && u[6] >> 4 != 1 {
                return Err(CqlError::invalid(format!(
                    "Invalid UUID constant ({s}) for \"{col}\" of type timeuuid"
                )));
            }
            Value::Uuid(u)
        }
        (Lit::Blob(b), T::Blob | T::Custom(_)) => Value::Blob(b.clone()),
        (Lit::Duration(s), T::Duration) => {
            let (months, days, nanos) = parse_duration(s).ok_or_else(bad)?;
            Value::Duration {
                months,
                days,
                nanos,
            }
        }
        _ => return Err(bad()),
    })
}

/// Evaluate `t` as a value of type `ty` for column `col`.
pub fn eval(t: &Term, ty: &CqlType, b: &Binds, col: &str) -> Result<Ev> {
    Ok(match t {
        Term::Null => Ev::Null,
        Term::Bind(i) => match b.values.get(*i) {
            None => {
                return Err(CqlError::invalid(format!(
                    "There were {} markers(?) in CQL but {} bound variables",
                    i + 1,
                    b.values.len()
                )))
            }
            Some(Bound::Null) => Ev::Null,
            Some(Bound::Unset) => Ev::Unset,
            Some(Bound::Bytes(bytes)) => {
                if bytes.is_empty()
                    && !matches!(
                        ty.base(),
                        CqlType::Text
                            | CqlType::Ascii
                            | CqlType::Blob
                            | CqlType::List(_)
                            | CqlType::Set(_)
                            | CqlType::Map(..)
                    )
                {
                    // An empty value of a fixed-size type: Cassandra's "empty" value.
                    Ev::Null
                } else {
                    Ev::V(types::decode(ty, bytes).map_err(|_| {
                        CqlError::invalid(format!(
                            "Exception while binding column {col}: invalid {} value ({} bytes)",
                            ty.cql_name(),
                            bytes.len()
                        ))
                    })?)
                }
            }
        },
        Term::Lit(l) => Ev::V(lit_value(l, ty, col)?),
        Term::List(items) => match ty.base() {
            CqlType::List(e) | CqlType::Set(e) => {
                let vals = items
                    .iter()
                    .map(|i| eval_elem(i, e, b, col))
                    .collect::<Result<Vec<_>>>()?;
                if matches!(ty.base(), CqlType::Set(_)) {
                    Ev::V(Value::Set(vals))
                } else {
                    Ev::V(Value::List(vals))
                }
            }
            _ => {
                return Err(CqlError::invalid(format!(
                    "Invalid list literal for {col} of type {}",
                    ty.cql_name()
                )))
            }
        },
        Term::Set(items) => match ty.base() {
            CqlType::Set(e) => {
                let mut vals = items
                    .iter()
                    .map(|i| eval_elem(i, e, b, col))
                    .collect::<Result<Vec<_>>>()?;
                types::sort_dedup(e, &mut vals);
                Ev::V(Value::Set(vals))
            }
            _ => {
                return Err(CqlError::invalid(format!(
                    "Invalid set literal for {col} of type {}",
                    ty.cql_name()
                )))
            }
        },
        Term::Map(pairs) => match ty.base() {
            CqlType::Map(k, v) => Ev::V(Value::Map(
                pairs
                    .iter()
                    .map(|(a, c)| Ok((eval_elem(a, k, b, col)?, eval_elem(c, v, b, col)?)))
                    .collect::<Result<Vec<_>>>()?,
            )),
            _ => {
                return Err(CqlError::invalid(format!(
                    "Invalid map literal for {col} of type {}",
                    ty.cql_name()
                )))
            }
        },
        Term::EmptyBraces => match ty.base() {
            CqlType::Map(..) => Ev::V(Value::Map(vec![])),
            CqlType::Set(_) => Ev::V(Value::Set(vec![])),
            _ => {
                return Err(CqlError::invalid(format!(
                    "Invalid set literal for {col} of type {}",
                    ty.cql_name()
                )))
            }
        },
        Term::Tuple(items) => match ty.base() {
            CqlType::Tuple(ts) => {
                if items.len() > ts.len() {
                    return Err(CqlError::invalid(format!("Invalid tuple literal for {col}: too many elements. Type {} expects {} but got {}", ty.cql_name(), ts.len(), items.len())));
                }
                Ev::V(Value::Tuple(
                    items
                        .iter()
                        .zip(ts)
                        .map(|(i, t)| match eval(i, t, b, col)? {
                            Ev::V(v) => Ok(v),
                            _ => Ok(Value::Null),
                        })
                        .collect::<Result<Vec<_>>>()?,
                ))
            }
            _ => {
                return Err(CqlError::invalid(format!(
                    "Invalid tuple literal for {col} of type {}",
                    ty.cql_name()
                )))
            }
        },
        Term::Udt(fields) => match ty.base() {
            CqlType::Udt {
                fields: defs, name, ..
            } => {
                let mut vals = vec![Value::Null; defs.len()];
                for (f, term) in fields {
                    let Some(i) = defs.iter().position(|(n, _)| n == f) else {
                        return Err(CqlError::invalid(format!(
                            "Unknown field '{f}' in value of user defined type {name}"
                        )));
                    };
                    if let Ev::V(v) = eval(term, &defs[i].1, b, col)? {
                        vals[i] = v;
                    }
                }
                Ev::V(Value::Tuple(vals))
            }
            _ => {
                return Err(CqlError::invalid(format!(
                    "Invalid user type literal for {col} of type {}",
                    ty.cql_name()
                )))
            }
        },
        Term::Cast(_, inner) => eval(inner, ty, b, col)?,
        Term::Encoded(bytes) => Ev::V(types::decode(ty, bytes)?),
        Term::Func(name, args) => func(name, args, ty, b, col)?,
    })
}

fn eval_elem(t: &Term, ty: &CqlType, b: &Binds, col: &str) -> Result<Value> {
    match eval(t, ty, b, col)? {
        Ev::V(v) => Ok(v),
        Ev::Null => Err(CqlError::invalid(
            "null is not supported inside collections",
        )),
        Ev::Unset => Err(CqlError::invalid(
            "unset value is not supported inside collections",
        )),
    }
}

fn now_timeuuid(ms: i64) -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    types::timeuuid_at(ms, SEQ.fetch_add(1, Ordering::Relaxed) % 10_000, None)
}

fn func(name: &str, args: &[Term], ty: &CqlType, b: &Binds, col: &str) -> Result<Ev> {
    let arg = |i: usize, t: &CqlType| -> Result<Ev> {
        match args.get(i) {
            Some(a) => eval(a, t, b, col),
            None => Err(CqlError::invalid(format!(
                "Invalid number of arguments in call to function {name}"
            ))),
        }
    };
    let v = match name {
        "now" | "currenttimeuuid" => Value::Uuid(now_timeuuid(b.now_ms)),
        "uuid" => Value::Uuid(*uuid::Uuid::new_v4().as_bytes()),
        "currenttimestamp" => Value::Timestamp(b.now_ms),
        "currentdate" => Value::Date((b.now_ms.div_euclid(86_400_000) + DATE_EPOCH) as u32),
        "currenttime" => Value::Time(b.now_ms.rem_euclid(86_400_000) * 1_000_000),
        "mintimeuuid" | "maxtimeuuid" => {
            let Ev::V(Value::Timestamp(ms)) = arg(0, &CqlType::Timestamp)? else {
                return Ok(Ev::Null);
            };
            if name == "mintimeuuid" {
                Value::Uuid(types::timeuuid_at(ms, 0, Some(0x80)))
            } else {
                let mut u = types::timeuuid_at(ms, 9_999, Some(0x7F));
                u[8] = 0xBF;
                Value::Uuid(u)
            }
        }
        "totimestamp" | "dateof" | "todate" | "tounixtimestamp" | "unixtimestampof" => {
            let inner = args.first().ok_or_else(|| {
                CqlError::invalid(format!(
                    "Invalid number of arguments in call to function {name}"
                ))
            })?;
            let guess = match inner {
                Term::Func(f, _)
                    if matches!(
                        f.as_str(),
                        "now" | "currenttimeuuid" | "mintimeuuid" | "maxtimeuuid"
                    ) =>
                {
                    CqlType::Timeuuid
                }
                Term::Func(f, _) if f == "currentdate" || f == "todate" => CqlType::Date,
                Term::Func(..) => CqlType::Timestamp,
                Term::Lit(Lit::Uuid(_)) => CqlType::Timeuuid,
                _ => CqlType::Timestamp,
            };
            let ms = match arg(0, &guess)? {
                Ev::V(Value::Uuid(u)) => types::uuid_millis(&u),
                Ev::V(Value::Timestamp(ms)) => ms,
                Ev::V(Value::Date(d)) => (d as i64 - DATE_EPOCH) * 86_400_000,
                _ => return Ok(Ev::Null),
            };
            match name {
                "todate" => Value::Date((ms.div_euclid(86_400_000) + DATE_EPOCH) as u32),
                "tounixtimestamp" | "unixtimestampof" => Value::Int(ms as i128),
                _ => Value::Timestamp(ms),
            }
        }
        "fromjson" => {
            let Ev::V(Value::Text(s)) = arg(0, &CqlType::Text)? else {
                return Ok(Ev::Null);
            };
            let j: Json = serde_json::from_str(&s).map_err(|e| {
                CqlError::invalid(format!("Could not decode JSON string '{s}': {e}"))
            })?;
            if j.is_null() {
                return Ok(Ev::Null);
            }
            json_to_value(ty, &j)?
        }
        n if n.starts_with("blobas") => {
            let Ev::V(Value::Blob(bytes)) = arg(0, &CqlType::Blob)? else {
                return Ok(Ev::Null);
            };
            types::decode(ty, &bytes)?
        }
        n if n.ends_with("asblob") => {
            let src = crate::types::parse_type(&n[..n.len() - 6], &|_| None)?;
            match arg(0, &src)? {
                Ev::V(v) => Value::Blob(types::encode(&src, &v)?),
                _ => return Ok(Ev::Null),
            }
        }
        _ => return Err(CqlError::invalid(format!("Unknown function '{name}'"))),
    };
    Ok(Ev::V(v))
}

/// JSON text the way Cassandra prints it (`{"a": 1, "b": [1, 2]}`).
pub fn json_text(j: &Json) -> String {
    match j {
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(json_text).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", Json::String(k.clone()), json_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// A value as `toJson` renders it.
pub fn value_to_json(ty: &CqlType, v: &Value) -> Json {
    use serde_json::json;
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => match i64::try_from(*i) {
            Ok(i) => json!(i),
            Err(_) => Json::String(i.to_string()),
        },
        Value::Float(f) => serde_json::Number::from_f64(*f as f64)
            .map(Json::Number)
            .unwrap_or(Json::String(f.to_string())),
        Value::Double(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::String(f.to_string())),
        Value::Text(s) => json!(s),
        Value::Blob(b) => json!(hex(b)),
        Value::Uuid(u) => json!(uuid::Uuid::from_bytes(*u).to_string()),
        Value::Timestamp(ms) => json!(format_timestamp(*ms)),
        Value::Date(d) => json!(format_date(*d)),
        Value::Time(ns) => json!(format_time(*ns)),
        Value::Decimal { unscaled, scale } => decimal_string(*unscaled, *scale)
            .parse::<serde_json::Number>()
            .map(Json::Number)
            .unwrap_or_else(|_| json!(decimal_string(*unscaled, *scale))),
        Value::Inet(ip) => json!(ip.to_string()),
        Value::Duration {
            months,
            days,
            nanos,
        } => json!(format_duration(*months, *days, *nanos)),
        Value::List(items) | Value::Set(items) => {
            let et = match ty.base() {
                CqlType::List(e) | CqlType::Set(e) => e.as_ref().clone(),
                _ => CqlType::Blob,
            };
            Json::Array(items.iter().map(|i| value_to_json(&et, i)).collect())
        }
        Value::Map(pairs) => {
            let (kt, vt) = match ty.base() {
                CqlType::Map(k, v) => (k.as_ref().clone(), v.as_ref().clone()),
                _ => (CqlType::Blob, CqlType::Blob),
            };
            let mut m = serde_json::Map::new();
            for (k, v) in pairs {
                let key = match value_to_json(&kt, k) {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                m.insert(key, value_to_json(&vt, v));
            }
            Json::Object(m)
        }
        Value::Tuple(items) => match ty.base() {
            CqlType::Udt { fields, .. } => {
                let mut m = serde_json::Map::new();
                for ((n, t), v) in fields.iter().zip(items) {
                    m.insert(n.clone(), value_to_json(t, v));
                }
                Json::Object(m)
            }
            CqlType::Tuple(ts) => Json::Array(
                items
                    .iter()
                    .zip(ts)
                    .map(|(v, t)| value_to_json(t, v))
                    .collect(),
            ),
            _ => Json::Null,
        },
    }
}

/// A JSON value as a value of `ty` (for INSERT JSON and fromJson).
pub fn json_to_value(ty: &CqlType, j: &Json) -> Result<Value> {
    use CqlType as T;
    let bad = || CqlError::invalid(format!("Unable to make {} from '{j}'", ty.cql_name()));
    Ok(match (ty.base(), j) {
        (_, Json::Null) => Value::Null,
        (T::Text | T::Ascii, Json::String(s)) => Value::Text(s.clone()),
        (T::Boolean, Json::Bool(b)) => Value::Bool(*b),
        (T::Boolean, Json::String(s)) => Value::Bool(s.eq_ignore_ascii_case("true")),
        (
            T::Tinyint | T::Smallint | T::Int | T::Bigint | T::Counter | T::Varint,
            Json::Number(n),
        ) => Value::Int(n.to_string().parse::<i128>().map_err(|_| bad())?),
        (
            T::Tinyint | T::Smallint | T::Int | T::Bigint | T::Counter | T::Varint,
            Json::String(s),
        ) => Value::Int(s.trim().parse::<i128>().map_err(|_| bad())?),
        (T::Float, Json::Number(n)) => Value::Float(n.as_f64().ok_or_else(bad)? as f32),
        (T::Double, Json::Number(n)) => Value::Double(n.as_f64().ok_or_else(bad)?),
        (T::Float | T::Double, Json::String(s)) => {
            let f: f64 = s.parse().map_err(|_| bad())?;
            if matches!(ty.base(), T::Float) {
                Value::Float(f as f32)
            } else {
                Value::Double(f)
            }
        }
        (T::Decimal, Json::Number(n)) => {
            let (unscaled, scale) = parse_decimal(&n.to_string()).ok_or_else(bad)?;
            Value::Decimal { unscaled, scale }
        }
        (T::Decimal, Json::String(s)) => {
            let (unscaled, scale) = parse_decimal(s).ok_or_else(bad)?;
            Value::Decimal { unscaled, scale }
        }
        (T::Timestamp, Json::Number(n)) => Value::Timestamp(n.as_i64().ok_or_else(bad)?),
        (T::Blob, Json::String(s)) => {
            let h = s.strip_prefix("0x").ok_or_else(bad)?;
            if h.len() % 2 != 0 {
                return Err(bad());
            }
            Value::Blob(
                (0..h.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&h[i..i + 2], 16))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| bad())?,
            )
        }
        (T::Uuid | T::Timeuuid, Json::String(s)) => Value::Uuid(parse_uuid(s).ok_or_else(bad)?),
        (T::Timestamp | T::Date | T::Time | T::Inet | T::Duration, Json::String(s)) => {
            lit_value(&Lit::Str(s.clone()), ty, "json")?
        }
        (T::Date | T::Time, Json::Number(n)) => lit_value(&Lit::Int(n.to_string()), ty, "json")?,
        (T::List(e), Json::Array(items)) => Value::List(
            items
                .iter()
                .map(|i| json_to_value(e, i))
                .collect::<Result<_>>()?,
        ),
        (T::Set(e), Json::Array(items)) => {
            let mut v: Vec<Value> = items
                .iter()
                .map(|i| json_to_value(e, i))
                .collect::<Result<_>>()?;
            types::sort_dedup(e, &mut v);
            Value::Set(v)
        }
        (T::Map(k, v), Json::Object(m)) => Value::Map(
            m.iter()
                .map(|(ks, vj)| {
                    let key = match k.base() {
                        T::Text | T::Ascii => Value::Text(ks.clone()),
                        _ => {
                            let kj: Json =
                                serde_json::from_str(ks).unwrap_or(Json::String(ks.clone()));
                            json_to_value(k, &kj)?
                        }
                    };
                    Ok((key, json_to_value(v, vj)?))
                })
                .collect::<Result<_>>()?,
        ),
        (T::Tuple(ts), Json::Array(items)) => {
            if items.len() != ts.len() {
                return Err(bad());
            }
            Value::Tuple(
                items
                    .iter()
                    .zip(ts)
                    .map(|(i, t)| json_to_value(t, i))
                    .collect::<Result<_>>()?,
            )
        }
        (T::Udt { fields, .. }, Json::Object(m)) => {
            for k in m.keys() {
                if !fields
                    .iter()
                    .any(|(n, _)| n == k || n.eq_ignore_ascii_case(k))
                {
                    return Err(CqlError::invalid(format!(
                        "JSON object value for user type contained a non-existent field: \"{k}\""
                    )));
                }
            }
            Value::Tuple(
                fields
                    .iter()
                    .map(|(n, t)| {
                        m.get(n)
                            .map(|v| json_to_value(t, v))
                            .unwrap_or(Ok(Value::Null))
                    })
                    .collect::<Result<_>>()?,
            )
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00+0000"), Some(0));
        assert_eq!(
            parse_timestamp("2011-02-03T04:05:00.123Z"),
            Some(1296705900123)
        );
        assert_eq!(
            parse_timestamp("2011-02-03 04:05+01:00"),
            Some(1296705900000 - 3_600_000)
        );
        assert_eq!(parse_timestamp("2011-02-03"), Some(1296691200000));
        assert_eq!(format_timestamp(1296705900123), "2011-02-03 04:05:00.123Z");
        // Odd input is an error, never a panic.
        for junk in [
            "2020-01-0é1x",
            "é",
            "2020-13-01",
            "99999999999999999999",
            "2020-01-01 25:00",
            "+",
            "T",
            "2020-01-01T1:2:3.1234567890",
        ] {
            let _ = parse_timestamp(junk);
            let _ = parse_duration(junk);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Some((0, 0, 5_400_000_000_000)));
        assert_eq!(
            parse_duration("P1Y2M3DT4H"),
            Some((14, 3, 4 * 3_600_000_000_000))
        );
        assert_eq!(parse_duration("-2d"), Some((0, -2, 0)));
        assert_eq!(format_duration(14, 3, 5_400_000_000_000), "1y2mo3d1h30m");
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("1.25"), Some((125, 2)));
        assert_eq!(decimal_string(125, 2), "1.25");
        assert_eq!(decimal_string(-5, 3), "-0.005");
    }
}
