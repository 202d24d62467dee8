//! Arithmetic and conversions as PostgreSQL does them, where DataFusion's differ: `+ - * /`
//! on smallint, integer and bigint fail with "smallint out of range" (SQLSTATE 22003)
//! instead of wrapping around; on floats with "value out of range: overflow" (or underflow,
//! or division by zero) instead of giving infinity or zero; a float or numeric converted to
//! an integer is rounded (floats to the nearest even, numerics away from zero) instead of
//! truncated; text converted to boolean or a float follows PostgreSQL's input rules and
//! errors; `ln`, `log`, `sqrt`, `exp`, `power`, `acosh`, `atanh`, `acos`, `asin` refuse
//! arguments outside their domain and results beyond a double as PostgreSQL does, where
//! IEEE gives NaN or infinity.
//!
//! [`PgArithmetic`], an analyzer rule that runs after DataFusion's type coercion, replaces
//! those expressions with the functions here. Constants fold through them too, so
//! `SELECT 32767::int2 + 1::int2` fails at planning as it fails in PostgreSQL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::error::SqlError;

/// PostgreSQL's name of an integer type, for "... out of range".
fn int_name(ty: &DataType) -> Option<&'static str> {
    match ty {
        DataType::Int16 => Some("smallint"),
        DataType::Int32 => Some("integer"),
        DataType::Int64 => Some("bigint"),
        _ => None,
    }
}

fn out_of_range(ty: &DataType) -> DataFusionError {
    let name = int_name(ty).unwrap_or("integer");
    DataFusionError::External(Box::new(SqlError::new(
        "22003",
        format!("{name} out of range"),
    )))
}

/// The function's arguments as arrays, and whether all were scalars (then so is its answer).
pub(crate) fn arrays_of(args: &ScalarFunctionArgs) -> Result<(Vec<ArrayRef>, bool)> {
    let scalar = args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)));
    Ok((ColumnarValue::values_to_arrays(&args.args)?, scalar))
}

/// `out` as the function's answer: one value when its arguments were scalars.
pub(crate) fn answer(out: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    Ok(if scalar {
        ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(out)
    })
}

/// The text of the function's one argument, each value read with `parse` (nulls stay
/// null), and whether the argument was a scalar.
fn parse_text<T>(
    args: &ScalarFunctionArgs,
    name: &str,
    parse: impl Fn(&str) -> std::result::Result<T, SqlError>,
) -> Result<(Vec<Option<T>>, bool)> {
    let (arrays, scalar) = arrays_of(args)?;
    let Some(input) = arrays.first() else {
        return Err(DataFusionError::Internal(format!(
            "{name} takes one argument"
        )));
    };
    let text = datafusion::arrow::compute::cast(input, &DataType::Utf8)?;
    let values = text
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(&parse).transpose())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok((values, scalar))
}

/// `a op b` on one integer type, failing on overflow.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedOp {
    name: &'static str,
    op: Operator,
    signature: Signature,
}

impl ScalarUDFImpl for CheckedOp {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Int64))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::compute::kernels::numeric;
        let (arrays, scalar) = arrays_of(&args)?;
        let [l, r] = arrays.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes two arguments",
                self.name
            )));
        };
        let ty = l.data_type().clone();
        let out = match self.op {
            Operator::Plus => numeric::add(l, r),
            Operator::Minus => numeric::sub(l, r),
            Operator::Multiply => numeric::mul(l, r),
            _ => numeric::div(l, r),
        }
        .map_err(|e| match e {
            ArrowError::DivideByZero => {
                DataFusionError::External(Box::new(SqlError::new("22012", "division by zero")))
            }
            ArrowError::ArithmeticOverflow(_) => out_of_range(&ty),
            other => DataFusionError::ArrowError(Box::new(other), None),
        })?;
        if matches!(ty, DataType::Float64 | DataType::Float32) {
            check_float(self.op, l, r, &out)?;
        }
        answer(out, scalar)
    }
}

