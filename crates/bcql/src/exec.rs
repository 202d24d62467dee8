//! Statement execution: the [`Engine`] shared by every connection (catalog, prepared
//! statement cache, schema-change events), result types, PREPARE (bind-marker typing and
//! partition-key indexes for token-aware drivers) and the DDL statements. DML lives in
//! `dml`, SELECT in `select`, the virtual system tables in `system`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::error::{code, CqlError, Result};
use crate::frame::QueryParams;
use crate::parser::{self, AlterOp, ColDef, OptVal, Parsed, Rel, Stmt, Term};
use crate::schema::{Catalog, Column, IndexDef, KeyspaceDef, Kind, TableDef, TypeDef};
use crate::types::{self, CqlType};

/// A result column.
#[derive(Debug, Clone)]
pub struct ColSpec {
    pub ks: String,
    pub table: String,
    pub name: String,
    pub ty: CqlType,
}

/// A page of rows (cells in wire format; `None` is null).
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub cols: Vec<ColSpec>,
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
    pub paging_state: Option<Vec<u8>>,
}

/// A schema change, as RESULT and EVENT report it.
#[derive(Debug, Clone)]
pub struct SchemaChange {
    pub change: &'static str,
    pub target: &'static str,
    pub keyspace: String,
    pub name: Option<String>,
}

#[derive(Debug)]
pub enum Outcome {
    Void,
    Rows(Rows),
    SetKeyspace(String),
    SchemaChange(SchemaChange),
}

/// A prepared statement.
#[derive(Debug)]
pub struct Prepared {
    pub id: Vec<u8>,
    pub ks: Option<String>,
    pub parsed: Parsed,
    pub binds: Vec<ColSpec>,
    pub pk_indexes: Vec<u16>,
    pub result: Vec<ColSpec>,
}

/// How this node describes itself in `system.local`.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub cql_addr: std::net::SocketAddr,
    pub cluster_name: String,
    pub host_id: [u8; 16],
}

/// State shared by every BCQL connection of a server.
pub struct Engine {
    pub catalog: Catalog,
    prepared: RwLock<HashMap<Vec<u8>, Arc<Prepared>>>,
    pub events: tokio::sync::broadcast::Sender<SchemaChange>,
    pub node: NodeInfo,
    pub auth: crate::auth::Auth,
    /// Point reads of SELECTs that pin whole rows, batched per tablet.
    pub reads: crate::batch::ReadBatcher,
}

/// What a statement runs with.
pub struct Ctx<'a> {
    pub ks: Option<&'a str>,
    pub params: &'a QueryParams,
    /// Bind values by position (named values already ordered).
    pub values: &'a [crate::frame::Bound],
    pub now_ms: i64,
    pub now_us: i64,
    /// The logged-in role (`None` without authentication).
    pub user: Option<&'a str>,
}

