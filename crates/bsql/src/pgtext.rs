//! PostgreSQL's text output of values where Arrow's differs: floats as `float8out` writes
//! them under `extra_float_digits`, plain numerics without padding zeros, dates and
//! timestamps under `DateStyle` (and without zero fractions), booleans as `t`/`f`, arrays
//! as `{a,b}`. Result columns sent as text use it ([`column_text`]), and so do functions
//! that print values ([`value_text`]: `concat`, `format`).

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Time64MicrosecondType,
    TimeUnit, TimestampMicrosecondType,
};

/// How dates are written (`DateStyle`'s first part).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DateOutput {
    #[default]
    Iso,
    Postgres,
    Sql,
    German,
}

/// The order of day and month (`DateStyle`'s second part).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DateOrder {
    #[default]
    Mdy,
    Dmy,
    Ymd,
}

/// The session settings that change how values are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// `extra_float_digits` (-15 to 3).
    pub float_digits: i32,
    pub date: DateOutput,
    pub order: DateOrder,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            float_digits: 1,
            date: DateOutput::Iso,
            order: DateOrder::Mdy,
        }
    }
}

impl Style {
    /// This style with `DateStyle` set to `value` (`Postgres, MDY`, `ISO`, `dmy`): the
    /// parts named change, the others stay. `None`: `value` is not a `DateStyle`.
    pub fn with_datestyle(mut self, value: &str) -> Option<Style> {
        for part in value.split(',').map(|p| p.trim().to_ascii_lowercase()) {
            match part.as_str() {
                "iso" => self.date = DateOutput::Iso,
                "postgres" => self.date = DateOutput::Postgres,
                "sql" => self.date = DateOutput::Sql,
                "german" => {
                    self.date = DateOutput::German;
                    self.order = DateOrder::Dmy;
                }
                "mdy" | "us" | "noneuropean" => self.order = DateOrder::Mdy,
                "dmy" | "euro" | "european" => self.order = DateOrder::Dmy,
                "ymd" => self.order = DateOrder::Ymd,
                "" | "default" => {}
                _ => return None,
            }
        }
        Some(self)
    }

    /// `DateStyle` as `SHOW` prints it.
    pub fn datestyle(&self) -> String {
        let out = match self.date {
            DateOutput::Iso => "ISO",
            DateOutput::Postgres => "Postgres",
            DateOutput::Sql => "SQL",
            DateOutput::German => "German",
        };
        let order = match self.order {
            DateOrder::Mdy => "MDY",
            DateOrder::Dmy => "DMY",
            DateOrder::Ymd => "YMD",
        };
        format!("{out}, {order}")
    }
}

/// A session's [`Style`], shared with the functions that print values while they run.
#[derive(Debug, Default)]
pub struct SharedStyle(Mutex<Style>);

impl SharedStyle {
    pub fn get(&self) -> Style {
        self.0.lock().map(|s| *s).unwrap_or_default()
    }

    pub fn set(&self, style: Style) {
        if let Ok(mut s) = self.0.lock() {
            *s = style;
        }
    }
}

const DAYS_TO_UNIX_EPOCH: i32 = 719_163;
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Year, month, day and weekday (0 = Monday) of a day count from 1970-01-01.
fn civil(days: i32) -> Option<(i32, u32, u32, usize)> {
    use chrono::Datelike;
    let d = chrono::NaiveDate::from_num_days_from_ce_opt(days.checked_add(DAYS_TO_UNIX_EPOCH)?)?;
    Some((
        d.year(),
        d.month(),
        d.day(),
        d.weekday().num_days_from_monday() as usize,
    ))
}

/// Year as PostgreSQL writes it (at least 4 digits), and whether it is BC (year 0 is 1 BC).
fn pg_year(year: i32) -> (String, bool) {
    if year <= 0 {
        (format!("{:04}", 1 - year), true)
    } else {
        (format!("{year:04}"), false)
    }
}

