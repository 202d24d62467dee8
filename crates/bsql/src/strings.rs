//! PostgreSQL's string functions where DataFusion lacks them or prints values its own way:
//! `format` (`%s %I %L`, positions `%2$s`, widths `%-10s`, `%*s`), `quote_literal`,
//! `quote_ident`, `quote_nullable`, `concat` and `concat_ws` (values written as PostgreSQL
//! writes them: `t`, not `true`), `VARIADIC` array arguments of those, and `to_date` /
//! `to_timestamp` with PostgreSQL's templates (`YYYYMMDD`, `HH24:MI`).
//!
//! `VARIADIC` is not SQL sqlparser knows: [`variadic_marks`] rewrites the keyword into a
//! named argument of the same length (so error positions hold), and [`rename_variadic`]
//! turns such a call into the `_variadic` form of the function. [`check`] raises, with
//! their positions, the errors PostgreSQL raises while analysing these calls.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{self, Spanned, Visit, VisitMut, Visitor, VisitorMut};

use crate::checked::{answer, arrays_of};
use crate::error::{char_offset, SqlError, SqlResult};
use crate::pgtext::{value_text, SharedStyle, Style};

/// The name a `VARIADIC` argument is rewritten to (`variadic` → `variad=>`).
const VARIADIC_MARK: &str = "variad";

/// Register the functions on a session's context.
pub fn register(ctx: &SessionContext, style: &Arc<SharedStyle>) {
    for kind in [
        Kind::Concat,
        Kind::ConcatWs,
        Kind::Format,
        Kind::QuoteLiteral,
        Kind::QuoteIdent,
        Kind::QuoteNullable,
        Kind::ConcatVariadic,
        Kind::ConcatWsVariadic,
        Kind::FormatVariadic,
        Kind::ToDate,
        Kind::ToTimestamp,
        Kind::ToChar,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(PgString {
            kind,
            signature: Signature::variadic_any(Volatility::Stable),
            style: style.clone(),
        }));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Concat,
    ConcatWs,
    Format,
    QuoteLiteral,
    QuoteIdent,
    QuoteNullable,
    ConcatVariadic,
    ConcatWsVariadic,
    FormatVariadic,
    ToDate,
    ToTimestamp,
    ToChar,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Concat => "concat",
            Kind::ConcatWs => "concat_ws",
            Kind::Format => "format",
            Kind::QuoteLiteral => "quote_literal",
            Kind::QuoteIdent => "quote_ident",
            Kind::QuoteNullable => "quote_nullable",
            Kind::ConcatVariadic => "concat_variadic",
            Kind::ConcatWsVariadic => "concat_ws_variadic",
            Kind::FormatVariadic => "format_variadic",
            Kind::ToDate => "to_date",
            Kind::ToTimestamp => "to_timestamp",
            Kind::ToChar => "to_char",
        }
    }
}

#[derive(Debug)]
struct PgString {
    kind: Kind,
    signature: Signature,
    style: Arc<SharedStyle>,
}

impl PartialEq for PgString {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && Arc::ptr_eq(&self.style, &other.style)
    }
}

impl Eq for PgString {}

impl std::hash::Hash for PgString {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
    }
}

