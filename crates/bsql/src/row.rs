//! Rows on disk: a [`Datum`] per column, the order-preserving key of a row (its primary key
//! columns, or a hidden row id), the value (non-key columns by column id), and conversion
//! between rows and Arrow arrays.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::IntervalMonthDayNano;
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::catalog::TableDef;
use crate::error::{SqlError, SqlResult};
use crate::types::{SqlType, UTC};

/// One stored value. The column's [`SqlType`] says how to read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Datum {
    Null,
    Bool(bool),
    /// int2/int4/int8; date (days since 1970-01-01); time, timestamp, timestamptz (µs).
    Int(i64),
    Float(f64),
    /// numeric, scaled by the column's scale.
    Decimal(i128),
    Text(String),
    Bytes(Vec<u8>),
    Interval {
        months: i32,
        days: i32,
        nanos: i64,
    },
    /// A one-dimensional array's elements.
    Array(Vec<Datum>),
}

impl Datum {
    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }

    /// Append the order-preserving encoding of this (non-null) key column to `out`.
    pub fn encode_key(&self, out: &mut Vec<u8>) {
        match self {
            Datum::Null => out.push(0),
            Datum::Bool(b) => out.push(*b as u8 + 1),
            Datum::Int(i) => out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes()),
            Datum::Float(f) => {
                let bits = f.to_bits();
                let ordered = if bits >> 63 == 1 {
                    !bits
                } else {
                    bits | (1 << 63)
                };
                out.extend_from_slice(&ordered.to_be_bytes());
            }
            Datum::Decimal(d) => out.extend_from_slice(&((*d as u128) ^ (1 << 127)).to_be_bytes()),
            Datum::Text(s) => common::keys::encode_bytes(s.as_bytes(), out),
            Datum::Bytes(b) => common::keys::encode_bytes(b, out),
            Datum::Interval {
                months,
                days,
                nanos,
            } => {
                out.extend_from_slice(&((*months as u32) ^ (1 << 31)).to_be_bytes());
                out.extend_from_slice(&((*days as u32) ^ (1 << 31)).to_be_bytes());
                out.extend_from_slice(&((*nanos as u64) ^ (1 << 63)).to_be_bytes());
            }
            // Element by element, each after a 1; a 0 ends the array (so a prefix sorts
            // first).
            Datum::Array(items) => {
                for d in items {
                    out.push(1);
                    d.encode_key(out);
                }
                out.push(0);
            }
        }
    }
}

/// Convert element `idx` of `array` (any Arrow type) into a datum of column type `ty`,
/// casting as PostgreSQL's assignment cast would.
pub fn datum_from_array(array: &ArrayRef, idx: usize, ty: SqlType) -> SqlResult<Datum> {
    if let SqlType::Array(a) = ty {
        return array_datum(array, idx, a);
    }
    let target = ty.arrow();
    let array = if array.data_type() == &target {
        array.slice(idx, 1)
    } else {
        let mut one = array.slice(idx, 1);
        let input: Option<String> = one
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .filter(|a| !a.is_null(0))
            .map(|a| a.value(0).to_owned());
        let int = matches!(ty, SqlType::Int2 | SqlType::Int4 | SqlType::Int8);
        let normalized = input.as_deref().and_then(|v| {
            // PostgreSQL's integer input allows blanks around the digits.
            if int && v.trim().len() != v.len() {
                return Some(v.trim().to_owned());
            }
            temporal_input(v, ty)
        });
        if let Some(text) = normalized {
            one = Arc::new(datafusion::arrow::array::StringArray::from(vec![text]));
        }
        let opts = datafusion::arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        };
        datafusion::arrow::compute::cast_with_options(&one, &target, &opts).map_err(|e| {
            match input {
                // PostgreSQL's wording: the input quoted, and an integer that does not fit
                // is out of range rather than malformed.
                Some(v) if int && v.trim().parse::<i128>().is_ok() => SqlError::new(
                    "22003",
                    format!("value \"{v}\" is out of range for type {}", ty.name()),
                ),
                Some(v) => SqlError::invalid_input(format!(
                    "invalid input syntax for type {}: \"{v}\"",
                    ty.name()
                )),
                None => SqlError::invalid_input(format!(
                    "invalid input syntax for type {}: {}",
                    ty.name(),
                    e.to_string().trim_start_matches("Cast error: ")
                )),
            }
        })?
    };
    if array.is_null(0) {
        return Ok(Datum::Null);
    }
    let scalar = ScalarValue::try_from_array(&array, 0)?;
    Ok(datum_from_scalar(&scalar))
}

