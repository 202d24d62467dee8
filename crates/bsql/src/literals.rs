//! Typed literals PostgreSQL rejects while parsing a statement (`bool 'yeah'`,
//! `'34.5'::int2`), with its messages and the position of the literal, and PostgreSQL's
//! input rules for those types (shared with the runtime conversions in [`crate::checked`]).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Visit, Visitor};

use crate::error::{char_offset, SqlError, SqlResult};

/// PostgreSQL's `boolin`: blanks around the text are ignored; `t`, `true`, `y`, `yes`,
/// `on`, `1` and `f`, `false`, `n`, `no`, `off`, `0`, in any case and any unique prefix
/// (`o` alone is ambiguous).
pub fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let lower = t.to_ascii_lowercase();
    let prefix_of = |word: &str| !lower.is_empty() && word.starts_with(lower.as_str());
    match lower.as_bytes().first()? {
        b't' if prefix_of("true") => Some(true),
        b'f' if prefix_of("false") => Some(false),
        b'y' if prefix_of("yes") => Some(true),
        b'n' if prefix_of("no") => Some(false),
        b'o' if lower.len() >= 2 && prefix_of("on") => Some(true),
        b'o' if lower.len() >= 2 && prefix_of("off") => Some(false),
        b'1' if lower.len() == 1 => Some(true),
        b'0' if lower.len() == 1 => Some(false),
        _ => None,
    }
}

/// The error for text that is not a boolean.
pub fn bad_bool(text: &str) -> SqlError {
    SqlError::invalid_input(format!("invalid input syntax for type boolean: \"{text}\""))
}

/// PostgreSQL's integer input (`int2in`, `int4in`, `int8in`): blanks around an optional
/// sign and decimal digits. `bits` is 16, 32 or 64.
pub fn parse_int(text: &str, bits: u32) -> SqlResult<i64> {
    let name = match bits {
        16 => "smallint",
        32 => "integer",
        _ => "bigint",
    };
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SqlError::invalid_input(format!(
            "invalid input syntax for type {name}: \"{text}\""
        )));
    }
    let out_of_range = || {
        SqlError::new(
            "22003",
            format!("value \"{text}\" is out of range for type {name}"),
        )
    };
    let v: i128 = t.parse().map_err(|_| out_of_range())?;
    let (lo, hi) = match bits {
        16 => (i16::MIN as i128, i16::MAX as i128),
        32 => (i32::MIN as i128, i32::MAX as i128),
        _ => (i64::MIN as i128, i64::MAX as i128),
    };
    if v < lo || v > hi {
        return Err(out_of_range());
    }
    Ok(v as i64)
}

/// PostgreSQL's `float8in` / `float4in` (`real`: 32 bits): blanks around the text, a
/// decimal number, or `NaN`, `Infinity`, `inf` with a sign, in any case; a number beyond
/// the type's range (or one that underflows to zero) is out of range.
pub fn parse_float(text: &str, real: bool) -> SqlResult<f64> {
    let name = if real { "real" } else { "double precision" };
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let invalid =
        || SqlError::invalid_input(format!("invalid input syntax for type {name}: \"{text}\""));
    let out_of_range = || {
        SqlError::new(
            "22003",
            format!("\"{text}\" is out of range for type {name}"),
        )
    };
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t).to_ascii_lowercase();
    if matches!(unsigned.as_str(), "nan" | "inf" | "infinity") {
        return t.parse::<f64>().map_err(|_| invalid());
    }
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return Err(invalid());
    }
    let v: f64 = t.parse().map_err(|_| invalid())?;
    let nonzero_digits = t
        .split(['e', 'E'])
        .next()
        .is_some_and(|m| m.bytes().any(|b| (b'1'..=b'9').contains(&b)));
    let (too_big, too_small) = if real {
        let f = v as f32;
        (f.is_infinite(), f == 0.0 && nonzero_digits)
    } else {
        (v.is_infinite(), v == 0.0 && nonzero_digits)
    };
    if too_big || too_small {
        return Err(out_of_range());
    }
    Ok(v)
}

