//! DDL: CREATE TABLE (columns, types, PRIMARY KEY, NOT NULL, DEFAULT, CHECK, UNIQUE,
//! SERIAL), ALTER TABLE, DROP TABLE, CREATE [UNIQUE] / DROP INDEX (with their index tables,
//! see [`crate::index`]), and turning parsed names into catalog names.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    self, ColumnOption, ObjectName, ObjectNamePart, TableConstraint,
};

use crate::catalog::{
    index_storage_name, Catalog, ColumnDef, FkAction, ForeignKeyDef, IndexDef, Reference, Resolved,
    TableDef,
};
use crate::error::{SqlError, SqlResult};
use crate::types::SqlType;

/// An identifier as PostgreSQL folds it: unquoted names are lower-cased.
pub fn ident(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// `(schema, table)` of a possibly qualified name (`db.schema.table` keeps the last two).
pub fn table_name(name: &ObjectName) -> SqlResult<(String, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Ok(ident(i)),
            ObjectNamePart::Function(_) => Err(SqlError::syntax(format!("invalid name {name}"))),
        })
        .collect::<SqlResult<_>>()?;
    match parts.as_slice() {
        [t] => Ok(("public".into(), t.clone())),
        [.., s, t] => Ok((s.clone(), t.clone())),
        [] => Err(SqlError::syntax("empty name")),
    }
}

/// The column named by a key/constraint entry.
fn index_column(c: &ast::IndexColumn) -> SqlResult<(String, Option<bool>)> {
    match &c.column.expr {
        ast::Expr::Identifier(i) => Ok((ident(i), c.column.options.asc)),
        other => Err(SqlError::unsupported(format!("key expression {other}"))),
    }
}

/// A UNIQUE constraint to create: its name if given, and its columns.
type UniqueSpec = (Option<String>, Vec<String>);

/// A column of `def` from its AST; true if it is declared PRIMARY KEY. Takes the next
/// column id (CHECKs go to `def.checks`, a UNIQUE to `uniques`).
fn column_def(
    def: &mut TableDef,
    table: &str,
    c: &ast::ColumnDef,
    uniques: &mut Vec<UniqueSpec>,
    fks: &mut Vec<ast::ForeignKeyConstraint>,
) -> SqlResult<(ColumnDef, bool)> {
    let cname = ident(&c.name);
    let (ty, len) = SqlType::from_ast(&c.data_type)?;
    let type_text = c.data_type.to_string().to_ascii_lowercase();
    let serial = matches!(
        type_text.as_str(),
        "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2"
    );
    let mut col = ColumnDef {
        id: def.next_column_id,
        name: cname.clone(),
        ty,
        len,
        nullable: !serial,
        default: serial.then(|| format!("nextval('{table}_{cname}_seq')")),
    };
    def.next_column_id += 1;
    let mut is_pk = false;
    for opt in &c.options {
        match &opt.option {
            ColumnOption::Null => col.nullable = true,
            ColumnOption::NotNull => col.nullable = false,
            ColumnOption::Default(e) => col.default = Some(e.to_string()),
            ColumnOption::PrimaryKey(_) => {
                col.nullable = false;
                is_pk = true;
            }
            ColumnOption::Unique(u) => uniques.push((
                u.name.as_ref().or(opt.name.as_ref()).map(ident),
                vec![cname.clone()],
            )),
            ColumnOption::Check(chk) => def.add_check(
                chk.expr.to_string(),
                chk.name.as_ref().or(opt.name.as_ref()).map(ident),
            ),
            ColumnOption::Identity(_) | ColumnOption::Generated { .. } => {
                col.nullable = false;
                col.default = Some(format!("nextval('{table}_{cname}_seq')"));
            }
            ColumnOption::ForeignKey(fk) => {
                let mut fk = fk.clone();
                fk.columns = vec![c.name.clone()];
                if fk.name.is_none() {
                    fk.name = opt.name.clone();
                }
                fks.push(fk);
            }
            ColumnOption::Comment(_) => {}
            other => return Err(SqlError::unsupported(format!("column option {other}"))),
        }
    }
    Ok((col, is_pk))
}