/// A date as `date_out` writes it under `style`.
pub fn date_text(days: i32, style: Style) -> String {
    let Some((y, m, d, _)) = civil(days) else {
        return days.to_string();
    };
    let (year, bc) = pg_year(y);
    let dmy = style.order == DateOrder::Dmy;
    let mut s = match style.date {
        DateOutput::Iso => format!("{year}-{m:02}-{d:02}"),
        DateOutput::Postgres if dmy => format!("{d:02}-{m:02}-{year}"),
        DateOutput::Postgres => format!("{m:02}-{d:02}-{year}"),
        DateOutput::Sql if dmy => format!("{d:02}/{m:02}/{year}"),
        DateOutput::Sql => format!("{m:02}/{d:02}/{year}"),
        DateOutput::German => format!("{d:02}.{m:02}.{year}"),
    };
    if bc {
        s.push_str(" BC");
    }
    s
}

/// `HH:MM:SS` and the fraction of a second, without trailing zeros (none when whole).
fn clock(micros_of_day: i64) -> String {
    let secs = micros_of_day.div_euclid(1_000_000);
    let frac = micros_of_day.rem_euclid(1_000_000);
    let hms = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        hms
    } else {
        let f = format!("{frac:06}");
        format!("{hms}.{}", f.trim_end_matches('0'))
    }
}

/// A time of day as `time_out` writes it.
pub fn time_text(micros: i64) -> String {
    clock(micros)
}

/// A timestamp (microseconds since 1970-01-01 UTC) as `timestamp_out` writes it under
/// `style`; `with_zone`: a `timestamptz`, written in UTC (the sessions' time zone).
pub fn timestamp_text(micros: i64, with_zone: bool, style: Style) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let Some((y, m, d, wd)) = i32::try_from(days).ok().and_then(civil) else {
        return micros.to_string();
    };
    let time = clock(micros.rem_euclid(86_400_000_000));
    let (year, bc) = pg_year(y);
    let dmy = style.order == DateOrder::Dmy;
    let mut s = match style.date {
        DateOutput::Iso => format!("{year}-{m:02}-{d:02} {time}"),
        DateOutput::Postgres => {
            let (wd, mon) = (WEEKDAYS[wd], MONTHS[m as usize - 1]);
            if dmy {
                format!("{wd} {d:02} {mon} {time} {year}")
            } else {
                format!("{wd} {mon} {d:02} {time} {year}")
            }
        }
        DateOutput::Sql if dmy => format!("{d:02}/{m:02}/{year} {time}"),
        DateOutput::Sql => format!("{m:02}/{d:02}/{year} {time}"),
        DateOutput::German => format!("{d:02}.{m:02}.{year} {time}"),
    };
    if with_zone {
        s.push_str(if style.date == DateOutput::Iso {
            "+00"
        } else {
            " UTC"
        });
    }
    if bc {
        s.push_str(" BC");
    }
    s
}

/// Whether [`column_text`] writes a column of this type differently from Arrow (arrays:
/// their elements are written as [`value_text`] writes them).
pub fn rewrites(ty: &DataType) -> bool {
    match ty {
        DataType::List(f) => matches!(f.data_type(), DataType::Float64 | DataType::Float32),
        _ => rewrites_scalar(ty),
    }
}

/// The scalar types [`rewrites`] names.
fn rewrites_scalar(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Decimal128(38, 10)
            | DataType::Float64
            | DataType::Float32
            | DataType::Date32
            | DataType::Time64(_)
            | DataType::Timestamp(_, _)
    )
}

