//! SQL column types: how a PostgreSQL type name maps to what BSQL stores, to the Arrow type
//! DataFusion computes with, and to the PostgreSQL type reported on the wire.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::sql::sqlparser::ast;
use pgwire::api::Type;
use serde::{Deserialize, Serialize};

use crate::error::{SqlError, SqlResult};

/// A column type as the catalog stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `numeric(p, s)`; plain `numeric` is stored as numeric(38, 10).
    Numeric {
        precision: u8,
        scale: i8,
    },
    Text,
    Varchar,
    Bpchar,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    /// PostgreSQL's type of identifiers: text of at most 63 bytes (longer is cut).
    Name,
    /// A geometric path: points, open (`[...]`) or closed (`(...)`), kept as its text.
    Path,
    /// A one-dimensional array of `ArrayOf` (`int[]`, `text[]` ...).
    Array(ArrayOf),
}

/// The element types an array column may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArrayOf {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Varchar,
}

impl ArrayOf {
    /// Every element type, in declaration order.
    pub const ALL: [ArrayOf; 8] = [
        ArrayOf::Bool,
        ArrayOf::Int2,
        ArrayOf::Int4,
        ArrayOf::Int8,
        ArrayOf::Float4,
        ArrayOf::Float8,
        ArrayOf::Text,
        ArrayOf::Varchar,
    ];

    /// The element type.
    pub fn elem(self) -> SqlType {
        match self {
            ArrayOf::Bool => SqlType::Bool,
            ArrayOf::Int2 => SqlType::Int2,
            ArrayOf::Int4 => SqlType::Int4,
            ArrayOf::Int8 => SqlType::Int8,
            ArrayOf::Float4 => SqlType::Float4,
            ArrayOf::Float8 => SqlType::Float8,
            ArrayOf::Text => SqlType::Text,
            ArrayOf::Varchar => SqlType::Varchar,
        }
    }

    /// The array type of elements of type `t`, if BSQL has it.
    pub fn of(t: SqlType) -> Option<ArrayOf> {
        ArrayOf::ALL.into_iter().find(|a| a.elem() == t)
    }
}

/// Time zone DataFusion attaches to `timestamptz` values.
pub const UTC: &str = "+00:00";

