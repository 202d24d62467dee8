//! SQL cursors: `DECLARE name [NO] SCROLL CURSOR [WITH | WITHOUT HOLD] FOR query`,
//! `FETCH` in every direction PostgreSQL has (NEXT, PRIOR, FIRST, LAST, ABSOLUTE n,
//! RELATIVE n, n, ALL, FORWARD [n | ALL], BACKWARD [n | ALL]), and `CLOSE name | ALL`.
//! Drivers use them for server-side cursors (psycopg's named cursors).
//!
//! The query runs when the cursor is declared and its rows are kept in the session (as a
//! PostgreSQL cursor WITH HOLD is materialized at commit); a cursor without HOLD can only be
//! declared in a transaction block and is closed when the block ends.

use std::collections::HashMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::sql::sqlparser::ast::{self, FetchDirection};

use crate::error::{SqlError, SqlResult};

/// The marker a MOVE carries in the `into` of the FETCH it is parsed as.
pub const MOVE_MARKER: &str = "__bsql_move";

/// Parse `FETCH` or `MOVE` (`[direction] [FROM | IN] name`) ourselves: sqlparser takes no
/// signed counts (`FETCH RELATIVE -1`) and has no MOVE. A MOVE is a FETCH whose `into` is
/// [`MOVE_MARKER`]. `None`: not a FETCH or MOVE statement on its own.
pub fn parse(sql: &str) -> Option<SqlResult<ast::Statement>> {
    let text = sql.trim().trim_end_matches(';').trim();
    let mut words = text.split_ascii_whitespace();
    let first = words.next()?.to_ascii_lowercase();
    let is_move = match first.as_str() {
        "fetch" => false,
        "move" => true,
        _ => return None,
    };
    if text.contains(';') || text.contains("--") || text.contains("/*") {
        return None;
    }
    let mut words: Vec<&str> = words.collect();
    let Some(name) = words.pop() else {
        return Some(Err(SqlError::syntax("syntax error at end of input")));
    };
    if matches!(
        words.last().map(|w| w.to_ascii_lowercase()).as_deref(),
        Some("from" | "in")
    ) {
        words.pop();
    }
    let number = |w: &str| -> Option<ast::ValueWithSpan> {
        w.parse::<i64>()
            .ok()
            .map(|_| ast::Value::Number(w.to_owned(), false).with_empty_span())
    };
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let direction = match lower.as_slice() {
        [] | ["next"] => FetchDirection::Next,
        ["prior"] => FetchDirection::Prior,
        ["first"] => FetchDirection::First,
        ["last"] => FetchDirection::Last,
        ["all"] => FetchDirection::All,
        ["forward"] => FetchDirection::Forward { limit: None },
        ["forward", "all"] => FetchDirection::ForwardAll,
        ["backward"] => FetchDirection::Backward { limit: None },
        ["backward", "all"] => FetchDirection::BackwardAll,
        ["absolute", n] => match number(n) {
            Some(limit) => FetchDirection::Absolute { limit },
            None => return Some(Err(bad_fetch(n))),
        },
        ["relative", n] => match number(n) {
            Some(limit) => FetchDirection::Relative { limit },
            None => return Some(Err(bad_fetch(n))),
        },
        ["forward", n] => match number(n) {
            Some(limit) => FetchDirection::Forward { limit: Some(limit) },
            None => return Some(Err(bad_fetch(n))),
        },
        ["backward", n] => match number(n) {
            Some(limit) => FetchDirection::Backward { limit: Some(limit) },
            None => return Some(Err(bad_fetch(n))),
        },
        [n] => match number(n) {
            Some(limit) => FetchDirection::Count { limit },
            None => return Some(Err(bad_fetch(n))),
        },
        [w, ..] => return Some(Err(bad_fetch(w))),
    };
    let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => ast::Ident::with_quote('"', quoted.replace("\"\"", "\"")),
        None => ast::Ident::new(name),
    };
    Some(Ok(ast::Statement::Fetch {
        name,
        direction,
        position: ast::FetchPosition::From,
        into: is_move.then(|| ast::ObjectName::from(vec![ast::Ident::new(MOVE_MARKER)])),
    }))
}

fn bad_fetch(word: &str) -> SqlError {
    SqlError::syntax(format!("syntax error at or near \"{word}\""))
}

/// An open cursor: its rows, and where it stands (0: before the first row, `n + 1`: after
/// the last).
pub struct Cursor {
    schema: SchemaRef,
    rows: Option<RecordBatch>,
    pos: i64,
    scroll: bool,
    pub hold: bool,
}

impl Cursor {
    pub fn new(
        schema: SchemaRef,
        batches: &[RecordBatch],
        scroll: bool,
        hold: bool,
    ) -> SqlResult<Self> {
        let rows = if batches.is_empty() {
            None
        } else {
            Some(datafusion::arrow::compute::concat_batches(
                &schema, batches,
            )?)
        };
        Ok(Cursor {
            schema,
            rows,
            pos: 0,
            scroll,
            hold,
        })
    }

    fn len(&self) -> i64 {
        self.rows.as_ref().map_or(0, |r| r.num_rows() as i64)
    }