/// A date or timestamp as PostgreSQL reads it but Arrow does not: a time zone after a date
/// or a timestamp without time zone is ignored (JDBC sends `2026-01-02 +00`), and an offset
/// of hours alone (`+00`) gets its minutes. `None`: the text is fine as it is.
fn temporal_input(text: &str, ty: SqlType) -> Option<String> {
    if !matches!(
        ty,
        SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz
    ) {
        return None;
    }
    let t = text.trim();
    // The offset at the end: [+-]HH[:MM[:SS]], maybe after a space.
    let b = t.as_bytes();
    let sign = t.rfind(['+', '-'])?;
    let offset = &t[sign + 1..];
    let digits_ok = !offset.is_empty()
        && offset
            .split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_digit()));
    // A '-' inside the date part (2026-01-02) is not an offset.
    if !digits_ok || sign < 10 || !(b[sign - 1] == b' ' || b[sign - 1].is_ascii_digit()) {
        return None;
    }
    let head = t[..sign].trim_end();
    match ty {
        SqlType::TimestampTz if !offset.contains(':') => Some(format!("{head}{}:00", &t[sign..])),
        SqlType::TimestampTz => None,
        _ => Some(head.to_owned()),
    }
}

/// Convert a scalar that already has a column's Arrow type into a datum.
pub fn datum_from_scalar(s: &ScalarValue) -> Datum {
    match s {
        ScalarValue::Boolean(Some(b)) => Datum::Bool(*b),
        ScalarValue::Int8(Some(v)) => Datum::Int(*v as i64),
        ScalarValue::Int16(Some(v)) => Datum::Int(*v as i64),
        ScalarValue::Int32(Some(v)) => Datum::Int(*v as i64),
        ScalarValue::Int64(Some(v)) => Datum::Int(*v),
        ScalarValue::Float32(Some(v)) => Datum::Float(*v as f64),
        ScalarValue::Float64(Some(v)) => Datum::Float(*v),
        ScalarValue::Decimal128(Some(v), _, _) => Datum::Decimal(*v),
        ScalarValue::Utf8(Some(v))
        | ScalarValue::LargeUtf8(Some(v))
        | ScalarValue::Utf8View(Some(v)) => Datum::Text(v.clone()),
        ScalarValue::Binary(Some(v))
        | ScalarValue::LargeBinary(Some(v))
        | ScalarValue::BinaryView(Some(v)) => Datum::Bytes(v.clone()),
        ScalarValue::Date32(Some(v)) => Datum::Int(*v as i64),
        ScalarValue::Time64Microsecond(Some(v)) => Datum::Int(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Datum::Int(*v),
        ScalarValue::IntervalMonthDayNano(Some(v)) => Datum::Interval {
            months: v.months,
            days: v.days,
            nanos: v.nanoseconds,
        },
        _ => Datum::Null,
    }
}

/// Cast a scalar to column type `ty` and store it.
pub fn datum_from_any_scalar(s: &ScalarValue, ty: SqlType) -> SqlResult<Datum> {
    let array = s.to_array()?;
    datum_from_array(&array, 0, ty)
}

/// The order-preserving encoding of `row`'s values at `cols`, to compare rows by those
/// columns; `None` if one is NULL (such a row matches no other).
pub fn key_tuple(row: &Row, cols: &[usize]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for &c in cols {
        if row[c].is_null() {
            return None;
        }
        row[c].encode_key(&mut out);
    }
    Some(out)
}

/// A value as PostgreSQL prints it in messages (`Key (a)=(1) already exists.`).
pub fn datum_text(d: &Datum, ty: SqlType) -> String {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    match d {
        Datum::Null => return "null".into(),
        Datum::Bool(b) => return if *b { "t" } else { "f" }.into(),
        Datum::Text(t) => return t.clone(),
        _ => {}
    }
    let array = build_array(ty, std::iter::once(d));
    let opts = FormatOptions::default();
    let text = match ArrayFormatter::try_new(array.as_ref(), &opts) {
        Ok(f) => f.value(0).to_string(),
        Err(_) => return format!("{d:?}"),
    };
    match ty {
        SqlType::Timestamp | SqlType::TimestampTz => text.replacen('T', " ", 1),
        _ => text,
    }
}

/// `Key (a, b)=(1, x)` of `row`'s columns `cols` (PostgreSQL's DETAIL of key errors).
pub fn key_detail(def: &TableDef, row: &Row, cols: &[usize]) -> String {
    let names: Vec<&str> = cols.iter().map(|&c| def.columns[c].name.as_str()).collect();
    let values: Vec<String> = cols
        .iter()
        .map(|&c| datum_text(&row[c], def.columns[c].ty))
        .collect();
    format!("Key ({})=({})", names.join(", "), values.join(", "))
}

/// A row's values, in the table's column order.
pub type Row = Vec<Datum>;

/// The storage key of `row` (primary key columns, in order).
pub fn encode_key(def: &TableDef, row: &Row) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    for &i in &def.pk {
        row[i].encode_key(&mut key);
    }
    key
}