/// `c` with its times and timestamps in microseconds, PostgreSQL's precision.
fn in_micros(c: &ArrayRef) -> Option<ArrayRef> {
    let ty = match c.data_type() {
        DataType::Time64(TimeUnit::Nanosecond) => DataType::Time64(TimeUnit::Microsecond),
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => {
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        _ => return Some(c.clone()),
    };
    datafusion::arrow::compute::cast(c, &ty).ok()
}

/// Row `j` (not null) of a column of a type [`rewrites`] names, in microseconds.
fn rewritten_text(c: &ArrayRef, j: usize, style: Style) -> Option<String> {
    Some(match c.data_type() {
        DataType::Float64 => pg_float(
            c.as_primitive::<Float64Type>().value(j),
            15,
            style.float_digits,
        ),
        DataType::Float32 => {
            pg_float4(c.as_primitive::<Float32Type>().value(j), style.float_digits)
        }
        DataType::Decimal128(38, 10) => {
            trimmed_decimal(c.as_primitive::<Decimal128Type>().value(j), 10)
        }
        DataType::Date32 => date_text(c.as_primitive::<Date32Type>().value(j), style),
        DataType::Time64(TimeUnit::Microsecond) => {
            time_text(c.as_primitive::<Time64MicrosecondType>().value(j))
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => timestamp_text(
            c.as_primitive::<TimestampMicrosecondType>().value(j),
            tz.is_some(),
            style,
        ),
        _ => return None,
    })
}

/// A column's values as PostgreSQL writes them, for the types [`rewrites`] names.
pub fn column_text(c: &ArrayRef, style: Style) -> Option<ArrayRef> {
    // An array of floats: the same lists, of the elements' text.
    if let DataType::List(_) = c.data_type() {
        let list = c.as_list::<i32>();
        let values = column_text(list.values(), style)?;
        let field = Arc::new(datafusion::arrow::datatypes::Field::new_list_field(
            DataType::Utf8,
            true,
        ));
        return Some(Arc::new(datafusion::arrow::array::ListArray::new(
            field,
            list.offsets().clone(),
            values,
            list.nulls().cloned(),
        )));
    }
    if !rewrites_scalar(c.data_type()) {
        return None;
    }
    let c = in_micros(c)?;
    let text: StringArray = (0..c.len())
        .map(|j| {
            c.is_valid(j)
                .then(|| rewritten_text(&c, j, style))
                .flatten()
        })
        .collect();
    Some(Arc::new(text))
}

/// Row `row` of `c` as PostgreSQL's output function writes it (`None` for NULL).
pub fn value_text(c: &ArrayRef, row: usize, style: Style) -> Option<String> {
    if c.data_type() == &DataType::Null || c.is_null(row) {
        return None;
    }
    if rewrites_scalar(c.data_type()) {
        return rewritten_text(&in_micros(&c.slice(row, 1))?, 0, style);
    }
    Some(match c.data_type() {
        DataType::Boolean => if c.as_boolean().value(row) { "t" } else { "f" }.to_owned(),
        DataType::Binary => {
            let b = c.as_binary::<i32>().value(row);
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("\\x{hex}")
        }
        DataType::List(_) => {
            let list = c.as_list::<i32>().value(row);
            let items: Vec<String> = (0..list.len())
                .map(|j| match value_text(&list, j, style) {
                    None => "NULL".to_owned(),
                    Some(t) => array_item(&t),
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        _ => {
            let opts = datafusion::arrow::util::display::FormatOptions::default();
            datafusion::arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &opts)
                .map(|f| f.value(row).to_string())
                .unwrap_or_default()
        }
    })
}

/// An array element as `array_out` writes it: quoted when empty, `NULL`, or holding
/// blanks, quotes, backslashes, braces or commas.
pub(crate) fn array_item(t: &str) -> String {
    let plain = !t.is_empty()
        && !t.eq_ignore_ascii_case("null")
        && !t
            .chars()
            .any(|c| c.is_ascii_whitespace() || "\"\\{},".contains(c));
    if plain {
        return t.to_owned();
    }
    let escaped = t.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// A double as PostgreSQL's `float8out` writes it: with `extra_float_digits` above 0 (the
/// default, 1) the shortest text that reads back as the same value, else `digits +
/// extra_float_digits` significant digits (`%.15g`); in exponent form (`1e+15`, `1.5e-05`)
/// when the decimal exponent is below -4 or at least the digits (15 for double, 6 for
/// real); `Infinity`, `-Infinity`, `NaN`.
pub fn pg_float(v: f64, digits: i32, extra: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    if extra > 0 {
        return shortest_to_pg(&format!("{v:e}"), digits);
    }
    let precision = (digits + extra).max(1);
    rounded_to_pg(&format!("{:.*e}", (precision - 1) as usize, v), precision)
}

/// A real as `float4out` writes it (see [`pg_float`]; the shortest text of the f32 value).
pub fn pg_float4(v: f32, extra: i32) -> String {
    if v.is_nan() || v.is_infinite() || v == 0.0 || extra <= 0 {
        return pg_float(f64::from(v), 6, extra);
    }
    shortest_to_pg(&format!("{v:e}"), 6)
}

/// `%.Ng` from Rust's `{:.(N-1)e}` text: trailing zeros of the mantissa dropped.
fn rounded_to_pg(sci: &str, precision: i32) -> String {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.')
    } else {
        mantissa
    };
    shortest_to_pg(&format!("{mantissa}e{exp}"), precision)
}

/// Rust's shortest `{:e}` text (`-1.2345e200`) in PostgreSQL's layout.
fn shortest_to_pg(sci: &str, digits: i32) -> String {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let all: String = mantissa.chars().filter(|c| *c != '.').collect();
    if exp < -4 || exp >= digits {
        let (first, rest) = all.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    // Fixed notation: the digits with the point moved to exponent + 1.
    let point = exp + 1;
    if point <= 0 {
        let zeros = "0".repeat((-point) as usize);
        format!("{sign}0.{zeros}{all}")
    } else if point as usize >= all.len() {
        let zeros = "0".repeat(point as usize - all.len());
        format!("{sign}{all}{zeros}")
    } else {
        let (int, frac) = all.split_at(point as usize);
        format!("{sign}{int}.{frac}")
    }
}

/// `value / 10^scale` in decimal, without trailing fractional zeros.
pub fn trimmed_decimal(value: i128, scale: u32) -> String {
    let unit = 10u128.pow(scale);
    let abs = value.unsigned_abs();
    let (int, frac) = (abs / unit, abs % unit);
    let sign = if value < 0 { "-" } else { "" };
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let frac = format!("{frac:0width$}", width = scale as usize);
    format!("{sign}{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod float_tests {
    use super::{pg_float, pg_float4};

    #[test]
    fn floats_read_as_postgresql_writes_them() {
        for (v, want) in [
            (0.1, "0.1"),
            (1e15, "1e+15"),
            (1e14, "100000000000000"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.2345678901234e200, "1.2345678901234e+200"),
            (-34.84, "-34.84"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (-0.0, "-0"),
            (1004.3, "1004.3"),
            (2.0, "2"),
        ] {
            assert_eq!(pg_float(v, 15, 1), want, "{v}");
        }
        assert_eq!(pg_float4(1e6, 1), "1e+06");
        assert_eq!(pg_float4(100000.0, 1), "100000");
        assert_eq!(pg_float4(1.1, 1), "1.1");
        // extra_float_digits = 0: %.15g.
        assert_eq!(pg_float(31.690692639953454, 15, 0), "31.6906926399535");
        assert_eq!(
            pg_float(1.1111111061110856e100, 15, 0),
            "1.11111110611109e+100"
        );
        assert_eq!(pg_float(1004.3000000000004, 15, 0), "1004.3");
        assert_eq!(pg_float(1e15, 15, 0), "1e+15");
    }
}

#[cfg(test)]
mod numeric_tests {
    #[test]
    fn plain_numerics_lose_their_padding() {
        use super::trimmed_decimal as t;
        assert_eq!(t(15_000_000_000, 10), "1.5");
        assert_eq!(t(100_000_000_000, 10), "10");
        assert_eq!(t(-1_250_000_000, 10), "-0.125");
        assert_eq!(t(1, 10), "0.0000000001");
        assert_eq!(t(0, 10), "0");
    }
}
