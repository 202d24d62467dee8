//! CQL data types and values: the type grammar (`frozen<map<text, int>>`), the wire type
//! options of result metadata, and [`Value`], the decoded form of a cell. Cells are stored
//! in their wire serialization, so a SELECT copies bytes; `Value` is used for literals,
//! comparisons, key encoding and JSON.

use std::cmp::Ordering;
use std::net::IpAddr;

use crate::error::{CqlError, Result};

/// A CQL type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CqlType {
    Ascii,
    Bigint,
    Blob,
    Boolean,
    Counter,
    Date,
    Decimal,
    Double,
    Duration,
    Float,
    Inet,
    Int,
    Smallint,
    Text,
    Time,
    Timestamp,
    Timeuuid,
    Tinyint,
    Uuid,
    Varint,
    List(Box<CqlType>),
    Set(Box<CqlType>),
    Map(Box<CqlType>, Box<CqlType>),
    Tuple(Vec<CqlType>),
    /// A user-defined type, with its fields resolved.
    Udt {
        keyspace: String,
        name: String,
        fields: Vec<(String, CqlType)>,
    },
    Frozen(Box<CqlType>),
    /// A custom (Java class) type: stored as blob.
    Custom(String),
}

impl CqlType {
    /// The type without `frozen<>` at the top.
    pub fn base(&self) -> &CqlType {
        match self {
            CqlType::Frozen(t) => t.base(),
            t => t,
        }
    }

    pub fn is_collection(&self) -> bool {
        matches!(
            self.base(),
            CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..)
        )
    }

    /// A non-frozen collection or UDT (updated element-wise by CQL).
    pub fn is_multicell(&self) -> bool {
        matches!(
            self,
            CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..) | CqlType::Udt { .. }
        )
    }

    pub fn is_counter(&self) -> bool {
        matches!(self, CqlType::Counter)
    }

    /// The CQL name, as `system_schema.columns.type` shows it.
    pub fn cql_name(&self) -> String {
        match self {
            CqlType::Ascii => "ascii".into(),
            CqlType::Bigint => "bigint".into(),
            CqlType::Blob => "blob".into(),
            CqlType::Boolean => "boolean".into(),
            CqlType::Counter => "counter".into(),
            CqlType::Date => "date".into(),
            CqlType::Decimal => "decimal".into(),
            CqlType::Double => "double".into(),
            CqlType::Duration => "duration".into(),
            CqlType::Float => "float".into(),
            CqlType::Inet => "inet".into(),
            CqlType::Int => "int".into(),
            CqlType::Smallint => "smallint".into(),
            CqlType::Text => "text".into(),
            CqlType::Time => "time".into(),
            CqlType::Timestamp => "timestamp".into(),
            CqlType::Timeuuid => "timeuuid".into(),
            CqlType::Tinyint => "tinyint".into(),
            CqlType::Uuid => "uuid".into(),
            CqlType::Varint => "varint".into(),
            CqlType::List(t) => format!("list<{}>", t.cql_name()),
            CqlType::Set(t) => format!("set<{}>", t.cql_name()),
            CqlType::Map(k, v) => format!("map<{}, {}>", k.cql_name(), v.cql_name()),
            CqlType::Tuple(ts) => format!(
                "frozen<tuple<{}>>",
                ts.iter()
                    .map(|t| t.cql_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            CqlType::Udt { name, .. } => name.clone(),
            CqlType::Frozen(t) => match t.as_ref() {
                CqlType::Tuple(_) => t.cql_name(),
                t => format!("frozen<{}>", t.cql_name()),
            },
            CqlType::Custom(c) => format!("'{c}'"),
        }
    }

    /// Write the wire `[option]` of this type (protocol spec 4.2.5.2).
    pub fn write_option(&self, out: &mut Vec<u8>) {
        let id: u16 = match self.base() {
            CqlType::Custom(_) => 0x0000,
            CqlType::Ascii => 0x0001,
            CqlType::Bigint => 0x0002,
            CqlType::Blob => 0x0003,
            CqlType::Boolean => 0x0004,
            CqlType::Counter => 0x0005,
            CqlType::Decimal => 0x0006,
            CqlType::Double => 0x0007,
            CqlType::Float => 0x0008,
            CqlType::Int => 0x0009,
            CqlType::Timestamp => 0x000B,
            CqlType::Uuid => 0x000C,
            CqlType::Text => 0x000D,
            CqlType::Varint => 0x000E,
            CqlType::Timeuuid => 0x000F,
            CqlType::Inet => 0x0010,
            CqlType::Date => 0x0011,
            CqlType::Time => 0x0012,
            CqlType::Smallint => 0x0013,
            CqlType::Tinyint => 0x0014,
            CqlType::Duration => 0x0015,
            CqlType::List(_) => 0x0020,
            CqlType::Map(..) => 0x0021,
            CqlType::Set(_) => 0x0022,
            CqlType::Udt { .. } => 0x0030,
            CqlType::Tuple(_) => 0x0031,
            CqlType::Frozen(_) => unreachable!("base() strips frozen"),
        };
        out.extend_from_slice(&id.to_be_bytes());
        let put_str = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        match self.base() {
            CqlType::Custom(c) => put_str(out, c),
            CqlType::List(t) | CqlType::Set(t) => t.write_option(out),
            CqlType::Map(k, v) => {
                k.write_option(out);
                v.write_option(out);
            }
            CqlType::Udt {
                keyspace,
                name,
                fields,
            } => {
                put_str(out, keyspace);
                put_str(out, name);
                out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
                for (f, t) in fields {
                    put_str(out, f);
                    t.write_option(out);
                }
            }
            CqlType::Tuple(ts) => {
                out.extend_from_slice(&(ts.len() as u16).to_be_bytes());
                for t in ts {
                    t.write_option(out);
                }
            }
            _ => {}
        }
    }
}

/// Parse a type name of the CQL grammar; `udt` resolves a user type name in the statement's
/// keyspace.
pub fn parse_type(s: &str, udt: &dyn Fn(&str) -> Option<CqlType>) -> Result<CqlType> {
    let mut p = TypeParser {
        s: s.as_bytes(),
        i: 0,
        depth: 0,
        udt,
    };
    let t = p.parse()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(CqlError::syntax(format!("bad type '{s}'")));
    }
    Ok(t)
}

