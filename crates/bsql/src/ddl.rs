//! DDL: CREATE TABLE (columns, types, PRIMARY KEY, NOT NULL, DEFAULT, CHECK, SERIAL),
//! DROP TABLE, CREATE DATABASE / SCHEMA, and turning parsed names into catalog names.

use datafusion::sql::sqlparser::ast::{
    self, ColumnOption, ObjectName, ObjectNamePart, TableConstraint,
};

use crate::catalog::{Catalog, ColumnDef, TableDef};
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

/// CREATE TABLE.
pub async fn create_table(catalog: &Catalog, db: &str, ct: &ast::CreateTable) -> SqlResult<()> {
    let (schema, name) = table_name(&ct.name)?;
    if ct.query.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE ... AS"));
    }
    let mut def = TableDef {
        schema,
        name: name.clone(),
        columns: Vec::new(),
        pk: Vec::new(),
        next_column_id: 1,
        checks: Vec::new(),
    };
    let mut pk_names: Vec<(String, Option<bool>)> = Vec::new();
    for c in &ct.columns {
        let cname = ident(&c.name);
        if def.column(&cname).is_some() {
            return Err(SqlError::new(
                "42701",
                format!("column \"{cname}\" specified more than once"),
            ));
        }
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
            default: serial.then(|| format!("nextval('{name}_{cname}_seq')")),
        };
        def.next_column_id += 1;
        for opt in &c.options {
            match &opt.option {
                ColumnOption::Null => col.nullable = true,
                ColumnOption::NotNull => col.nullable = false,
                ColumnOption::Default(e) => col.default = Some(e.to_string()),
                ColumnOption::PrimaryKey(_) => {
                    col.nullable = false;
                    pk_names.push((cname.clone(), None));
                }
                ColumnOption::Unique(_) => {}
                ColumnOption::Check(chk) => def.checks.push(chk.expr.to_string()),
                ColumnOption::Identity(_) | ColumnOption::Generated { .. } => {
                    col.nullable = false;
                    col.default = Some(format!("nextval('{name}_{cname}_seq')"));
                }
                ColumnOption::ForeignKey(_) | ColumnOption::Comment(_) => {}
                other => return Err(SqlError::unsupported(format!("column option {other}"))),
            }
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
            TableConstraint::Check(chk) => def.checks.push(chk.expr.to_string()),
            TableConstraint::Unique(_) | TableConstraint::ForeignKey(_) => {}
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
    catalog
        .create_table(db, &def, range, ct.if_not_exists)
        .await
        .map(|_| ())
}

/// DROP TABLE a, b [IF EXISTS].
pub async fn drop_tables(
    catalog: &Catalog,
    db: &str,
    names: &[ObjectName],
    if_exists: bool,
) -> SqlResult<()> {
    for n in names {
        let (schema, name) = table_name(n)?;
        if !catalog.drop_table(db, &schema, &name).await? && !if_exists {
            return Err(SqlError::no_table(&name));
        }
    }
    Ok(())
}