/// PostgreSQL's float arithmetic errors where IEEE gives infinity or zero: a finite result
/// too large (`value out of range: overflow`), a nonzero product or quotient that
/// vanished (`underflow`), and a division by zero (22012).
fn check_float(op: Operator, l: &ArrayRef, r: &ArrayRef, out: &ArrayRef) -> Result<()> {
    let as_f64 = |a: &ArrayRef| datafusion::arrow::compute::cast(a, &DataType::Float64);
    let (l, r, out) = (as_f64(l)?, as_f64(r)?, as_f64(out)?);
    let (l, r, out) = (
        l.as_primitive::<Float64Type>(),
        r.as_primitive::<Float64Type>(),
        out.as_primitive::<Float64Type>(),
    );
    let err = |code: &'static str, msg: &str| {
        Err(DataFusionError::External(Box::new(SqlError::new(
            code, msg,
        ))))
    };
    for i in 0..out.len() {
        if out.is_null(i) {
            continue;
        }
        let (a, b, v) = (l.value(i), r.value(i), out.value(i));
        if op == Operator::Divide && b == 0.0 && !a.is_nan() {
            return err("22012", "division by zero");
        }
        if v.is_infinite() && a.is_finite() && b.is_finite() {
            return err("22003", "value out of range: overflow");
        }
        let vanished = match op {
            Operator::Multiply => a != 0.0 && b != 0.0,
            Operator::Divide => a != 0.0 && b.is_finite(),
            _ => false,
        };
        if v == 0.0 && vanished {
            return err("22003", "value out of range: underflow");
        }
    }
    Ok(())
}

/// A float or numeric converted to an integer type, rounded and range-checked.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToInt {
    name: &'static str,
    target: DataType,
    /// The type whose range the value must fit (the target's, or a narrower one).
    range: DataType,
    signature: Signature,
}

impl ToInt {
    /// `v` (already rounded) as the target type, or "out of range".
    fn fit(&self, v: f64) -> Result<i64> {
        let (lo, hi) = match self.range {
            DataType::Int16 => (i16::MIN as f64, i16::MAX as f64),
            DataType::Int32 => (i32::MIN as f64, i32::MAX as f64),
            // i64::MAX as f64 rounds up to 2^63, which does not fit.
            _ => (i64::MIN as f64, 9_223_372_036_854_774_784.0),
        };
        if v.is_nan() || v < lo || v > hi {
            return Err(out_of_range(&self.range));
        }
        Ok(v as i64)
    }

    fn convert(&self, input: &ArrayRef) -> Result<ArrayRef> {
        let n = input.len();
        let mut out: Vec<Option<i64>> = Vec::with_capacity(n);
        match input.data_type() {
            DataType::Float64 | DataType::Float32 => {
                let values: Vec<Option<f64>> = if input.data_type() == &DataType::Float64 {
                    input.as_primitive::<Float64Type>().iter().collect()
                } else {
                    input
                        .as_primitive::<Float32Type>()
                        .iter()
                        .map(|v| v.map(f64::from))
                        .collect()
                };
                for v in values {
                    // PostgreSQL rounds with rint(): halves to the even neighbour.
                    out.push(v.map(|v| self.fit(v.round_ties_even())).transpose()?);
                }
            }
            DataType::Decimal128(_, scale) => {
                let scale = *scale;
                for v in input.as_primitive::<Decimal128Type>().iter() {
                    out.push(
                        v.map(|v| self.fit(round_decimal(v, scale) as f64))
                            .transpose()?,
                    );
                }
            }
            DataType::Int64 => {
                for v in input.as_primitive::<Int64Type>().iter() {
                    out.push(v.map(|v| self.fit(v as f64)).transpose()?);
                }
            }
            other => {
                return Err(DataFusionError::Internal(format!(
                    "{} of {other}",
                    self.name
                )))
            }
        }
        Ok(match self.target {
            DataType::Int16 => Arc::new(
                out.into_iter()
                    .map(|v| v.map(|v| v as i16))
                    .collect::<datafusion::arrow::array::PrimitiveArray<Int16Type>>(),
            ),
            DataType::Int32 => Arc::new(
                out.into_iter()
                    .map(|v| v.map(|v| v as i32))
                    .collect::<datafusion::arrow::array::PrimitiveArray<Int32Type>>(),
            ),
            _ => Arc::new(
                out.into_iter()
                    .collect::<datafusion::arrow::array::PrimitiveArray<Int64Type>>(),
            ),
        })
    }
}

