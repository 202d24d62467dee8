//! The CQL parser: a lexer and a recursive-descent parser for the CQL 3.4 statements BCQL
//! executes, producing the [`Stmt`] tree. Names are case-folded here (unquoted names to
//! lower case, `"Quoted"` ones kept); literals stay untyped [`Term`]s until the executor
//! knows the column type. Bind markers (`?`, `:name`) are numbered in textual order.

use crate::error::{CqlError, Result};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    QIdent(String),
    Str(String),
    Int(String),
    Float(String),
    Uuid(String),
    Hex(Vec<u8>),
    Duration(String),
    Punct(&'static str),
    Bind(Option<String>),
    Eof,
}

/// Keywords that cannot be unquoted names.
const RESERVED: &[&str] = &[
    "add",
    "allow",
    "alter",
    "and",
    "apply",
    "asc",
    "authorize",
    "batch",
    "begin",
    "by",
    "columnfamily",
    "create",
    "delete",
    "desc",
    "describe",
    "drop",
    "entries",
    "execute",
    "from",
    "full",
    "grant",
    "if",
    "in",
    "index",
    "infinity",
    "insert",
    "into",
    "keyspace",
    "limit",
    "modify",
    "nan",
    "norecursive",
    "not",
    "null",
    "of",
    "on",
    "or",
    "order",
    "primary",
    "rename",
    "replace",
    "revoke",
    "schema",
    "select",
    "set",
    "table",
    "to",
    "token",
    "truncate",
    "unlogged",
    "update",
    "use",
    "using",
    "view",
    "where",
    "with",
];

const PUNCTS: &[&str] = &[
    "<=", ">=", "!=", "+=", "-=", "(", ")", ",", ";", ".", "*", "=", "<", ">", "+", "-", "[", "]",
    "{", "}", ":", "?",
];

fn is_uuid(s: &[u8]) -> bool {
    s.len() >= 36
        && s[..36].iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
        && s.get(36).is_none_or(|c| !c.is_ascii_alphanumeric())
}

fn lex(src: &str) -> Result<Vec<Tok>> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out: Vec<Tok> = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if (c == b'-' && b.get(i + 1) == Some(&b'-')) || (c == b'/' && b.get(i + 1) == Some(&b'/'))
        {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        if is_uuid(&b[i..]) {
            out.push(Tok::Uuid(src[i..i + 36].to_owned()));
            i += 36;
            continue;
        }
        if c == b'\'' {
            let mut s = Vec::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(CqlError::syntax("unterminated string literal")),
                    Some(b'\'') if b.get(i + 1) == Some(&b'\'') => {
                        s.push(b'\'');
                        i += 2;
                    }
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(&x) => {
                        s.push(x);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(
                String::from_utf8(s).map_err(|_| CqlError::syntax("invalid UTF-8"))?,
            ));
            continue;
        }
        if c == b'$' && b.get(i + 1) == Some(&b'$') {
            let start = i + 2;
            let end = src[start..]
                .find("$$")
                .ok_or_else(|| CqlError::syntax("unterminated $$ string"))?;
            out.push(Tok::Str(src[start..start + end].to_owned()));
            i = start + end + 2;
            continue;
        }
        if c == b'"' {
            let mut s = String::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(CqlError::syntax("unterminated quoted identifier")),
                    Some(b'"') if b.get(i + 1) == Some(&b'"') => {
                        s.push('"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => {
                        let ch = src[i..].chars().next().unwrap_or('?');
                        s.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            out.push(Tok::QIdent(s));
            continue;
        }
        if c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
            let start = i + 2;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_hexdigit() {
                j += 1;
            }
            let hex = &src[start..j];
            if !hex.len().is_multiple_of(2) {
                return Err(CqlError::syntax(format!("invalid blob literal 0x{hex}")));
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|k| u8::from_str_radix(&hex[k..k + 2], 16))
                .collect::<std::result::Result<Vec<u8>, _>>()
                .map_err(|_| CqlError::syntax("invalid blob literal"))?;
            out.push(Tok::Hex(bytes));
            i = j;
            continue;
        }
        let neg_ok = match out.last() {
            None => true,
            Some(Tok::Punct(p)) => !matches!(*p, ")" | "]"),
            _ => false,
        };
        if c.is_ascii_digit()
            || (c == b'-'
                && neg_ok
                && b.get(i + 1)
                    .is_some_and(|d| d.is_ascii_digit() || *d == b'.'))
            || (c == b'.'
                && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                && !matches!(out.last(), Some(Tok::Ident(_) | Tok::QIdent(_))))
        {
            let start = i;
            if c == b'-' {
                i += 1;
            }
            let mut float = false;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i < b.len()
                && b[i] == b'.'
                && b.get(i + 1)
                    .is_none_or(|d| d.is_ascii_digit() || !d.is_ascii_alphabetic())
            {
                float = true;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < b.len()
                && matches!(b[i], b'e' | b'E')
                && b.get(i + 1)
                    .is_some_and(|d| d.is_ascii_digit() || *d == b'-' || *d == b'+')
            {
                float = true;
                i += 2;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if !float && i < b.len() && b[i].is_ascii_alphabetic() {
                // A duration such as 1h30m or 12mo.
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || (b[i] == 0xC2 && b.get(i + 1) == Some(&0xB5))
                        || (b[i] == 0xB5 && i > 0 && b[i - 1] == 0xC2))
                {
                    i += 1;
                }
                out.push(Tok::Duration(src[start..i].to_owned()));
                continue;
            }
            let text = src[start..i].to_owned();
            out.push(if float {
                Tok::Float(text)
            } else {
                Tok::Int(text)
            });
            continue;
        }
        // As in Cassandra, an unquoted name starts with a letter (`_x` must be quoted).
        if c.is_ascii_alphabetic() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(src[start..i].to_owned()));
            continue;
        }
        if c == b':'
            && b.get(i + 1)
                .is_some_and(|d| d.is_ascii_alphabetic() || *d == b'"')
        {
            i += 1;
            let name = if b[i] == b'"' {
                let end = src[i + 1..]
                    .find('"')
                    .ok_or_else(|| CqlError::syntax("bad bind name"))?;
                let n = src[i + 1..i + 1 + end].to_owned();
                i += end + 2;
                n
            } else {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                src[start..i].to_ascii_lowercase()
            };
            out.push(Tok::Bind(Some(name)));
            continue;
        }
        if c == b'?' {
            out.push(Tok::Bind(None));
            i += 1;
            continue;
        }
        match PUNCTS.iter().find(|p| b[i..].starts_with(p.as_bytes())) {
            Some(p) => {
                out.push(Tok::Punct(p));
                i += p.len();
            }
            None => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(CqlError::syntax(format!(
                    "line 1:{i} character '{ch}' is not supported"
                )));
            }
        }
    }
    out.push(Tok::Eof);
    Ok(out)
}

/// An untyped literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Int(String),
    Float(String),
    Bool(bool),
    Uuid(String),
    Blob(Vec<u8>),
    Duration(String),
    NaN,
    Infinity(bool),
}

/// A value expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Null,
    Lit(Lit),
    /// A bind marker: its index among the statement's markers.
    Bind(usize),
    List(Vec<Term>),
    Set(Vec<Term>),
    Map(Vec<(Term, Term)>),
    /// `{}`: an empty set or map.
    EmptyBraces,
    Tuple(Vec<Term>),
    Udt(Vec<(String, Term)>),
    Func(String, Vec<Term>),
    /// `(type) term`
    Cast(String, Box<Term>),
    /// A value already in wire format (built by the executor, never parsed).
    Encoded(Vec<u8>),
}