struct TypeParser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
    udt: &'a dyn Fn(&str) -> Option<CqlType>,
}

impl TypeParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn word(&mut self) -> String {
        self.ws();
        if self.s.get(self.i) == Some(&b'"') {
            let start = self.i + 1;
            let mut j = start;
            while j < self.s.len() && self.s[j] != b'"' {
                j += 1;
            }
            self.i = (j + 1).min(self.s.len());
            return String::from_utf8_lossy(&self.s[start..j]).into_owned();
        }
        if self.s.get(self.i) == Some(&b'\'') {
            let start = self.i + 1;
            let mut j = start;
            while j < self.s.len() && self.s[j] != b'\'' {
                j += 1;
            }
            self.i = (j + 1).min(self.s.len());
            return format!("'{}", String::from_utf8_lossy(&self.s[start..j]));
        }
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || matches!(self.s[self.i], b'_' | b'.'))
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).to_ascii_lowercase()
    }
    fn expect(&mut self, c: u8) -> Result<()> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(CqlError::syntax(format!(
                "expected '{}' in type '{}'",
                c as char,
                String::from_utf8_lossy(self.s)
            )))
        }
    }
    fn peek(&mut self, c: u8) -> bool {
        self.ws();
        self.s.get(self.i) == Some(&c)
    }
    fn parse(&mut self) -> Result<CqlType> {
        self.depth += 1;
        if self.depth > 32 {
            return Err(CqlError::syntax("type nested too deeply"));
        }
        let t = self.parse_inner();
        self.depth -= 1;
        t
    }

    fn parse_inner(&mut self) -> Result<CqlType> {
        let w = self.word();
        Ok(match w.as_str() {
            "ascii" => CqlType::Ascii,
            "bigint" => CqlType::Bigint,
            "blob" => CqlType::Blob,
            "boolean" => CqlType::Boolean,
            "counter" => CqlType::Counter,
            "date" => CqlType::Date,
            "decimal" => CqlType::Decimal,
            "double" => CqlType::Double,
            "duration" => CqlType::Duration,
            "float" => CqlType::Float,
            "inet" => CqlType::Inet,
            "int" => CqlType::Int,
            "smallint" => CqlType::Smallint,
            "text" | "varchar" => CqlType::Text,
            "time" => CqlType::Time,
            "timestamp" => CqlType::Timestamp,
            "timeuuid" => CqlType::Timeuuid,
            "tinyint" => CqlType::Tinyint,
            "uuid" => CqlType::Uuid,
            "varint" => CqlType::Varint,
            "list" | "set" => {
                self.expect(b'<')?;
                let t = Box::new(self.parse()?);
                self.expect(b'>')?;
                if w == "list" {
                    CqlType::List(t)
                } else {
                    CqlType::Set(t)
                }
            }
            "map" => {
                self.expect(b'<')?;
                let k = self.parse()?;
                self.expect(b',')?;
                let v = self.parse()?;
                self.expect(b'>')?;
                CqlType::Map(Box::new(freeze(k)), Box::new(freeze(v)))
            }
            "tuple" => {
                self.expect(b'<')?;
                let mut ts = vec![freeze(self.parse()?)];
                while self.peek(b',') {
                    self.i += 1;
                    ts.push(freeze(self.parse()?));
                }
                self.expect(b'>')?;
                CqlType::Frozen(Box::new(CqlType::Tuple(ts)))
            }
            "frozen" => {
                self.expect(b'<')?;
                let t = self.parse()?;
                self.expect(b'>')?;
                freeze(t)
            }
            "" => return Err(CqlError::syntax("missing type")),
            w if w.starts_with('\'') => CqlType::Custom(w[1..].to_owned()),
            w => (self.udt)(w).ok_or_else(|| CqlError::invalid(format!("Unknown type {w}")))?,
        })
    }
}