fn sql_err(e: SqlError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// One row of a list column, as text values.
fn list_texts(list: &ArrayRef, row: usize, style: Style) -> Result<Option<Vec<Option<String>>>> {
    if !matches!(list.data_type(), DataType::List(_)) {
        return Err(sql_err(SqlError::new(
            "42804",
            "VARIADIC argument must be an array",
        )));
    }
    if list.is_null(row) {
        return Ok(None);
    }
    let items = list.as_list::<i32>().value(row);
    Ok(Some(
        (0..items.len())
            .map(|j| value_text(&items, j, style))
            .collect(),
    ))
}

impl ScalarUDFImpl for PgString {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let want = match self.kind {
            Kind::QuoteLiteral | Kind::QuoteIdent | Kind::QuoteNullable | Kind::ConcatVariadic => {
                1..=1
            }
            Kind::ConcatWsVariadic | Kind::FormatVariadic | Kind::ToDate | Kind::ToChar => 2..=2,
            Kind::ToTimestamp => 1..=2,
            Kind::ConcatWs | Kind::Format => 1..=usize::MAX,
            Kind::Concat => 0..=usize::MAX,
        };
        if !want.contains(&args.len()) {
            return Err(sql_err(
                SqlError::new(
                    "42883",
                    format!("function {}() does not exist", self.kind.name()),
                )
                .with_hint("No function matches the given name and argument types. You might need to add explicit type casts."),
            ));
        }
        Ok(match self.kind {
            Kind::ToDate => DataType::Date32,
            Kind::ToTimestamp => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(crate::types::UTC)))
            }
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = arrays_of(&args)?;
        let rows = args.number_rows;
        let style = self.style.get();
        if matches!(self.kind, Kind::ToDate | Kind::ToTimestamp) {
            return answer(to_datetime(self.kind, &arrays, rows, style)?, scalar);
        }
        if self.kind == Kind::ToChar {
            return answer(to_char(&arrays, rows, style)?, scalar);
        }
        let text = |c: usize, row: usize| value_text(&arrays[c], row, style);
        let mut out: Vec<Option<String>> = Vec::with_capacity(rows);
        for row in 0..rows {
            let value = match self.kind {
                Kind::Concat => Some(
                    (0..arrays.len())
                        .filter_map(|c| text(c, row))
                        .collect::<String>(),
                ),
                Kind::ConcatWs => text(0, row).map(|sep| {
                    (1..arrays.len())
                        .filter_map(|c| text(c, row))
                        .collect::<Vec<_>>()
                        .join(&sep)
                }),
                Kind::ConcatVariadic => list_texts(&arrays[0], row, style)?
                    .map(|items| items.into_iter().flatten().collect::<String>()),
                Kind::ConcatWsVariadic => {
                    let items = list_texts(&arrays[1], row, style)?;
                    match (text(0, row), items) {
                        (Some(sep), Some(items)) => {
                            Some(items.into_iter().flatten().collect::<Vec<_>>().join(&sep))
                        }
                        _ => None,
                    }
                }
                Kind::Format => match text(0, row) {
                    None => None,
                    Some(f) => {
                        let values: Vec<Option<String>> =
                            (1..arrays.len()).map(|c| text(c, row)).collect();
                        Some(format(&f, &values).map_err(sql_err)?)
                    }
                },
                Kind::FormatVariadic => {
                    let items = list_texts(&arrays[1], row, style)?.unwrap_or_default();
                    match text(0, row) {
                        None => None,
                        Some(f) => Some(format(&f, &items).map_err(sql_err)?),
                    }
                }
                Kind::QuoteLiteral => text(0, row).map(|t| quote_literal(&t)),
                Kind::QuoteNullable => Some(
                    text(0, row)
                        .map(|t| quote_literal(&t))
                        .unwrap_or_else(|| "NULL".into()),
                ),
                Kind::QuoteIdent => text(0, row).map(|t| quote_ident(&t)),
                Kind::ToDate | Kind::ToTimestamp | Kind::ToChar => None,
            };
            out.push(value);
        }
        answer(Arc::new(StringArray::from(out)) as ArrayRef, scalar)
    }
}