/// CREATE TABLE.
/// CREATE TABLE; false if the relation existed and IF NOT EXISTS was given.
pub async fn create_table(catalog: &Catalog, db: &str, ct: &ast::CreateTable) -> SqlResult<bool> {
    let (schema, name) = table_name(&ct.name)?;
    if ct.query.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE ... AS"));
    }
    if catalog.view(db, &schema, &name).await?.is_some() {
        if ct.if_not_exists {
            return Ok(false);
        }
        return Err(SqlError::new(
            "42P07",
            format!("relation \"{name}\" already exists"),
        ));
    }
    let mut def = TableDef {
        schema,
        name: name.clone(),
        next_column_id: 1,
        ..Default::default()
    };
    let mut pk_names: Vec<(String, Option<bool>)> = Vec::new();
    let mut uniques = Vec::new();
    let mut fks = Vec::new();
    for c in &ct.columns {
        let cname = ident(&c.name);
        if def.column(&cname).is_some() {
            return Err(SqlError::new(
                "42701",
                format!("column \"{cname}\" specified more than once"),
            ));
        }
        let (col, is_pk) = column_def(&mut def, &name, c, &mut uniques, &mut fks)?;
        if is_pk {
            pk_names.push((cname.clone(), None));
        }
        def.columns.push(col);
    }
    for c in &ct.constraints {
        match c {
            TableConstraint::PrimaryKey(pk) => {
                if !pk_names.is_empty() {
                    return Err(SqlError::new(
                        "42P16",
                        format!("multiple primary keys for table \"{name}\" are not allowed"),
                    ));
                }
                for ic in &pk.columns {
                    pk_names.push(index_column(ic)?);
                }
            }
            TableConstraint::Check(chk) => {
                def.add_check(chk.expr.to_string(), chk.name.as_ref().map(ident))
            }
            TableConstraint::Unique(u) => uniques.push(unique_spec(u)?),
            TableConstraint::ForeignKey(fk) => fks.push(fk.clone()),
            other => return Err(SqlError::unsupported(format!("constraint {other}"))),
        }
    }
    let mut range = false;
    for (i, (n, asc)) in pk_names.iter().enumerate() {
        let idx = def.column(n).ok_or_else(|| {
            SqlError::new(
                "42703",
                format!("column \"{n}\" named in key does not exist"),
            )
        })?;
        if i == 0 && asc.is_some() {
            range = true;
        }
        def.columns[idx].nullable = false;
        def.pk.push(idx);
    }
    let siblings = tables_in(catalog, db, &def.schema).await?;
    for (given, cols) in uniques {
        let taken = |n: &str| {
            def.owns_relation(n)
                || (!def.pk.is_empty() && n == format!("{name}_pkey"))
                || siblings.iter().any(|t| t.def.owns_relation(n))
        };
        let ix = unique_index(&def, given, &cols, &taken)?;
        def.indexes.push(ix);
    }
    for fk in &fks {
        let (pschema, pname) = table_name(&fk.foreign_table)?;
        let fk = if pschema == def.schema && pname == def.name {
            let f = foreign_key(&def, fk, &def, &[])?;
            def.referenced_by.push(Reference {
                schema: def.schema.clone(),
                table: def.name.clone(),
                constraint: f.name.clone(),
            });
            f
        } else {
            let parent = catalog.require(db, &pschema, &pname).await?;
            foreign_key(&def, fk, &parent.def, &parent.indexes)?
        };
        def.foreign_keys.push(fk);
    }
    if !catalog
        .create_table(db, &def, range, ct.if_not_exists)
        .await?
    {
        return Ok(false);
    }
    for fk in &def.foreign_keys {
        if fk.parent_schema != def.schema || fk.parent_table != def.name {
            add_reference(catalog, db, &def, fk).await?;
        }
    }
    // The new table has no rows: its index tables start empty.
    for ix in &def.indexes {
        if let Some(storage) = &ix.storage {
            if let Err(e) = catalog.create_index_table(db, storage).await {
                let _ = catalog.drop_table(db, &def.schema, &name).await;
                let _ = catalog.drop_index_tables(db, &def.indexes).await;
                return Err(e);
            }
        }
    }
    Ok(true)
}