    /// Run a FETCH: the rows in the order they were fetched.
    pub fn fetch(
        &mut self,
        direction: &FetchDirection,
    ) -> SqlResult<(SchemaRef, Vec<RecordBatch>)> {
        let n = self.len();
        let count = |v: &ast::ValueWithSpan| -> SqlResult<i64> {
            match &v.value {
                ast::Value::Number(s, _) => s
                    .parse::<i64>()
                    .map_err(|_| SqlError::syntax(format!("invalid FETCH count {s}"))),
                other => Err(SqlError::syntax(format!("invalid FETCH count {other}"))),
            }
        };
        // (step, how many rows; None: all) for relative moves, or an absolute target.
        enum Move {
            Steps(i64, Option<i64>),
            Absolute(i64),
            Relative(i64),
        }
        let m = match direction {
            FetchDirection::Next => Move::Steps(1, Some(1)),
            FetchDirection::Prior => Move::Steps(-1, Some(1)),
            FetchDirection::First => Move::Absolute(1),
            FetchDirection::Last => Move::Absolute(-1),
            FetchDirection::Absolute { limit } => Move::Absolute(count(limit)?),
            FetchDirection::Relative { limit } => Move::Relative(count(limit)?),
            FetchDirection::Count { limit } => {
                let c = count(limit)?;
                Move::Steps(c.signum(), Some(c.abs()))
            }
            FetchDirection::All | FetchDirection::ForwardAll => Move::Steps(1, None),
            FetchDirection::Forward { limit } => match limit {
                Some(l) => {
                    let c = count(l)?;
                    Move::Steps(if c < 0 { -1 } else { 1 }, Some(c.abs()))
                }
                None => Move::Steps(1, Some(1)),
            },
            FetchDirection::BackwardAll => Move::Steps(-1, None),
            FetchDirection::Backward { limit } => match limit {
                Some(l) => {
                    let c = count(l)?;
                    Move::Steps(if c < 0 { 1 } else { -1 }, Some(c.abs()))
                }
                None => Move::Steps(-1, Some(1)),
            },
        };
        let backward = match &m {
            Move::Steps(step, _) => *step < 0,
            Move::Absolute(k) => (if *k < 0 { n + 1 + k } else { *k }) < self.pos,
            Move::Relative(k) => *k < 0,
        };
        if backward && !self.scroll {
            return Err(SqlError::new("55000", "cursor can only scan forward")
                .with_hint("Declare it with SCROLL option to enable backward scan."));
        }
        let mut picked: Vec<u32> = Vec::new();
        match m {
            Move::Steps(0, _) => {
                // FETCH 0: the current row, if any.
                if (1..=n).contains(&self.pos) {
                    picked.push((self.pos - 1) as u32);
                }
            }
            Move::Steps(step, limit) => {
                let mut left = limit.unwrap_or(i64::MAX);
                while left > 0 {
                    let next = self.pos + step;
                    if next < 1 || next > n {
                        self.pos = next.clamp(0, n + 1);
                        break;
                    }
                    self.pos = next;
                    picked.push((next - 1) as u32);
                    left -= 1;
                }
            }
            Move::Absolute(k) => {
                let target = if k < 0 { n + 1 + k } else { k };
                self.pos = target.clamp(0, n + 1);
                if (1..=n).contains(&target) {
                    picked.push((target - 1) as u32);
                }
            }
            Move::Relative(k) => {
                let target = self.pos + k;
                self.pos = target.clamp(0, n + 1);
                if (1..=n).contains(&target) {
                    picked.push((target - 1) as u32);
                }
            }
        }
        let batches = match (&self.rows, picked.is_empty()) {
            (Some(rows), false) => {
                let idx = datafusion::arrow::array::UInt32Array::from(picked);
                vec![datafusion::arrow::compute::take_record_batch(rows, &idx)?]
            }
            _ => Vec::new(),
        };
        Ok((self.schema.clone(), batches))
    }
}

/// The cursors of a session, by name.
#[derive(Default)]
pub struct Cursors {
    open: HashMap<String, Cursor>,
}

impl Cursors {
    pub fn declare(&mut self, name: String, cursor: Cursor) -> SqlResult<()> {
        if self.open.contains_key(&name) {
            return Err(SqlError::new(
                "42P03",
                format!("cursor \"{name}\" already exists"),
            ));
        }
        self.open.insert(name, cursor);
        Ok(())
    }

    pub fn get(&mut self, name: &str) -> SqlResult<&mut Cursor> {
        self.open
            .get_mut(name)
            .ok_or_else(|| SqlError::new("34000", format!("cursor \"{name}\" does not exist")))
    }

    pub fn close(&mut self, name: Option<&str>) -> SqlResult<()> {
        match name {
            None => self.open.clear(),
            Some(n) => {
                if self.open.remove(n).is_none() {
                    return Err(SqlError::new(
                        "34000",
                        format!("cursor \"{n}\" does not exist"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The transaction block ended: only cursors WITH HOLD stay open.
    pub fn end_of_block(&mut self) {
        self.open.retain(|_, c| c.hold);
    }
}