/// `quote_literal`: in single quotes, quotes and backslashes doubled, and an `E` before
/// the string when it holds a backslash.
pub fn quote_literal(t: &str) -> String {
    let mut s = String::with_capacity(t.len() + 3);
    if t.contains('\\') {
        s.push('E');
    }
    s.push('\'');
    for c in t.chars() {
        if c == '\'' || c == '\\' {
            s.push(c);
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// Keywords `quote_ident` quotes (PostgreSQL's reserved, type-or-function and column-name
/// keywords).
const QUOTED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// `quote_ident`: in double quotes (inner ones doubled) unless it is a lower-case name that
/// is not a keyword.
pub fn quote_ident(t: &str) -> String {
    let safe = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !QUOTED_KEYWORDS.contains(&t);
    if safe {
        t.to_owned()
    } else {
        format!("\"{}\"", t.replace('"', "\"\""))
    }
}

fn unterminated() -> SqlError {
    SqlError::new("22023", "unterminated format() type specifier")
        .with_hint("For a single \"%\" use \"%%\".")
}

fn too_few() -> SqlError {
    SqlError::new("22023", "too few arguments for format()")
}

fn arg_zero() -> SqlError {
    SqlError::new(
        "22023",
        "format specifies argument 0, but arguments are numbered from 1",
    )
}

/// Digits at `chars[*i..]`, if any (advancing `i` past them).
fn digits(chars: &[char], i: &mut usize) -> SqlResult<Option<usize>> {
    let start = *i;
    let mut n: usize = 0;
    while let Some(d) = chars.get(*i).and_then(|c| c.to_digit(10)) {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(d as usize))
            .filter(|n| *n <= i32::MAX as usize)
            .ok_or_else(|| SqlError::new("22003", "number is out of range"))?;
        *i += 1;
    }
    Ok((*i > start).then_some(n))
}

/// PostgreSQL's `format(fmt, args...)`: `%s` (the value's text, nothing for NULL), `%I`
/// (`quote_ident`), `%L` (`quote_literal`, `NULL` for NULL), `%%`; an argument position
/// `n$`, a `-` flag, and a width (`10`, `*`, `*n$`; a negative one left-aligns).
pub fn format(fmt: &str, args: &[Option<String>]) -> SqlResult<String> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::with_capacity(fmt.len());
    // The last argument used (1-based; 0: none yet). `args` are arguments 1...
    let mut arg = 0usize;
    let mut i = 0;
    let next = |i: &mut usize| -> SqlResult<()> {
        *i += 1;
        if *i >= chars.len() {
            return Err(unterminated());
        }
        Ok(())
    };
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        next(&mut i)?;
        if chars[i] == '%' {
            out.push('%');
            i += 1;
            continue;
        }
        // [n$][-][width | * | *n$]type
        let (mut argpos, mut widthpos, mut left, mut width) = (None, None, false, 0usize);
        let mut done = false;
        if let Some(n) = digits(&chars, &mut i)? {
            if i >= chars.len() {
                return Err(unterminated());
            }
            if chars[i] != '$' {
                width = n;
                done = true;
            } else {
                if n == 0 {
                    return Err(arg_zero());
                }
                argpos = Some(n);
                next(&mut i)?;
            }
        }
        if !done {
            while chars[i] == '-' {
                left = true;
                next(&mut i)?;
            }
            if chars[i] == '*' {
                next(&mut i)?;
                match digits(&chars, &mut i)? {
                    Some(n) => {
                        if i >= chars.len() {
                            return Err(unterminated());
                        }
                        if chars[i] != '$' {
                            return Err(SqlError::new(
                                "22023",
                                "width argument position must be ended by \"$\"",
                            ));
                        }
                        if n == 0 {
                            return Err(arg_zero());
                        }
                        widthpos = Some(n);
                        next(&mut i)?;
                    }
                    None => widthpos = Some(0),
                }
            } else if let Some(n) = digits(&chars, &mut i)? {
                if i >= chars.len() {
                    return Err(unterminated());
                }
                width = n;
            }
        }
        let conversion = chars[i];
        if !matches!(conversion, 's' | 'I' | 'L') {
            return Err(SqlError::new(
                "22023",
                format!("unrecognized format() type specifier \"{conversion}\""),
            )
            .with_hint("For a single \"%\" use \"%%\"."));
        }
        if let Some(pos) = widthpos {
            arg = if pos > 0 { pos } else { arg + 1 };
            let w = args.get(arg - 1).ok_or_else(too_few)?;
            let w: i64 = match w {
                None => 0,
                Some(t) => crate::literals::parse_int(t, 32)?,
            };
            if w < 0 {
                left = true;
            }
            width = w.unsigned_abs() as usize;
        }
        arg = argpos.unwrap_or(arg + 1);
        let value = args.get(arg - 1).ok_or_else(too_few)?;
        let text = match (conversion, value) {
            (_, None) if conversion == 's' => String::new(),
            ('L', None) => "NULL".to_owned(),
            (_, None) => {
                return Err(SqlError::new(
                    "22004",
                    "null values cannot be formatted as an SQL identifier",
                ))
            }
            ('I', Some(v)) => quote_ident(v),
            ('L', Some(v)) => quote_literal(v),
            (_, Some(v)) => v.clone(),
        };
        let pad = width.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&text);
        }
        i += 1;
    }
    Ok(out)
}