/// A selected expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Col(String),
    /// A function call; `count(*)` has an empty argument list and `star`.
    Func {
        name: String,
        args: Vec<Selector>,
        star: bool,
    },
    Cast(Box<Selector>, String),
    Field(Box<Selector>, String),
    Term(Term),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    pub sel: Selector,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
    ContainsKey,
    Like,
    IsNotNull,
}

/// A WHERE relation.
#[derive(Debug, Clone, PartialEq)]
pub enum Rel {
    /// `col op term`; for IN the term is a `Term::List` or a bind marker.
    Col { col: String, op: Op, term: Term },
    /// `token(cols) op term`
    Token {
        cols: Vec<String>,
        op: Op,
        term: Term,
    },
    /// `(c1, c2) op (v1, v2)`; IN takes a list of tuples.
    Multi {
        cols: Vec<String>,
        op: Op,
        term: Term,
    },
    /// `m[k] = v`
    MapEntry { col: String, key: Term, term: Term },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Using {
    pub ttl: Option<Term>,
    pub timestamp: Option<Term>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub json: bool,
    pub distinct: bool,
    /// `None` for `*`.
    pub items: Option<Vec<SelectItem>>,
    pub ks: Option<String>,
    pub table: String,
    pub wh: Vec<Rel>,
    pub group_by: Vec<String>,
    pub order_by: Vec<(String, bool)>,
    pub per_partition_limit: Option<Term>,
    pub limit: Option<Term>,
    pub allow_filtering: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    pub ks: Option<String>,
    pub table: String,
    pub cols: Vec<String>,
    pub values: Vec<Term>,
    /// `INSERT ... JSON term`
    pub json: Option<Term>,
    pub json_default_unset: bool,
    pub if_not_exists: bool,
    pub using: Using,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Assign {
    Set(String, Term),
    /// `c = c + t` (or `c += t`)
    Add(String, Term),
    /// `c = t + c`
    Prepend(String, Term),
    /// `c = c - t`
    Sub(String, Term),
    /// `c[k] = t`
    Elem(String, Term, Term),
    /// `c.field = t`
    Field(String, String, Term),
}

/// An LWT condition: `col [elem] op term`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub col: String,
    pub elem: Option<Term>,
    pub field: Option<String>,
    pub op: Op,
    pub term: Term,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    None,
    Exists,
    NotExists,
    Conds(Vec<Condition>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub ks: Option<String>,
    pub table: String,
    pub using: Using,
    pub assigns: Vec<Assign>,
    pub wh: Vec<Rel>,
    pub cond: Cond,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub ks: Option<String>,
    pub table: String,
    /// Columns (or elements `c[k]`) to delete; empty for the whole row.
    pub cols: Vec<(String, Option<Term>)>,
    pub using: Using,
    pub wh: Vec<Rel>,
    pub cond: Cond,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    Logged,
    Unlogged,
    Counter,
    /// `BEGIN TRANSACTION ... END TRANSACTION` (YCQL): all or nothing, at once.
    Transaction,
}

/// A `WITH` option value.
#[derive(Debug, Clone, PartialEq)]
pub enum OptVal {
    Str(String),
    Num(String),
    Bool(bool),
    Map(Vec<(String, String)>),
}

impl OptVal {
    pub fn text(&self) -> String {
        match self {
            OptVal::Str(s) | OptVal::Num(s) => s.clone(),
            OptVal::Bool(b) => b.to_string(),
            OptVal::Map(_) => String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColDef {
    pub name: String,
    pub ty: String,
    pub is_static: bool,
    pub primary_key: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlterOp {
    Add(Vec<ColDef>),
    Drop(Vec<String>),
    Rename(Vec<(String, String)>),
    With(Vec<(String, OptVal)>),
    AlterType(String, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Select(Box<Select>),
    Insert(Box<Insert>),
    Update(Box<Update>),
    Delete(Box<Delete>),
    Batch {
        kind: BatchKind,
        using: Using,
        stmts: Vec<Stmt>,
    },
    CreateKeyspace {
        name: String,
        if_not_exists: bool,
        options: Vec<(String, OptVal)>,
    },
    AlterKeyspace {
        name: String,
        options: Vec<(String, OptVal)>,
    },
    DropKeyspace {
        name: String,
        if_exists: bool,
    },
    CreateTable {
        ks: Option<String>,
        name: String,
        if_not_exists: bool,
        cols: Vec<ColDef>,
        /// Partition key and clustering columns from a PRIMARY KEY clause.
        pk: Option<(Vec<String>, Vec<String>)>,
        clustering_order: Vec<(String, bool)>,
        options: Vec<(String, OptVal)>,
    },
    AlterTable {
        ks: Option<String>,
        name: String,
        op: AlterOp,
    },
    DropTable {
        ks: Option<String>,
        name: String,
        if_exists: bool,
    },
    Truncate {
        ks: Option<String>,
        name: String,
    },
    Use(String),
    CreateType {
        ks: Option<String>,
        name: String,
        if_not_exists: bool,
        fields: Vec<(String, String)>,
    },
    AlterType {
        ks: Option<String>,
        name: String,
        add: Option<(String, String)>,
        rename: Vec<(String, String)>,
    },
    DropType {
        ks: Option<String>,
        name: String,
        if_exists: bool,
    },
    CreateIndex {
        ks: Option<String>,
        table: String,
        name: Option<String>,
        if_not_exists: bool,
        kind: String,
        col: String,
    },
    DropIndex {
        ks: Option<String>,
        name: String,
        if_exists: bool,
    },
    /// Server-side DESCRIBE (cqlsh 6 sends these): what, and an optional `[ks.]name`.
    Describe {
        what: String,
        name: Option<(Option<String>, String)>,
    },
    /// CREATE/ALTER/DROP ROLE or USER, LIST ROLES/USERS.
    Role(RoleStmt),
    /// Statements this server accepts and ignores (grants ...), with a tag.
    Unsupported(String),
}

/// A role statement (`USER` forms are roles that can log in).
#[derive(Debug, Clone, PartialEq)]
pub enum RoleStmt {
    Create {
        name: String,
        if_not_exists: bool,
        opts: RoleOpts,
    },
    Alter {
        name: String,
        opts: RoleOpts,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
    /// LIST ROLES, or LIST USERS (`users`).
    List {
        users: bool,
    },
}

/// Role options given (`None`: not given).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleOpts {
    pub password: Option<String>,
    pub login: Option<bool>,
    pub superuser: Option<bool>,
}

impl Stmt {
    /// The statement type, for metrics (a closed set).
    pub fn kind(&self) -> &'static str {
        match self {
            Stmt::Select(_) => "select",
            Stmt::Insert(_) => "insert",
            Stmt::Update(_) => "update",
            Stmt::Delete(_) => "delete",
            Stmt::Batch { .. } => "batch",
            Stmt::Use(_) => "use",
            Stmt::Truncate { .. } => "truncate",
            Stmt::Describe { .. } => "describe",
            Stmt::Role(_) => "role",
            Stmt::Unsupported(_) => "other",
            _ => "ddl",
        }
    }
}

/// A parsed statement and its bind-marker names (`None` for `?`).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub stmt: Stmt,
    pub bind_names: Vec<Option<String>>,
}

/// Parse one statement (a trailing `;` is allowed).
pub fn parse(src: &str) -> Result<Parsed> {
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        binds: Vec::new(),
        depth: 0,
    };
    let stmt = p.statement()?;
    while p.eat_p(";") {}
    if p.peek() != &Tok::Eof {
        return Err(p.err("end of statement"));
    }
    Ok(Parsed {
        stmt,
        bind_names: p.binds,
    })
}

struct Parser {
    toks: Vec<Tok>,
    i: usize,
    binds: Vec<Option<String>>,
    /// Nesting depth of terms, selectors and types (bounded: no input can exhaust the stack).
    depth: usize,
}

/// Deepest nesting of terms, selectors or types accepted.
const MAX_DEPTH: usize = 64;

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Int(s) | Tok::Float(s) | Tok::Uuid(s) | Tok::Duration(s) => s.clone(),
        Tok::QIdent(s) => format!("\"{s}\""),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Hex(_) => "0x...".into(),
        Tok::Punct(p) => (*p).to_owned(),
        Tok::Bind(_) => "?".into(),
        Tok::Eof => "<EOF>".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }
    fn peek_at(&self, k: usize) -> &Tok {
        &self.toks[(self.i + k).min(self.toks.len() - 1)]
    }
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }
    fn err(&self, expected: &str) -> CqlError {
        CqlError::syntax(format!(
            "line 1:{} no viable alternative at input '{}' (expected {expected})",
            self.i,
            tok_text(self.peek())
        ))
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
    fn is_kw_at(&self, k: usize, kw: &str) -> bool {
        matches!(self.peek_at(k), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn kw(&mut self, kw: &str) -> Result<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.err(kw))
        }
    }
    fn eat_p(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Tok::Punct(q) if *q == p) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn is_p(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(q) if *q == p)
    }
    fn p(&mut self, p: &str) -> Result<()> {
        if self.eat_p(p) {
            Ok(())
        } else {
            Err(self.err(&format!("'{p}'")))
        }
    }
    /// An identifier (unquoted folded to lower case; reserved words must be quoted).
    fn ident(&mut self) -> Result<String> {
        match self.next() {
            Tok::Ident(s) if RESERVED.contains(&s.to_ascii_lowercase().as_str()) => {
                self.i -= 1;
                Err(self.err("identifier"))
            }
            Tok::Ident(s) => Ok(s.to_ascii_lowercase()),
            Tok::QIdent(s) => Ok(s),
            _ => {
                self.i -= 1;
                Err(self.err("identifier"))
            }
        }
    }
    /// `[ks.]name`
    fn qualified(&mut self) -> Result<(Option<String>, String)> {
        let a = self.ident()?;
        if self.eat_p(".") {
            Ok((Some(a), self.ident()?))
        } else {
            Ok((None, a))
        }
    }
    /// A role name: an identifier or a string.
    fn role_name(&mut self) -> Result<String> {
        if let Tok::Str(s) = self.peek().clone() {
            self.i += 1;
            return Ok(s);
        }
        self.ident()
    }
    /// Role options: `WITH PASSWORD = 'p' AND LOGIN = b AND SUPERUSER = b AND OPTIONS = {..}`,
    /// or for users `[WITH PASSWORD 'p'] [SUPERUSER | NOSUPERUSER]`.
    fn role_opts(&mut self, user: bool) -> Result<RoleOpts> {
        let mut o = RoleOpts::default();
        if user {
            o.login = Some(true);
            if self.eat_kw("with") {
                self.kw("password")?;
                match self.next() {
                    Tok::Str(s) => o.password = Some(s),
                    _ => {
                        self.i -= 1;
                        return Err(self.err("a password string"));
                    }
                }
            }
            if self.eat_kw("superuser") {
                o.superuser = Some(true);
            } else if self.eat_kw("nosuperuser") {
                o.superuser = Some(false);
            }
            return Ok(o);
        }
        if !self.eat_kw("with") {
            return Ok(o);
        }
        loop {
            let k = self.ident()?;
            self.p("=")?;
            let v = self.opt_value()?;
            let flag = |v: &OptVal| match v {
                OptVal::Bool(b) => Ok(*b),
                _ => Err(CqlError::syntax(format!("{k} takes true or false"))),
            };
            match k.as_str() {
                "password" => match v {
                    OptVal::Str(s) => o.password = Some(s),
                    _ => return Err(CqlError::syntax("PASSWORD takes a string")),
                },
                "login" => o.login = Some(flag(&v)?),
                "superuser" => o.superuser = Some(flag(&v)?),
                "options" | "access_to_datacenters" | "access_to_all_datacenters" => {}
                _ => return Err(CqlError::syntax(format!("Invalid role option: {k}"))),
            }
            if !self.eat_kw("and") {
                break;
            }
        }
        Ok(o)
    }
    fn if_not_exists(&mut self) -> Result<bool> {
        if self.is_kw("if") && self.is_kw_at(1, "not") {
            self.i += 2;
            self.kw("exists")?;
            return Ok(true);
        }
        Ok(false)
    }
    fn if_exists(&mut self) -> Result<bool> {
        if self.is_kw("if") && self.is_kw_at(1, "exists") {
            self.i += 2;
            return Ok(true);
        }
        Ok(false)
    }