/// `frozen<t>` (collections, tuples and UDTs nested in a type are always frozen).
pub fn freeze(t: CqlType) -> CqlType {
    match t {
        t @ (CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..) | CqlType::Udt { .. }) => {
            CqlType::Frozen(Box::new(freeze_inner(t)))
        }
        CqlType::Frozen(t) => CqlType::Frozen(Box::new(freeze_inner(*t))),
        t => t,
    }
}

fn freeze_inner(t: CqlType) -> CqlType {
    match t {
        CqlType::List(e) => CqlType::List(Box::new(freeze(*e))),
        CqlType::Set(e) => CqlType::Set(Box::new(freeze(*e))),
        CqlType::Map(k, v) => CqlType::Map(Box::new(freeze(*k)), Box::new(freeze(*v))),
        CqlType::Udt {
            keyspace,
            name,
            fields,
        } => CqlType::Udt {
            keyspace,
            name,
            fields: fields.into_iter().map(|(n, t)| (n, freeze(t))).collect(),
        },
        t => t,
    }
}

/// A decoded CQL value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// tinyint, smallint, int, bigint, counter, varint.
    Int(i128),
    Float(f32),
    Double(f64),
    /// ascii, text.
    Text(String),
    Blob(Vec<u8>),
    /// uuid, timeuuid.
    Uuid([u8; 16]),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    /// Days since the epoch, biased by 2^31 as on the wire.
    Date(u32),
    /// Nanoseconds since midnight.
    Time(i64),
    /// unscaled × 10^-scale.
    Decimal {
        unscaled: i128,
        scale: i32,
    },
    Inet(IpAddr),
    Duration {
        months: i32,
        days: i32,
        nanos: i64,
    },
    List(Vec<Value>),
    Set(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// Tuple or UDT fields (in order; `Null` for missing ones).
    Tuple(Vec<Value>),
}

fn put_vint(out: &mut Vec<u8>, v: i64) {
    // zig-zag, then Cassandra's unsigned vint (leading ones = extra bytes).
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    let mut bytes = [0u8; 9];
    let mut n = 0;
    // number of bytes needed
    let bits = 64 - u.leading_zeros() as usize;
    let extra = if bits <= 7 {
        0
    } else {
        ((bits - 1) / 7).min(8)
    };
    if extra == 8 {
        out.push(0xFF);
        out.extend_from_slice(&u.to_be_bytes());
        return;
    }
    for i in (0..=extra).rev() {
        bytes[i] = (u & 0xFF) as u8;
        u >>= 8;
        n += 1;
    }
    bytes[0] |= !(0xFFu8 >> extra);
    out.extend_from_slice(&bytes[..n]);
}

fn get_vint(b: &[u8], i: &mut usize) -> Option<i64> {
    let first = *b.get(*i)?;
    let extra = first.leading_ones() as usize;
    let mut u: u64 = if extra >= 8 {
        0
    } else {
        (first & (0xFFu8 >> extra)) as u64
    };
    for k in 0..extra {
        u = (u << 8) | *b.get(*i + 1 + k)? as u64;
    }
    *i += 1 + extra;
    Some(((u >> 1) as i64) ^ -((u & 1) as i64))
}

fn varint_bytes(v: i128) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (cur, next) = (b[start], b[start + 1]);
        if (cur == 0 && next & 0x80 == 0) || (cur == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    b[start..].to_vec()
}

fn varint_from(b: &[u8]) -> Option<i128> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let mut buf = if b[0] & 0x80 != 0 {
        [0xFF; 16]
    } else {
        [0; 16]
    };
    buf[16 - b.len()..].copy_from_slice(b);
    Some(i128::from_be_bytes(buf))
}

fn bad(t: &CqlType) -> CqlError {
    CqlError::invalid(format!("Invalid value for type {}", t.cql_name()))
}

/// Serialize `v` as type `t` (wire format; `Value::Null` must be handled by the caller).
pub fn encode(t: &CqlType, v: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(t, v, &mut out)?;
    Ok(out)
}

