//! COPY: `COPY t [(cols)] FROM STDIN` and `COPY t [(cols)] TO STDOUT`, in text or CSV
//! format (`DELIMITER`, `NULL`, `HEADER`, `QUOTE`; other options such as `FREEZE` are
//! accepted and ignored). The statement is parsed here, not by sqlparser, because
//! clients send option spellings sqlparser does not know (`WITH (freeze on)`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ScalarValue;

use crate::catalog::Resolved;
use crate::ddl;
use crate::dml;
use crate::error::{SqlError, SqlResult};
use crate::row::{Datum, Row};
use crate::session::Session;

/// Rows buffered before they are written.
const FLUSH_ROWS: usize = 2000;

/// A parsed COPY statement.
#[derive(Debug, Clone)]
pub struct CopyCmd {
    pub table: String,
    pub columns: Vec<String>,
    pub from: bool,
    pub csv: bool,
    pub delimiter: char,
    pub null: String,
    pub header: bool,
    pub quote: char,
    /// `FROM 'file'` / `TO 'file'`: a file on the server (superusers only), not the client.
    pub file: Option<String>,
}

/// Whether `sql` is a COPY statement (so it is parsed by [`parse`]).
pub fn is_copy(sql: &str) -> bool {
    let t = sql.trim_start().as_bytes();
    t.len() >= 5 && t[..4].eq_ignore_ascii_case(b"copy") && t[4].is_ascii_whitespace()
}