impl Ctx<'_> {
    pub fn binds(&self) -> crate::values::Binds<'_> {
        crate::values::Binds {
            values: self.values,
            now_ms: self.now_ms,
        }
    }
    pub fn keyspace<'b>(&'b self, explicit: &'b Option<String>) -> Result<&'b str> {
        explicit.as_deref().or(self.ks).ok_or_else(|| {
            CqlError::invalid(
                "No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename",
            )
        })
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 48 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Engine {
    pub fn new(catalog: Catalog, node: NodeInfo, password_auth: bool) -> Self {
        Engine {
            catalog,
            prepared: RwLock::new(HashMap::new()),
            events: tokio::sync::broadcast::channel(256).0,
            node,
            auth: crate::auth::Auth::new(password_auth),
            reads: crate::batch::ReadBatcher::default(),
        }
    }

    pub fn get_prepared(&self, id: &[u8]) -> Option<Arc<Prepared>> {
        self.prepared
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Parse, type and cache a statement.
    pub async fn prepare(&self, query: &str, ks: Option<&str>) -> Result<Arc<Prepared>> {
        let id = crate::schema::digest16(&[ks.unwrap_or("").as_bytes(), b"\0", query.as_bytes()])
            .to_vec();
        if let Some(p) = self.get_prepared(&id) {
            return Ok(p);
        }
        let parsed = parser::parse(query)?;
        let (binds, pk_indexes, result) = self.describe(&parsed, ks).await?;
        let p = Arc::new(Prepared {
            id: id.clone(),
            ks: ks.map(str::to_owned),
            parsed,
            binds,
            pk_indexes,
            result,
        });
        let mut cache = self.prepared.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(id, p.clone());
        Ok(p)
    }

    /// Bind-marker specs, partition-key bind indexes and result columns of a statement.
    async fn describe(
        &self,
        parsed: &Parsed,
        ks: Option<&str>,
    ) -> Result<(Vec<ColSpec>, Vec<u16>, Vec<ColSpec>)> {
        let mut specs: Vec<Option<ColSpec>> = vec![None; parsed.bind_names.len()];
        let mut pk_indexes = Vec::new();
        let mut result = Vec::new();
        let stmts: Vec<&Stmt> = match &parsed.stmt {
            Stmt::Batch { stmts, .. } => stmts.iter().collect(),
            s => vec![s],
        };
        let single = stmts.len() == 1;
        for stmt in stmts {
            let (tks, tname) = match stmt {
                Stmt::Select(s) => (&s.ks, &s.table),
                Stmt::Insert(s) => (&s.ks, &s.table),
                Stmt::Update(s) => (&s.ks, &s.table),
                Stmt::Delete(s) => (&s.ks, &s.table),
                _ => continue,
            };
            let kname = tks.as_deref().or(ks).ok_or_else(|| {
                CqlError::invalid("No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename")
            })?;
            let def = match crate::system::table_def(kname, tname) {
                Some(d) => Arc::new(d),
                None => self.catalog.table(kname, tname).await?.0,
            };
            let spec = |name: &str, ty: CqlType| ColSpec {
                ks: def.keyspace.clone(),
                table: def.name.clone(),
                name: name.to_owned(),
                ty,
            };
            let walk_rels = |rels: &[Rel],
                             specs: &mut Vec<Option<ColSpec>>|
             -> Result<Vec<Option<u16>>> {
                let mut pk_bind = vec![None; def.pk_len()];
                for r in rels {
                    match r {
                        Rel::Col { col, op, term } => {
                            let c = def.col(col).ok_or_else(|| {
                                CqlError::invalid(format!("Undefined column name {col}"))
                            })?;
                            let ty = match op {
                                parser::Op::In => CqlType::List(Box::new(c.ty.clone())),
                                parser::Op::Contains => match c.ty.base() {
                                    CqlType::List(e) | CqlType::Set(e) => e.as_ref().clone(),
                                    CqlType::Map(_, v) => v.as_ref().clone(),
                                    t => t.clone(),
                                },
                                parser::Op::ContainsKey => match c.ty.base() {
                                    CqlType::Map(k, _) => k.as_ref().clone(),
                                    t => t.clone(),
                                },
                                _ => c.ty.clone(),
                            };
                            if let (parser::Op::Eq, Term::Bind(i), Kind::PartitionKey) =
                                (op, term, c.kind)
                            {
                                pk_bind[c.position] = Some(*i as u16);
                            }
                            walk(term, &ty, col, specs, &spec);
                        }
                        Rel::Token { term, .. } => {
                            walk(term, &CqlType::Bigint, "partition key token", specs, &spec)
                        }
                        Rel::Multi { cols, op, term } => {
                            let ts: Vec<CqlType> = cols
                                .iter()
                                .map(|c| def.col(c).map(|c| c.ty.clone()).unwrap_or(CqlType::Blob))
                                .collect();
                            let tup = CqlType::Tuple(ts);
                            let ty = if *op == parser::Op::In {
                                CqlType::List(Box::new(tup))
                            } else {
                                tup
                            };
                            walk(term, &ty, &format!("({})", cols.join(",")), specs, &spec);
                        }
                        Rel::MapEntry { col, key, term } => {
                            if let Some(CqlType::Map(k, v)) =
                                def.col(col).map(|c| c.ty.base().clone())
                            {
                                walk(key, &k, col, specs, &spec);
                                walk(term, &v, col, specs, &spec);
                            }
                        }
                    }
                }
                Ok(pk_bind)
            };
            let using = |u: &parser::Using, specs: &mut Vec<Option<ColSpec>>| {
                if let Some(t) = &u.ttl {
                    walk(t, &CqlType::Int, "[ttl]", specs, &spec);
                }
                if let Some(t) = &u.timestamp {
                    walk(t, &CqlType::Bigint, "[timestamp]", specs, &spec);
                }
            };
            let conds = |c: &parser::Cond, specs: &mut Vec<Option<ColSpec>>| {
                if let parser::Cond::Conds(cs) = c {
                    for c in cs {
                        if let Some(col) = def.col(&c.col) {
                            let ty = match (&c.elem, col.ty.base()) {
                                (Some(k), CqlType::Map(kt, vt)) => {
                                    walk(k, kt, &c.col, specs, &spec);
                                    vt.as_ref().clone()
                                }
                                (Some(k), CqlType::List(et)) => {
                                    walk(k, &CqlType::Int, &c.col, specs, &spec);
                                    et.as_ref().clone()
                                }
                                _ => col.ty.clone(),
                            };
                            let ty = if c.op == parser::Op::In {
                                CqlType::List(Box::new(ty))
                            } else {
                                ty
                            };
                            walk(&c.term, &ty, &c.col, specs, &spec);
                        }
                    }
                }
            };
            let pk_bind = match stmt {
                Stmt::Select(s) => {
                    let pk = walk_rels(&s.wh, &mut specs)?;
                    if let Some(t) = &s.per_partition_limit {
                        walk(t, &CqlType::Int, "[per_partition_limit]", &mut specs, &spec);
                    }
                    if let Some(t) = &s.limit {
                        walk(t, &CqlType::Int, "[limit]", &mut specs, &spec);
                    }
                    if single {
                        result = crate::select::result_columns(&def, s)?;
                    }
                    pk
                }
                Stmt::Insert(s) => {
                    let mut pk = vec![None; def.pk_len()];
                    if let Some(j) = &s.json {
                        walk(j, &CqlType::Text, "[json]", &mut specs, &spec);
                    }
                    for (c, t) in s.cols.iter().zip(&s.values) {
                        let col = def.col(c).ok_or_else(|| {
                            CqlError::invalid(format!("Undefined column name {c}"))
                        })?;
                        if let (Term::Bind(i), Kind::PartitionKey) = (t, col.kind) {
                            pk[col.position] = Some(*i as u16);
                        }
                        walk(t, &col.ty, c, &mut specs, &spec);
                    }
                    using(&s.using, &mut specs);
                    if s.if_not_exists {
                        result = lwt_columns(&def);
                    }
                    pk
                }
                Stmt::Update(s) => {
                    using(&s.using, &mut specs);
                    for a in &s.assigns {
                        use parser::Assign as A;
                        let (c, t, k) = match a {
                            A::Set(c, t) | A::Add(c, t) | A::Sub(c, t) | A::Prepend(c, t) => {
                                (c, t, None)
                            }
                            A::Elem(c, k, t) => (c, t, Some(k)),
                            A::Field(c, f, t) => {
                                if let Some(CqlType::Udt { fields, .. }) =
                                    def.col(c).map(|c| c.ty.base().clone())
                                {
                                    if let Some((_, ft)) = fields.iter().find(|(n, _)| n == f) {
                                        walk(t, ft, f, &mut specs, &spec);
                                    }
                                }
                                continue;
                            }
                        };
                        let col = def.col(c).ok_or_else(|| {
                            CqlError::invalid(format!("Undefined column name {c}"))
                        })?;
                        let ty = match (a, col.ty.base()) {
                            (A::Sub(..), CqlType::Map(k, _)) => CqlType::Set(k.clone()),
                            (A::Elem(..), CqlType::Map(_, v)) => v.as_ref().clone(),
                            (A::Elem(..), CqlType::List(e)) => e.as_ref().clone(),
                            (A::Add(..) | A::Sub(..), CqlType::Counter) => CqlType::Bigint,
                            _ => col.ty.clone(),
                        };
                        if let Some(k) = k {
                            let kt = match col.ty.base() {
                                CqlType::Map(k, _) => k.as_ref().clone(),
                                _ => CqlType::Int,
                            };
                            walk(k, &kt, c, &mut specs, &spec);
                        }
                        walk(t, &ty, c, &mut specs, &spec);
                    }
                    let pk = walk_rels(&s.wh, &mut specs)?;
                    conds(&s.cond, &mut specs);
                    if s.cond != parser::Cond::None {
                        result = lwt_columns(&def);
                    }
                    pk
                }
                Stmt::Delete(s) => {
                    for (c, e) in &s.cols {
                        if let (Some(e), Some(col)) = (e, def.col(c)) {
                            let kt = match col.ty.base() {
                                CqlType::Map(k, _) => k.as_ref().clone(),
                                CqlType::Set(k) => k.as_ref().clone(),
                                _ => CqlType::Int,
                            };
                            walk(e, &kt, c, &mut specs, &spec);
                        }
                    }
                    using(&s.using, &mut specs);
                    let pk = walk_rels(&s.wh, &mut specs)?;
                    conds(&s.cond, &mut specs);
                    if s.cond != parser::Cond::None {
                        result = lwt_columns(&def);
                    }
                    pk
                }
                _ => vec![],
            };
            if single && pk_bind.iter().all(Option::is_some) {
                pk_indexes = pk_bind.into_iter().flatten().collect();
            }
        }
        let binds = specs
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let mut s = s.unwrap_or(ColSpec {
                    ks: String::new(),
                    table: String::new(),
                    name: format!("arg{i}"),
                    ty: CqlType::Blob,
                });
                if let Some(Some(n)) = parsed.bind_names.get(i) {
                    s.name = n.clone();
                }
                s
            })
            .collect();
        Ok((binds, pk_indexes, result))
    }

    /// Execute a statement.
    pub async fn execute(&self, stmt: &Stmt, ctx: &Ctx<'_>) -> Result<Outcome> {
        match stmt {
            Stmt::Select(s) => crate::select::select(self, s, ctx).await,
            Stmt::Insert(s) => crate::dml::insert(self, s, ctx, None).await,
            Stmt::Update(s) => crate::dml::update(self, s, ctx, None).await,
            Stmt::Delete(s) => crate::dml::delete(self, s, ctx, None).await,
            Stmt::Batch { kind, using, stmts } => {
                let list: Vec<(&Stmt, &[crate::frame::Bound])> =
                    stmts.iter().map(|s| (s, ctx.values)).collect();
                crate::dml::batch(self, *kind, using, &list, ctx).await
            }
            Stmt::Use(ks) => {
                if self.catalog.keyspace(ks).await?.is_none() {
                    return Err(CqlError::invalid(format!("Keyspace '{ks}' does not exist")));
                }
                Ok(Outcome::SetKeyspace(ks.clone()))
            }
            Stmt::Describe { what, name } => crate::describe::describe(self, what, name, ctx).await,
            Stmt::Role(r) => self.auth.execute(&self.catalog, r, ctx.user).await,
            Stmt::Unsupported(what) => {
                if what.starts_with("create")
                    || what.starts_with("alter")
                    || what.starts_with("drop")
                {
                    Err(CqlError::invalid(format!(
                        "{what}: not supported by this server"
                    )))
                } else {
                    Ok(Outcome::Void)
                }
            }
            _ => self.ddl(stmt, ctx).await,
        }
    }

    fn announce(
        &self,
        change: &'static str,
        target: &'static str,
        ks: &str,
        name: Option<&str>,
    ) -> Outcome {
        // Statements prepared against the old schema must be prepared again (drivers do
        // that on UNPREPARED).
        if change != "CREATED" {
            self.prepared
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        let sc = SchemaChange {
            change,
            target,
            keyspace: ks.to_owned(),
            name: name.map(str::to_owned),
        };
        let _ = self.events.send(sc.clone());
        Outcome::SchemaChange(sc)
    }

    /// Build index `name` of `ks.table`: wait until every server's catalog cache has it (so
    /// each write from then on keeps it in step), index the rows already there, then mark it
    /// ready for queries.
    async fn build_index(&self, ks: &str, table: &str, name: &str) -> Result<()> {
        let servers = self
            .catalog
            .client
            .list_servers()
            .await
            .map(|r| r.servers.len())
            .unwrap_or(2);
        if servers > 1 {
            tokio::time::sleep(crate::schema::CACHE_TTL + std::time::Duration::from_millis(500))
                .await;
        }
        let (def, base) = self.catalog.table_fresh(ks, table).await?;
        let Some(ix) = def.indexes.iter().find(|i| i.name == name).cloned() else {
            return Err(CqlError::invalid(format!(
                "Index {name} was dropped while it was built"
            )));
        };
        crate::index::backfill(self, &def, &base, &ix).await?;
        let (def, _) = self.catalog.table_fresh(ks, table).await?;
        let mut new = (*def).clone();
        for i in new.indexes.iter_mut().filter(|i| i.name == name) {
            i.ready = true;
        }
        self.catalog.alter_table(&def, &new).await
    }

    async fn udt_resolver(&self, ks: &str) -> Result<HashMap<String, CqlType>> {
        Ok(self
            .catalog
            .types(Some(ks))
            .await?
            .into_iter()
            .map(|t| {
                (
                    t.name.clone(),
                    CqlType::Udt {
                        keyspace: t.keyspace,
                        name: t.name,
                        fields: t.fields,
                    },
                )
            })
            .collect())
    }

    async fn ddl(&self, stmt: &Stmt, ctx: &Ctx<'_>) -> Result<Outcome> {
        match stmt {
            Stmt::CreateKeyspace {
                name,
                if_not_exists,
                options,
            } => {
                if !valid_name(name) {
                    return Err(CqlError::invalid(format!(
                        "Keyspace name must not be empty, more than 48 characters long, or contain non-alphanumeric-underscore characters (got \"{name}\")"
                    )));
                }
                if crate::system::is_system_keyspace(name) {
                    return Err(CqlError::new(
                        code::UNAUTHORIZED,
                        format!("Cannot create keyspace {name}: it is a system keyspace"),
                    ));
                }
                let def = keyspace_def(name, options)?;
                if self.catalog.keyspace(name).await?.is_some() {
                    return if *if_not_exists {
                        Ok(Outcome::Void)
                    } else {
                        Err(CqlError::already_exists(name, ""))
                    };
                }
                if !self.catalog.create_keyspace(&def).await? {
                    return if *if_not_exists {
                        Ok(Outcome::Void)
                    } else {
                        Err(CqlError::already_exists(name, ""))
                    };
                }
                Ok(self.announce("CREATED", "KEYSPACE", name, None))
            }
            Stmt::AlterKeyspace { name, options } => {
                let Some(old) = self.catalog.keyspace(name).await? else {
                    return Err(CqlError::invalid(format!(
                        "Keyspace '{name}' does not exist"
                    )));
                };
                if crate::system::is_system_keyspace(name) {
                    return Err(CqlError::new(
                        code::UNAUTHORIZED,
                        format!("Cannot alter system keyspace {name}"),
                    ));
                }
                let mut options = options.clone();
                if !options.iter().any(|(k, _)| k == "replication") {
                    options.push((
                        "replication".into(),
                        OptVal::Map(old.replication.into_iter().collect()),
                    ));
                }
                let def = keyspace_def(name, &options)?;
                self.catalog.put_keyspace(&def).await?;
                Ok(self.announce("UPDATED", "KEYSPACE", name, None))
            }
            Stmt::DropKeyspace { name, if_exists } => {
                if crate::system::is_system_keyspace(name) {
                    return Err(CqlError::new(
                        code::UNAUTHORIZED,
                        format!("Cannot drop system keyspace {name}"),
                    ));
                }
                if self.catalog.keyspace(name).await?.is_none() {
                    return if *if_exists {
                        Ok(Outcome::Void)
                    } else {
                        Err(CqlError::new(
                            code::CONFIG_ERROR,
                            format!("Cannot drop non existing keyspace '{name}'."),
                        ))
                    };
                }
                self.catalog.drop_keyspace(name).await?;
                Ok(self.announce("DROPPED", "KEYSPACE", name, None))
            }
            Stmt::CreateTable {
                ks,
                name,
                if_not_exists,
                cols,
                pk,
                clustering_order,
                options,
            } => {
                let ks = ctx.keyspace(ks)?.to_owned();
                if crate::system::is_system_keyspace(&ks) {
                    return Err(CqlError::new(
                        code::UNAUTHORIZED,
                        format!("{ks} keyspace is not user-modifiable."),
                    ));
                }
                if self.catalog.keyspace(&ks).await?.is_none() {
                    return Err(CqlError::invalid(format!("Keyspace {ks} doesn't exist")));
                }
                if !valid_name(name) {
                    return Err(CqlError::invalid(format!("\"{name}\" is not a valid table name (must be alphanumeric character or underscore only: [a-zA-Z_0-9]+)")));
                }
                let udts = self.udt_resolver(&ks).await?;
                let def = table_def(&ks, name, cols, pk, clustering_order, options, &udts)?;
                if self.catalog.table(&ks, name).await.is_ok() {
                    return if *if_not_exists {
                        Ok(Outcome::Void)
                    } else {
                        Err(CqlError::already_exists(&ks, name))
                    };
                }
                if !self.catalog.create_table(&def).await? {
                    return if *if_not_exists {
                        Ok(Outcome::Void)
                    } else {
                        Err(CqlError::already_exists(&ks, name))
                    };
                }
                Ok(self.announce("CREATED", "TABLE", &ks, Some(name)))
            }
            Stmt::AlterTable { ks, name, op } => {
                let ks = ctx.keyspace(ks)?.to_owned();
                let (old, _) = self.catalog.table_fresh(&ks, name).await?;
                let mut def = (*old).clone();
                let udts = self.udt_resolver(&ks).await?;
                match op {
                    AlterOp::Add(cols) => {
                        for c in cols {
                            if def.col(&c.name).is_some() {
                                return Err(CqlError::invalid(format!("Invalid column name {} because it conflicts with an existing column", c.name)));
                            }
                            let ty = types::parse_type(&c.ty, &|n| udts.get(n).cloned())?;
                            if c.is_static && def.ck_len() == 0 {
                                return Err(CqlError::invalid(format!("Static columns are not allowed in COMPACT STORAGE tables or tables without clustering columns (column {})", c.name)));
                            }
                            if ty.is_counter() != def.is_counter_table()
                                && def
                                    .columns
                                    .iter()
                                    .any(|c| c.kind == Kind::Regular || c.kind == Kind::Static)
                            {
                                return Err(CqlError::invalid(
                                    "Cannot mix counter and non counter columns in the same table",
                                ));
                            }
                            let id = def.next_column_id;
                            def.next_column_id += 1;
                            def.columns.push(Column {
                                name: c.name.clone(),
                                id,
                                ty,
                                kind: if c.is_static {
                                    Kind::Static
                                } else {
                                    Kind::Regular
                                },
                                position: 0,
                                desc: false,
                            });
                        }
                    }
                    AlterOp::Drop(names) => {
                        for n in names {
                            match def.col(n) {
                                None => {
                                    return Err(CqlError::invalid(format!(
                                        "Column {n} was not found in table {name}"
                                    )))
                                }
                                Some(c)
                                    if matches!(c.kind, Kind::PartitionKey | Kind::Clustering) =>
                                {
                                    return Err(CqlError::invalid(format!(
                                        "Cannot drop PRIMARY KEY part {n}"
                                    )))
                                }
                                Some(_) => {}
                            }
                            if def.indexes.iter().any(|i| &i.column == n) {
                                return Err(CqlError::invalid(format!("Cannot drop column {n} because it has dependent secondary indexes")));
                            }
                            def.columns.retain(|c| &c.name != n);
                        }
                    }
                    AlterOp::Rename(pairs) => {
                        for (a, b) in pairs {
                            let Some(c) = def.col(a) else {
                                return Err(CqlError::invalid(format!(
                                    "Column {a} was not found in table {name}"
                                )));
                            };
                            if !matches!(c.kind, Kind::PartitionKey | Kind::Clustering) {
                                return Err(CqlError::invalid(format!(
                                    "Cannot rename non PRIMARY KEY column {a}"
                                )));
                            }
                            if def.col(b).is_some() {
                                return Err(CqlError::invalid(format!("Cannot rename column {a} to {b} in table {name}; another column of that name already exist")));
                            }
                            for c in &mut def.columns {
                                if &c.name == a {
                                    c.name = b.clone();
                                }
                            }
                        }
                    }
                    AlterOp::With(opts) => apply_table_options(&mut def, opts)?,
                    AlterOp::AlterType(..) => {
                        return Err(CqlError::invalid(
                            "Altering column types is no longer supported",
                        ))
                    }
                }
                def.sort_columns();
                self.catalog.alter_table(&old, &def).await?;
                Ok(self.announce("UPDATED", "TABLE", &ks, Some(name)))
            }
            Stmt::DropTable {
                ks,
                name,
                if_exists,
            } => {
                let ks = ctx.keyspace(ks)?.to_owned();
                if crate::system::is_system_keyspace(&ks) {
                    return Err(CqlError::new(
                        code::UNAUTHORIZED,
                        format!("{ks} keyspace is not user-modifiable."),
                    ));
                }
                match self.catalog.table(&ks, name).await {
                    Ok(_) => {}
                    Err(_) if *if_exists => return Ok(Outcome::Void),
                    Err(e) => return Err(e),
                }
                self.catalog.drop_table(&ks, name).await?;
                Ok(self.announce("DROPPED", "TABLE", &ks, Some(name)))
            }
            Stmt::Truncate { ks, name } => {
                let ks = ctx.keyspace(ks)?.to_owned();
                let (def, table) = self.catalog.table_fresh(&ks, name).await?;
                // Index entries first: one left behind would only point at a missing row.
                for (i, _) in crate::index::maintained(&def) {
                    if let Some(t) = self.catalog.index_table(&ks, i).await? {
                        crate::dml::truncate(self, &t).await?;
                    }
                }
                crate::dml::truncate(self, &table).await?;
                Ok(Outcome::Void)
            }
            Stmt::CreateType {
                ks,
                name,
                if_not_exists,
                fields,
            } => {
                let ks = ctx.keyspace(ks)?.to_owned();
                if self.catalog.keyspace(&ks).await?.is_none() {
                    return Err(CqlError::invalid(format!("Keyspace {ks} doesn't exist")));
                }
                let udts = self.udt_resolver(&ks).await?;
                if udts.contains_key(name) {
                    return if *if_not_exists {
                        Ok(Outcome::Void)
                    } else {
                        Err(CqlError::invalid(format!(
                            "A user type of name {ks}.{name} already exists"
                        )))
                    };
                }
                let mut fs = Vec::new();
                for (f, t) in fields {
                    if fs.iter().any(|(n, _): &(String, CqlType)| n == f) {
                        return Err(CqlError::invalid(format!(
                            "Duplicate field name {f} in type {name}"
                        )));
                    }
                    let ty = types::freeze(types::parse_type(t, &|n| udts.get(n).cloned())?);
                    if ty.is_counter() {
                        return Err(CqlError::invalid("A user type cannot contain counters"));
                    }
                    fs.push((f.clone(), ty));
                }
                let def = TypeDef {
                    keyspace: ks.clone(),
                    name: name.clone(),
                    fields: fs,
                };
                if !self.catalog.put_type(&def, true).await? && !*if_not_exists {
                    return Err(CqlError::invalid(format!(
                        "A user type of name {ks}.{name} already exists"
                    )));
                }
                Ok(self.announce("CREATED", "TYPE", &ks, Some(name)))
            }
            Stmt::AlterType {
                ks,
                name,
                add,
                rename,
            } => {
                let ks = ctx.keyspace(ks)?.to_owned();
                let udts = self.udt_resolver(&ks).await?;
                let Some(CqlType::Udt { fields, .. }) = udts.get(name).cloned() else {
                    return Err(CqlError::invalid(format!(
                        "No user type named {ks}.{name} exists."
                    )));
                };
                let mut fields = fields;
                if let Some((f, t)) = add {
                    if fields.iter().any(|(n, _)| n == f) {
                        return Err(CqlError::invalid(format!("Cannot add new field {f} to type {ks}.{name}: a field of the same name already exists")));
                    }
                    fields.push((
                        f.clone(),
                        types::freeze(types::parse_type(t, &|n| udts.get(n).cloned())?),
                    ));
                }
                for (a, b) in rename {
                    match fields.iter_mut().find(|(n, _)| n == a) {
                        Some(f) => f.0 = b.clone(),
                        None => {
                            return Err(CqlError::invalid(format!(
                                "Unknown field {a} in type {ks}.{name}"
                            )))
                        }
                    }
                }
                self.catalog
                    .put_type(
                        &TypeDef {
                            keyspace: ks.clone(),
                            name: name.clone(),
                            fields,
                        },
                        false,
                    )
                    .await?;
                Ok(self.announce("UPDATED", "TYPE", &ks, Some(name)))
            }
            Stmt::DropType {
                ks,
                name,
                if_exists,
            } => {
                let ks = ctx.keyspace(ks)?.to_owned();
                let udts = self.udt_resolver(&ks).await?;
                if !udts.contains_key(name) {
                    return if *if_exists {
                        Ok(Outcome::Void)
                    } else {
                        Err(CqlError::invalid(format!(
                            "No user type named {ks}.{name} exists."
                        )))
                    };
                }
                for t in self.catalog.tables_of(Some(&ks)).await? {
                    if t.columns
                        .iter()
                        .any(|c| c.ty.cql_name().contains(name.as_str()))
                    {
                        return Err(CqlError::invalid(format!(
                            "Cannot drop user type {ks}.{name} as it is still used by table {}",
                            t.name
                        )));
                    }
                }
                self.catalog.drop_type(&ks, name).await?;
                Ok(self.announce("DROPPED", "TYPE", &ks, Some(name)))
            }
            Stmt::CreateIndex {
                ks,
                table,
                name,
                if_not_exists,
                kind,
                col,
            } => {
                let ks = ctx.keyspace(ks)?.to_owned();
                let (old, _) = self.catalog.table_fresh(&ks, table).await?;
                let Some(c) = old.col(col) else {
                    return Err(CqlError::invalid(format!(
                        "No column definition found for column {col}"
                    )));
                };
                let frozen_coll = c.ty.is_collection() && !c.ty.is_multicell();
                let explicit = !kind.is_empty();
                let kind = &match kind.as_str() {
                    "" if frozen_coll => "full".to_owned(),
                    "" => "values".to_owned(),
                    k => k.to_owned(),
                };
                let is_map = matches!(c.ty.base(), CqlType::Map(..));
                match kind.as_str() {
                    "keys" | "entries" if !is_map => {
                        return Err(CqlError::invalid(format!(
                            "Cannot create {kind}() index on {col}: it is not a map"
                        )))
                    }
                    "keys" | "entries" | "values" if frozen_coll => {
                        return Err(CqlError::invalid(format!(
                            "Cannot create {kind}() index on frozen column {col}. Frozen collections only support full() indexes"
                        )))
                    }
                    "values" if explicit && !c.ty.is_collection() => {
                        return Err(CqlError::invalid(format!(
                            "Cannot create values() index on {col}: it is not a collection"
                        )))
                    }
                    "full" if !frozen_coll => {
                        return Err(CqlError::invalid(
                            "full() indexes can only be created on frozen collections",
                        ))
                    }
                    "keys" | "entries" | "values" | "full" => {}
                    other => {
                        return Err(CqlError::invalid(format!(
                            "Unknown index target {other}({col})"
                        )))
                    }
                }
                if c.kind == Kind::PartitionKey && old.pk_len() == 1 {
                    return Err(CqlError::invalid(format!(
                        "Cannot create secondary index on the only partition key column {col}"
                    )));
                }
                let all = self.catalog.tables_of(Some(&ks)).await?;
                let taken = |n: &str| all.iter().any(|t| t.indexes.iter().any(|i| i.name == n));
                // Cassandra's default name: word characters of table and column, `_idx`, and
                // `_1`, `_2` ... when taken.
                let iname = name.clone().unwrap_or_else(|| {
                    let word = |s: &str| -> String {
                        s.chars()
                            .filter(|c| c.is_alphanumeric() || *c == '_')
                            .collect()
                    };
                    let base = format!("{}_{}_idx", word(table), word(col));
                    (0..)
                        .map(|n| {
                            if n == 0 {
                                base.clone()
                            } else {
                                format!("{base}_{n}")
                            }
                        })
                        .find(|n| !taken(n))
                        .unwrap_or(base)
                });
                if taken(&iname) {
                    return if *if_not_exists {
                        Ok(Outcome::Void)
                    } else {
                        Err(CqlError::invalid(format!("Index {iname} already exists")))
                    };
                }
                if let Some(dup) = old
                    .indexes
                    .iter()
                    .find(|i| &i.column == col && &i.kind == kind)
                {
                    return if *if_not_exists {
                        Ok(Outcome::Void)
                    } else {
                        Err(CqlError::invalid(format!(
                            "Index {iname} is a duplicate of existing index {}",
                            dup.name
                        )))
                    };
                }
                let mut def = (*old).clone();
                let backed = crate::index::can_back(c, kind);
                let ix = IndexDef {
                    table: if backed {
                        crate::index::table_name(&iname)
                    } else {
                        String::new()
                    },
                    name: iname,
                    column: col.clone(),
                    kind: kind.clone(),
                    table_id: String::new(),
                    ready: !backed,
                };
                let mut ix = ix;
                if backed {
                    ix.table_id = self
                        .catalog
                        .create_index_table(&ks, &ix.table, table)
                        .await?;
                }
                def.indexes.push(ix.clone());
                if let Err(e) = self.catalog.alter_table(&old, &def).await {
                    if backed {
                        let _ = self.catalog.drop_index_table(&ks, &ix.table).await;
                    }
                    return Err(e);
                }
                if backed {
                    self.build_index(&ks, table, &ix.name).await?;
                }
                Ok(self.announce("UPDATED", "TABLE", &ks, Some(table)))
            }
            Stmt::DropIndex {
                ks,
                name,
                if_exists,
            } => {
                let ks = ctx.keyspace(ks)?.to_owned();
                for t in self.catalog.tables_of(Some(&ks)).await? {
                    if t.indexes.iter().any(|i| &i.name == name) {
                        let (old, _) = self.catalog.table_fresh(&ks, &t.name).await?;
                        let mut def = (*old).clone();
                        def.indexes.retain(|i| &i.name != name);
                        self.catalog.alter_table(&old, &def).await?;
                        if let Some(i) = old.indexes.iter().find(|i| &i.name == name) {
                            if !i.table.is_empty() {
                                self.catalog.drop_index_table(&ks, &i.table).await?;
                            }
                        }
                        return Ok(self.announce("UPDATED", "TABLE", &ks, Some(&t.name)));
                    }
                }
                if *if_exists {
                    Ok(Outcome::Void)
                } else {
                    Err(CqlError::invalid(format!(
                        "Index '{ks}.{name}' doesn't exist"
                    )))
                }
            }
            _ => Err(CqlError::invalid("unsupported statement")),
        }
    }
}

/// Walk a term, typing bind markers.
fn walk(
    t: &Term,
    ty: &CqlType,
    name: &str,
    specs: &mut Vec<Option<ColSpec>>,
    spec: &dyn Fn(&str, CqlType) -> ColSpec,
) {
    match t {
        Term::Bind(i) => {
            if let Some(s) = specs.get_mut(*i) {
                *s = Some(spec(name, ty.clone()));
            }
        }
        Term::List(items) | Term::Set(items) => {
            let e = match ty.base() {
                CqlType::List(e) | CqlType::Set(e) => e.as_ref().clone(),
                t => t.clone(),
            };
            for i in items {
                walk(i, &e, name, specs, spec);
            }
        }
        Term::Map(pairs) => {
            if let CqlType::Map(k, v) = ty.base() {
                for (a, b) in pairs {
                    walk(a, k, name, specs, spec);
                    walk(b, v, name, specs, spec);
                }
            }
        }
        Term::Tuple(items) => {
            if let CqlType::Tuple(ts) = ty.base() {
                for (i, t) in items.iter().zip(ts) {
                    walk(i, t, name, specs, spec);
                }
            }
        }
        Term::Udt(fields) => {
            if let CqlType::Udt { fields: defs, .. } = ty.base() {
                for (f, t) in fields {
                    if let Some((_, ft)) = defs.iter().find(|(n, _)| n == f) {
                        walk(t, ft, f, specs, spec);
                    }
                }
            }
        }
        Term::Func(_, args) => {
            for a in args {
                walk(a, &CqlType::Timestamp, name, specs, spec);
            }
        }
        Term::Cast(_, inner) => walk(inner, ty, name, specs, spec),
        _ => {}
    }
}

/// `[applied]` plus every column, for conditional statements.
pub fn lwt_columns(def: &TableDef) -> Vec<ColSpec> {
    let mut out = vec![ColSpec {
        ks: def.keyspace.clone(),
        table: def.name.clone(),
        name: "[applied]".into(),
        ty: CqlType::Boolean,
    }];
    out.extend(def.columns.iter().map(|c| ColSpec {
        ks: def.keyspace.clone(),
        table: def.name.clone(),
        name: c.name.clone(),
        ty: c.ty.clone(),
    }));
    out
}

fn keyspace_def(name: &str, options: &[(String, OptVal)]) -> Result<KeyspaceDef> {
    let mut replication = BTreeMap::new();
    let mut durable_writes = true;
    let mut saw_replication = false;
    for (k, v) in options {
        match (k.as_str(), v) {
            ("replication", OptVal::Map(m)) => {
                saw_replication = true;
                for (a, b) in m {
                    replication.insert(a.clone(), b.clone());
                }
            }
            ("durable_writes", v) => durable_writes = v.text() == "true",
            (k, _) => return Err(CqlError::syntax(format!("Unknown property '{k}'"))),
        }
    }
    if !saw_replication {
        return Err(CqlError::new(
            code::CONFIG_ERROR,
            "Missing mandatory option 'replication'",
        ));
    }
    let class = replication
        .get("class")
        .cloned()
        .ok_or_else(|| CqlError::new(code::CONFIG_ERROR, "Missing replication strategy class"))?;
    let short = class.rsplit('.').next().unwrap_or(&class).to_owned();
    match short.as_str() {
        "SimpleStrategy" => {
            let rf = replication.get("replication_factor").ok_or_else(|| {
                CqlError::new(
                    code::CONFIG_ERROR,
                    "SimpleStrategy requires a replication_factor strategy option.",
                )
            })?;
            if rf.parse::<u32>().is_err() {
                return Err(CqlError::new(
                    code::CONFIG_ERROR,
                    format!("Replication factor must be numeric; found {rf}"),
                ));
            }
        }
        "NetworkTopologyStrategy" | "LocalStrategy" | "EverywhereStrategy" => {
            if short == "NetworkTopologyStrategy" {
                // Our one data center is the one system.local and system.peers report.
                let unknown: Vec<&str> = replication
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !matches!(*k, "class" | "replication_factor" | "datacenter1"))
                    .collect();
                if !unknown.is_empty() {
                    return Err(CqlError::new(
                        code::CONFIG_ERROR,
                        format!("Unrecognized strategy option {{{}}} passed to NetworkTopologyStrategy for keyspace {name}", unknown.join(", ")),
                    ));
                }
                if replication.len() == 1 {
                    return Err(CqlError::new(
                        code::CONFIG_ERROR,
                        "Configuration for at least one datacenter must be present",
                    ));
                }
            }
            for (k, v) in &replication {
                if k != "class" && v.parse::<u32>().is_err() {
                    return Err(CqlError::new(
                        code::CONFIG_ERROR,
                        format!("Replication factor must be numeric; found {v}"),
                    ));
                }
            }
        }
        _ => {
            return Err(CqlError::new(
                code::CONFIG_ERROR,
                format!("Unable to find replication strategy class '{class}'"),
            ))
        }
    }
    replication.insert(
        "class".into(),
        format!("org.apache.cassandra.locator.{short}"),
    );
    Ok(KeyspaceDef {
        name: name.to_owned(),
        replication,
        durable_writes,
    })
}