fn encode_into(t: &CqlType, v: &Value, out: &mut Vec<u8>) -> Result<()> {
    let range = |x: i128, lo: i128, hi: i128| {
        if x < lo || x > hi {
            Err(CqlError::invalid(format!(
                "Value {x} out of range for type {}",
                t.cql_name()
            )))
        } else {
            Ok(x)
        }
    };
    match (t.base(), v) {
        (CqlType::Ascii, Value::Text(s)) => {
            if !s.is_ascii() {
                return Err(CqlError::invalid(format!(
                    "Invalid ASCII character in string literal {s}"
                )));
            }
            out.extend_from_slice(s.as_bytes())
        }
        (CqlType::Text, Value::Text(s)) => out.extend_from_slice(s.as_bytes()),
        (CqlType::Blob | CqlType::Custom(_), Value::Blob(b)) => out.extend_from_slice(b),
        (CqlType::Boolean, Value::Bool(b)) => out.push(*b as u8),
        (CqlType::Bigint | CqlType::Counter, Value::Int(i)) => out.extend_from_slice(
            &(range(*i, i64::MIN as i128, i64::MAX as i128)? as i64).to_be_bytes(),
        ),
        (CqlType::Int, Value::Int(i)) => out.extend_from_slice(
            &(range(*i, i32::MIN as i128, i32::MAX as i128)? as i32).to_be_bytes(),
        ),
        (CqlType::Smallint, Value::Int(i)) => out.extend_from_slice(
            &(range(*i, i16::MIN as i128, i16::MAX as i128)? as i16).to_be_bytes(),
        ),
        (CqlType::Tinyint, Value::Int(i)) => {
            out.push(range(*i, i8::MIN as i128, i8::MAX as i128)? as i8 as u8)
        }
        (CqlType::Varint, Value::Int(i)) => out.extend_from_slice(&varint_bytes(*i)),
        (CqlType::Float, Value::Float(f)) => out.extend_from_slice(&f.to_be_bytes()),
        (CqlType::Float, Value::Double(f)) => out.extend_from_slice(&(*f as f32).to_be_bytes()),
        (CqlType::Float, Value::Int(i)) => out.extend_from_slice(&(*i as f32).to_be_bytes()),
        (CqlType::Double, Value::Double(f)) => out.extend_from_slice(&f.to_be_bytes()),
        (CqlType::Double, Value::Float(f)) => out.extend_from_slice(&(*f as f64).to_be_bytes()),
        (CqlType::Double, Value::Int(i)) => out.extend_from_slice(&(*i as f64).to_be_bytes()),
        (CqlType::Decimal, Value::Decimal { unscaled, scale }) => {
            out.extend_from_slice(&scale.to_be_bytes());
            out.extend_from_slice(&varint_bytes(*unscaled));
        }
        (CqlType::Decimal, Value::Int(i)) => {
            out.extend_from_slice(&0i32.to_be_bytes());
            out.extend_from_slice(&varint_bytes(*i));
        }
        (CqlType::Uuid, Value::Uuid(u)) => out.extend_from_slice(u),
        (CqlType::Timeuuid, Value::Uuid(u)) => {
            if u[6] >> 4 != 1 {
                return Err(CqlError::invalid(
                    "Unsupported UUID for timeuuid (must be version 1)",
                ));
            }
            out.extend_from_slice(u)
        }
        (CqlType::Timestamp, Value::Timestamp(ms)) => out.extend_from_slice(&ms.to_be_bytes()),
        (CqlType::Timestamp, Value::Int(ms)) => out.extend_from_slice(
            &(range(*ms, i64::MIN as i128, i64::MAX as i128)? as i64).to_be_bytes(),
        ),
        (CqlType::Date, Value::Date(d)) => out.extend_from_slice(&d.to_be_bytes()),
        (CqlType::Date, Value::Int(d)) => {
            out.extend_from_slice(&(range(*d, 0, u32::MAX as i128)? as u32).to_be_bytes())
        }
        (CqlType::Time, Value::Time(ns)) | (CqlType::Time, Value::Timestamp(ns)) => {
            if !(0..86_400_000_000_000).contains(ns) {
                return Err(CqlError::invalid("Invalid time: out of range"));
            }
            out.extend_from_slice(&ns.to_be_bytes())
        }
        (CqlType::Time, Value::Int(ns)) => {
            let ns = range(*ns, 0, 86_399_999_999_999)? as i64;
            out.extend_from_slice(&ns.to_be_bytes())
        }
        (CqlType::Inet, Value::Inet(ip)) => match ip {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        },
        (
            CqlType::Duration,
            Value::Duration {
                months,
                days,
                nanos,
            },
        ) => {
            put_vint(out, *months as i64);
            put_vint(out, *days as i64);
            put_vint(out, *nanos);
        }
        (CqlType::List(e), Value::List(items) | Value::Set(items)) => {
            out.extend_from_slice(&(items.len() as i32).to_be_bytes());
            for it in items {
                put_elem(e, it, out)?;
            }
        }
        (CqlType::Set(e), Value::Set(items) | Value::List(items)) => {
            let mut items = items.clone();
            sort_dedup(e, &mut items);
            out.extend_from_slice(&(items.len() as i32).to_be_bytes());
            for it in &items {
                put_elem(e, it, out)?;
            }
        }
        (CqlType::Map(k, vt), Value::Map(pairs)) => {
            let mut pairs = pairs.clone();
            pairs.sort_by(|a, b| compare(k, &a.0, &b.0));
            pairs.dedup_by(|a, b| compare(k, &a.0, &b.0) == Ordering::Equal);
            out.extend_from_slice(&(pairs.len() as i32).to_be_bytes());
            for (kk, vv) in &pairs {
                put_elem(k, kk, out)?;
                put_elem(vt, vv, out)?;
            }
        }
        (CqlType::Map(..), Value::Set(items) | Value::List(items)) if items.is_empty() => {
            out.extend_from_slice(&0i32.to_be_bytes())
        }
        (CqlType::Tuple(ts), Value::Tuple(items)) => {
            if items.len() > ts.len() {
                return Err(CqlError::invalid(format!(
                    "Invalid tuple literal: too many elements. Type {} expects {} but got {}",
                    t.cql_name(),
                    ts.len(),
                    items.len()
                )));
            }
            for (i, et) in ts.iter().enumerate() {
                match items.get(i) {
                    Some(Value::Null) | None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => put_elem(et, v, out)?,
                }
            }
        }
        (CqlType::Udt { fields, .. }, Value::Tuple(items)) => {
            for (i, (_, et)) in fields.iter().enumerate() {
                match items.get(i) {
                    Some(Value::Null) | None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => put_elem(et, v, out)?,
                }
            }
        }
        (_, Value::Blob(b)) if !t.is_collection() => {
            // A blob for a non-blob type only comes from blobAsX-style conversions.
            out.extend_from_slice(b)
        }
        _ => return Err(bad(t)),
    }
    Ok(())
}