    fn statement(&mut self) -> Result<Stmt> {
        let Tok::Ident(w) = self.peek().clone() else {
            return Err(self.err("a statement"));
        };
        match w.to_ascii_lowercase().as_str() {
            "select" => Ok(Stmt::Select(Box::new(self.select()?))),
            "insert" => Ok(Stmt::Insert(Box::new(self.insert()?))),
            "update" => Ok(Stmt::Update(Box::new(self.update()?))),
            "delete" => Ok(Stmt::Delete(Box::new(self.delete()?))),
            "begin" => self.batch(),
            "use" => {
                self.i += 1;
                Ok(Stmt::Use(self.ident()?))
            }
            "truncate" => {
                self.i += 1;
                self.eat_kw("table");
                let (ks, name) = self.qualified()?;
                Ok(Stmt::Truncate { ks, name })
            }
            "create" => self.create(),
            "describe" | "desc" => {
                self.i += 1;
                self.eat_kw("full");
                let what = match self.peek() {
                    Tok::Ident(w) => w.to_ascii_lowercase(),
                    _ => String::new(),
                };
                let (what, takes_name) = match what.as_str() {
                    "keyspaces" | "tables" | "types" | "functions" | "aggregates" | "cluster"
                    | "schema" | "columnfamilies" => {
                        self.i += 1;
                        (what, false)
                    }
                    "keyspace" | "table" | "columnfamily" | "type" | "index" | "function"
                    | "aggregate" => {
                        self.i += 1;
                        (what, true)
                    }
                    _ => ("any".to_owned(), true),
                };
                let name = if takes_name && matches!(self.peek(), Tok::Ident(_) | Tok::QIdent(_)) {
                    let a = match self.next() {
                        Tok::Ident(w) => w.to_ascii_lowercase(),
                        Tok::QIdent(w) => w,
                        _ => String::new(),
                    };
                    if self.eat_p(".") {
                        Some((Some(a), self.ident()?))
                    } else {
                        Some((None, a))
                    }
                } else {
                    None
                };
                Ok(Stmt::Describe { what, name })
            }
            "alter" => self.alter(),
            "drop" => self.drop(),
            "list" if self.is_kw_at(1, "roles") || self.is_kw_at(1, "users") => {
                self.i += 1;
                let users = self.eat_kw("users");
                if !users {
                    self.kw("roles")?;
                    if self.eat_kw("of") {
                        self.role_name()?;
                    }
                    self.eat_kw("norecursive");
                }
                Ok(Stmt::Role(RoleStmt::List { users }))
            }
            "grant" | "revoke" | "list" => {
                self.i = self.toks.len() - 1;
                Ok(Stmt::Unsupported(w.to_ascii_lowercase()))
            }
            _ => Err(self.err("a statement")),
        }
    }