#[derive(Serialize, Deserialize)]
struct StoredRow<'a> {
    cols: Vec<(u32, std::borrow::Cow<'a, Datum>)>,
}

/// The storage value of `row`: every non-null column (key columns included, so a row can be
/// read back without decoding its key) tagged with its column id.
pub fn encode_value(def: &TableDef, row: &Row) -> Vec<u8> {
    let cols = def
        .columns
        .iter()
        .zip(row)
        .filter(|(_, d)| !d.is_null())
        .map(|(c, d)| (c.id, std::borrow::Cow::Borrowed(d)))
        .collect();
    let mut out = vec![1u8]; // format version
                             // Serializing plain data into a Vec cannot fail.
    let _ = bincode::serialize_into(&mut out, &StoredRow { cols });
    out
}

/// Decode a stored value into a row in the table's current column order (columns added
/// since the row was written read as NULL; dropped ones are skipped).
pub fn decode_value(def: &TableDef, value: &[u8]) -> SqlResult<Row> {
    let Some((1, body)) = value.split_first().map(|(v, b)| (*v, b)) else {
        return Err(SqlError::new("XX001", "stored row has an unknown format"));
    };
    let stored: StoredRow = bincode::deserialize(body)
        .map_err(|e| SqlError::new("XX001", format!("stored row is corrupt: {e}")))?;
    let mut row = vec![Datum::Null; def.columns.len()];
    for (id, d) in stored.cols {
        if let Some(i) = def.columns.iter().position(|c| c.id == id) {
            row[i] = d.into_owned();
        }
    }
    Ok(row)
}

