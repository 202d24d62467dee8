//! Errors of the SQL layer, each with the SQLSTATE a PostgreSQL client expects, and the
//! mapping from DataFusion's and the client library's errors onto SQLSTATEs.

use datafusion::error::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};

/// An error to send to the client as an ErrorResponse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// Five-character SQLSTATE.
    pub code: &'static str,
    pub message: String,
    /// PostgreSQL's DETAIL line (`Key (id)=(1) already exists.`).
    pub detail: Option<String>,
    /// PostgreSQL's HINT line.
    pub hint: Option<String>,
    /// 1-based character offset in the query text of what the error is about; psql shows it
    /// as `LINE n: ...` with a caret.
    pub position: Option<usize>,
    /// Where in the query text (line, column; 1-based) the error points, when the code
    /// that raised it had the parsed statement but not the text: the server turns it into
    /// `position` ([`SqlError::locate`]).
    pub span: Option<(u32, u32)>,
}

/// The 1-based character offset in `sql` of (`line`, `column`), both 1-based (sqlparser's
/// locations).
pub fn char_offset(sql: &str, line: usize, column: usize) -> usize {
    let mut pos = 0;
    for (i, l) in sql.split('\n').enumerate() {
        if i + 1 == line {
            return pos + column.max(1);
        }
        pos += l.chars().count() + 1;
    }
    pos.max(1)
}

pub type SqlResult<T> = Result<T, SqlError>;

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        SqlError {
            code,
            // A NUL would end the message's C string on the wire (and break the client's
            // parser): keys and values quoted in messages may contain one.
            message: message.into().replace('\0', "\\0"),
            detail: None,
            hint: None,
            position: None,
            span: None,
        }
    }

    /// The same error pointing at where `node` was written (if the parser recorded it).
    pub fn at_node(mut self, node: &impl datafusion::sql::sqlparser::ast::Spanned) -> Self {
        let start = node.span().start;
        if start.line > 0 {
            self.span = Some((start.line as u32, start.column as u32));
        }
        self
    }

    /// Turn a recorded line and column into the character position in `sql`.
    pub fn locate(mut self, sql: &str) -> Self {
        if let (None, Some((line, column))) = (self.position, self.span) {
            self.position = Some(char_offset(sql, line as usize, column as usize));
        }
        self
    }

    /// The same error with a HINT line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into().replace('\0', "\\0"));
        self
    }

    /// The same error pointing at character `position` (1-based) of the query.
    pub fn at(mut self, position: usize) -> Self {
        self.position = Some(position);
        self
    }

    /// A parse error of `sql` as PostgreSQL words it: `syntax error at or near "tok"` (or `at
    /// end of input`) pointing at the token, from sqlparser's `Expected: ..., found: tok at
    /// Line: l, Column: c`. Other parser messages keep their text.
    pub fn from_parser(sql: &str, msg: &str) -> Self {
        let msg = msg
            .trim_start_matches("sql parser error: ")
            .trim_start_matches("ParserError(\"")
            .trim_end_matches("\")");
        let located = msg.rsplit_once(" at Line: ").and_then(|(head, loc)| {
            let (line, col) = loc.split_once(", Column: ")?;
            let line: usize = line.trim().parse().ok()?;
            let col: usize = col.trim().parse().ok()?;
            Some((head, line, col))
        });
        let Some((head, line, col)) = located else {
            if msg.ends_with("found: EOF") {
                return SqlError::syntax("syntax error at end of input").at(sql
                    .trim_end()
                    .chars()
                    .count()
                    + 1);
            }
            return SqlError::syntax(format!("syntax error: {msg}"));
        };
        let pos = char_offset(sql, line, col);
        if head.starts_with("Unterminated string literal") {
            let rest: String = sql.chars().skip(pos - 1).collect();
            return SqlError::syntax(format!(
                "unterminated quoted string at or near \"{}\"",
                rest.trim_end()
            ))
            .at(pos);
        }
        match head.rsplit_once("found: ") {
            Some((_, "EOF")) => {
                SqlError::syntax("syntax error at end of input")
                    .at(sql.trim_end().chars().count() + 1)
            }
            Some((_, tok)) => {
                SqlError::syntax(format!("syntax error at or near \"{tok}\"")).at(pos)
            }
            None => SqlError::syntax(format!("syntax error: {head}")).at(pos),
        }
    }

    /// The same error with a DETAIL line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into().replace('\0', "\\0"));
        self
    }

    /// The ErrorResponse fields of this error.
    pub fn info(self) -> ErrorInfo {
        let mut info = ErrorInfo::new("ERROR".to_owned(), self.code.to_owned(), self.message);
        info.detail = self.detail;
        info.hint = self.hint;
        info.position = self.position.map(|p| p.to_string());
        info
    }

    /// 0A000 feature_not_supported.
    pub fn unsupported(what: impl std::fmt::Display) -> Self {
        SqlError::new("0A000", format!("{what} is not supported yet"))
    }

    /// 42601 syntax_error.
    pub fn syntax(message: impl Into<String>) -> Self {
        SqlError::new("42601", message)
    }

    /// 42P01 undefined_table.
    pub fn no_table(name: &str) -> Self {
        SqlError::new("42P01", format!("relation \"{name}\" does not exist"))
    }

    /// 42703 undefined_column.
    pub fn no_column(name: &str) -> Self {
        SqlError::new("42703", format!("column \"{name}\" does not exist"))
    }

    /// XX000 internal_error.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        SqlError::new("XX000", message.to_string())
    }

    /// 22P02 invalid_text_representation.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        SqlError::new("22P02", message)
    }
}