/// The definition of FOREIGN KEY `fk` of table `def`, referencing table `parent` (whose
/// indexes with index tables are `parent_indexes`): the referenced columns must be its
/// primary key or a unique index's columns, in order (42830).
fn foreign_key(
    def: &TableDef,
    fk: &ast::ForeignKeyConstraint,
    parent: &TableDef,
    parent_indexes: &[crate::index::IndexTable],
) -> SqlResult<ForeignKeyDef> {
    let mut columns = Vec::new();
    let mut names = Vec::new();
    for c in &fk.columns {
        let n = ident(c);
        let pos = def.column(&n).ok_or_else(|| {
            SqlError::new(
                "42703",
                format!("column \"{n}\" referenced in foreign key constraint does not exist"),
            )
        })?;
        columns.push(def.columns[pos].id);
        names.push(n);
    }
    let parent_columns: Vec<String> = if fk.referred_columns.is_empty() {
        if parent.pk.is_empty() {
            return Err(SqlError::new(
                "42830",
                format!(
                    "there is no primary key for referenced table \"{}\"",
                    parent.name
                ),
            ));
        }
        parent
            .pk
            .iter()
            .map(|&i| parent.columns[i].name.clone())
            .collect()
    } else {
        fk.referred_columns.iter().map(ident).collect()
    };
    if parent_columns.len() != columns.len() {
        return Err(SqlError::new(
            "42830",
            "number of referencing and referenced columns for foreign key disagree",
        ));
    }
    let mut pcols = Vec::new();
    for n in &parent_columns {
        pcols.push(parent.column(n).ok_or_else(|| {
            SqlError::new(
                "42703",
                format!("column \"{n}\" referenced in foreign key constraint does not exist"),
            )
        })?);
    }
    let unique = pcols == parent.pk
        || parent_indexes.iter().any(|ix| {
            ix.def.unique && ix.columns.iter().map(|(c, _)| *c).eq(pcols.iter().copied())
        })
        || (parent.name == def.name
            && parent.indexes.iter().any(|ix| {
                ix.unique
                    && ix
                        .columns
                        .iter()
                        .map(|(id, _)| parent.position_of(*id))
                        .eq(pcols.iter().map(|&p| Some(p)))
            }));
    if !unique {
        return Err(SqlError::new(
            "42830",
            format!(
                "there is no unique constraint matching given keys for referenced table \"{}\"",
                parent.name
            ),
        ));
    }
    let action = |a: &Option<ast::ReferentialAction>, on: &str| match a {
        None | Some(ast::ReferentialAction::NoAction | ast::ReferentialAction::Restrict) => {
            Ok(FkAction::NoAction)
        }
        Some(ast::ReferentialAction::Cascade) if on == "DELETE" => Ok(FkAction::Cascade),
        Some(ast::ReferentialAction::SetNull) if on == "DELETE" => Ok(FkAction::SetNull),
        Some(other) => Err(SqlError::unsupported(format!("ON {on} {other}"))),
    };
    let taken = |n: &str| def.foreign_keys.iter().any(|f| f.name == n);
    let name = match &fk.name {
        Some(n) => ident(n),
        None => free_name(&format!("{}_{}_fkey", def.name, names.join("_")), &taken),
    };
    Ok(ForeignKeyDef {
        name,
        columns,
        parent_schema: parent.schema.clone(),
        parent_table: parent.name.clone(),
        parent_columns,
        on_delete: action(&fk.on_delete, "DELETE")?,
        on_update: action(&fk.on_update, "UPDATE")?,
    })
}

/// Record in the parent's definition that foreign key `fk` of `child` references it
/// (retried if a concurrent change to the parent wins).
async fn add_reference(
    catalog: &Catalog,
    db: &str,
    child: &TableDef,
    fk: &ForeignKeyDef,
) -> SqlResult<()> {
    change_parent(catalog, db, &fk.parent_schema, &fk.parent_table, |p| {
        p.referenced_by.push(Reference {
            schema: child.schema.clone(),
            table: child.name.clone(),
            constraint: fk.name.clone(),
        })
    })
    .await
}

/// Apply `f` to the definition of table `schema.name` (compare-and-set, retried).
async fn change_parent(
    catalog: &Catalog,
    db: &str,
    schema: &str,
    name: &str,
    f: impl Fn(&mut TableDef),
) -> SqlResult<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        catalog.invalidate(db);
        let Some(r) = catalog.table(db, schema, name).await? else {
            return Ok(());
        };
        let mut def = (*r.def).clone();
        f(&mut def);
        match catalog.replace_def(db, &r, &def).await {
            Err(e) if e.code == "40001" && attempt < 10 => continue,
            r => return r,
        }
    }
}