/// Split COPY text into words, keeping quoted identifiers/strings and parentheses apart.
fn tokens(sql: &str) -> SqlResult<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = sql.trim().trim_end_matches(';').chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || c == ',' || c == '=' {
            chars.next();
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            chars.next();
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut s = String::from(c);
            loop {
                match chars.next() {
                    Some(x) if x == c => {
                        if chars.peek() == Some(&c) {
                            s.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    Some(x) => s.push(x),
                    None => return Err(SqlError::syntax("unterminated quoted string in COPY")),
                }
            }
            out.push(s);
        } else {
            let mut s = String::new();
            while let Some(&x) = chars.peek() {
                if x.is_whitespace() || "(),=".contains(x) {
                    break;
                }
                s.push(x);
                chars.next();
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// A token as an identifier (quoted keeps case) or string value.
fn word(t: &str) -> String {
    match t.chars().next() {
        Some('"') | Some('\'') => t[1..].to_owned(),
        _ => t.to_lowercase(),
    }
}

/// Parse `COPY name [(cols)] FROM STDIN | TO STDOUT [[WITH] (options) | options]`.
pub fn parse(sql: &str) -> SqlResult<CopyCmd> {
    let toks = tokens(sql)?;
    let mut i = 1;
    let next = |i: &mut usize| -> SqlResult<String> {
        let t = toks
            .get(*i)
            .cloned()
            .ok_or_else(|| SqlError::syntax("syntax error at end of COPY"))?;
        *i += 1;
        Ok(t)
    };
    let table = next(&mut i)?;
    if table == "(" {
        return Err(SqlError::unsupported("COPY (query)"));
    }
    let mut cmd = CopyCmd {
        table,
        columns: Vec::new(),
        from: true,
        csv: false,
        delimiter: '\t',
        null: "\\N".into(),
        header: false,
        quote: '"',
        file: None,
    };
    let mut t = next(&mut i)?;
    if t == "(" {
        loop {
            let c = next(&mut i)?;
            if c == ")" {
                break;
            }
            cmd.columns.push(word(&c));
        }
        t = next(&mut i)?;
    }
    match t.to_lowercase().as_str() {
        "from" => cmd.from = true,
        "to" => cmd.from = false,
        other => {
            return Err(SqlError::syntax(format!(
                "syntax error at or near \"{other}\""
            )))
        }
    }
    let target = next(&mut i)?;
    match target.to_lowercase().as_str() {
        "stdin" | "stdout" => {}
        "program" => return Err(SqlError::unsupported("COPY ... PROGRAM")),
        _ if target.starts_with('\'') => cmd.file = Some(target[1..].to_owned()),
        other => {
            return Err(SqlError::syntax(format!(
                "syntax error at or near \"{other}\""
            )))
        }
    }
    let mut null_set = false;
    let mut delim_set = false;
    while i < toks.len() {
        let t = next(&mut i)?;
        let opt = t.to_lowercase();
        match opt.as_str() {
            "with" | "(" | ")" => {}
            "csv" => cmd.csv = true,
            "binary" => return Err(SqlError::unsupported("COPY BINARY")),
            "format" => match next(&mut i)?.to_lowercase().as_str() {
                "csv" => cmd.csv = true,
                "text" => {}
                other => return Err(SqlError::unsupported(format!("COPY format {other}"))),
            },
            "header" => {
                cmd.header = match toks.get(i).map(|s| s.to_lowercase()) {
                    Some(v)
                        if ["true", "on", "1", "false", "off", "0", "match"]
                            .contains(&v.as_str()) =>
                    {
                        i += 1;
                        !matches!(v.as_str(), "false" | "off" | "0")
                    }
                    _ => true,
                }
            }
            "delimiter" => {
                cmd.delimiter = word(&next(&mut i)?).chars().next().unwrap_or('\t');
                delim_set = true;
            }
            "null" => {
                cmd.null = word(&next(&mut i)?);
                null_set = true;
            }
            "quote" => cmd.quote = word(&next(&mut i)?).chars().next().unwrap_or('"'),
            "freeze" | "escape" | "encoding" | "force_not_null" | "force_null" | "force_quote" => {
                // Their values (if any) are skipped with the next loop turn when they are words.
                if let Some(v) = toks.get(i) {
                    if v != ")"
                        && !v.eq_ignore_ascii_case("header")
                        && !v.eq_ignore_ascii_case("csv")
                    {
                        i += 1;
                    }
                }
            }
            other => {
                return Err(SqlError::syntax(format!(
                    "option \"{other}\" not recognized"
                )))
            }
        }
    }
    if cmd.csv {
        if !delim_set {
            cmd.delimiter = ',';
        }
        if !null_set {
            cmd.null = String::new();
        }
    }
    Ok(cmd)
}

/// An open COPY FROM STDIN.
pub struct CopyIn {
    cmd: CopyCmd,
    table: Arc<Resolved>,
    targets: Vec<usize>,
    buf: Vec<u8>,
    rows: Vec<(Row, Vec<bool>)>,
    skip_header: bool,
    pub count: usize,
}

impl CopyIn {
    /// Start a COPY FROM STDIN into the table `cmd` names.
    pub async fn start(s: &Session, cmd: CopyCmd) -> SqlResult<CopyIn> {
        let name = datafusion::sql::sqlparser::parser::Parser::new(
            &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
        )
        .try_with_sql(&cmd.table)
        .and_then(|mut p| p.parse_object_name(false))
        .map_err(|e| SqlError::syntax(e.to_string()))?;
        let (schema, table) = ddl::table_name(&name)?;
        let r = s.catalog.require(&s.db, &schema, &table).await?;
        let targets = if cmd.columns.is_empty() {
            (0..r.def.columns.len()).collect()
        } else {
            cmd.columns
                .iter()
                .map(|c| r.def.column(c).ok_or_else(|| SqlError::no_column(c)))
                .collect::<SqlResult<_>>()?
        };
        Ok(CopyIn {
            skip_header: cmd.header,
            cmd,
            table: r,
            targets,
            buf: Vec::new(),
            rows: Vec::new(),
            count: 0,
        })
    }

    /// Number of columns the client sends.
    pub fn columns(&self) -> usize {
        self.targets.len()
    }

    /// Take a chunk of COPY data; writes rows as batches fill.
    pub async fn data(&mut self, s: &Session, chunk: &[u8]) -> SqlResult<()> {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let line = self.buf[start..start + pos].to_vec();
            start += pos + 1;
            self.line(&line)?;
        }
        self.buf.drain(..start);
        if self.rows.len() >= FLUSH_ROWS {
            self.flush(s).await?;
        }
        Ok(())
    }

    /// The end of the data: write what is left; returns the row count.
    pub async fn done(&mut self, s: &Session) -> SqlResult<usize> {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.line(&line)?;
        }
        self.flush(s).await?;
        Ok(self.count)
    }

    async fn flush(&mut self, s: &Session) -> SqlResult<()> {
        let rows = std::mem::take(&mut self.rows);
        // COPY writes directly, also inside a transaction block: a bulk load is too big
        // for one transaction's buffer and commit (docs/design/transactions.md, limits).
        let direct = s.access.direct();
        self.count += dml::write_new_rows(s, &direct, &self.table, rows, false, false)
            .await?
            .0
            .len();
        Ok(())
    }

    fn line(&mut self, line: &[u8]) -> SqlResult<()> {
        let line = std::str::from_utf8(line)
            .map_err(|_| SqlError::new("22021", "invalid byte sequence for encoding \"UTF8\""))?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if self.skip_header {
            self.skip_header = false;
            return Ok(());
        }
        if line == "\\." || (line.is_empty() && !self.cmd.csv && self.targets.len() != 1) {
            return Ok(());
        }
        let fields = if self.cmd.csv {
            split_csv(line, self.cmd.delimiter, self.cmd.quote, &self.cmd.null)
        } else {
            split_text(line, self.cmd.delimiter, &self.cmd.null)?
        };
        if fields.len() != self.targets.len() {
            return Err(SqlError::new(
                "22P04",
                format!(
                    "COPY expected {} columns, found {}: {line}",
                    self.targets.len(),
                    fields.len()
                ),
            ));
        }
        let def = &self.table.def;
        let mut row = vec![Datum::Null; def.columns.len()];
        let mut given = vec![false; def.columns.len()];
        for (f, &col) in fields.into_iter().zip(&self.targets) {
            given[col] = true;
            if let Some(v) = f {
                row[col] = dml::to_datum(def, col, &ScalarValue::Utf8(Some(v)))?;
            }
        }
        self.rows.push((row, given));
        Ok(())
    }
}

/// Split a text-format line; `None` is NULL.
fn split_text(line: &str, delim: char, null: &str) -> SqlResult<Vec<Option<String>>> {
    let mut out = Vec::new();
    for raw in line.split(delim) {
        if raw == null {
            out.push(None);
            continue;
        }
        let mut s = String::with_capacity(raw.len());
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                s.push(c);
                continue;
            }
            match chars.next() {
                Some('t') => s.push('\t'),
                Some('n') => s.push('\n'),
                Some('r') => s.push('\r'),
                Some('b') => s.push('\u{8}'),
                Some('f') => s.push('\u{c}'),
                Some('v') => s.push('\u{b}'),
                Some(d @ '0'..='7') => {
                    let mut v = d.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.peek().and_then(|c| c.to_digit(8)) {
                            Some(x) => {
                                v = v * 8 + x;
                                chars.next();
                            }
                            None => break,
                        }
                    }
                    s.push(char::from_u32(v).unwrap_or('?'));
                }
                Some(other) => s.push(other),
                None => {}
            }
        }
        out.push(Some(s));
    }
    Ok(out)
}