/// Check every typed literal of `stmt` (from the query text `sql`).
pub fn check(stmt: &ast::Statement, sql: &str) -> SqlResult<()> {
    let mut found = None;
    let _ = stmt.visit(&mut Literals { error: &mut found });
    match found {
        Some((err, (line, column))) if line > 0 => {
            Err(err.at(char_offset(sql, line as usize, column as usize)))
        }
        Some((err, _)) => Err(err),
        None => Ok(()),
    }
}

struct Literals<'a> {
    error: &'a mut Option<(SqlError, (u64, u64))>,
}

/// The literal text and its position, if `e` is a string literal given a type.
fn typed(e: &ast::Expr) -> Option<(&ast::DataType, &str, (u64, u64))> {
    let (data_type, v) = match e {
        ast::Expr::TypedString(ts) => (&ts.data_type, &ts.value),
        ast::Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            ast::Expr::Value(v) => (data_type, v),
            _ => return None,
        },
        _ => return None,
    };
    let ast::Value::SingleQuotedString(text) = &v.value else {
        return None;
    };
    let at = (v.span.start.line, v.span.start.column);
    Some((data_type, text.as_str(), at))
}

impl Visitor for Literals<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<()> {
        let Some((data_type, text, at)) = typed(e) else {
            return ControlFlow::Continue(());
        };
        use ast::DataType as D;
        let err = match data_type {
            D::Bool | D::Boolean => parse_bool(text).is_none().then(|| bad_bool(text)),
            D::SmallInt(_) | D::Int2(_) => parse_int(text, 16).err(),
            D::Int(_) | D::Integer(_) | D::Int4(_) => parse_int(text, 32).err(),
            D::BigInt(_) | D::Int8(_) => parse_int(text, 64).err(),
            D::DoublePrecision | D::Float8 | D::Float64 => parse_float(text, false).err(),
            D::Real | D::Float4 | D::Float32 => parse_float(text, true).err(),
            _ => None,
        };
        match err {
            Some(err) => {
                *self.error = Some((err, at));
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_postgresql_reads_them() {
        for t in ["t", "TRUE", " true ", "y", "yes", "on", "1", "tr"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for t in ["f", "False", "n", "no", "off", "of", "0"] {
            assert_eq!(parse_bool(t), Some(false), "{t}");
        }
        for t in ["", "o", "on_", "11", "000", "yeah", "tru e", "test"] {
            assert_eq!(parse_bool(t), None, "{t}");
        }
    }

    #[test]
    fn typed_literals_are_checked_with_positions() {
        let sql = "SELECT bool 'yeah' AS error";
        let stmt = crate::session::parse(sql).unwrap().pop().unwrap();
        let e = check(&stmt, sql).unwrap_err();
        assert_eq!(e.message, "invalid input syntax for type boolean: \"yeah\"");
        assert_eq!(e.position, Some(13));
        let sql = "SELECT '100000'::int2";
        let stmt = crate::session::parse(sql).unwrap().pop().unwrap();
        let e = check(&stmt, sql).unwrap_err();
        assert_eq!(e.code, "22003");
        assert_eq!(parse_int(" -12 ", 16).unwrap(), -12);
        assert_eq!(
            parse_float(" -Infinity ", false).unwrap(),
            f64::NEG_INFINITY
        );
        assert!(parse_float("NaN", false).unwrap().is_nan());
        assert_eq!(parse_float("1e-5", false).unwrap(), 1e-5);
        assert_eq!(parse_float("10e400", false).unwrap_err().code, "22003");
        assert_eq!(parse_float("10e-400", false).unwrap_err().code, "22003");
        assert_eq!(parse_float("10e70", true).unwrap_err().code, "22003");
        assert_eq!(parse_float("N A N", false).unwrap_err().code, "22P02");
        assert_eq!(parse_float("", false).unwrap_err().code, "22P02");
    }
}