/// ALTER TABLE ADD FOREIGN KEY: every stored row must find its parent (23503).
async fn validate_foreign_key(
    catalog: &Catalog,
    child: &Resolved,
    parent: &Resolved,
    fk: &ForeignKeyDef,
) -> SqlResult<()> {
    let access = crate::access::Access::new(catalog.client.clone());
    let cols: Vec<usize> = fk
        .columns
        .iter()
        .filter_map(|id| child.def.position_of(*id))
        .collect();
    for (_, raw) in catalog.client.scan_all(&child.table).await? {
        let row = crate::row::decode_value(&child.def, &raw)?;
        if cols.iter().any(|&c| row[c].is_null()) {
            continue;
        }
        let values: Vec<_> = cols.iter().map(|&c| row[c].clone()).collect();
        if crate::foreign::find_parent(&access, parent, fk, &values)
            .await?
            .is_none()
        {
            return Err(SqlError::new(
                "23503",
                format!(
                    "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                    child.def.name, fk.name
                ),
            )
            .with_detail(format!(
                "{} is not present in table \"{}\".",
                crate::row::key_detail(&child.def, &row, &cols),
                fk.parent_table
            )));
        }
    }
    Ok(())
}

/// The columns of a table UNIQUE constraint.
fn unique_spec(u: &ast::UniqueConstraint) -> SqlResult<UniqueSpec> {
    let cols = u
        .columns
        .iter()
        .map(|c| index_column(c).map(|(n, _)| n))
        .collect::<SqlResult<_>>()?;
    Ok((u.name.as_ref().map(ident), cols))
}

/// The index of a UNIQUE constraint on `cols` of `def`: named `given`, or as PostgreSQL
/// names it (`<table>_<columns>_key`, then `key1`, `key2` ... while `taken`).
fn unique_index(
    def: &TableDef,
    given: Option<String>,
    cols: &[String],
    taken: &dyn Fn(&str) -> bool,
) -> SqlResult<IndexDef> {
    let mut columns = Vec::new();
    for n in cols {
        let pos = def.column(n).ok_or_else(|| {
            SqlError::new(
                "42703",
                format!("column \"{n}\" named in key does not exist"),
            )
        })?;
        columns.push((def.columns[pos].id, false));
    }
    let name = match given {
        Some(n) => {
            if taken(&n) {
                return Err(SqlError::new(
                    "42P07",
                    format!("relation \"{n}\" already exists"),
                ));
            }
            n
        }
        None => free_name(&format!("{}_{}_key", def.name, cols.join("_")), taken),
    };
    Ok(IndexDef {
        storage: Some(index_storage_name(&def.schema, &def.name, &name)),
        name,
        columns,
        unique: true,
        constraint: true,
    })
}

/// `base`, or `base1`, `base2` ... the first one not `taken`.
fn free_name(base: &str, taken: &dyn Fn(&str) -> bool) -> String {
    let mut name = base.to_owned();
    let mut n = 0;
    while taken(&name) {
        n += 1;
        name = format!("{base}{n}");
    }
    name
}

/// Add index `ix` (its `storage` set) to table `r` of `db`: create its index table, record
/// it in the definition, let every server's writers see it, then build its entries from
/// the rows stored. If the build fails (a duplicate of a unique index: 23505), the index is
/// removed again.
pub async fn add_index(catalog: &Catalog, db: &str, r: &Resolved, ix: IndexDef) -> SqlResult<()> {
    let Some(storage) = ix.storage.clone() else {
        return Err(SqlError::internal("an index without an index table"));
    };
    catalog.create_index_table(db, &storage).await?;
    let mut def = (*r.def).clone();
    def.indexes.push(ix.clone());
    if let Err(e) = catalog.replace_def(db, r, &def).await {
        let _ = catalog.drop_index_tables(db, &[ix]).await;
        return Err(e);
    }
    // Servers trust a cached definition for CACHE_TTL: after that every writer maintains
    // the index, so no row written from now on is missed by the build below.
    let servers = catalog.client.list_servers().await?;
    if servers.servers.iter().filter(|s| s.alive).count() > 1 {
        tokio::time::sleep(crate::catalog::CACHE_TTL + std::time::Duration::from_millis(200)).await;
    }
    let index_table = catalog.client.open_table(db, &storage).await?;
    let built = crate::index::IndexTable::new(&def, ix.clone(), index_table);
    if let Err(e) = crate::index::build(&catalog.client, &def, &r.table, &built).await {
        if let Some(now) = catalog.table(db, &def.schema, &def.name).await? {
            let mut undone = (*now.def).clone();
            undone.indexes.retain(|x| x.name != ix.name);
            catalog.replace_def(db, &now, &undone).await?;
        }
        let _ = catalog.drop_index_tables(db, &[ix]).await;
        return Err(e);
    }
    Ok(())
}