/// A PostgreSQL date/time template (`YYYY-MM-DD HH24:MI:SS`) as a chrono format.
fn chrono_format(template: &str) -> String {
    const PATTERNS: &[(&str, &str)] = &[
        ("HH24", "%H"),
        ("HH12", "%I"),
        ("YYYY", "%Y"),
        ("MONTH", "%B"),
        ("Month", "%B"),
        ("month", "%B"),
        ("A.M.", "%p"),
        ("P.M.", "%p"),
        ("a.m.", "%p"),
        ("p.m.", "%p"),
        ("DAY", "%A"),
        ("Day", "%A"),
        ("day", "%A"),
        ("DDD", "%j"),
        ("MON", "%b"),
        ("Mon", "%b"),
        ("mon", "%b"),
        ("YY", "%y"),
        ("HH", "%I"),
        ("MM", "%m"),
        ("DD", "%d"),
        ("MI", "%M"),
        ("SS", "%S"),
        ("MS", "%3f"),
        ("US", "%6f"),
        ("AM", "%p"),
        ("PM", "%p"),
        ("am", "%p"),
        ("pm", "%p"),
        ("DY", "%a"),
        ("Dy", "%a"),
        ("dy", "%a"),
        ("FM", ""),
        ("TZ", ""),
    ];
    let mut out = String::new();
    let mut rest = template;
    'outer: while let Some(c) = rest.chars().next() {
        if c == '"' {
            let body = &rest[1..];
            let end = body.find('"').unwrap_or(body.len());
            out.push_str(&body[..end].replace('%', "%%"));
            rest = body.get(end + 1..).unwrap_or("");
            continue;
        }
        for (p, f) in PATTERNS {
            if let Some(after) = rest.strip_prefix(p) {
                out.push_str(f);
                rest = after;
                continue 'outer;
            }
        }
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `to_date(text, template)` and `to_timestamp(text, template)` (or `to_timestamp(epoch
/// seconds)`), one value per row.
fn to_datetime(kind: Kind, arrays: &[ArrayRef], rows: usize, style: Style) -> Result<ArrayRef> {
    use chrono::format::{parse, Parsed, StrftimeItems};
    use datafusion::arrow::array::{Date32Array, TimestampMicrosecondArray};
    if kind == Kind::ToTimestamp && arrays.len() == 1 {
        let secs = datafusion::arrow::compute::cast(&arrays[0], &DataType::Float64)?;
        let out: TimestampMicrosecondArray = secs
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
            .iter()
            .map(|s| s.map(|s| (s * 1e6).round() as i64))
            .collect();
        return Ok(Arc::new(out.with_timezone(crate::types::UTC)));
    }
    let mut micros: Vec<Option<i64>> = Vec::with_capacity(rows);
    for row in 0..rows {
        let (Some(text), Some(template)) = (
            value_text(&arrays[0], row, style),
            value_text(&arrays[1], row, style),
        ) else {
            micros.push(None);
            continue;
        };
        let format = chrono_format(&template);
        let mut p = Parsed::new();
        let bad = || {
            sql_err(SqlError::invalid_input(format!(
                "invalid value \"{text}\" for \"{template}\""
            )))
        };
        parse(&mut p, text.trim(), StrftimeItems::new(&format)).map_err(|_| bad())?;
        if p.year().is_none() && p.year_mod_100().is_none() {
            let _ = p.set_year(1);
        }
        if p.month().is_none() && p.ordinal().is_none() {
            let _ = p.set_month(1);
        }
        if p.day().is_none() && p.ordinal().is_none() {
            let _ = p.set_day(1);
        }
        if p.hour_div_12().is_none() {
            let _ = p.set_hour(0);
        }
        if p.minute().is_none() {
            let _ = p.set_minute(0);
        }
        let ts = p.to_naive_datetime_with_offset(0).map_err(|_| bad())?;
        micros.push(Some(ts.and_utc().timestamp_micros()));
    }
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    Ok(match kind {
        Kind::ToDate => Arc::new(
            micros
                .iter()
                .map(|m| m.map(|m| m.div_euclid(MICROS_PER_DAY) as i32))
                .collect::<Date32Array>(),
        ),
        _ => Arc::new(TimestampMicrosecondArray::from(micros).with_timezone(crate::types::UTC)),
    })
}

/// `to_char(value, template)`: numbers and dates/timestamps as PostgreSQL formats them
/// ([`crate::to_char`]).
fn to_char(arrays: &[ArrayRef], rows: usize, style: Style) -> Result<ArrayRef> {
    use crate::to_char::{datetime, number, Num};
    use datafusion::arrow::datatypes::{
        Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    };
    let [value, template] = arrays else {
        return Err(DataFusionError::Internal(
            "to_char takes two arguments".into(),
        ));
    };
    // Timestamps in microseconds, PostgreSQL's precision.
    let value = match value.data_type() {
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => {
            datafusion::arrow::compute::cast(
                value,
                &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            )?
        }
        _ => value.clone(),
    };
    let bad = |e: crate::to_char::ToCharError| sql_err(SqlError::new(e.code, e.message));
    let mut out: Vec<Option<String>> = Vec::with_capacity(rows);
    for row in 0..rows {
        let Some(fmt) = value_text(template, row, style) else {
            out.push(None);
            continue;
        };
        if value.data_type() == &DataType::Null || value.is_null(row) {
            out.push(None);
            continue;
        }
        let num = match value.data_type() {
            DataType::Int16 => Some(Num::Int(
                value.as_primitive::<Int16Type>().value(row).into(),
            )),
            DataType::Int32 => Some(Num::Int(
                value.as_primitive::<Int32Type>().value(row).into(),
            )),
            DataType::Int64 => Some(Num::Int(value.as_primitive::<Int64Type>().value(row))),
            DataType::Float32 => Some(Num::Float4(value.as_primitive::<Float32Type>().value(row))),
            DataType::Float64 => Some(Num::Float8(value.as_primitive::<Float64Type>().value(row))),
            DataType::Decimal128(_, scale) => Some(Num::Numeric {
                unscaled: value.as_primitive::<Decimal128Type>().value(row),
                scale: (*scale).max(0) as u32,
            }),
            _ => None,
        };
        if let Some(num) = num {
            out.push(Some(number(&num, &fmt).map_err(bad)?));
            continue;
        }
        let (t, zone) = match value.data_type() {
            DataType::Date32 => {
                let days = value.as_primitive::<Date32Type>().value(row);
                let t = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                    .and_then(|d| d.checked_add_signed(chrono::Duration::days(days.into())))
                    .and_then(|d| d.and_hms_opt(0, 0, 0));
                (t, None)
            }
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                let micros = value
                    .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                    .value(row);
                let t = chrono::DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc());
                (t, tz.as_ref().map(|_| (0, "UTC")))
            }
            other => {
                return Err(sql_err(
                    SqlError::new(
                        "42883",
                        format!(
                            "function to_char({}, text) does not exist",
                            crate::types::SqlType::of_arrow(other).name()
                        ),
                    )
                    .with_hint("No function matches the given name and argument types. You might need to add explicit type casts."),
                ))
            }
        };
        let t = t.ok_or_else(|| sql_err(SqlError::new("22008", "timestamp out of range")))?;
        let text = datetime(&t, zone, &fmt).map_err(bad)?;
        // An empty template gives NULL for dates and times.
        out.push((!text.is_empty()).then_some(text));
    }
    Ok(Arc::new(StringArray::from(out)))
}