const TABLE_OPTIONS: &[&str] = &[
    "bloom_filter_fp_chance",
    "caching",
    "cdc",
    "comment",
    "compaction",
    "compression",
    "crc_check_chance",
    "dclocal_read_repair_chance",
    "default_time_to_live",
    "gc_grace_seconds",
    "max_index_interval",
    "memtable_flush_period_in_ms",
    "min_index_interval",
    "read_repair_chance",
    "speculative_retry",
    "additional_write_policy",
    "read_repair",
    "extensions",
    "tablets",
    "id",
    "synchronous_updates",
    "paxos_grace_seconds",
];

fn apply_table_options(def: &mut TableDef, opts: &[(String, OptVal)]) -> Result<()> {
    for (k, v) in opts {
        if k == "compact_storage" {
            return Err(CqlError::invalid(
                "COMPACT STORAGE tables are not supported",
            ));
        }
        if !TABLE_OPTIONS.contains(&k.as_str()) {
            return Err(CqlError::syntax(format!("Unknown property '{k}'")));
        }
        if k == "default_time_to_live" {
            let ttl: i64 = v.text().parse().map_err(|_| {
                CqlError::syntax(format!(
                    "Invalid value for default_time_to_live: {}",
                    v.text()
                ))
            })?;
            if ttl < 0 {
                return Err(CqlError::new(
                    code::CONFIG_ERROR,
                    "default_time_to_live must be greater than or equal to 0 (got -1)"
                        .replace("-1", &ttl.to_string()),
                ));
            }
            if ttl > crate::dml::MAX_TTL as i64 {
                return Err(CqlError::new(
                    code::CONFIG_ERROR,
                    format!(
                        "default_time_to_live must be less than or equal to {} (got {ttl})",
                        crate::dml::MAX_TTL
                    ),
                ));
            }
            def.default_ttl = ttl as i32;
        }
        let text = match v {
            OptVal::Map(m) => serde_json::to_string(&m.iter().cloned().collect::<BTreeMap<_, _>>())
                .unwrap_or_default(),
            v => v.text(),
        };
        def.options.insert(k.clone(), text);
    }
    Ok(())
}