/// ALTER TABLE: add / drop / rename columns, rename the table, SET/DROP NOT NULL and
/// DEFAULT, and ADD PRIMARY KEY (which rewrites the table under the new key).
pub async fn alter_table(catalog: &Catalog, db: &str, at: &ast::AlterTable) -> SqlResult<()> {
    let (schema, name) = table_name(&at.name)?;
    let r = match catalog.table(db, &schema, &name).await? {
        Some(r) => r,
        None if at.if_exists => return Ok(()),
        None => return Err(SqlError::no_table(&name)),
    };
    let mut def = (*r.def).clone();
    let mut rename_to = None;
    let mut new_pk: Option<Vec<String>> = None;
    let mut new_uniques: Vec<UniqueSpec> = Vec::new();
    let mut new_fks: Vec<ast::ForeignKeyConstraint> = Vec::new();
    for op in &at.operations {
        use ast::AlterTableOperation as Op;
        match op {
            Op::AddColumn {
                column_def: c,
                if_not_exists,
                ..
            } => {
                let cname = ident(&c.name);
                if def.column(&cname).is_some() {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(SqlError::new(
                        "42701",
                        format!("column \"{cname}\" of relation \"{name}\" already exists"),
                    ));
                }
                let (col, is_pk) = column_def(&mut def, &name, c, &mut new_uniques, &mut new_fks)?;
                def.columns.push(col);
                if is_pk {
                    new_pk = Some(vec![cname]);
                }
            }
            Op::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                for c in column_names {
                    let cname = ident(c);
                    let Some(idx) = def.column(&cname) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(SqlError::new(
                            "42703",
                            format!("column \"{cname}\" of relation \"{name}\" does not exist"),
                        ));
                    };
                    if def.pk.contains(&idx) {
                        return Err(SqlError::unsupported("dropping a primary key column"));
                    }
                    def.drop_dependents_of(&cname);
                    def.columns.remove(idx);
                    for p in def.pk.iter_mut() {
                        if *p > idx {
                            *p -= 1;
                        }
                    }
                }
            }
            Op::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let (old, new) = (ident(old_column_name), ident(new_column_name));
                if def.column(&new).is_some() {
                    return Err(SqlError::new(
                        "42701",
                        format!("column \"{new}\" of relation \"{name}\" already exists"),
                    ));
                }
                let idx = def.column(&old).ok_or_else(|| SqlError::no_column(&old))?;
                def.columns[idx].name = new;
            }
            Op::RenameTable { table_name: t } => {
                let (ast::RenameTableNameKind::As(n) | ast::RenameTableNameKind::To(n)) = t;
                rename_to = Some(table_name(n)?.1);
            }
            Op::AddConstraint { constraint, .. } => match constraint {
                TableConstraint::PrimaryKey(pk) => {
                    if !def.pk.is_empty() || new_pk.is_some() {
                        return Err(SqlError::new(
                            "42P16",
                            format!("multiple primary keys for table \"{name}\" are not allowed"),
                        ));
                    }
                    new_pk = Some(
                        pk.columns
                            .iter()
                            .map(|c| index_column(c).map(|(n, _)| n))
                            .collect::<SqlResult<_>>()?,
                    );
                }
                TableConstraint::Check(chk) => {
                    def.add_check(chk.expr.to_string(), chk.name.as_ref().map(ident))
                }
                TableConstraint::Unique(u) => new_uniques.push(unique_spec(u)?),
                TableConstraint::ForeignKey(fk) => new_fks.push(fk.clone()),
                other => return Err(SqlError::unsupported(format!("constraint {other}"))),
            },
            Op::AlterColumn { column_name, op } => {
                let cname = ident(column_name);
                let idx = def
                    .column(&cname)
                    .ok_or_else(|| SqlError::no_column(&cname))?;
                match op {
                    ast::AlterColumnOperation::SetNotNull => def.columns[idx].nullable = false,
                    ast::AlterColumnOperation::DropNotNull => {
                        if def.pk.contains(&idx) {
                            return Err(SqlError::new(
                                "42P16",
                                format!("column \"{cname}\" is in a primary key"),
                            ));
                        }
                        def.columns[idx].nullable = true
                    }
                    ast::AlterColumnOperation::SetDefault { value } => {
                        def.columns[idx].default = Some(value.to_string())
                    }
                    ast::AlterColumnOperation::DropDefault => def.columns[idx].default = None,
                    other => return Err(SqlError::unsupported(format!("ALTER COLUMN {other}"))),
                }
            }
            other => return Err(SqlError::unsupported(format!("ALTER TABLE {other}"))),
        }
    }
    if let Some(pk) = new_pk {
        let mut idxs = Vec::new();
        for n in &pk {
            let idx = def.column(n).ok_or_else(|| {
                SqlError::new(
                    "42703",
                    format!("column \"{n}\" named in key does not exist"),
                )
            })?;
            def.columns[idx].nullable = false;
            idxs.push(idx);
        }
        def.pk = idxs;
        rewrite(catalog, db, &r, def.clone()).await?;
    } else if def.columns.len() != r.def.columns.len()
        || serde_json::to_vec(&def).ok() != serde_json::to_vec(r.def.as_ref()).ok()
    {
        catalog.replace_def(db, &r, &def).await?;
    }
    // The index tables of indexes dropped with their columns.
    let dropped: Vec<IndexDef> = r
        .def
        .indexes
        .iter()
        .filter(|ix| !def.indexes.iter().any(|x| x.name == ix.name))
        .cloned()
        .collect();
    catalog.drop_index_tables(db, &dropped).await?;
    if !new_uniques.is_empty() {
        for (given, cols) in new_uniques {
            let now = catalog.require(db, &schema, &name).await?;
            let siblings = tables_in(catalog, db, &schema).await?;
            let taken = |n: &str| siblings.iter().any(|t| t.def.owns_relation(n));
            let ix = unique_index(&now.def, given, &cols, &taken)?;
            add_index(catalog, db, &now, ix).await?;
        }
        def = (*catalog.require(db, &schema, &name).await?.def).clone();
    }
    for fk in new_fks {
        let now = catalog.require(db, &schema, &name).await?;
        let (pschema, pname) = table_name(&fk.foreign_table)?;
        let parent = catalog.require(db, &pschema, &pname).await?;
        let f = foreign_key(&now.def, &fk, &parent.def, &parent.indexes)?;
        validate_foreign_key(catalog, &now, &parent, &f).await?;
        let mut changed = (*now.def).clone();
        changed.foreign_keys.push(f.clone());
        catalog.replace_def(db, &now, &changed).await?;
        add_reference(catalog, db, &changed, &f).await?;
        def = (*catalog.require(db, &schema, &name).await?.def).clone();
    }
    if let Some(new_name) = rename_to {
        def.name = new_name;
        catalog
            .alter(
                db,
                &format!("{schema}.{name}"),
                Some(def.storage_name()),
                Some(&def),
                None,
            )
            .await?;
    }
    Ok(())
}