/// SQL text with each `VARIADIC` argument keyword rewritten to a named argument
/// (`f(a, VARIADIC x)` → `f(a, variad=>x)`), which sqlparser reads; `None`: none there.
pub fn variadic_marks(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.to_ascii_lowercase().contains("variadic") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let mut at = Vec::new();
    let mut prev: Option<&Token> = None;
    for t in &tokens {
        if matches!(t.token, Token::Whitespace(_)) {
            continue;
        }
        let is_variadic = matches!(&t.token, Token::Word(w)
            if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("variadic"));
        if is_variadic && matches!(prev, Some(Token::LParen) | Some(Token::Comma)) {
            at.push(t.span.start);
        }
        prev = Some(&t.token);
    }
    crate::session::replace_tokens(sql, &at, "variadic".len(), "variad=>")
}

/// The argument of a `VARIADIC` mark ([`variadic_marks`]), if `a` is one.
fn variadic_arg(a: &ast::FunctionArg) -> Option<&ast::FunctionArgExpr> {
    match a {
        ast::FunctionArg::Named { name, arg, .. } if name.value == VARIADIC_MARK => Some(arg),
        ast::FunctionArg::ExprNamed {
            name: ast::Expr::Identifier(name),
            arg,
            ..
        } if name.value == VARIADIC_MARK => Some(arg),
        _ => None,
    }
}