fn put_elem(t: &CqlType, v: &Value, out: &mut Vec<u8>) -> Result<()> {
    if *v == Value::Null {
        return Err(CqlError::invalid(
            "null is not supported inside collections",
        ));
    }
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    encode_into(t, v, out)?;
    let n = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&n.to_be_bytes());
    Ok(())
}

/// Sort and deduplicate set elements by the element type's order.
pub fn sort_dedup(t: &CqlType, items: &mut Vec<Value>) {
    items.sort_by(|a, b| compare(t, a, b));
    items.dedup_by(|a, b| compare(t, a, b) == Ordering::Equal);
}

/// Decode wire bytes of type `t`.
pub fn decode(t: &CqlType, b: &[u8]) -> Result<Value> {
    decode_opt(t, b).ok_or_else(|| {
        CqlError::invalid(format!(
            "Invalid {} value ({} bytes)",
            t.cql_name(),
            b.len()
        ))
    })
}

fn fixed<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    b.try_into().ok()
}

fn decode_opt(t: &CqlType, b: &[u8]) -> Option<Value> {
    Some(match t.base() {
        CqlType::Ascii | CqlType::Text => Value::Text(String::from_utf8(b.to_vec()).ok()?),
        CqlType::Blob | CqlType::Custom(_) => Value::Blob(b.to_vec()),
        CqlType::Boolean => Value::Bool(*b.first()? != 0),
        CqlType::Bigint | CqlType::Counter => Value::Int(i64::from_be_bytes(fixed(b)?) as i128),
        CqlType::Int => Value::Int(i32::from_be_bytes(fixed(b)?) as i128),
        CqlType::Smallint => Value::Int(i16::from_be_bytes(fixed(b)?) as i128),
        CqlType::Tinyint => Value::Int(i8::from_be_bytes(fixed(b)?) as i128),
        CqlType::Varint => Value::Int(varint_from(b)?),
        CqlType::Float => Value::Float(f32::from_be_bytes(fixed(b)?)),
        CqlType::Double => Value::Double(f64::from_be_bytes(fixed(b)?)),
        CqlType::Decimal => {
            if b.len() < 5 {
                return None;
            }
            Value::Decimal {
                scale: i32::from_be_bytes(fixed(&b[..4])?),
                unscaled: varint_from(&b[4..])?,
            }
        }
        CqlType::Uuid | CqlType::Timeuuid => Value::Uuid(fixed(b)?),
        CqlType::Timestamp => Value::Timestamp(i64::from_be_bytes(fixed(b)?)),
        CqlType::Date => Value::Date(u32::from_be_bytes(fixed(b)?)),
        CqlType::Time => Value::Time(i64::from_be_bytes(fixed(b)?)),
        CqlType::Inet => match b.len() {
            4 => Value::Inet(IpAddr::from(fixed::<4>(b)?)),
            16 => Value::Inet(IpAddr::from(fixed::<16>(b)?)),
            _ => return None,
        },
        CqlType::Duration => {
            let mut i = 0;
            let months = get_vint(b, &mut i)? as i32;
            let days = get_vint(b, &mut i)? as i32;
            let nanos = get_vint(b, &mut i)?;
            if i != b.len() {
                return None;
            }
            Value::Duration {
                months,
                days,
                nanos,
            }
        }
        CqlType::List(e) | CqlType::Set(e) => {
            let mut i = 0;
            let n = read_i32(b, &mut i)?;
            if n < 0 {
                return None;
            }
            let mut items = Vec::with_capacity((n as usize).min(b.len()));
            for _ in 0..n {
                items.push(decode_opt(e, read_elem(b, &mut i)??)?);
            }
            if matches!(t.base(), CqlType::List(_)) {
                Value::List(items)
            } else {
                Value::Set(items)
            }
        }
        CqlType::Map(k, v) => {
            let mut i = 0;
            let n = read_i32(b, &mut i)?;
            if n < 0 {
                return None;
            }
            let mut pairs = Vec::with_capacity((n as usize).min(b.len()));
            for _ in 0..n {
                let kk = decode_opt(k, read_elem(b, &mut i)??)?;
                let vv = decode_opt(v, read_elem(b, &mut i)??)?;
                pairs.push((kk, vv));
            }
            Value::Map(pairs)
        }
        CqlType::Tuple(ts) => {
            let mut i = 0;
            let mut items = Vec::new();
            for et in ts {
                if i >= b.len() {
                    items.push(Value::Null);
                    continue;
                }
                items.push(match read_elem(b, &mut i)? {
                    None => Value::Null,
                    Some(e) => decode_opt(et, e)?,
                });
            }
            Value::Tuple(items)
        }
        CqlType::Udt { fields, .. } => {
            let mut i = 0;
            let mut items = Vec::new();
            for (_, et) in fields {
                if i >= b.len() {
                    items.push(Value::Null);
                    continue;
                }
                items.push(match read_elem(b, &mut i)? {
                    None => Value::Null,
                    Some(e) => decode_opt(et, e)?,
                });
            }
            Value::Tuple(items)
        }
        CqlType::Frozen(_) => unreachable!("base() strips frozen"),
    })
}