    fn select(&mut self) -> Result<Select> {
        self.kw("select")?;
        let json = self.is_kw("json")
            && !matches!(self.peek_at(1), Tok::Punct(","))
            && !self.is_kw_at(1, "from")
            && {
                self.i += 1;
                true
            };
        let distinct = self.is_kw("distinct")
            && !matches!(self.peek_at(1), Tok::Punct(","))
            && !self.is_kw_at(1, "from")
            && {
                self.i += 1;
                true
            };
        let items = if self.eat_p("*") {
            None
        } else {
            let mut items = Vec::new();
            loop {
                let sel = self.selector()?;
                let alias = if self.eat_kw("as") {
                    Some(self.ident()?)
                } else {
                    None
                };
                items.push(SelectItem { sel, alias });
                if !self.eat_p(",") {
                    break;
                }
            }
            Some(items)
        };
        self.kw("from")?;
        let (ks, table) = self.qualified()?;
        let wh = if self.eat_kw("where") {
            self.relations()?
        } else {
            Vec::new()
        };
        let mut group_by = Vec::new();
        if self.is_kw("group") {
            self.i += 1;
            self.kw("by")?;
            loop {
                group_by.push(self.ident()?);
                if !self.eat_p(",") {
                    break;
                }
            }
        }
        let mut order_by = Vec::new();
        if self.is_kw("order") {
            self.i += 1;
            self.kw("by")?;
            loop {
                let c = self.ident()?;
                let desc = if self.eat_kw("desc") {
                    true
                } else {
                    self.eat_kw("asc");
                    false
                };
                order_by.push((c, desc));
                if !self.eat_p(",") {
                    break;
                }
            }
        }
        let mut per_partition_limit = None;
        if self.is_kw("per") {
            self.i += 1;
            self.kw("partition")?;
            self.kw("limit")?;
            per_partition_limit = Some(self.term()?);
        }
        let limit = if self.eat_kw("limit") {
            Some(self.term()?)
        } else {
            None
        };
        let allow_filtering = if self.eat_kw("allow") {
            self.kw("filtering")?;
            true
        } else {
            false
        };
        Ok(Select {
            json,
            distinct,
            items,
            ks,
            table,
            wh,
            group_by,
            order_by,
            per_partition_limit,
            limit,
            allow_filtering,
        })
    }