impl SqlType {
    /// Resolve a type named in DDL or a cast; the second value is a length limit
    /// (`varchar(n)`, `char(n)`) if one was given.
    pub fn from_ast(dt: &ast::DataType) -> SqlResult<(SqlType, Option<u32>)> {
        use ast::DataType as D;
        let len = |l: &Option<ast::CharacterLength>| match l {
            Some(ast::CharacterLength::IntegerLength { length, .. }) => Some(*length as u32),
            _ => None,
        };
        Ok(match dt {
            D::Bool | D::Boolean => (SqlType::Bool, None),
            D::SmallInt(_) | D::Int2(_) => (SqlType::Int2, None),
            D::Int(_) | D::Integer(_) | D::Int4(_) => (SqlType::Int4, None),
            D::BigInt(_) | D::Int8(_) => (SqlType::Int8, None),
            D::Real | D::Float4 => (SqlType::Float4, None),
            D::DoublePrecision | D::Float8 | D::Double(_) => (SqlType::Float8, None),
            D::Float(p) => match p {
                ast::ExactNumberInfo::Precision(p)
                | ast::ExactNumberInfo::PrecisionAndScale(p, _)
                    if *p <= 24 =>
                {
                    (SqlType::Float4, None)
                }
                _ => (SqlType::Float8, None),
            },
            D::Numeric(info) | D::Decimal(info) | D::Dec(info) => {
                let (precision, scale) = match info {
                    ast::ExactNumberInfo::None => (38, 10),
                    ast::ExactNumberInfo::Precision(p) => (*p as u8, 0),
                    ast::ExactNumberInfo::PrecisionAndScale(p, s) => (*p as u8, *s as i8),
                };
                if precision == 0 || precision > 38 {
                    return Err(SqlError::new(
                        "22023",
                        format!("NUMERIC precision {precision} must be between 1 and 38"),
                    ));
                }
                (SqlType::Numeric { precision, scale }, None)
            }
            D::Text | D::String(_) => (SqlType::Text, None),
            D::Varchar(l) | D::CharacterVarying(l) | D::CharVarying(l) => {
                (SqlType::Varchar, len(l))
            }
            D::Char(l) | D::Character(l) => (SqlType::Bpchar, len(l).or(Some(1))),
            D::Bytea => (SqlType::Bytea, None),
            D::Date => (SqlType::Date, None),
            D::Time(_, tz) => {
                if matches!(tz, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) {
                    return Err(SqlError::unsupported("type time with time zone"));
                }
                (SqlType::Time, None)
            }
            D::Timestamp(_, tz) => match tz {
                ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz => {
                    (SqlType::TimestampTz, None)
                }
                _ => (SqlType::Timestamp, None),
            },
            D::Interval { .. } => (SqlType::Interval, None),
            D::Array(
                ast::ArrayElemTypeDef::SquareBracket(inner, _)
                | ast::ArrayElemTypeDef::AngleBracket(inner)
                | ast::ArrayElemTypeDef::Parenthesis(inner),
            ) => {
                let (elem, len) = SqlType::from_ast(inner)?;
                match ArrayOf::of(elem) {
                    Some(a) => (SqlType::Array(a), len),
                    None => {
                        return Err(SqlError::unsupported(format!(
                            "arrays of type {}",
                            elem.name()
                        )))
                    }
                }
            }
            D::Uuid => (SqlType::Uuid, None),
            D::JSON => (SqlType::Json, None),
            D::JSONB => (SqlType::Jsonb, None),
            D::Custom(name, _) => {
                let n = name.to_string().to_ascii_lowercase();
                match n.trim_matches('"') {
                    "serial" | "serial4" => (SqlType::Int4, None),
                    "bigserial" | "serial8" => (SqlType::Int8, None),
                    "smallserial" | "serial2" => (SqlType::Int2, None),
                    "timestamptz" => (SqlType::TimestampTz, None),
                    "bpchar" => (SqlType::Bpchar, None),
                    // PostgreSQL's type of identifiers (at most 63 bytes).
                    "name" => (SqlType::Name, None),
                    "path" => (SqlType::Path, None),
                    "float4" => (SqlType::Float4, None),
                    "float8" => (SqlType::Float8, None),
                    "int2" => (SqlType::Int2, None),
                    "int4" => (SqlType::Int4, None),
                    "int8" => (SqlType::Int8, None),
                    "bool" => (SqlType::Bool, None),
                    "jsonb" => (SqlType::Jsonb, None),
                    other => {
                        return Err(SqlError::new(
                            "42704",
                            format!("type \"{other}\" does not exist"),
                        ))
                    }
                }
            }
            other => return Err(SqlError::unsupported(format!("type {other}"))),
        })
    }