/// Rewrite table `r` under definition `def` (a new key): copy its rows into a scratch
/// table, then swap names. A crash midway leaves the old table in place (or, after the
/// first rename, under `<name>__old_<id>`); rows are never lost.
async fn rewrite(
    catalog: &Catalog,
    db: &str,
    r: &crate::catalog::Resolved,
    def: TableDef,
) -> SqlResult<()> {
    use client::{Condition, KvOp};
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let scratch = format!("{}.{}__rewrite_{}", def.schema, def.name, &tag[..8]);
    catalog
        .create_table_as(db, &def, &scratch, false, false)
        .await?;
    let new_table = catalog.client.open_table(db, &scratch).await?;
    let kvs = catalog.client.scan_all(&r.table).await?;
    let mut groups: std::collections::BTreeMap<usize, Vec<KvOp>> = Default::default();
    let mut failure = None;
    for (_, v) in kvs {
        let row = crate::row::decode_value(&r.def, &v)?;
        if let Some(&i) = def.pk.iter().find(|&&i| row[i].is_null()) {
            failure = Some(SqlError::new(
                "23502",
                format!(
                    "column \"{}\" of relation \"{}\" contains null values",
                    def.columns[i].name, def.name
                ),
            ));
            break;
        }
        let key = crate::row::encode_key(&def, &row);
        groups
            .entry(new_table.tablet_for(&key))
            .or_default()
            .push(KvOp {
                value: crate::row::encode_value(&def, &row),
                key,
                condition: Condition::IfAbsent as i32,
                ..Default::default()
            });
    }
    if failure.is_none() {
        'groups: for (_, ops) in groups {
            for chunk in ops.chunks(1000) {
                let key = chunk[0].key.clone();
                if !catalog
                    .client
                    .write(&new_table, &key, chunk.to_vec())
                    .await?
                    .applied
                {
                    failure = Some(SqlError::new(
                        "23505",
                        format!(
                            "could not create unique index \"{}_pkey\": key is duplicated",
                            def.name
                        ),
                    ));
                    break 'groups;
                }
            }
        }
    }
    if let Some(e) = failure {
        let _ = catalog.client.delete_table(db, &scratch).await;
        return Err(e);
    }
    let old = r.def.storage_name();
    let retired = format!("{old}__old_{}", &tag[..8]);
    catalog
        .alter(db, &old, Some(retired.clone()), None, None)
        .await?;
    catalog
        .alter(db, &scratch, Some(def.storage_name()), Some(&def), None)
        .await?;
    catalog.client.delete_table(db, &retired).await?;
    catalog.invalidate(db);
    // Rows have new storage keys: the index entries are built again.
    if let Some(now) = catalog.table(db, &def.schema, &def.name).await? {
        for ix in &now.indexes {
            let stale = catalog.client.scan_all(&ix.table).await?;
            for chunk in stale.chunks(1000) {
                let ops: Vec<KvOp> = chunk
                    .iter()
                    .map(|(k, _)| KvOp {
                        key: k.clone(),
                        delete: true,
                        ..Default::default()
                    })
                    .collect();
                catalog.client.write(&ix.table, &chunk[0].0, ops).await?;
            }
            crate::index::build(&catalog.client, &now.def, &now.table, ix).await?;
        }
    }
    Ok(())
}