/// A decimal's unscaled value `v` at `scale`, rounded to an integer, halves away from zero.
fn round_decimal(v: i128, scale: i8) -> i128 {
    if scale <= 0 {
        return v.saturating_mul(10i128.saturating_pow(scale.unsigned_abs() as u32));
    }
    let div = 10i128.saturating_pow(scale as u32);
    let (q, r) = (v / div, v % div);
    if r.abs() * 2 >= div {
        q + v.signum()
    } else {
        q
    }
}

impl ScalarUDFImpl for ToInt {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.target.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes one argument",
                self.name
            )));
        };
        match arg {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(self.convert(a)?)),
            ColumnarValue::Scalar(s) => answer(self.convert(&s.to_array()?)?, true),
        }
    }
}

/// Text converted to boolean with PostgreSQL's input rules and error.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToBool {
    signature: Signature,
}

impl ScalarUDFImpl for ToBool {
    fn name(&self) -> &str {
        "to_bool"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (values, scalar) = parse_text(&args, "to_bool", |v| {
            crate::literals::parse_bool(v).ok_or_else(|| crate::literals::bad_bool(v))
        })?;
        answer(
            Arc::new(datafusion::arrow::array::BooleanArray::from(values)),
            scalar,
        )
    }
}

/// Text converted to a float with PostgreSQL's input rules and errors.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToFloat {
    name: &'static str,
    real: bool,
    signature: Signature,
}

impl ScalarUDFImpl for ToFloat {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(if self.real {
            DataType::Float32
        } else {
            DataType::Float64
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (values, scalar) = parse_text(&args, self.name, |v| {
            crate::literals::parse_float(v, self.real)
        })?;
        let out: ArrayRef = if self.real {
            Arc::new(
                values
                    .into_iter()
                    .map(|v| v.map(|v| v as f32))
                    .collect::<datafusion::arrow::array::Float32Array>(),
            )
        } else {
            Arc::new(datafusion::arrow::array::Float64Array::from(values))
        };
        answer(out, scalar)
    }
}

/// The math functions whose domain and range PostgreSQL checks, where IEEE (and DataFusion)
/// give NaN or infinity.
const CHECKED_MATH: &[&str] = &[
    "ln", "log10", "log", "sqrt", "exp", "power", "acosh", "atanh", "acos", "asin",
];

/// `check(result, args...)`: `result` of math function `func` of `args`, or PostgreSQL's
/// error for those arguments.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedMath {
    func: &'static str,
    name: String,
    signature: Signature,
}