/// Split a CSV line; an unquoted field equal to `null` is NULL.
fn split_csv(line: &str, delim: char, quote: char, null: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == quote {
                if chars.peek() == Some(&quote) {
                    cur.push(quote);
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == quote {
            in_quotes = true;
            quoted = true;
        } else if c == delim {
            out.push(if !quoted && cur == null {
                None
            } else {
                Some(std::mem::take(&mut cur))
            });
            cur.clear();
            quoted = false;
        } else {
            cur.push(c);
        }
    }
    out.push(if !quoted && cur == null {
        None
    } else {
        Some(cur)
    });
    out
}

/// Rows of `COPY t TO STDOUT`, as text-format (or CSV) lines.
/// `COPY t FROM 'file'` / `COPY t TO 'file'`: the file is read or written by the server,
/// so only a superuser may (as in PostgreSQL). Returns the row count.
pub async fn copy_file(s: &mut Session, cmd: CopyCmd, path: &str) -> SqlResult<usize> {
    let superuser = match s.catalog.role(&s.user).await? {
        Some(r) => r.superuser,
        None => s.user == crate::auth::DEFAULT_ROLE,
    };
    if !superuser {
        let role = if cmd.from {
            "pg_read_server_files"
        } else {
            "pg_write_server_files"
        };
        return Err(SqlError::new(
            "42501",
            format!(
                "must be superuser or have privileges of the {role} role to COPY {} a file",
                if cmd.from { "from" } else { "to" }
            ),
        ));
    }
    if !std::path::Path::new(path).is_absolute() {
        return Err(SqlError::new(
            "42602",
            "relative path not allowed for COPY to file",
        ));
    }
    if cmd.from {
        let data = tokio::fs::read(path).await.map_err(|e| {
            SqlError::new(
                "58P01",
                format!("could not open file \"{path}\" for reading: {e}"),
            )
        })?;
        let mut load = CopyIn::start(s, cmd).await?;
        load.data(s, &data).await?;
        load.done(s).await
    } else {
        let (n, lines) = copy_out(s, &cmd).await?;
        tokio::fs::write(path, lines.concat()).await.map_err(|e| {
            SqlError::new(
                "58P01",
                format!("could not open file \"{path}\" for writing: {e}"),
            )
        })?;
        Ok(n)
    }
}

pub async fn copy_out(s: &Session, cmd: &CopyCmd) -> SqlResult<(usize, Vec<Vec<u8>>)> {
    let cols = if cmd.columns.is_empty() {
        "*".to_owned()
    } else {
        cmd.columns
            .iter()
            .map(|c| dml::quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!("SELECT {cols} FROM {}", cmd.table);
    let stmt = crate::session::parse(&sql)?
        .pop()
        .ok_or_else(|| SqlError::internal("empty COPY query"))?;
    let (schema, batches) = s.run_datafusion(stmt).await?;
    let mut lines = Vec::new();
    if cmd.header {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        lines.push(format!("{}\n", names.join(&cmd.delimiter.to_string())).into_bytes());
    }
    let opts = FormatOptions::default();
    for b in &batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..b.num_rows() {
            let mut line = String::new();
            for (j, f) in fmts.iter().enumerate() {
                if j > 0 {
                    line.push(cmd.delimiter);
                }
                if b.column(j).is_null(i) {
                    line.push_str(&cmd.null);
                    continue;
                }
                let v = f.value(i).to_string();
                let v = pg_text(b, j, v);
                if cmd.csv {
                    if v.contains(cmd.delimiter)
                        || v.contains(cmd.quote)
                        || v.contains('\n')
                        || v.is_empty()
                    {
                        let q = cmd.quote.to_string();
                        line.push(cmd.quote);
                        line.push_str(&v.replace(&q, &format!("{q}{q}")));
                        line.push(cmd.quote);
                    } else {
                        line.push_str(&v);
                    }
                } else {
                    for c in v.chars() {
                        match c {
                            '\\' => line.push_str("\\\\"),
                            '\n' => line.push_str("\\n"),
                            '\r' => line.push_str("\\r"),
                            '\t' => line.push_str("\\t"),
                            c if c == cmd.delimiter => {
                                line.push('\\');
                                line.push(c);
                            }
                            c => line.push(c),
                        }
                    }
                }
            }
            line.push('\n');
            lines.push(line.into_bytes());
        }
    }
    let n = batches.iter().map(RecordBatch::num_rows).sum();
    Ok((n, lines))
}

/// PostgreSQL's text for a few types Arrow prints differently.
fn pg_text(b: &RecordBatch, col: usize, v: String) -> String {
    use datafusion::arrow::datatypes::DataType;
    match b.column(col).data_type() {
        DataType::Boolean => {
            if v == "true" {
                "t".into()
            } else {
                "f".into()
            }
        }
        DataType::Timestamp(..) => v.replacen('T', " ", 1),
        _ => v,
    }
}