    /// The Arrow type DataFusion computes a column of this type with.
    pub fn arrow(self) -> DataType {
        match self {
            SqlType::Bool => DataType::Boolean,
            SqlType::Int2 => DataType::Int16,
            SqlType::Int4 => DataType::Int32,
            SqlType::Int8 => DataType::Int64,
            SqlType::Float4 => DataType::Float32,
            SqlType::Float8 => DataType::Float64,
            SqlType::Numeric { precision, scale } => DataType::Decimal128(precision, scale),
            SqlType::Text
            | SqlType::Varchar
            | SqlType::Bpchar
            | SqlType::Uuid
            | SqlType::Json
            | SqlType::Jsonb
            | SqlType::Name
            | SqlType::Path => DataType::Utf8,
            SqlType::Bytea => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Time => DataType::Time64(TimeUnit::Microsecond),
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
            }
            SqlType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            SqlType::Array(a) => DataType::List(Arc::new(
                datafusion::arrow::datatypes::Field::new_list_field(a.elem().arrow(), true),
            )),
        }
    }

    /// The values an integer type holds (`None`: not an integer type).
    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            SqlType::Int2 => Some((i16::MIN.into(), i16::MAX.into())),
            SqlType::Int4 => Some((i32::MIN.into(), i32::MAX.into())),
            SqlType::Int8 => Some((i64::MIN, i64::MAX)),
            _ => None,
        }
    }

    /// The PostgreSQL type a column of this type is described as.
    pub fn pg(self) -> Type {
        match self {
            SqlType::Bool => Type::BOOL,
            SqlType::Int2 => Type::INT2,
            SqlType::Int4 => Type::INT4,
            SqlType::Int8 => Type::INT8,
            SqlType::Float4 => Type::FLOAT4,
            SqlType::Float8 => Type::FLOAT8,
            SqlType::Numeric { .. } => Type::NUMERIC,
            SqlType::Text => Type::TEXT,
            SqlType::Varchar => Type::VARCHAR,
            SqlType::Bpchar => Type::BPCHAR,
            SqlType::Bytea => Type::BYTEA,
            SqlType::Date => Type::DATE,
            SqlType::Time => Type::TIME,
            SqlType::Timestamp => Type::TIMESTAMP,
            SqlType::TimestampTz => Type::TIMESTAMPTZ,
            SqlType::Interval => Type::INTERVAL,
            SqlType::Uuid => Type::UUID,
            SqlType::Json => Type::JSON,
            SqlType::Jsonb => Type::JSONB,
            SqlType::Name => Type::NAME,
            SqlType::Path => Type::PATH,
            SqlType::Array(a) => match a {
                ArrayOf::Bool => Type::BOOL_ARRAY,
                ArrayOf::Int2 => Type::INT2_ARRAY,
                ArrayOf::Int4 => Type::INT4_ARRAY,
                ArrayOf::Int8 => Type::INT8_ARRAY,
                ArrayOf::Float4 => Type::FLOAT4_ARRAY,
                ArrayOf::Float8 => Type::FLOAT8_ARRAY,
                ArrayOf::Text => Type::TEXT_ARRAY,
                ArrayOf::Varchar => Type::VARCHAR_ARRAY,
            },
        }
    }

    /// The SQL name `\d` and `information_schema` show.
    pub fn name(self) -> String {
        match self {
            SqlType::Bool => "boolean".into(),
            SqlType::Int2 => "smallint".into(),
            SqlType::Int4 => "integer".into(),
            SqlType::Int8 => "bigint".into(),
            SqlType::Float4 => "real".into(),
            SqlType::Float8 => "double precision".into(),
            // Plain `numeric` is stored as numeric(38,10).
            SqlType::Numeric {
                precision: 38,
                scale: 10,
            } => "numeric".into(),
            SqlType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            SqlType::Text => "text".into(),
            SqlType::Varchar => "character varying".into(),
            SqlType::Bpchar => "character".into(),
            SqlType::Bytea => "bytea".into(),
            SqlType::Date => "date".into(),
            SqlType::Time => "time without time zone".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::TimestampTz => "timestamp with time zone".into(),
            SqlType::Interval => "interval".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Json => "json".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Name => "name".into(),
            SqlType::Path => "path".into(),
            SqlType::Array(a) => format!("{}[]", a.elem().name()),
        }
    }

    /// The type a query's Arrow result column is shown as (a view's columns): lengths and
    /// the distinctions Arrow does not keep (varchar, uuid, json) are lost, as `text`.
    pub fn of_arrow(dt: &DataType) -> SqlType {
        match dt {
            DataType::Boolean => SqlType::Bool,
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => SqlType::Int2,
            DataType::Int32 | DataType::UInt16 => SqlType::Int4,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => SqlType::Int8,
            DataType::Float16 | DataType::Float32 => SqlType::Float4,
            DataType::Float64 => SqlType::Float8,
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => SqlType::Numeric {
                precision: *p,
                scale: *s,
            },
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => SqlType::Bytea,
            DataType::Date32 | DataType::Date64 => SqlType::Date,
            DataType::Time32(_) | DataType::Time64(_) => SqlType::Time,
            DataType::Timestamp(_, None) => SqlType::Timestamp,
            DataType::Timestamp(_, Some(_)) => SqlType::TimestampTz,
            DataType::Interval(_) | DataType::Duration(_) => SqlType::Interval,
            DataType::List(f) | DataType::LargeList(f) => {
                match ArrayOf::of(SqlType::of_arrow(f.data_type())) {
                    Some(a) => SqlType::Array(a),
                    None => SqlType::Text,
                }
            }
            _ => SqlType::Text,
        }
    }

    /// The PostgreSQL type an Arrow result column is described as.
    pub fn pg_of_arrow(dt: &DataType) -> Type {
        SqlType::of_arrow(dt).pg()
    }
}