    fn selector(&mut self) -> Result<Selector> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.depth -= 1;
            return Err(CqlError::syntax("expression nested too deeply"));
        }
        let r = self.selector_inner();
        self.depth -= 1;
        r
    }

    fn selector_inner(&mut self) -> Result<Selector> {
        let mut s = self.selector_base()?;
        while self.is_p(".") {
            self.i += 1;
            s = Selector::Field(Box::new(s), self.ident()?);
        }
        Ok(s)
    }

    fn selector_base(&mut self) -> Result<Selector> {
        if self.is_kw("cast") && matches!(self.peek_at(1), Tok::Punct("(")) {
            self.i += 2;
            let s = self.selector()?;
            self.kw("as")?;
            let t = self.type_text()?;
            self.p(")")?;
            return Ok(Selector::Cast(Box::new(s), t));
        }
        match self.peek().clone() {
            Tok::Ident(name) | Tok::QIdent(name) if matches!(self.peek_at(1), Tok::Punct("(")) => {
                let name = if matches!(self.peek(), Tok::Ident(_)) {
                    name.to_ascii_lowercase()
                } else {
                    name
                };
                self.i += 2;
                // `count(1)` is Cassandra's spelling of `count(*)`.
                let count_one = name == "count"
                    && matches!(self.peek(), Tok::Int(n) if n == "1")
                    && matches!(self.peek_at(1), Tok::Punct(")"));
                if count_one {
                    self.i += 1;
                }
                if count_one || self.eat_p("*") {
                    self.p(")")?;
                    return Ok(Selector::Func {
                        name,
                        args: vec![],
                        star: true,
                    });
                }
                let mut args = Vec::new();
                if !self.eat_p(")") {
                    loop {
                        args.push(self.selector()?);
                        if !self.eat_p(",") {
                            break;
                        }
                    }
                    self.p(")")?;
                }
                Ok(Selector::Func {
                    name,
                    args,
                    star: false,
                })
            }
            Tok::Ident(_) | Tok::QIdent(_) => {
                if let Tok::Ident(w) = self.peek() {
                    let lw = w.to_ascii_lowercase();
                    if matches!(lw.as_str(), "true" | "false" | "null" | "nan" | "infinity") {
                        return Ok(Selector::Term(self.term()?));
                    }
                }
                Ok(Selector::Col(self.ident()?))
            }
            _ => Ok(Selector::Term(self.term()?)),
        }
    }

    fn relations(&mut self) -> Result<Vec<Rel>> {
        let mut out = Vec::new();
        loop {
            out.push(self.relation()?);
            if !self.eat_kw("and") {
                break;
            }
        }
        Ok(out)
    }

    fn op(&mut self) -> Result<Op> {
        let op = match self.next() {
            Tok::Punct("=") => Op::Eq,
            Tok::Punct("!=") => Op::Ne,
            Tok::Punct("<") => Op::Lt,
            Tok::Punct("<=") => Op::Le,
            Tok::Punct(">") => Op::Gt,
            Tok::Punct(">=") => Op::Ge,
            Tok::Ident(w) if w.eq_ignore_ascii_case("in") => Op::In,
            Tok::Ident(w) if w.eq_ignore_ascii_case("like") => Op::Like,
            Tok::Ident(w) if w.eq_ignore_ascii_case("contains") => {
                if self.eat_kw("key") {
                    Op::ContainsKey
                } else {
                    Op::Contains
                }
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("is") => {
                self.kw("not")?;
                self.kw("null")?;
                Op::IsNotNull
            }
            _ => {
                self.i -= 1;
                return Err(self.err("an operator"));
            }
        };
        Ok(op)
    }

    fn in_values(&mut self) -> Result<Term> {
        if let Tok::Bind(_) = self.peek() {
            return self.term();
        }
        self.p("(")?;
        let mut items = Vec::new();
        if !self.eat_p(")") {
            loop {
                items.push(self.term()?);
                if !self.eat_p(",") {
                    break;
                }
            }
            self.p(")")?;
        }
        Ok(Term::List(items))
    }

    fn relation(&mut self) -> Result<Rel> {
        if self.is_kw("token") && matches!(self.peek_at(1), Tok::Punct("(")) {
            self.i += 2;
            let mut cols = Vec::new();
            loop {
                cols.push(self.ident()?);
                if !self.eat_p(",") {
                    break;
                }
            }
            self.p(")")?;
            let op = self.op()?;
            let term = self.term()?;
            return Ok(Rel::Token { cols, op, term });
        }
        if self.is_p("(") {
            self.i += 1;
            let mut cols = Vec::new();
            loop {
                cols.push(self.ident()?);
                if !self.eat_p(",") {
                    break;
                }
            }
            self.p(")")?;
            let op = self.op()?;
            let term = if op == Op::In {
                self.in_values()?
            } else {
                self.term()?
            };
            return Ok(Rel::Multi { cols, op, term });
        }
        let col = self.ident()?;
        if self.eat_p("[") {
            let key = self.term()?;
            self.p("]")?;
            self.p("=")?;
            let term = self.term()?;
            return Ok(Rel::MapEntry { col, key, term });
        }
        let op = self.op()?;
        let term = match op {
            Op::In => self.in_values()?,
            Op::IsNotNull => Term::Null,
            _ => self.term()?,
        };
        Ok(Rel::Col { col, op, term })
    }

    fn bind(&mut self, name: Option<String>) -> Term {
        self.binds.push(name);
        Term::Bind(self.binds.len() - 1)
    }

    fn term(&mut self) -> Result<Term> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.depth -= 1;
            return Err(CqlError::syntax("expression nested too deeply"));
        }
        let r = self.term_inner();
        self.depth -= 1;
        r
    }

    fn term_inner(&mut self) -> Result<Term> {
        let t = self.next();
        Ok(match t {
            Tok::Str(s) => Term::Lit(Lit::Str(s)),
            Tok::Int(s) => Term::Lit(Lit::Int(s)),
            Tok::Float(s) => Term::Lit(Lit::Float(s)),
            Tok::Uuid(s) => Term::Lit(Lit::Uuid(s)),
            Tok::Hex(b) => Term::Lit(Lit::Blob(b)),
            Tok::Duration(s) => Term::Lit(Lit::Duration(s)),
            Tok::Bind(name) => self.bind(name),
            Tok::Punct("-") => match self.next() {
                Tok::Ident(w) if w.eq_ignore_ascii_case("nan") => Term::Lit(Lit::NaN),
                Tok::Ident(w) if w.eq_ignore_ascii_case("infinity") => {
                    Term::Lit(Lit::Infinity(true))
                }
                Tok::Duration(d) => Term::Lit(Lit::Duration(format!("-{d}"))),
                _ => {
                    self.i -= 1;
                    return Err(self.err("a number"));
                }
            },
            Tok::Punct("[") => {
                let mut items = Vec::new();
                if !self.eat_p("]") {
                    loop {
                        items.push(self.term()?);
                        if !self.eat_p(",") {
                            break;
                        }
                    }
                    self.p("]")?;
                }
                Term::List(items)
            }
            Tok::Punct("{") => {
                if self.eat_p("}") {
                    return Ok(Term::EmptyBraces);
                }
                // A UDT literal starts with `name :`.
                if matches!(self.peek(), Tok::Ident(_) | Tok::QIdent(_))
                    && matches!(self.peek_at(1), Tok::Punct(":"))
                    && !matches!(self.peek(), Tok::Ident(w) if matches!(w.to_ascii_lowercase().as_str(), "true" | "false" | "null" | "nan" | "infinity"))
                {
                    let mut fields = Vec::new();
                    loop {
                        let f = self.ident()?;
                        self.p(":")?;
                        fields.push((f, self.term()?));
                        if !self.eat_p(",") {
                            break;
                        }
                    }
                    self.p("}")?;
                    return Ok(Term::Udt(fields));
                }
                let first = self.term()?;
                if self.eat_p(":") {
                    let mut pairs = vec![(first, self.term()?)];
                    while self.eat_p(",") {
                        let k = self.term()?;
                        self.p(":")?;
                        pairs.push((k, self.term()?));
                    }
                    self.p("}")?;
                    Term::Map(pairs)
                } else {
                    let mut items = vec![first];
                    while self.eat_p(",") {
                        items.push(self.term()?);
                    }
                    self.p("}")?;
                    Term::Set(items)
                }
            }
            Tok::Punct("(") => {
                // A cast `(type) term` or a tuple.
                let save = self.i;
                if let Ok(ty) = self.type_text() {
                    if self.eat_p(")")
                        && !matches!(
                            self.peek(),
                            Tok::Punct(",") | Tok::Punct(")") | Tok::Eof | Tok::Punct(";")
                        )
                        && !self.is_kw("and")
                    {
                        let inner = self.term()?;
                        return Ok(Term::Cast(ty, Box::new(inner)));
                    }
                }
                self.i = save;
                let mut items = Vec::new();
                loop {
                    items.push(self.term()?);
                    if !self.eat_p(",") {
                        break;
                    }
                }
                self.p(")")?;
                Term::Tuple(items)
            }
            Tok::Ident(w) => {
                let lw = w.to_ascii_lowercase();
                match lw.as_str() {
                    "true" => Term::Lit(Lit::Bool(true)),
                    "false" => Term::Lit(Lit::Bool(false)),
                    "null" => Term::Null,
                    "nan" => Term::Lit(Lit::NaN),
                    "infinity" => Term::Lit(Lit::Infinity(false)),
                    _ if self.is_p("(") => {
                        self.i += 1;
                        let mut args = Vec::new();
                        if !self.eat_p(")") {
                            loop {
                                args.push(self.term()?);
                                if !self.eat_p(",") {
                                    break;
                                }
                            }
                            self.p(")")?;
                        }
                        Term::Func(lw, args)
                    }
                    _ if lw.starts_with('p') && lw.len() > 1 => {
                        Term::Lit(Lit::Duration(w.to_ascii_uppercase()))
                    }
                    _ => {
                        self.i -= 1;
                        return Err(self.err("a value"));
                    }
                }
            }
            _ => {
                self.i -= 1;
                return Err(self.err("a value"));
            }
        })
    }

    /// A type as text (`frozen<map<text, int>>`), for `types::parse_type`.
    fn type_text(&mut self) -> Result<String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.depth -= 1;
            return Err(CqlError::syntax("expression nested too deeply"));
        }
        let r = self.type_text_inner();
        self.depth -= 1;
        r
    }

    fn type_text_inner(&mut self) -> Result<String> {
        let mut s = match self.next() {
            Tok::Ident(w) => w.to_ascii_lowercase(),
            Tok::QIdent(w) => format!("\"{w}\""),
            Tok::Str(w) => format!("'{w}'"),
            _ => {
                self.i -= 1;
                return Err(self.err("a type"));
            }
        };
        if self.eat_p(".") {
            s = self.ident()?;
        }
        if self.eat_p("<") {
            s.push('<');
            loop {
                s.push_str(&self.type_text()?);
                if self.eat_p(",") {
                    s.push_str(", ");
                    continue;
                }
                break;
            }
            self.p(">")?;
            s.push('>');
        }
        Ok(s)
    }

    fn using(&mut self, u: &mut Using) -> Result<()> {
        if !self.eat_kw("using") {
            return Ok(());
        }
        loop {
            if self.eat_kw("ttl") {
                u.ttl = Some(self.term()?);
            } else if self.eat_kw("timestamp") {
                u.timestamp = Some(self.term()?);
            } else {
                return Err(self.err("TTL or TIMESTAMP"));
            }
            if !self.eat_kw("and") {
                break;
            }
        }
        Ok(())
    }

    fn insert(&mut self) -> Result<Insert> {
        self.kw("insert")?;
        self.kw("into")?;
        let (ks, table) = self.qualified()?;
        let mut ins = Insert {
            ks,
            table,
            cols: vec![],
            values: vec![],
            json: None,
            json_default_unset: false,
            if_not_exists: false,
            using: Using::default(),
        };
        if self.eat_kw("json") {
            ins.json = Some(self.term()?);
            if self.eat_kw("default") {
                if self.eat_kw("unset") {
                    ins.json_default_unset = true;
                } else {
                    self.kw("null")?;
                }
            }
        } else {
            self.p("(")?;
            loop {
                ins.cols.push(self.ident()?);
                if !self.eat_p(",") {
                    break;
                }
            }
            self.p(")")?;
            self.kw("values")?;
            self.p("(")?;
            loop {
                ins.values.push(self.term()?);
                if !self.eat_p(",") {
                    break;
                }
            }
            self.p(")")?;
        }
        ins.if_not_exists = self.if_not_exists()?;
        self.using(&mut ins.using)?;
        if !ins.if_not_exists {
            ins.if_not_exists = self.if_not_exists()?;
        }
        Ok(ins)
    }

    fn conditions(&mut self) -> Result<Cond> {
        if !self.is_kw("if") {
            return Ok(Cond::None);
        }
        self.i += 1;
        if self.eat_kw("exists") {
            return Ok(Cond::Exists);
        }
        if self.is_kw("not") && self.is_kw_at(1, "exists") {
            self.i += 2;
            return Ok(Cond::NotExists);
        }
        let mut out = Vec::new();
        loop {
            let col = self.ident()?;
            let mut elem = None;
            let mut field = None;
            if self.eat_p("[") {
                elem = Some(self.term()?);
                self.p("]")?;
            } else if self.eat_p(".") {
                field = Some(self.ident()?);
            }
            let op = self.op()?;
            let term = if op == Op::In {
                self.in_values()?
            } else {
                self.term()?
            };
            out.push(Condition {
                col,
                elem,
                field,
                op,
                term,
            });
            if !self.eat_kw("and") {
                break;
            }
        }
        Ok(Cond::Conds(out))
    }

    fn update(&mut self) -> Result<Update> {
        self.kw("update")?;
        let (ks, table) = self.qualified()?;
        let mut using = Using::default();
        self.using(&mut using)?;
        self.kw("set")?;
        let mut assigns = Vec::new();
        loop {
            let col = self.ident()?;
            if self.eat_p("[") {
                let k = self.term()?;
                self.p("]")?;
                self.p("=")?;
                assigns.push(Assign::Elem(col, k, self.term()?));
            } else if self.eat_p(".") {
                let f = self.ident()?;
                self.p("=")?;
                assigns.push(Assign::Field(col, f, self.term()?));
            } else if self.eat_p("+=") {
                assigns.push(Assign::Add(col, self.term()?));
            } else if self.eat_p("-=") {
                assigns.push(Assign::Sub(col, self.term()?));
            } else {
                self.p("=")?;
                // c = c + t | c = c - t | c = t + c | c = t
                let is_self = matches!(self.peek(), Tok::Ident(w) if w.to_ascii_lowercase() == col)
                    || matches!(self.peek(), Tok::QIdent(w) if *w == col);
                if is_self && matches!(self.peek_at(1), Tok::Punct("+") | Tok::Punct("-")) {
                    self.i += 1;
                    let plus = self.next() == Tok::Punct("+");
                    let t = self.term()?;
                    assigns.push(if plus {
                        Assign::Add(col, t)
                    } else {
                        Assign::Sub(col, t)
                    });
                } else {
                    let t = self.term()?;
                    if self.eat_p("+") {
                        let c2 = self.ident()?;
                        if c2 != col {
                            return Err(CqlError::invalid(format!("Only expressions of the form X = <value> + X are supported, got {col} = ... + {c2}")));
                        }
                        assigns.push(Assign::Prepend(col, t));
                    } else {
                        assigns.push(Assign::Set(col, t));
                    }
                }
            }
            if !self.eat_p(",") {
                break;
            }
        }
        self.kw("where")?;
        let wh = self.relations()?;
        let cond = self.conditions()?;
        Ok(Update {
            ks,
            table,
            using,
            assigns,
            wh,
            cond,
        })
    }

    fn delete(&mut self) -> Result<Delete> {
        self.kw("delete")?;
        let mut cols = Vec::new();
        if !self.is_kw("from") {
            loop {
                let c = self.ident()?;
                let e = if self.eat_p("[") {
                    let t = self.term()?;
                    self.p("]")?;
                    Some(t)
                } else {
                    None
                };
                cols.push((c, e));
                if !self.eat_p(",") {
                    break;
                }
            }
        }
        self.kw("from")?;
        let (ks, table) = self.qualified()?;
        let mut using = Using::default();
        self.using(&mut using)?;
        self.kw("where")?;
        let wh = self.relations()?;
        let cond = self.conditions()?;
        Ok(Delete {
            ks,
            table,
            cols,
            using,
            wh,
            cond,
        })
    }

    fn batch(&mut self) -> Result<Stmt> {
        self.kw("begin")?;
        let txn = self.eat_kw("transaction");
        let kind = if txn {
            BatchKind::Transaction
        } else if self.eat_kw("unlogged") {
            BatchKind::Unlogged
        } else if self.eat_kw("counter") {
            BatchKind::Counter
        } else {
            self.eat_kw("logged");
            BatchKind::Logged
        };
        let mut using = Using::default();
        if !txn {
            self.kw("batch")?;
            self.using(&mut using)?;
        }
        let mut stmts = Vec::new();
        loop {
            while self.eat_p(";") {}
            if !txn && self.eat_kw("apply") {
                self.kw("batch")?;
                break;
            }
            if txn && self.eat_kw("end") {
                self.kw("transaction")?;
                break;
            }
            let s = match self.peek() {
                Tok::Ident(w) if w.eq_ignore_ascii_case("insert") => {
                    Stmt::Insert(Box::new(self.insert()?))
                }
                Tok::Ident(w) if w.eq_ignore_ascii_case("update") => {
                    Stmt::Update(Box::new(self.update()?))
                }
                Tok::Ident(w) if w.eq_ignore_ascii_case("delete") => {
                    Stmt::Delete(Box::new(self.delete()?))
                }
                _ if txn => return Err(self.err("INSERT, UPDATE, DELETE or END TRANSACTION")),
                _ => return Err(self.err("INSERT, UPDATE, DELETE or APPLY BATCH")),
            };
            stmts.push(s);
        }
        Ok(Stmt::Batch { kind, using, stmts })
    }

    fn opt_value(&mut self) -> Result<OptVal> {
        match self.next() {
            Tok::Str(s) => Ok(OptVal::Str(s)),
            Tok::Int(s) | Tok::Float(s) => Ok(OptVal::Num(s)),
            Tok::Ident(w) if w.eq_ignore_ascii_case("true") => Ok(OptVal::Bool(true)),
            Tok::Ident(w) if w.eq_ignore_ascii_case("false") => Ok(OptVal::Bool(false)),
            Tok::Ident(w) => Ok(OptVal::Str(w)),
            Tok::Punct("{") => {
                let mut m = Vec::new();
                if !self.eat_p("}") {
                    loop {
                        let k = self.map_constant()?.text();
                        if m.iter().any(|(seen, _)| *seen == k) {
                            return Err(CqlError::syntax(format!(
                                "Invalid map literal: duplicate key '{k}'"
                            )));
                        }
                        self.p(":")?;
                        let v = self.map_constant()?;
                        let v = match v {
                            OptVal::Map(_) => String::new(),
                            v => v.text(),
                        };
                        m.push((k, v));
                        if !self.eat_p(",") {
                            break;
                        }
                    }
                    self.p("}")?;
                }
                Ok(OptVal::Map(m))
            }
            _ => {
                self.i -= 1;
                Err(self.err("an option value"))
            }
        }
    }

    /// A key or value of an option map: a constant (a bare name is not one).
    fn map_constant(&mut self) -> Result<OptVal> {
        if let Tok::Ident(w) = self.peek() {
            if !w.eq_ignore_ascii_case("true") && !w.eq_ignore_ascii_case("false") {
                return Err(self.err("a constant"));
            }
        }
        self.opt_value()
    }

    /// `WITH a = v AND b = v` (also CLUSTERING ORDER BY and COMPACT STORAGE for tables).
    fn with_options(
        &mut self,
        clustering_order: &mut Vec<(String, bool)>,
    ) -> Result<Vec<(String, OptVal)>> {
        let mut out = Vec::new();
        if !self.eat_kw("with") {
            return Ok(out);
        }
        loop {
            if self.is_kw("clustering") {
                self.i += 1;
                self.kw("order")?;
                self.kw("by")?;
                self.p("(")?;
                loop {
                    let c = self.ident()?;
                    let desc = if self.eat_kw("desc") {
                        true
                    } else {
                        self.kw("asc")?;
                        false
                    };
                    clustering_order.push((c, desc));
                    if !self.eat_p(",") {
                        break;
                    }
                }
                self.p(")")?;
            } else if self.is_kw("compact") {
                self.i += 1;
                self.kw("storage")?;
                out.push(("compact_storage".into(), OptVal::Bool(true)));
            } else {
                let mut k = self.ident()?;
                while self.eat_p(".") {
                    k = format!("{k}.{}", self.ident()?);
                }
                self.p("=")?;
                out.push((k, self.opt_value()?));
            }
            if !self.eat_kw("and") {
                break;
            }
        }
        Ok(out)
    }

    fn create(&mut self) -> Result<Stmt> {
        self.kw("create")?;
        if self.eat_kw("keyspace") || self.eat_kw("schema") {
            let if_not_exists = self.if_not_exists()?;
            let name = self.ident()?;
            if !self.is_kw("with") {
                return Err(self.err("WITH"));
            }
            let options = self.with_options(&mut Vec::new())?;
            return Ok(Stmt::CreateKeyspace {
                name,
                if_not_exists,
                options,
            });
        }
        if self.eat_kw("table") || self.eat_kw("columnfamily") {
            let if_not_exists = self.if_not_exists()?;
            let (ks, name) = self.qualified()?;
            self.p("(")?;
            let mut cols = Vec::new();
            let mut pk = None;
            loop {
                if self.is_kw("primary") && self.is_kw_at(1, "key") {
                    self.i += 2;
                    self.p("(")?;
                    let mut part = Vec::new();
                    if self.eat_p("(") {
                        loop {
                            part.push(self.ident()?);
                            if !self.eat_p(",") {
                                break;
                            }
                        }
                        self.p(")")?;
                    } else {
                        part.push(self.ident()?);
                    }
                    let mut clust = Vec::new();
                    while self.eat_p(",") {
                        clust.push(self.ident()?);
                    }
                    self.p(")")?;
                    if pk.is_some() {
                        return Err(CqlError::invalid(
                            "Multiple PRIMARY KEYs specified (exactly one required)",
                        ));
                    }
                    pk = Some((part, clust));
                } else {
                    let name = self.ident()?;
                    let ty = self.type_text()?;
                    let is_static = self.eat_kw("static");
                    let primary_key = if self.is_kw("primary") {
                        self.i += 1;
                        self.kw("key")?;
                        true
                    } else {
                        false
                    };
                    cols.push(ColDef {
                        name,
                        ty,
                        is_static,
                        primary_key,
                    });
                }
                if !self.eat_p(",") {
                    break;
                }
                if self.is_p(")") {
                    break;
                }
            }
            self.p(")")?;
            let mut clustering_order = Vec::new();
            let options = self.with_options(&mut clustering_order)?;
            return Ok(Stmt::CreateTable {
                ks,
                name,
                if_not_exists,
                cols,
                pk,
                clustering_order,
                options,
            });
        }
        if self.eat_kw("type") {
            let if_not_exists = self.if_not_exists()?;
            let (ks, name) = self.qualified()?;
            self.p("(")?;
            let mut fields = Vec::new();
            if !self.is_p(")") {
                loop {
                    let f = self.ident()?;
                    fields.push((f, self.type_text()?));
                    if !self.eat_p(",") {
                        break;
                    }
                }
            }
            self.p(")")?;
            return Ok(Stmt::CreateType {
                ks,
                name,
                if_not_exists,
                fields,
            });
        }
        let custom = self.eat_kw("custom");
        if self.eat_kw("index") {
            let if_not_exists = self.if_not_exists()?;
            let name = if self.is_kw("on") {
                None
            } else {
                Some(self.ident()?)
            };
            self.kw("on")?;
            let (ks, table) = self.qualified()?;
            self.p("(")?;
            let (kind, col) = match self.peek_at(1) {
                Tok::Punct("(") => {
                    // keys | values | entries | full (the last two are reserved words).
                    let k = match self.next() {
                        Tok::Ident(s) => s.to_ascii_lowercase(),
                        _ => {
                            self.i -= 1;
                            return Err(self.err("keys, values, entries or full"));
                        }
                    };
                    self.p("(")?;
                    let c = self.ident()?;
                    self.p(")")?;
                    (k, c)
                }
                // A bare column: `values` (or `full` for a frozen collection), decided by
                // the engine, which knows the type.
                _ => (String::new(), self.ident()?),
            };
            self.p(")")?;
            if custom || self.eat_kw("using") {
                if custom && !self.is_kw("using") {
                    // CREATE CUSTOM INDEX ... USING 'class' is required.
                } else {
                    self.eat_kw("using");
                }
                let _ = self.opt_value();
            }
            let _ = self.with_options(&mut Vec::new())?;
            return Ok(Stmt::CreateIndex {
                ks,
                table,
                name,
                if_not_exists,
                kind,
                col,
            });
        }
        if self.is_kw("role") || self.is_kw("user") {
            let user = self.eat_kw("user");
            if !user {
                self.kw("role")?;
            }
            let if_not_exists = self.if_not_exists()?;
            let name = self.role_name()?;
            let opts = self.role_opts(user)?;
            return Ok(Stmt::Role(RoleStmt::Create {
                name,
                if_not_exists,
                opts,
            }));
        }
        if self.eat_kw("function")
            || self.eat_kw("aggregate")
            || self.eat_kw("materialized")
            || self.eat_kw("trigger")
            || self.eat_kw("or")
        {
            let what = self.toks[self.i - 1].clone();
            self.i = self.toks.len() - 1;
            return Ok(Stmt::Unsupported(format!(
                "create {}",
                tok_text(&what).to_ascii_lowercase()
            )));
        }
        Err(self.err("KEYSPACE, TABLE, TYPE or INDEX"))
    }

    fn alter(&mut self) -> Result<Stmt> {
        self.kw("alter")?;
        if self.eat_kw("keyspace") || self.eat_kw("schema") {
            let name = self.ident()?;
            let options = self.with_options(&mut Vec::new())?;
            return Ok(Stmt::AlterKeyspace { name, options });
        }
        if self.eat_kw("table") || self.eat_kw("columnfamily") {
            let (ks, name) = self.qualified()?;
            let op = if self.eat_kw("add") {
                let mut cols = Vec::new();
                let paren = self.eat_p("(");
                loop {
                    let n = self.ident()?;
                    let ty = self.type_text()?;
                    let is_static = self.eat_kw("static");
                    cols.push(ColDef {
                        name: n,
                        ty,
                        is_static,
                        primary_key: false,
                    });
                    if !(paren && self.eat_p(",")) {
                        break;
                    }
                }
                if paren {
                    self.p(")")?;
                }
                AlterOp::Add(cols)
            } else if self.eat_kw("drop") {
                let mut cols = Vec::new();
                let paren = self.eat_p("(");
                loop {
                    cols.push(self.ident()?);
                    if !(paren && self.eat_p(",")) {
                        break;
                    }
                }
                if paren {
                    self.p(")")?;
                }
                let mut u = Using::default();
                self.using(&mut u)?;
                AlterOp::Drop(cols)
            } else if self.eat_kw("rename") {
                let mut pairs = Vec::new();
                loop {
                    let a = self.ident()?;
                    self.kw("to")?;
                    pairs.push((a, self.ident()?));
                    if !self.eat_kw("and") {
                        break;
                    }
                }
                AlterOp::Rename(pairs)
            } else if self.eat_kw("alter") {
                let c = self.ident()?;
                self.kw("type")?;
                AlterOp::AlterType(c, self.type_text()?)
            } else if self.is_kw("with") {
                AlterOp::With(self.with_options(&mut Vec::new())?)
            } else {
                return Err(self.err("ADD, DROP, RENAME, ALTER or WITH"));
            };
            return Ok(Stmt::AlterTable { ks, name, op });
        }
        if self.eat_kw("type") {
            let (ks, name) = self.qualified()?;
            if self.eat_kw("add") {
                let f = self.ident()?;
                let t = self.type_text()?;
                return Ok(Stmt::AlterType {
                    ks,
                    name,
                    add: Some((f, t)),
                    rename: vec![],
                });
            }
            self.kw("rename")?;
            let mut pairs = Vec::new();
            loop {
                let a = self.ident()?;
                self.kw("to")?;
                pairs.push((a, self.ident()?));
                if !self.eat_kw("and") {
                    break;
                }
            }
            return Ok(Stmt::AlterType {
                ks,
                name,
                add: None,
                rename: pairs,
            });
        }
        if self.is_kw("role") || self.is_kw("user") {
            let user = self.eat_kw("user");
            if !user {
                self.kw("role")?;
            }
            let name = self.role_name()?;
            let opts = self.role_opts(user)?;
            return Ok(Stmt::Role(RoleStmt::Alter { name, opts }));
        }
        if self.eat_kw("materialized") {
            self.i = self.toks.len() - 1;
            return Ok(Stmt::Unsupported("alter".into()));
        }
        Err(self.err("KEYSPACE, TABLE or TYPE"))
    }

    fn drop(&mut self) -> Result<Stmt> {
        self.kw("drop")?;
        if self.eat_kw("keyspace") || self.eat_kw("schema") {
            let if_exists = self.if_exists()?;
            return Ok(Stmt::DropKeyspace {
                name: self.ident()?,
                if_exists,
            });
        }
        if self.eat_kw("table") || self.eat_kw("columnfamily") {
            let if_exists = self.if_exists()?;
            let (ks, name) = self.qualified()?;
            return Ok(Stmt::DropTable {
                ks,
                name,
                if_exists,
            });
        }
        if self.eat_kw("type") {
            let if_exists = self.if_exists()?;
            let (ks, name) = self.qualified()?;
            return Ok(Stmt::DropType {
                ks,
                name,
                if_exists,
            });
        }
        if self.eat_kw("index") {
            let if_exists = self.if_exists()?;
            let (ks, name) = self.qualified()?;
            return Ok(Stmt::DropIndex {
                ks,
                name,
                if_exists,
            });
        }
        if self.eat_kw("role") || self.eat_kw("user") {
            let if_exists = self.if_exists()?;
            let name = self.role_name()?;
            return Ok(Stmt::Role(RoleStmt::Drop { name, if_exists }));
        }
        if self.eat_kw("function")
            || self.eat_kw("aggregate")
            || self.eat_kw("materialized")
            || self.eat_kw("trigger")
        {
            self.i = self.toks.len() - 1;
            return Ok(Stmt::Unsupported("drop".into()));
        }
        Err(self.err("KEYSPACE, TABLE, TYPE or INDEX"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_statements() {
        for q in [
            "SELECT * FROM system.local WHERE key='local'",
            "select peer, rpc_address from system.peers",
            "CREATE KEYSPACE IF NOT EXISTS ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1} AND durable_writes = true",
            "CREATE TABLE ks.t (k int, c text, v map<text, frozen<list<int>>>, s int static, PRIMARY KEY ((k), c)) WITH CLUSTERING ORDER BY (c DESC) AND default_time_to_live = 10",
            "INSERT INTO t (k, c, v) VALUES (?, :c, {'a': [1, 2]}) IF NOT EXISTS USING TTL 5",
            "UPDATE t USING TTL 3 SET v = v + {'b': [3]}, s = 4, l = [1] + l, m['x'] = 1 WHERE k = 1 AND c IN ('a', 'b') IF s = 3",
            "DELETE v['a'] FROM t WHERE k = 1 IF EXISTS",
            "BEGIN UNLOGGED BATCH INSERT INTO t (k) VALUES (1); DELETE FROM t WHERE k = 2; APPLY BATCH;",
            "SELECT k, count(*), writetime(v) AS w, token(k) FROM t WHERE token(k) > -5 AND (c, d) >= ('a', 1) GROUP BY k ORDER BY c DESC PER PARTITION LIMIT 2 LIMIT 10 ALLOW FILTERING",
            "SELECT JSON * FROM t",
            "INSERT INTO t JSON '{\"k\": 1}' DEFAULT UNSET",
            "CREATE INDEX ON t (keys(v))",
            "ALTER TABLE t ADD (a int, b text)",
            "SELECT * FROM t WHERE u = 123e4567-e89b-12d3-a456-426655440000 AND d = 1h30m AND b = 0xcafe AND f = -1.5e3",
        ] {
            parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            "SELECT * FROM t WHERE k = {}1{}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse(&deep).is_err());
        let deep = format!(
            "SELECT {}k{} FROM t",
            "f(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert!(parse(&deep).is_err());
        let deep = format!(
            "CREATE TABLE t (k {}int{} PRIMARY KEY)",
            "list<".repeat(100_000),
            ">".repeat(100_000)
        );
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for q in [
            "SELECT 5\u{a0}",
            "SELECT 5h\u{a0}",
            "SELECT 5h\u{c2}",
            "SELECT 5µs",
            "SELECT 5\u{c2}",
            "x'",
            "\u{ff}",
            "0x",
            "-",
            "$$",
            ":\"",
            "SELECT '\u{1F600}",
        ] {
            let _ = parse(q);
        }
    }

    #[test]
    fn rejects_garbage() {
        for q in [
            "SELEC * FROM t",
            "SELECT * FROM",
            "INSERT INTO t (a) VALUES (",
            "'",
            "\"",
            "CREATE TABLE t (k int PRIMARY KEY",
        ] {
            assert!(parse(q).is_err(), "{q}");
        }
    }
}