/// The tables of schema `schema` of `db`.
async fn tables_in(catalog: &Catalog, db: &str, schema: &str) -> SqlResult<Vec<Arc<Resolved>>> {
    let mut out = Vec::new();
    for (s, t) in catalog.table_names(db).await? {
        if s == schema {
            out.extend(catalog.table(db, &s, &t).await?);
        }
    }
    Ok(out)
}

/// CREATE INDEX: recorded in the table's definition (see [`crate::catalog::IndexDef`]).
/// Returns the name when IF NOT EXISTS found it taken (and nothing was done).
pub async fn create_index(
    catalog: &Catalog,
    db: &str,
    ci: &ast::CreateIndex,
) -> SqlResult<Option<String>> {
    if ci.predicate.is_some() {
        return Err(SqlError::unsupported(
            "a partial index (CREATE INDEX ... WHERE)",
        ));
    }
    if !ci.include.is_empty() {
        return Err(SqlError::unsupported("CREATE INDEX ... INCLUDE"));
    }
    let (schema, table) = table_name(&ci.table_name)?;
    let r = catalog
        .table(db, &schema, &table)
        .await?
        .ok_or_else(|| SqlError::no_table(&table))?;
    let def = &r.def;
    let mut columns = Vec::new();
    let mut names = Vec::new();
    for ic in &ci.columns {
        let (cname, asc) = index_column(ic)?;
        let pos = def
            .column(&cname)
            .ok_or_else(|| SqlError::new("42703", format!("column \"{cname}\" does not exist")))?;
        columns.push((def.columns[pos].id, asc == Some(false)));
        names.push(cname);
    }
    let siblings = tables_in(catalog, db, &schema).await?;
    let taken = |n: &str| siblings.iter().any(|t| t.def.owns_relation(n));
    let name = match &ci.name {
        Some(n) => table_name(n)?.1,
        None => {
            // PostgreSQL's default: <table>_<columns>_idx, then _idx1, _idx2, ...
            free_name(&format!("{table}_{}_idx", names.join("_")), &taken)
        }
    };
    if taken(&name) {
        if ci.if_not_exists {
            return Ok(Some(name));
        }
        return Err(SqlError::new(
            "42P07",
            format!("relation \"{name}\" already exists"),
        ));
    }
    let ix = IndexDef {
        storage: Some(index_storage_name(&schema, &table, &name)),
        name,
        columns,
        unique: ci.unique,
        constraint: false,
    };
    add_index(catalog, db, &r, ix).await.map(|_| None)
}