impl ScalarUDFImpl for CheckedMath {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Float64))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let first = args.args.first().cloned();
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let floats = arrays
            .iter()
            .map(|a| datafusion::arrow::compute::cast(a, &DataType::Float64))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let cols: Vec<&datafusion::arrow::array::Float64Array> = floats
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        let err = |code: &'static str, msg: &str| {
            Err(DataFusionError::External(Box::new(SqlError::new(
                code, msg,
            ))))
        };
        let Some(result) = cols.first() else {
            return err("XX000", "checked math without arguments");
        };
        for i in 0..result.len() {
            if cols.iter().any(|c| c.is_null(i)) {
                continue;
            }
            let r = result.value(i);
            let x = cols.get(1).map_or(f64::NAN, |c| c.value(i));
            // log(b, x): the argument is the last one.
            let last = cols.last().map_or(f64::NAN, |c| c.value(i));
            match self.func {
                "ln" | "log10" | "log" if last == 0.0 => {
                    return err("2201E", "cannot take logarithm of zero")
                }
                "ln" | "log10" | "log" if last < 0.0 => {
                    return err("2201E", "cannot take logarithm of a negative number")
                }
                "sqrt" if x < 0.0 => {
                    return err("2201F", "cannot take square root of a negative number")
                }
                "exp" | "power"
                    if r.is_infinite() && cols[1..].iter().all(|c| c.value(i).is_finite()) =>
                {
                    return err("22003", "value out of range: overflow")
                }
                "exp" if r == 0.0 && x.is_finite() => {
                    return err("22003", "value out of range: underflow")
                }
                "power" => {
                    let y = cols.get(2).map_or(f64::NAN, |c| c.value(i));
                    if x == 0.0 && y < 0.0 {
                        return err("2201F", "zero raised to a negative power is undefined");
                    }
                    if x < 0.0 && y.is_finite() && y.fract() != 0.0 {
                        return err(
                            "2201F",
                            "a negative number raised to a non-integer power yields a complex result",
                        );
                    }
                    if r == 0.0 && x != 0.0 && x.is_finite() && y.is_finite() {
                        return err("22003", "value out of range: underflow");
                    }
                }
                "acosh" if x < 1.0 => return err("22003", "input is out of range"),
                "atanh" | "acos" | "asin" if !(-1.0..=1.0).contains(&x) => {
                    return err("22003", "input is out of range")
                }
                _ => {}
            }
        }
        match first {
            Some(v) => Ok(v),
            None => err("XX000", "checked math without arguments"),
        }
    }
}

/// The functions the rule rewrites to, made once.
struct Functions {
    ops: Vec<(Operator, Arc<ScalarUDF>)>,
    to_int: Vec<(DataType, Arc<ScalarUDF>)>,
    to_bool: Arc<ScalarUDF>,
    to_float8: Arc<ScalarUDF>,
    to_float4: Arc<ScalarUDF>,
    math: Vec<(&'static str, Arc<ScalarUDF>)>,
    /// bigint results that must fit a smallint or an integer (the type stays bigint: the
    /// statement's result columns were typed before this rule ran).
    fit: Vec<(DataType, Arc<ScalarUDF>)>,
}

fn functions() -> &'static Functions {
    static F: std::sync::OnceLock<Functions> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let op = |name, op| {
            (
                op,
                Arc::new(ScalarUDF::new_from_impl(CheckedOp {
                    name,
                    op,
                    signature: Signature::any(2, Volatility::Immutable),
                })),
            )
        };
        let int = |name, target: DataType, range: DataType| {
            Arc::new(ScalarUDF::new_from_impl(ToInt {
                name,
                target,
                range,
                signature: Signature::any(1, Volatility::Immutable),
            }))
        };
        let to_int = |name, target: DataType| (target.clone(), int(name, target.clone(), target));
        Functions {
            ops: vec![
                op("int_pl", Operator::Plus),
                op("int_mi", Operator::Minus),
                op("int_mul", Operator::Multiply),
                op("int_div", Operator::Divide),
            ],
            to_int: vec![
                to_int("to_int2", DataType::Int16),
                to_int("to_int4", DataType::Int32),
                to_int("to_int8", DataType::Int64),
            ],
            fit: vec![
                (
                    DataType::Int16,
                    int("fit_int2", DataType::Int64, DataType::Int16),
                ),
                (
                    DataType::Int32,
                    int("fit_int4", DataType::Int64, DataType::Int32),
                ),
            ],
            math: CHECKED_MATH
                .iter()
                .map(|&func| {
                    (
                        func,
                        Arc::new(ScalarUDF::new_from_impl(CheckedMath {
                            func,
                            name: format!("checked_{func}"),
                            signature: Signature::variadic_any(Volatility::Immutable),
                        })),
                    )
                })
                .collect(),
            to_float8: Arc::new(ScalarUDF::new_from_impl(ToFloat {
                name: "to_float8",
                real: false,
                signature: Signature::any(1, Volatility::Immutable),
            })),
            to_float4: Arc::new(ScalarUDF::new_from_impl(ToFloat {
                name: "to_float4",
                real: true,
                signature: Signature::any(1, Volatility::Immutable),
            })),
            to_bool: Arc::new(ScalarUDF::new_from_impl(ToBool {
                signature: Signature::any(1, Volatility::Immutable),
            })),
        }
    })
}