fn table_def(
    ks: &str,
    name: &str,
    cols: &[ColDef],
    pk: &Option<(Vec<String>, Vec<String>)>,
    clustering_order: &[(String, bool)],
    options: &[(String, OptVal)],
    udts: &HashMap<String, CqlType>,
) -> Result<TableDef> {
    let inline: Vec<&ColDef> = cols.iter().filter(|c| c.primary_key).collect();
    let (part, clust) = match (pk, inline.len()) {
        (Some(_), n) if n > 0 => {
            return Err(CqlError::invalid(
                "Multiple PRIMARY KEYs specified (exactly one required)",
            ))
        }
        (Some((p, c)), _) => (p.clone(), c.clone()),
        (None, 1) => (vec![inline[0].name.clone()], vec![]),
        (None, 0) => {
            return Err(CqlError::invalid(
                "No PRIMARY KEY specifed for table (exactly one required)",
            ))
        }
        (None, _) => {
            return Err(CqlError::invalid(
                "Multiple PRIMARY KEYs specified (exactly one required)",
            ))
        }
    };
    let mut def = TableDef {
        api: "cql".into(),
        keyspace: ks.to_owned(),
        name: name.to_owned(),
        id: uuid::Uuid::new_v4().to_string(),
        columns: Vec::new(),
        next_column_id: 1,
        default_ttl: 0,
        options: BTreeMap::new(),
        indexes: Vec::new(),
    };
    for c in cols {
        if def.col(&c.name).is_some() {
            return Err(CqlError::invalid(format!(
                "Multiple definition of identifier {}",
                c.name
            )));
        }
        let ty = types::parse_type(&c.ty, &|n| udts.get(n).cloned())?;
        let (kind, position) = if let Some(p) = part.iter().position(|p| p == &c.name) {
            (Kind::PartitionKey, p)
        } else if let Some(p) = clust.iter().position(|p| p == &c.name) {
            (Kind::Clustering, p)
        } else if c.is_static {
            (Kind::Static, 0)
        } else {
            (Kind::Regular, 0)
        };
        if c.is_static && matches!(kind, Kind::PartitionKey | Kind::Clustering) {
            return Err(CqlError::invalid(format!(
                "Static column {} cannot be part of the PRIMARY KEY",
                c.name
            )));
        }
        if matches!(kind, Kind::PartitionKey | Kind::Clustering) {
            if ty.is_multicell() {
                return Err(CqlError::invalid(format!(
                    "Invalid non-frozen collection type for PRIMARY KEY component {}",
                    c.name
                )));
            }
            if matches!(ty.base(), CqlType::Duration) {
                return Err(CqlError::invalid(format!(
                    "duration type is not supported for PRIMARY KEY column '{}'",
                    c.name
                )));
            }
            if ty.is_counter() {
                return Err(CqlError::invalid(format!(
                    "counter type is not supported for PRIMARY KEY column '{}'",
                    c.name
                )));
            }
        }
        let id = def.next_column_id;
        def.next_column_id += 1;
        def.columns.push(Column {
            name: c.name.clone(),
            id,
            ty,
            kind,
            position,
            desc: false,
        });
    }
    for k in part.iter().chain(clust.iter()) {
        if def.col(k).is_none() {
            return Err(CqlError::invalid(format!(
                "Unknown definition {k} referenced in PRIMARY KEY"
            )));
        }
    }
    if part
        .iter()
        .chain(clust.iter())
        .collect::<std::collections::HashSet<_>>()
        .len()
        != part.len() + clust.len()
    {
        return Err(CqlError::invalid("duplicate column in PRIMARY KEY"));
    }
    if clust.is_empty() && def.has_statics() {
        return Err(CqlError::invalid("Static columns are only useful (and thus allowed) if the table has at least one clustering column"));
    }
    let counters = def.columns.iter().filter(|c| c.ty.is_counter()).count();
    let others = def
        .columns
        .iter()
        .filter(|c| matches!(c.kind, Kind::Regular | Kind::Static) && !c.ty.is_counter())
        .count();
    if counters > 0 && others > 0 {
        return Err(CqlError::invalid(
            "Cannot mix counter and non counter columns in the same table",
        ));
    }
    if !clustering_order.is_empty() {
        for (i, (c, desc)) in clustering_order.iter().enumerate() {
            match clust.iter().position(|x| x == c) {
                None => return Err(CqlError::invalid(format!("Only clustering key columns can be defined in CLUSTERING ORDER directive: {c} is not a clustering column"))),
                Some(p) if p != i => return Err(CqlError::invalid("The order of columns in the CLUSTERING ORDER directive must match that of the clustering columns")),
                Some(_) => {}
            }
            for col in &mut def.columns {
                if &col.name == c {
                    col.desc = *desc;
                }
            }
        }
        if clustering_order.len() < clust.len() {
            return Err(CqlError::invalid(
                "Missing CLUSTERING ORDER for column ".to_owned() + &clust[clustering_order.len()],
            ));
        }
    }
    apply_table_options(&mut def, options)?;
    if def.default_ttl > 0 && counters > 0 {
        return Err(CqlError::invalid(
            "Cannot set default_time_to_live on a table with counters",
        ));
    }
    def.sort_columns();
    Ok(def)
}