/// DROP INDEX a, b [IF EXISTS]; returns the names IF EXISTS skipped.
pub async fn drop_indexes(
    catalog: &Catalog,
    db: &str,
    names: &[ObjectName],
    if_exists: bool,
) -> SqlResult<Vec<String>> {
    let mut skipped = Vec::new();
    'names: for n in names {
        let (schema, index) = table_name(n)?;
        for r in tables_in(catalog, db, &schema).await? {
            let t = &r.def.name;
            if !r.def.pk.is_empty() && index == format!("{t}_pkey") {
                return Err(SqlError::new(
                    "2BP01",
                    format!(
                        "cannot drop index {index} because constraint {index} on table {t} requires it"
                    ),
                ));
            }
            if let Some(i) = r.def.indexes.iter().position(|x| x.name == index) {
                if r.def.indexes[i].constraint {
                    return Err(SqlError::new(
                        "2BP01",
                        format!(
                            "cannot drop index {index} because constraint {index} on table {t} requires it"
                        ),
                    ));
                }
                let mut def = (*r.def).clone();
                let removed = def.indexes.remove(i);
                catalog.replace_def(db, &r, &def).await?;
                catalog.drop_index_tables(db, &[removed]).await?;
                continue 'names;
            }
        }
        if !if_exists {
            return Err(SqlError::new(
                "42704",
                format!("index \"{index}\" does not exist"),
            ));
        }
        skipped.push(index);
    }
    Ok(skipped)
}

/// DROP TABLE [IF EXISTS] a, b: the names skipped because they did not exist.
pub async fn drop_tables(
    catalog: &Catalog,
    db: &str,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> SqlResult<Vec<String>> {
    let mut skipped = Vec::new();
    let dropping: Vec<(String, String)> = names.iter().map(table_name).collect::<SqlResult<_>>()?;
    for n in names {
        let (schema, name) = table_name(n)?;
        if catalog.view(db, &schema, &name).await?.is_some() {
            return Err(SqlError::new("42809", format!("\"{name}\" is not a table")));
        }
        let def = catalog
            .table(db, &schema, &name)
            .await?
            .map(|r| r.def.clone());
        if let Some(def) = &def {
            // Foreign keys of other tables that reference this one.
            let others: Vec<&Reference> = def
                .referenced_by
                .iter()
                .filter(|r| !dropping.contains(&(r.schema.clone(), r.table.clone())))
                .collect();
            if let (Some(r), false) = (others.first(), cascade) {
                return Err(SqlError::new(
                    "2BP01",
                    format!(
                        "cannot drop table {name} because other objects depend on it (constraint {} on table {})",
                        r.constraint, r.table
                    ),
                ));
            }
            for r in others {
                change_parent(catalog, db, &r.schema, &r.table, |c| {
                    c.foreign_keys.retain(|f| f.name != r.constraint)
                })
                .await?;
            }
        }
        if catalog.drop_table(db, &schema, &name).await? {
            if let Some(def) = def {
                catalog.drop_index_tables(db, &def.indexes).await?;
                for fk in &def.foreign_keys {
                    change_parent(catalog, db, &fk.parent_schema, &fk.parent_table, |p| {
                        p.referenced_by
                            .retain(|r| !(r.table == def.name && r.schema == def.schema))
                    })
                    .await?;
                }
            }
        } else {
            if !if_exists {
                return Err(SqlError::no_table(&name));
            }
            skipped.push(name);
        }
    }
    Ok(skipped)
}