fn read_i32(b: &[u8], i: &mut usize) -> Option<i32> {
    let v = i32::from_be_bytes(b.get(*i..*i + 4)?.try_into().ok()?);
    *i += 4;
    Some(v)
}

/// One `[bytes]` element: `Some(None)` for a null.
fn read_elem<'a>(b: &'a [u8], i: &mut usize) -> Option<Option<&'a [u8]>> {
    let n = read_i32(b, i)?;
    if n < 0 {
        return Some(None);
    }
    let e = b.get(*i..*i + n as usize)?;
    *i += n as usize;
    Some(Some(e))
}

/// Split serialized collection elements (for element-wise operations).
pub fn elements(b: &[u8]) -> Vec<&[u8]> {
    let mut i = 0;
    let mut out = Vec::new();
    if let Some(n) = read_i32(b, &mut i) {
        for _ in 0..n.max(0) {
            match read_elem(b, &mut i) {
                Some(Some(e)) => out.push(e),
                _ => break,
            }
        }
    }
    out
}

/// Compare two values of type `t` in CQL's order (for clustering, sets, maps, ORDER BY and
/// filtering). Nulls sort first.
pub fn compare(t: &CqlType, a: &Value, b: &Value) -> Ordering {
    use Value::*;
    match (a, b) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Less,
        (_, Null) => Ordering::Greater,
        (Bool(x), Bool(y)) => x.cmp(y),
        (Int(x), Int(y)) => x.cmp(y),
        (Float(x), Float(y)) => x.total_cmp(y),
        (Double(x), Double(y)) => x.total_cmp(y),
        (Int(x), Double(y)) => (*x as f64).total_cmp(y),
        (Double(x), Int(y)) => x.total_cmp(&(*y as f64)),
        (Text(x), Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Blob(x), Blob(y)) => x.cmp(y),
        (Uuid(x), Uuid(y)) => {
            if matches!(t.base(), CqlType::Timeuuid) || (x[6] >> 4 == 1 && y[6] >> 4 == 1) {
                uuid_time(x).cmp(&uuid_time(y)).then_with(|| x.cmp(y))
            } else {
                (x[6] >> 4).cmp(&(y[6] >> 4)).then_with(|| x.cmp(y))
            }
        }
        (Timestamp(x), Timestamp(y)) => x.cmp(y),
        (Date(x), Date(y)) => x.cmp(y),
        (Time(x), Time(y)) => x.cmp(y),
        (
            Decimal {
                unscaled: u1,
                scale: s1,
            },
            Decimal {
                unscaled: u2,
                scale: s2,
            },
        ) => decimal_cmp(*u1, *s1, *u2, *s2),
        (Inet(x), Inet(y)) => match (x, y) {
            (IpAddr::V4(_), IpAddr::V6(_)) => Ordering::Less,
            (IpAddr::V6(_), IpAddr::V4(_)) => Ordering::Greater,
            _ => x.cmp(y),
        },
        (List(x), List(y)) | (Set(x), Set(y)) | (Tuple(x), Tuple(y)) => {
            let elem = |i: usize| match t.base() {
                CqlType::List(e) | CqlType::Set(e) => e.as_ref().clone(),
                CqlType::Tuple(ts) => ts.get(i).cloned().unwrap_or(CqlType::Blob),
                CqlType::Udt { fields, .. } => {
                    fields.get(i).map(|f| f.1.clone()).unwrap_or(CqlType::Blob)
                }
                _ => CqlType::Blob,
            };
            for (i, (p, q)) in x.iter().zip(y.iter()).enumerate() {
                let c = compare(&elem(i), p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Map(x), Map(y)) => {
            let (kt, vt) = match t.base() {
                CqlType::Map(k, v) => (k.as_ref().clone(), v.as_ref().clone()),
                _ => (CqlType::Blob, CqlType::Blob),
            };
            for (p, q) in x.iter().zip(y.iter()) {
                let c = compare(&kt, &p.0, &q.0).then_with(|| compare(&vt, &p.1, &q.1));
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (
            Duration {
                months: m1,
                days: d1,
                nanos: n1,
            },
            Duration {
                months: m2,
                days: d2,
                nanos: n2,
            },
        ) => (m1, d1, n1).cmp(&(m2, d2, n2)),
        _ => format!("{a:?}").cmp(&format!("{b:?}")),
    }
}

fn decimal_cmp(u1: i128, s1: i32, u2: i128, s2: i32) -> Ordering {
    // Bring both to the larger scale when that fits; else compare as floats.
    let (a, b) = if s1 >= s2 {
        (
            Some(u1),
            10i128
                .checked_pow(u32::try_from(s1 as i64 - s2 as i64).unwrap_or(u32::MAX))
                .and_then(|p| u2.checked_mul(p)),
        )
    } else {
        (
            10i128
                .checked_pow(u32::try_from(s2 as i64 - s1 as i64).unwrap_or(u32::MAX))
                .and_then(|p| u1.checked_mul(p)),
            Some(u2),
        )
    };
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => (u1 as f64 / 10f64.powi(s1)).total_cmp(&(u2 as f64 / 10f64.powi(s2))),
    }
}

/// The 60-bit timestamp of a version-1 UUID.
pub fn uuid_time(u: &[u8; 16]) -> u64 {
    let hi = (((u[6] & 0x0F) as u64) << 8) | u[7] as u64;
    let mid = ((u[4] as u64) << 8) | u[5] as u64;
    let low = u32::from_be_bytes([u[0], u[1], u[2], u[3]]) as u64;
    (hi << 48) | (mid << 32) | low
}

/// Milliseconds since the epoch of a version-1 UUID.
pub fn uuid_millis(u: &[u8; 16]) -> i64 {
    (uuid_time(u) as i64 - 0x01B2_1DD2_1381_4000) / 10_000
}

/// A version-1 UUID for `millis` (node and clock bits random unless `fill` is given).
pub fn timeuuid_at(millis: i64, extra_ticks: u64, fill: Option<u8>) -> [u8; 16] {
    let t = ((millis as i128 * 10_000 + 0x01B2_1DD2_1381_4000) as u64).wrapping_add(extra_ticks);
    let mut u = [0u8; 16];
    u[0..4].copy_from_slice(&((t & 0xFFFF_FFFF) as u32).to_be_bytes());
    u[4..6].copy_from_slice(&(((t >> 32) & 0xFFFF) as u16).to_be_bytes());
    u[6..8].copy_from_slice(&((((t >> 48) & 0x0FFF) as u16) | 0x1000).to_be_bytes());
    match fill {
        Some(b) => {
            for x in &mut u[8..] {
                *x = b;
            }
        }
        None => {
            let r: [u8; 8] = rand::random();
            u[8..].copy_from_slice(&r);
        }
    }
    u[8] = (u[8] & 0x3F) | 0x80;
    u
}

/// Order-preserving, prefix-free key encoding of a key column value; `desc` reverses it.
pub fn key_encode(t: &CqlType, v: &Value, desc: bool, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    match (t.base(), v) {
        (_, Value::Null) => {
            return Err(CqlError::invalid(
                "Invalid null value for primary key column",
            ))
        }
        (CqlType::Boolean, Value::Bool(b)) => out.push(*b as u8),
        (CqlType::Tinyint | CqlType::Smallint | CqlType::Int | CqlType::Bigint, Value::Int(i)) => {
            out.extend_from_slice(&((*i as i64 as u64) ^ (1 << 63)).to_be_bytes())
        }
        (CqlType::Varint, Value::Int(i)) => {
            out.extend_from_slice(&((*i as u128) ^ (1 << 127)).to_be_bytes())
        }
        (CqlType::Timestamp, Value::Timestamp(i)) | (CqlType::Time, Value::Time(i)) => {
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes())
        }
        (CqlType::Date, Value::Date(d)) => out.extend_from_slice(&d.to_be_bytes()),
        (CqlType::Float, Value::Float(f)) => {
            let b = f.to_bits();
            let b = if b >> 31 == 1 { !b } else { b | (1 << 31) };
            out.extend_from_slice(&b.to_be_bytes())
        }
        (CqlType::Double, Value::Double(f)) => {
            let b = f.to_bits();
            let b = if b >> 63 == 1 { !b } else { b | (1 << 63) };
            out.extend_from_slice(&b.to_be_bytes())
        }
        (CqlType::Timeuuid, Value::Uuid(u)) => {
            out.extend_from_slice(&uuid_time(u).to_be_bytes());
            out.extend_from_slice(u);
        }
        (CqlType::Uuid, Value::Uuid(u)) => {
            out.push(u[6] >> 4);
            if u[6] >> 4 == 1 {
                out.extend_from_slice(&uuid_time(u).to_be_bytes());
            }
            out.extend_from_slice(u);
        }
        (CqlType::Inet, Value::Inet(IpAddr::V4(a))) => {
            out.push(4);
            out.extend_from_slice(&a.octets())
        }
        (CqlType::Inet, Value::Inet(IpAddr::V6(a))) => {
            out.push(6);
            out.extend_from_slice(&a.octets())
        }
        (CqlType::Ascii | CqlType::Text, Value::Text(s)) => {
            common::keys::encode_bytes(s.as_bytes(), out)
        }
        (CqlType::Blob, Value::Blob(b)) => common::keys::encode_bytes(b, out),
        (CqlType::Decimal, Value::Decimal { unscaled, scale }) => {
            let f = *unscaled as f64 / 10f64.powi(*scale);
            let b = f.to_bits();
            let b = if b >> 63 == 1 { !b } else { b | (1 << 63) };
            out.extend_from_slice(&b.to_be_bytes());
            common::keys::encode_bytes(&encode(t, v)?, out);
        }
        _ => common::keys::encode_bytes(&encode(t, v)?, out),
    }
    if desc {
        for b in &mut out[start..] {
            *b = !*b;
        }
    }
    Ok(())
}

/// Decode one key component written by [`key_encode`]; returns the value and the rest.
pub fn key_decode<'a>(t: &CqlType, input: &'a [u8], desc: bool) -> Option<(Value, &'a [u8])> {
    let owned;
    let b: &[u8] = if desc {
        owned = input.iter().map(|x| !x).collect::<Vec<u8>>();
        &owned
    } else {
        input
    };
    let take = |n: usize| b.get(..n).map(|x| (x, b.len() - n));
    let (v, rest_len) = match t.base() {
        CqlType::Boolean => {
            let (x, r) = take(1)?;
            (Value::Bool(x[0] != 0), r)
        }
        CqlType::Tinyint | CqlType::Smallint | CqlType::Int | CqlType::Bigint => {
            let (x, r) = take(8)?;
            (
                Value::Int((u64::from_be_bytes(x.try_into().ok()?) ^ (1 << 63)) as i64 as i128),
                r,
            )
        }
        CqlType::Varint => {
            let (x, r) = take(16)?;
            (
                Value::Int((u128::from_be_bytes(x.try_into().ok()?) ^ (1 << 127)) as i128),
                r,
            )
        }
        CqlType::Timestamp | CqlType::Time => {
            let (x, r) = take(8)?;
            let i = (u64::from_be_bytes(x.try_into().ok()?) ^ (1 << 63)) as i64;
            (
                if matches!(t.base(), CqlType::Time) {
                    Value::Time(i)
                } else {
                    Value::Timestamp(i)
                },
                r,
            )
        }
        CqlType::Date => {
            let (x, r) = take(4)?;
            (Value::Date(u32::from_be_bytes(x.try_into().ok()?)), r)
        }
        CqlType::Float => {
            let (x, r) = take(4)?;
            let b = u32::from_be_bytes(x.try_into().ok()?);
            let b = if b >> 31 == 1 { b & !(1 << 31) } else { !b };
            (Value::Float(f32::from_bits(b)), r)
        }
        CqlType::Double => {
            let (x, r) = take(8)?;
            let b = u64::from_be_bytes(x.try_into().ok()?);
            let b = if b >> 63 == 1 { b & !(1 << 63) } else { !b };
            (Value::Double(f64::from_bits(b)), r)
        }
        CqlType::Timeuuid => {
            let (x, r) = take(24)?;
            (Value::Uuid(x[8..24].try_into().ok()?), r)
        }
        CqlType::Uuid => {
            let n = if *b.first()? == 1 { 25 } else { 17 };
            let (x, r) = take(n)?;
            (Value::Uuid(x[n - 16..n].try_into().ok()?), r)
        }
        CqlType::Inet => {
            let n = if *b.first()? == 4 { 5 } else { 17 };
            let (x, r) = take(n)?;
            (
                if n == 5 {
                    Value::Inet(IpAddr::from(<[u8; 4]>::try_from(&x[1..5]).ok()?))
                } else {
                    Value::Inet(IpAddr::from(<[u8; 16]>::try_from(&x[1..17]).ok()?))
                },
                r,
            )
        }
        CqlType::Ascii | CqlType::Text => {
            let (s, rest) = common::keys::decode_bytes(b)?;
            (Value::Text(String::from_utf8(s).ok()?), rest.len())
        }
        CqlType::Blob => {
            let (s, rest) = common::keys::decode_bytes(b)?;
            (Value::Blob(s), rest.len())
        }
        CqlType::Decimal => {
            let (s, rest) = common::keys::decode_bytes(b.get(8..)?)?;
            (decode_opt(t, &s)?, rest.len())
        }
        _ => {
            let (s, rest) = common::keys::decode_bytes(b)?;
            (decode_opt(t, &s)?, rest.len())
        }
    };
    let consumed = b.len() - rest_len;
    Some((v, &input[consumed..]))
}