/// The type a function named for a type converts to (`float8(x)` is `x::float8`).
fn type_function(name: &str) -> Option<DataType> {
    TYPE_FUNCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t.clone())
}

/// The functions named for types, and the types they convert to.
const TYPE_FUNCTIONS: [(&str, DataType); 5] = [
    ("float8", DataType::Float64),
    ("float4", DataType::Float32),
    ("int8", DataType::Int64),
    ("int4", DataType::Int32),
    ("int2", DataType::Int16),
];

/// A function named for a type: a cast (the analyzer rule plans it as one).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TypeFunction {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for TypeFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        type_function(self.name).ok_or_else(|| DataFusionError::Internal(self.name.into()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = arrays_of(&args)?;
        let (Some(ty), Some(a)) = (type_function(self.name), arrays.first()) else {
            return Err(DataFusionError::Internal(self.name.into()));
        };
        let options = datafusion::arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        };
        answer(
            datafusion::arrow::compute::cast_with_options(a, &ty, &options)?,
            scalar,
        )
    }
}

/// Register the functions named for types (`float8(x)`, `int4(x)` ...).
pub fn register_type_functions(ctx: &datafusion::prelude::SessionContext) {
    for (name, _) in TYPE_FUNCTIONS {
        ctx.register_udf(ScalarUDF::new_from_impl(TypeFunction {
            name,
            signature: Signature::any(1, Volatility::Immutable),
        }));
    }
}

/// The analyzer rule: see the module doc.
#[derive(Debug, Default)]
pub struct PgArithmetic;