/// Whether a `VARIADIC` argument is a literal that cannot be an array (`VARIADIC 10`).
fn is_scalar_literal(a: &ast::Expr) -> bool {
    matches!(a, ast::Expr::Value(v) if !matches!(v.value, ast::Value::Null))
}

/// Calls with a `VARIADIC` argument (marked by [`variadic_marks`]) as the `_variadic` form
/// of their function, the array as a plain last argument.
pub fn rename_variadic(stmt: &mut ast::Statement) {
    struct Renamer;
    impl VisitorMut for Renamer {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<()> {
            let ast::Expr::Function(f) = e else {
                return ControlFlow::Continue(());
            };
            let ast::FunctionArguments::List(list) = &mut f.args else {
                return ControlFlow::Continue(());
            };
            let Some(last) = list.args.last_mut() else {
                return ControlFlow::Continue(());
            };
            let Some(arg) = variadic_arg(last) else {
                return ControlFlow::Continue(());
            };
            if matches!(arg, ast::FunctionArgExpr::Expr(e) if is_scalar_literal(e)) {
                // Left marked, for [`check`] to refuse with its position.
                return ControlFlow::Continue(());
            }
            *last = ast::FunctionArg::Unnamed(arg.clone());
            if let Some(ast::ObjectNamePart::Identifier(id)) = f.name.0.last_mut() {
                id.value = format!("{}_variadic", id.value.to_ascii_lowercase());
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Renamer);
}

/// The name PostgreSQL shows for a function call's column (`concat`, not
/// `concat_variadic`).
pub fn shown_name(name: &str) -> &str {
    name.strip_suffix("_variadic").unwrap_or(name)
}

/// PostgreSQL's type of a numeric literal: `integer`, `bigint` or `numeric`.
fn number_type(n: &str) -> &'static str {
    if n.parse::<i32>().is_ok() {
        "integer"
    } else if n.parse::<i64>().is_ok() {
        "bigint"
    } else {
        "numeric"
    }
}

fn number_of(e: &ast::Expr) -> Option<&str> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => Some(n.as_str()),
            _ => None,
        },
        ast::Expr::Nested(inner) => number_of(inner),
        _ => None,
    }
}

/// Functions of text only: a number given to one is an error, as there is no implicit
/// cast from a number to text.
const TEXT_ONLY: &[&str] = &[
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "bit_length",
    "upper",
    "lower",
    "initcap",
    "reverse",
    "md5",
    "ascii",
];