/// Build the Arrow array of column type `ty` from `values`.
pub fn build_array<'a>(ty: SqlType, values: impl Iterator<Item = &'a Datum>) -> ArrayRef {
    macro_rules! build {
        ($builder:expr, $pat:pat => $v:expr) => {{
            let mut b = $builder;
            for d in values {
                match d {
                    $pat => b.append_value($v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match ty {
        SqlType::Bool => build!(BooleanBuilder::new(), Datum::Bool(v) => *v),
        SqlType::Int2 => build!(Int16Builder::new(), Datum::Int(v) => *v as i16),
        SqlType::Int4 => build!(Int32Builder::new(), Datum::Int(v) => *v as i32),
        SqlType::Int8 => build!(Int64Builder::new(), Datum::Int(v) => *v),
        SqlType::Float4 => build!(Float32Builder::new(), Datum::Float(v) => *v as f32),
        SqlType::Float8 => build!(Float64Builder::new(), Datum::Float(v) => *v),
        SqlType::Numeric { precision, scale } => {
            let mut b = Decimal128Builder::new();
            for d in values {
                match d {
                    Datum::Decimal(v) => b.append_value(*v),
                    _ => b.append_null(),
                }
            }
            match b.finish().with_precision_and_scale(precision, scale) {
                Ok(a) => Arc::new(a),
                Err(_) => datafusion::arrow::array::new_null_array(&ty.arrow(), 0),
            }
        }
        SqlType::Bytea => build!(BinaryBuilder::new(), Datum::Bytes(v) => v),
        SqlType::Date => build!(Date32Builder::new(), Datum::Int(v) => *v as i32),
        SqlType::Time => build!(Time64MicrosecondBuilder::new(), Datum::Int(v) => *v),
        SqlType::Timestamp => build!(TimestampMicrosecondBuilder::new(), Datum::Int(v) => *v),
        SqlType::TimestampTz => {
            let mut b = TimestampMicrosecondBuilder::new().with_timezone(UTC);
            for d in values {
                match d {
                    Datum::Int(v) => b.append_value(*v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        SqlType::Interval => build!(IntervalMonthDayNanoBuilder::new(),
            Datum::Interval { months, days, nanos } => IntervalMonthDayNano::new(*months, *days, *nanos)),
        SqlType::Text
        | SqlType::Varchar
        | SqlType::Bpchar
        | SqlType::Uuid
        | SqlType::Json
        | SqlType::Jsonb
        | SqlType::Name
        | SqlType::Path => build!(StringBuilder::new(), Datum::Text(v) => v),
        SqlType::Array(a) => {
            // The elements of every row in one child array, cut by offsets.
            let mut offsets = vec![0i32];
            let mut nulls = Vec::new();
            let mut elems: Vec<&Datum> = Vec::new();
            for d in values {
                if let Datum::Array(items) = d {
                    elems.extend(items.iter());
                    nulls.push(true);
                } else {
                    nulls.push(false);
                }
                offsets.push(elems.len() as i32);
            }
            let child = build_array(a.elem(), elems.into_iter());
            let field = Arc::new(datafusion::arrow::datatypes::Field::new_list_field(
                a.elem().arrow(),
                true,
            ));
            Arc::new(datafusion::arrow::array::ListArray::new(
                field,
                datafusion::arrow::buffer::OffsetBuffer::new(offsets.into()),
                child,
                Some(nulls.into()),
            ))
        }
    }
}

/// Element `idx` of `array` as a value of array type `a`: from a list (each element
/// converted to the element type) or from an array literal's text (`{1,2,NULL}`).
fn array_datum(array: &ArrayRef, idx: usize, a: crate::types::ArrayOf) -> SqlResult<Datum> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::DataType;
    if array.is_null(idx) {
        return Ok(Datum::Null);
    }
    let elems: ArrayRef = match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().value(idx),
        DataType::LargeList(_) => array.as_list::<i64>().value(idx),
        DataType::Utf8 => {
            let text = array.as_string::<i32>().value(idx);
            let items = crate::types::array_items(text).ok_or_else(|| {
                let e = SqlError::invalid_input(format!("malformed array literal: \"{text}\""));
                if text.trim_start().starts_with('{') {
                    e
                } else {
                    e.with_detail("Array value must start with \"{\" or dimension information.")
                }
            })?;
            Arc::new(datafusion::arrow::array::StringArray::from(items))
        }
        other => {
            return Err(SqlError::new(
                "42804",
                format!(
                    "cannot store a value of type {} in a column of type {}",
                    SqlType::of_arrow(other).name(),
                    SqlType::Array(a).name()
                ),
            ))
        }
    };
    let items = (0..elems.len())
        .map(|j| datum_from_array(&elems, j, a.elem()))
        .collect::<SqlResult<Vec<_>>>()?;
    Ok(Datum::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_input_errors_read_like_postgresql() {
        let text = |v: &str| -> ArrayRef {
            Arc::new(datafusion::arrow::array::StringArray::from(vec![v]))
        };
        let err = |v: &str| datum_from_array(&text(v), 0, SqlType::Int2).unwrap_err();
        let e = err("100000");
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                "22003",
                "value \"100000\" is out of range for type smallint"
            )
        );
        let e = err("34.5");
        assert_eq!(
            (e.code, e.message.as_str()),
            ("22P02", "invalid input syntax for type smallint: \"34.5\"")
        );
        assert!(matches!(
            datum_from_array(&text(" 12 "), 0, SqlType::Int2),
            Ok(Datum::Int(12))
        ));
    }

    #[test]
    fn temporal_input_drops_or_completes_offsets() {
        let d = |t: &str, ty| temporal_input(t, ty);
        assert_eq!(
            d("2026-01-02 +00", SqlType::Date).as_deref(),
            Some("2026-01-02")
        );
        assert_eq!(d("2026-01-02", SqlType::Date), None);
        assert_eq!(
            d("2026-01-02 03:04:05+00", SqlType::Timestamp).as_deref(),
            Some("2026-01-02 03:04:05")
        );
        assert_eq!(
            d("2026-01-02 03:04:05-08", SqlType::TimestampTz).as_deref(),
            Some("2026-01-02 03:04:05-08:00")
        );
        assert_eq!(d("2026-01-02 03:04:05+05:30", SqlType::TimestampTz), None);
    }
}