impl PgArithmetic {
    fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let f = functions();
        expr.transform_up(|e| match &e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let Some((_, udf)) = f.ops.iter().find(|(o, _)| o == op) else {
                    return Ok(Transformed::no(e));
                };
                let (Ok(lt), Ok(rt)) = (left.get_type(schema), right.get_type(schema)) else {
                    return Ok(Transformed::no(e));
                };
                let float = matches!(lt, DataType::Float64 | DataType::Float32);
                if lt != rt || (int_name(&lt).is_none() && !float) {
                    return Ok(Transformed::no(e));
                }
                let args = vec![left.as_ref().clone(), right.as_ref().clone()];
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(udf.clone(), args),
                )))
            }
            Expr::Cast(c)
                if matches!(
                    c.field.data_type(),
                    DataType::Boolean | DataType::Float64 | DataType::Float32
                ) =>
            {
                let Ok(from) = c.expr.get_type(schema) else {
                    return Ok(Transformed::no(e));
                };
                if !matches!(
                    from,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    return Ok(Transformed::no(e));
                }
                let udf = match c.field.data_type() {
                    DataType::Boolean => &f.to_bool,
                    DataType::Float64 => &f.to_float8,
                    _ => &f.to_float4,
                };
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(udf.clone(), vec![c.expr.as_ref().clone()]),
                )))
            }
            Expr::Cast(c) => {
                let Some((_, udf)) = f.to_int.iter().find(|(t, _)| t == c.field.data_type()) else {
                    return Ok(Transformed::no(e));
                };
                let Ok(from) = c.expr.get_type(schema) else {
                    return Ok(Transformed::no(e));
                };
                if !matches!(
                    from,
                    DataType::Float32 | DataType::Float64 | DataType::Decimal128(..)
                ) {
                    return Ok(Transformed::no(e));
                }
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(udf.clone(), vec![c.expr.as_ref().clone()]),
                )))
            }
            Expr::ScalarFunction(sf)
                if CHECKED_MATH.contains(&sf.func.name())
                    && e.get_type(schema).is_ok_and(|t| t == DataType::Float64) =>
            {
                let Some((_, udf)) = f.math.iter().find(|(n, _)| *n == sf.func.name()) else {
                    return Ok(Transformed::no(e));
                };
                let mut args = vec![e.clone()];
                args.extend(sf.args.iter().cloned());
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(udf.clone(), args),
                )))
            }
            // `-x` on an integer type: `0 - x`, checked.
            Expr::Negative(inner) => {
                let Ok(ty) = inner.get_type(schema) else {
                    return Ok(Transformed::no(e));
                };
                let Some((_, udf)) = f.ops.iter().find(|(o, _)| *o == Operator::Minus) else {
                    return Ok(Transformed::no(e));
                };
                if int_name(&ty).is_none() {
                    return Ok(Transformed::no(e));
                }
                let zero = Expr::Literal(datafusion::common::ScalarValue::new_zero(&ty)?, None);
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(udf.clone(), vec![zero, inner.as_ref().clone()]),
                )))
            }
            // `float8(x)`, `int4(x)`: casts, with PostgreSQL's conversion rules.
            Expr::ScalarFunction(sf) if type_function(sf.func.name()).is_some() => {
                let (Some(ty), [arg]) = (type_function(sf.func.name()), sf.args.as_slice()) else {
                    return Ok(Transformed::no(e));
                };
                let cast = Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(arg.clone()),
                    ty,
                ));
                Ok(Transformed::yes(Self::rewrite(cast, schema)?.data))
            }
            // gcd() and lcm() of smallints or integers compute in bigint here; in
            // PostgreSQL their result has the arguments' type, and may not fit it.
            Expr::ScalarFunction(sf) if matches!(sf.func.name(), "gcd" | "lcm") => {
                // Type coercion casts the arguments to bigint: look through that.
                let first = sf.args.first().map(|a| match a {
                    Expr::Cast(c) => c.expr.as_ref(),
                    a => a,
                });
                let Some(Ok(arg)) = first.map(|a| a.get_type(schema)) else {
                    return Ok(Transformed::no(e));
                };
                let Some((_, udf)) = f.fit.iter().find(|(t, _)| *t == arg) else {
                    return Ok(Transformed::no(e));
                };
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(udf.clone(), vec![e.clone()]),
                )))
            }
            _ => Ok(Transformed::no(e)),
        })
    }
}

impl AnalyzerRule for PgArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let mut schema = datafusion::logical_expr::utils::merge_schema(&plan.inputs());
            if let LogicalPlan::TableScan(ts) = &plan {
                if let Ok(s) =
                    DFSchema::try_from_qualified_schema(ts.table_name.clone(), &ts.source.schema())
                {
                    schema.merge(&s);
                }
            }
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                Self::rewrite(expr, &schema).map(|t| t.update_data(|e| name.restore(e)))
            })?
            .map_data(|plan| plan.recompute_schema())
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_arithmetic"
    }
}

#[cfg(test)]
mod tests {
    use super::round_decimal;

    #[test]
    fn decimals_round_halves_away_from_zero() {
        assert_eq!(round_decimal(25, 1), 3);
        assert_eq!(round_decimal(-25, 1), -3);
        assert_eq!(round_decimal(-5, 1), -1);
        assert_eq!(round_decimal(4, 1), 0);
        assert_eq!(round_decimal(-149, 2), -1);
        assert_eq!(round_decimal(7, 0), 7);
    }
}