/// Errors PostgreSQL raises while analysing these calls, with their positions: a number
/// given to a text-only function (`length(42)`), `||` between two numbers (`3 || 4.0`),
/// and a `VARIADIC` argument that is not an array.
pub fn check(stmt: &ast::Statement, sql: &str) -> SqlResult<()> {
    struct Checker<'a> {
        sql: &'a str,
    }
    impl Visitor for Checker<'_> {
        type Break = SqlError;
        fn pre_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<SqlError> {
            let at = |node: &dyn Spanned| {
                let s = node.span().start;
                (s.line > 0).then(|| char_offset(self.sql, s.line as usize, s.column as usize))
            };
            match e {
                ast::Expr::Function(f) => {
                    let name = f.name.to_string().to_ascii_lowercase();
                    let ast::FunctionArguments::List(list) = &f.args else {
                        return ControlFlow::Continue(());
                    };
                    let plain: Vec<&ast::Expr> = list
                        .args
                        .iter()
                        .filter_map(|a| match a {
                            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                            _ => None,
                        })
                        .collect();
                    if TEXT_ONLY.contains(&name.as_str()) && plain.len() == 1 {
                        if let Some(n) = number_of(plain[0]) {
                            let mut err = SqlError::new(
                                "42883",
                                format!("function {name}({}) does not exist", number_type(n)),
                            )
                            .with_hint("No function matches the given name and argument types. You might need to add explicit type casts.");
                            if let Some(p) = at(f) {
                                err = err.at(p);
                            }
                            return ControlFlow::Break(err);
                        }
                    }
                    if let Some(ast::FunctionArgExpr::Expr(arg)) =
                        list.args.last().and_then(variadic_arg)
                    {
                        if is_scalar_literal(arg) {
                            let mut err =
                                SqlError::new("42804", "VARIADIC argument must be an array");
                            if let Some(p) = at(arg) {
                                err = err.at(p);
                            }
                            return ControlFlow::Break(err);
                        }
                    }
                }
                ast::Expr::BinaryOp {
                    left,
                    op: ast::BinaryOperator::StringConcat,
                    right,
                } => {
                    if let (Some(l), Some(r)) = (number_of(left), number_of(right)) {
                        let mut err = SqlError::new(
                            "42883",
                            format!(
                                "operator does not exist: {} || {}",
                                number_type(l),
                                number_type(r)
                            ),
                        )
                        .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts.");
                        // The position of the operator: the first `||` after the left side.
                        let end = left.span().end;
                        if end.line > 0 {
                            let from =
                                char_offset(self.sql, end.line as usize, end.column as usize);
                            let rest: String = self.sql.chars().skip(from - 1).collect();
                            if let Some(k) = rest.find("||") {
                                err = err.at(from + rest[..k].chars().count());
                            }
                        }
                        return ControlFlow::Break(err);
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    match stmt.visit(&mut Checker { sql }) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fmt: &str, args: &[Option<&str>]) -> String {
        let args: Vec<Option<String>> = args.iter().map(|a| a.map(str::to_owned)).collect();
        match format(fmt, &args) {
            Ok(s) => s,
            Err(e) => format!("ERROR: {}", e.message),
        }
    }

    #[test]
    fn format_follows_postgresql() {
        assert_eq!(f("Hello %s", &[Some("World")]), "Hello World");
        assert_eq!(f("Hello %%%%", &[]), "Hello %%");
        assert_eq!(
            f(
                "INSERT INTO %I VALUES(%L,%L)",
                &[Some("mytab"), Some("10"), None]
            ),
            "INSERT INTO mytab VALUES('10',NULL)"
        );
        assert_eq!(f("%1$s %3$s", &[Some("1"), Some("2"), Some("3")]), "1 3");
        assert_eq!(f(">>%10s<<", &[Some("Hello")]), ">>     Hello<<");
        assert_eq!(f(">>%-10s<<", &[Some("Hello")]), ">>Hello     <<");
        assert_eq!(
            f(">>%2$*1$L<<", &[Some("10"), Some("Hello")]),
            ">>   'Hello'<<"
        );
        assert_eq!(f(">>%2$*1$L<<", &[Some("-10"), None]), ">>NULL      <<");
        assert_eq!(f(">>%1$-10I<<", &[Some("Hello")]), ">>\"Hello\"   <<");
        assert_eq!(
            f("Hello %s %s", &[Some("World")]),
            "ERROR: too few arguments for format()"
        );
        assert_eq!(
            f("%0$s", &[Some("x")]),
            "ERROR: format specifies argument 0, but arguments are numbered from 1"
        );
        assert_eq!(
            f("%1$", &[Some("1")]),
            "ERROR: unterminated format() type specifier"
        );
        assert_eq!(
            f("Hello %x", &[Some("20")]),
            "ERROR: unrecognized format() type specifier \"x\""
        );
    }

    #[test]
    fn quoting_follows_postgresql() {
        assert_eq!(quote_literal("abc'"), "'abc'''");
        assert_eq!(quote_literal("\\"), "E'\\\\'");
        assert_eq!(quote_ident("mytab"), "mytab");
        assert_eq!(quote_ident("Hello"), "\"Hello\"");
        assert_eq!(quote_ident("select"), "\"select\"");
    }

    #[test]
    fn templates_become_chrono_formats() {
        assert_eq!(chrono_format("YYYYMMDD"), "%Y%m%d");
        assert_eq!(chrono_format("YYYY-MM-DD HH24:MI:SS"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(chrono_format("DD \"of\" Mon"), "%d of %b");
    }
}