impl From<SqlError> for PgWireError {
    fn from(e: SqlError) -> Self {
        PgWireError::UserError(Box::new(e.info()))
    }
}

impl From<client::ClientError> for SqlError {
    fn from(e: client::ClientError) -> Self {
        use common::StatusCode;
        let code = match e.code() {
            StatusCode::NotFound => "42P01",
            StatusCode::AlreadyExists => "42P07",
            StatusCode::TimedOut | StatusCode::ServiceUnavailable => "57P01",
            StatusCode::TxnConflict => "40001",
            StatusCode::TooLarge => "54000",
            _ => "XX000",
        };
        SqlError::new(code, e.to_string())
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        let e = e.find_root();
        // Our own errors raised inside a plan (a table provider's read) keep their SQLSTATE.
        if let DataFusionError::External(inner) = e {
            if let Some(own) = inner.downcast_ref::<SqlError>() {
                return own.clone();
            }
        }
        let msg = e.to_string();
        // Strip DataFusion's "Error during planning: " style prefixes for the client (they
        // nest: "Arrow error: Compute error: ...").
        let prefixes = [
            "Error during planning",
            "Schema error",
            "Arrow error",
            "Execution error",
            "This feature is not implemented",
            "SQL error",
            "Invalid argument error",
            "Cast error",
            "Compute error",
            "Parser error",
            "Optimizer rule",
        ];
        let mut clean = msg.as_str();
        while let Some((head, rest)) = clean.split_once(": ") {
            if !prefixes.iter().any(|p| head.starts_with(p)) {
                break;
            }
            clean = rest;
        }
        if let Some(pg) = pg_message(clean) {
            return pg;
        }
        let clean = clean.to_owned();
        let lower = msg.to_ascii_lowercase();
        let code = match e {
            DataFusionError::SQL(..) => "42601",
            DataFusionError::NotImplemented(_) => "0A000",
            _ if lower.contains("divide by zero") || lower.contains("division by zero") => "22012",
            _ if lower.contains("table") && lower.contains("not found") => "42P01",
            _ if lower.contains("ambiguous reference") => "42702",
            _ if lower.contains("no field named") || lower.contains("field not found") => "42703",
            _ if lower.contains("cannot cast") || lower.contains("cast error") => "22P02",
            _ if lower.contains("overflow") => "22003",
            _ if lower.contains("subquery returned more than one row") => "21000",
            _ if lower.contains("sql error") || lower.contains("parsererror") => "42601",
            DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => "42804",
            _ => "XX000",
        };
        let message = if code == "42703" {
            let name = clean
                .trim_start_matches("No field named ")
                .split(['.', ' '])
                .next()
                .unwrap_or_default()
                .trim_matches('"');
            format!("column \"{name}\" does not exist")
        } else if code == "42702" {
            // "Ambiguous reference to unqualified field hits"
            let name = clean
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .trim_matches('"');
            format!("column reference \"{name}\" is ambiguous")
        } else if code == "21000" {
            "more than one row returned by a subquery used as an expression".to_owned()
        } else if code == "22012" {
            "division by zero".to_owned()
        } else if code == "42P01" {
            match clean.split('\'').nth(1) {
                Some(name) => {
                    let name = name.rsplit('.').next().unwrap_or(name);
                    format!("relation \"{name}\" does not exist")
                }
                None => clean,
            }
        } else {
            clean
        };
        SqlError::new(code, message)
    }
}

/// PostgreSQL's error for DataFusion and Arrow messages that have one: integer overflow in
/// a cast, `abs`, `gcd` or `lcm` ("integer out of range"), a zero `generate_series` step.
fn pg_message(clean: &str) -> Option<SqlError> {
    let type_name = |arrow: &str| match arrow {
        "Int16" => Some("smallint out of range"),
        "Int32" => Some("integer out of range"),
        "Int64" => Some("bigint out of range"),
        "UInt32" => Some("OID out of range"),
        _ => None,
    };
    // "Can't cast value 4567890123456789 to type Int32"
    if let Some(rest) = clean.strip_prefix("Can't cast value ") {
        let ty = rest.rsplit(' ').next().unwrap_or_default();
        return type_name(ty).map(|m| SqlError::new("22003", m));
    }
    // "Int64Array overflow on abs(-9223372036854775808)"
    if let Some((array, _)) = clean.split_once("Array overflow on abs(") {
        return type_name(array).map(|m| SqlError::new("22003", m));
    }
    if clean.starts_with("Signed integer overflow in GCD")
        || clean.starts_with("Signed integer overflow in LCM")
    {
        return Some(SqlError::new("22003", "bigint out of range"));
    }
    if clean == "Step cannot be zero" {
        return Some(SqlError::new("22023", "step size cannot equal zero"));
    }
    None
}

impl From<datafusion::arrow::error::ArrowError> for SqlError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        SqlError::from(DataFusionError::ArrowError(Box::new(e), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_errors_read_like_postgresql() {
        let e = SqlError::from_parser(
            "SELECT *\n  FROM t\n WHERE id = = 1",
            "sql parser error: Expected: an expression, found: = at Line: 3, Column: 13",
        );
        assert_eq!(e.message, "syntax error at or near \"=\"");
        assert_eq!(e.position, Some(31));
        let e = SqlError::from_parser("SELECT 1 +", "Expected: an expression, found: EOF");
        assert_eq!(e.message, "syntax error at end of input");
        assert_eq!(e.position, Some(11));
        let e = SqlError::from_parser(
            "SELECT 'abc",
            "Unterminated string literal at Line: 1, Column: 8",
        );
        assert_eq!(e.message, "unterminated quoted string at or near \"'abc\"");
        assert_eq!(e.position, Some(8));
    }
}