/// Give integer literals in a query's output PostgreSQL's type: `integer` when the value
/// fits in 32 bits (`select 1` is int4 in PostgreSQL; DataFusion would make it int8, and a
/// driver reading it as a 32-bit integer fails). Only literals that are a whole output
/// column are typed (in the select lists of the query and its set operations, in VALUES
/// rows, as a CASE result, negated or in parentheses); literals in arithmetic keep int8,
/// because DataFusion's 32-bit arithmetic wraps where PostgreSQL reports an overflow.
/// WHERE clauses, function arguments and DML are untouched, so comparisons, function
/// signatures and the point fast path are unchanged.
pub fn type_integer_literals(stmt: &mut ast::Statement) {
    if let ast::Statement::Query(q) = stmt {
        for_each_output(
            &mut q.body,
            &mut |select| {
                for item in &mut select.projection {
                    match item {
                        ast::SelectItem::UnnamedExpr(e)
                        | ast::SelectItem::ExprWithAlias { expr: e, .. } => expr_literals(e),
                        _ => {}
                    }
                }
            },
            &mut |row| row.iter_mut().for_each(expr_literals),
        );
    }
}

/// `2.50::numeric` keeps its scale, as PostgreSQL's numeric keeps each value's: a number
/// literal cast to plain `numeric` is cast to `numeric(38, <its digits after the point>)`
/// instead (plain numeric is numeric(38,10) here, shown without trailing zeros).
pub fn numeric_literal_scales(stmt: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(stmt, |e: &mut ast::Expr| {
        if let ast::Expr::Cast {
            expr, data_type, ..
        } = e
        {
            let plain = matches!(
                data_type,
                ast::DataType::Numeric(ast::ExactNumberInfo::None)
                    | ast::DataType::Decimal(ast::ExactNumberInfo::None)
            );
            if let (true, ast::Expr::Value(v)) = (plain, expr.as_ref()) {
                if let ast::Value::Number(n, _) = &v.value {
                    if !n.contains(['e', 'E']) && n.len() <= 38 {
                        let scale = n.split_once('.').map_or(0, |(_, f)| f.len()) as u64;
                        *data_type = ast::DataType::Numeric(
                            ast::ExactNumberInfo::PrecisionAndScale(38, scale as i64),
                        );
                    }
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// A quoted number in arithmetic (`f1 * '-10'`): PostgreSQL gives a literal of unknown type
/// the other operand's type, DataFusion refuses to add a number and a string. The literal
/// is cast to `bigint` (an integer) or `double precision` (any other number), which
/// DataFusion then coerces to the other operand's type; other text is left alone
/// (`date + '1 day'`).
pub fn quoted_numbers_in_arithmetic(stmt: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(stmt, |e: &mut ast::Expr| {
        // The arguments of math functions too (`power(f1, '2')`).
        if let ast::Expr::Function(f) = e {
            let math =
                f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
                    MATH_FUNCTIONS.contains(&i.value.to_ascii_lowercase().as_str())
                });
            if let (true, ast::FunctionArguments::List(list)) = (math, &mut f.args) {
                for arg in &mut list.args {
                    if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a)) = arg {
                        number_literal(a);
                    }
                }
            }
        }
        if let ast::Expr::BinaryOp { left, op, right } = e {
            if matches!(
                op,
                ast::BinaryOperator::Plus
                    | ast::BinaryOperator::Minus
                    | ast::BinaryOperator::Multiply
                    | ast::BinaryOperator::Divide
                    | ast::BinaryOperator::Modulo
            ) {
                for side in [left, right] {
                    number_literal(side);
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// Functions whose quoted-number arguments are numbers (see
/// [`quoted_numbers_in_arithmetic`]).
const MATH_FUNCTIONS: &[&str] = &[
    "abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "cbrt", "ceil", "ceiling",
    "cos", "cosh", "cot", "degrees", "exp", "floor", "gcd", "lcm", "ln", "log", "log10", "mod",
    "pow", "power", "radians", "round", "sign", "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
];

/// A quoted number made a number: cast to `bigint` (an integer) or `double precision`.
fn number_literal(e: &mut ast::Expr) {
    let ast::Expr::Value(v) = &*e else {
        return;
    };
    let ast::Value::SingleQuotedString(text) = &v.value else {
        return;
    };
    let t = text.trim();
    let data_type = if t.parse::<i64>().is_ok() {
        ast::DataType::BigInt(None)
    } else if t.parse::<f64>().is_ok_and(f64::is_finite) && t.bytes().any(|b| b.is_ascii_digit()) {
        ast::DataType::DoublePrecision
    } else {
        return;
    };
    let literal = std::mem::replace(e, ast::Expr::value(ast::Value::Null));
    *e = ast::Expr::Cast {
        kind: ast::CastKind::DoubleColon,
        expr: Box::new(literal),
        data_type,
        array: false,
        format: None,
    };
}

/// Prefix of the aliases [`unique_select_items`] gives.
pub const DUPLICATE_ALIAS: &str = "__bsql_dup_";

/// PostgreSQL allows the same expression twice in a select list (`select 1, 1`); DataFusion
/// refuses two output columns of the same name, and names every subquery `(<subquery>)`.
/// A repeated unnamed item, and one with a subquery in it, gets a private alias (the
/// result's columns are named as PostgreSQL names them anyway, see
/// `session::output_names`).
pub fn unique_select_items(stmt: &mut ast::Statement) {
    let q = match stmt {
        ast::Statement::Query(q) => q,
        // INSERT ... SELECT i, i: the source's names do not matter.
        ast::Statement::Insert(ins) => match ins.source.as_mut() {
            Some(q) => q,
            None => return,
        },
        _ => return,
    };
    for_each_output(
        &mut q.body,
        &mut |select| {
            // A lone item cannot collide (and most statements on the hot path have few).
            let compare = select.projection.len() > 1;
            let mut seen = std::collections::HashSet::new();
            for (i, item) in select.projection.iter_mut().enumerate() {
                if let ast::SelectItem::UnnamedExpr(e) = item {
                    // DataFusion names a cast after what it casts: `0.0::numeric` and
                    // `0.0` collide.
                    let mut base = &*e;
                    while let ast::Expr::Cast { expr, .. } | ast::Expr::Nested(expr) = base {
                        base = expr;
                    }
                    if has_subquery(e) || (compare && !seen.insert(base.to_string())) {
                        *item = ast::SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: ast::Ident::new(format!("{DUPLICATE_ALIAS}{i}")),
                        };
                    }
                }
            }
        },
        &mut |_| {},
    );
}

/// Visit what makes a query's output: each SELECT of its body and set operations, and each
/// VALUES row.
fn for_each_output(
    body: &mut ast::SetExpr,
    select: &mut impl FnMut(&mut ast::Select),
    row: &mut impl FnMut(&mut Vec<ast::Expr>),
) {
    match body {
        ast::SetExpr::Select(s) => select(s),
        ast::SetExpr::SetOperation { left, right, .. } => {
            for_each_output(left, select, row);
            for_each_output(right, select, row);
        }
        ast::SetExpr::Query(q) => for_each_output(&mut q.body, select, row),
        ast::SetExpr::Values(v) => {
            for r in &mut v.rows {
                row(r);
            }
        }
        _ => {}
    }
}

/// Whether `e` contains a subquery (DataFusion names them all alike).
fn has_subquery(e: &ast::Expr) -> bool {
    let found = ast::visit_expressions(e, |x: &ast::Expr| match x {
        ast::Expr::Subquery(_) | ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. } => {
            std::ops::ControlFlow::Break(())
        }
        _ => std::ops::ControlFlow::Continue(()),
    });
    found.is_break()
}

/// Whether `e` is a literal typed by [`type_integer_literals`] (or written as
/// `CAST(n AS INT4)`, which PostgreSQL would name `int4`; a rare spelling).
pub fn is_typed_literal(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Cast {
        kind: ast::CastKind::Cast,
        expr,
        data_type: ast::DataType::Int4(None),
        ..
    } if matches!(expr.as_ref(), ast::Expr::Value(_)))
}

fn expr_literals(e: &mut ast::Expr) {
    match e {
        ast::Expr::Value(v) => {
            let fits = matches!(&v.value, ast::Value::Number(n, false) if n.parse::<i32>().is_ok());
            if fits {
                // Spelled as `CAST(n AS INT4)`, which `is_typed_literal` recognises: the column
                // keeps the name PostgreSQL gives a bare literal (`?column?`), not `int4`.
                let literal = std::mem::replace(e, ast::Expr::value(ast::Value::Null));
                *e = ast::Expr::Cast {
                    kind: ast::CastKind::Cast,
                    expr: Box::new(literal),
                    data_type: ast::DataType::Int4(None),
                    array: false,
                    format: None,
                };
            }
        }
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus | ast::UnaryOperator::Plus,
            expr,
        }
        | ast::Expr::Nested(expr) => expr_literals(expr),
        ast::Expr::Case {
            conditions,
            else_result,
            ..
        } => {
            for c in conditions {
                expr_literals(&mut c.result);
            }
            if let Some(e) = else_result {
                expr_literals(e);
            }
        }
        _ => {}
    }
}

/// `'{1,2,NULL}'::int[]`: an array literal's text cast to an array type, read as
/// `array_in` reads a one-dimensional array (elements quoted with `"` or bare, `NULL`),
/// written as the `ARRAY['1','2',NULL]` that DataFusion casts element by element.
pub fn array_literals(stmt: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(stmt, |e: &mut ast::Expr| {
        if let ast::Expr::Cast {
            expr,
            data_type: ast::DataType::Array(_),
            ..
        } = e
        {
            let array = match expr.as_ref() {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::SingleQuotedString(s) => array_expr(s, false),
                    _ => None,
                },
                _ => None,
            };
            if let Some(array) = array {
                **expr = array;
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// An array literal's text (`{1,NULL}`) as the array of its elements' text
/// (`ARRAY['1',NULL]`; `named`: spelled with `ARRAY`); `None` if `text` is not one.
pub fn array_expr(text: &str, named: bool) -> Option<ast::Expr> {
    let elem = array_items(text)?
        .into_iter()
        .map(|i| {
            ast::Expr::value(match i {
                Some(t) => ast::Value::SingleQuotedString(t),
                None => ast::Value::Null,
            })
        })
        .collect();
    Some(ast::Expr::Array(ast::Array { elem, named }))
}

/// The elements of a one-dimensional array literal (`{a,"b c",NULL}`); `None` if `text`
/// is not one.
pub(crate) fn array_items(text: &str) -> Option<Vec<Option<String>>> {
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    if body.trim().is_empty() {
        return Some(Vec::new());
    }
    let mut items = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        let mut item = String::new();
        let mut quoted = false;
        if chars.next_if_eq(&'"').is_some() {
            quoted = true;
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => item.push(chars.next()?),
                    c => item.push(c),
                }
            }
            while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                match c {
                    '{' | '}' | '"' => return None,
                    '\\' => item.push(chars.next()?),
                    c => item.push(c),
                }
            }
            item = item.trim_end().to_owned();
        }
        items.push((quoted || !item.eq_ignore_ascii_case("null")).then_some(item));
        match chars.next() {
            None => return Some(items),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// `~x` (bitwise not), which DataFusion lacks, as `x # -1` (exclusive or with all bits set).
pub fn bitwise_not(stmt: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(stmt, |e: &mut ast::Expr| {
        if let ast::Expr::UnaryOp {
            op: ast::UnaryOperator::BitwiseNot,
            expr,
        } = e
        {
            let inner = std::mem::replace(expr.as_mut(), ast::Expr::value(ast::Value::Null));
            *e = ast::Expr::Nested(Box::new(ast::Expr::BinaryOp {
                left: Box::new(ast::Expr::Nested(Box::new(inner))),
                op: ast::BinaryOperator::PGBitwiseXor,
                right: Box::new(ast::Expr::UnaryOp {
                    op: ast::UnaryOperator::Minus,
                    expr: Box::new(ast::Expr::value(ast::Value::Number("1".into(), false))),
                }),
            }));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// A `name` value: cut to 63 bytes (at a character boundary), as PostgreSQL cuts it.
pub fn name_in(text: &str) -> String {
    let mut end = text.len().min(63);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// PostgreSQL's `path_in`: `[(x1,y1),...]` (open), `((x1,y1),...)` or `(x1,y1),...`
/// (closed), blanks allowed between the parts; the path as `path_out` writes it.
pub fn path_in(text: &str) -> SqlResult<String> {
    let bad = || SqlError::invalid_input(format!("invalid input syntax for type path: \"{text}\""));
    let t = text.trim();
    let (open, body) = if let Some(b) = t.strip_prefix('[') {
        (true, b.strip_suffix(']').ok_or_else(bad)?)
    } else if t.starts_with("((") || (t.starts_with('(') && t[1..].trim_start().starts_with('(')) {
        (false, t[1..].strip_suffix(')').ok_or_else(bad)?)
    } else {
        (false, t)
    };
    // The numbers, in pairs.
    let numbers: Vec<&str> = body
        .split([',', '(', ')'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let shape_ok = body.chars().filter(|c| *c == '(').count() * 2 == numbers.len()
        && body.chars().filter(|c| *c == ')').count() * 2 == numbers.len();
    if numbers.is_empty() || !numbers.len().is_multiple_of(2) || !shape_ok {
        return Err(bad());
    }
    let mut points = Vec::with_capacity(numbers.len() / 2);
    for pair in numbers.chunks(2) {
        let x = crate::literals::parse_float(pair[0], false).map_err(|_| bad())?;
        let y = crate::literals::parse_float(pair[1], false).map_err(|_| bad())?;
        points.push(format!(
            "({},{})",
            crate::pgtext::pg_float(x, 15, 1),
            crate::pgtext::pg_float(y, 15, 1)
        ));
    }
    let (l, r) = if open { ('[', ']') } else { ('(', ')') };
    Ok(format!("{l}{}{r}", points.join(",")))
}

/// The type of an expression whose type is plain from its text: a cast, a boolean or a
/// number literal (a quoted literal has none yet: it takes the type it is given).
pub fn known_type(e: &ast::Expr) -> Option<SqlType> {
    match e {
        ast::Expr::Cast { data_type, .. } => SqlType::from_ast(data_type).ok().map(|(t, _)| t),
        ast::Expr::Nested(inner) => known_type(inner),
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Boolean(_) => Some(SqlType::Bool),
            ast::Value::Number(n, _) if n.parse::<i32>().is_ok() => Some(SqlType::Int4),
            ast::Value::Number(n, _) if n.parse::<i64>().is_ok() => Some(SqlType::Int8),
            ast::Value::Number(..) => Some(SqlType::Numeric {
                precision: 38,
                scale: 10,
            }),
            _ => None,
        },
        _ => None,
    }
}

/// Whether PostgreSQL converts a `from` value to `to` where a value is assigned (a column,
/// a parameter): within the number types, to any string type, between dates and
/// timestamps, json to jsonb and back.
pub fn assignable(from: SqlType, to: SqlType) -> bool {
    use SqlType as T;
    let number = |t: T| {
        matches!(
            t,
            T::Int2 | T::Int4 | T::Int8 | T::Float4 | T::Float8 | T::Numeric { .. }
        )
    };
    let string = |t: T| matches!(t, T::Text | T::Varchar | T::Bpchar | T::Name);
    let datetime = |t: T| matches!(t, T::Date | T::Timestamp | T::TimestampTz);
    let json = |t: T| matches!(t, T::Json | T::Jsonb);
    std::mem::discriminant(&from) == std::mem::discriminant(&to)
        || string(to)
        || (number(from) && number(to))
        || (datetime(from) && datetime(to))
        || (json(from) && json(to))
}
