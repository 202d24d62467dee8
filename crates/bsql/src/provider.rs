//! DataFusion's view of BSQL tables: a `CatalogProvider` per database whose schemas resolve
//! tables from the [`Catalog`], and a `TableProvider` that reads a table's rows from its
//! tablets (a point read when the filters pin the whole primary key, an index lookup when
//! they pin the leading columns of an index or bound its first column, else a full scan).
//!
//! The name `__dml__<table>` resolves to the same table with two more columns, `__key`
//! (the row's storage key) and `__value` (its stored bytes): UPDATE and DELETE select them to
//! know which rows to write, and to write them only if they did not change meanwhile.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::access::Access;
use crate::catalog::{Catalog, Resolved};
use crate::index::IndexTable;
use crate::row::{self, Row};

/// Prefix of the table name that adds the `__key` column.
pub const DML_PREFIX: &str = "__dml__";
/// Name of the storage-key column of a `__dml__` table.
pub const KEY_COLUMN: &str = "__key";
/// Name of the stored-value column of a `__dml__` table (for compare-and-set writes).
pub const VALUE_COLUMN: &str = "__value";

/// Schemas every database has.
pub const SCHEMAS: [&str; 1] = ["public"];

/// Database `db` as a DataFusion catalog.
#[derive(Debug)]
pub struct DbCatalog {
    pub db: String,
    pub catalog: Arc<Catalog>,
    pub access: Access,
}

impl CatalogProvider for DbCatalog {
    fn schema_names(&self) -> Vec<String> {
        SCHEMAS
            .iter()
            .chain([&crate::pg_catalog::SCHEMA])
            .map(|s| s.to_string())
            .collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == crate::pg_catalog::SCHEMA {
            return Some(Arc::new(crate::pg_catalog::PgCatalog {
                db: self.db.clone(),
                catalog: self.catalog.clone(),
            }));
        }
        Some(Arc::new(DbSchema {
            db: self.db.clone(),
            schema: name.to_owned(),
            catalog: self.catalog.clone(),
            access: self.access.clone(),
        }))
    }
}

/// One schema of a database.
#[derive(Debug)]
pub struct DbSchema {
    db: String,
    schema: String,
    catalog: Arc<Catalog>,
    access: Access,
}

#[async_trait]
impl SchemaProvider for DbSchema {
    fn table_names(&self) -> Vec<String> {
        self.catalog
            .cached_names(&self.db)
            .into_iter()
            .filter(|(s, _)| *s == self.schema)
            .map(|(_, n)| n)
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let (with_key, name) = match name.strip_prefix(DML_PREFIX) {
            Some(n) => (true, n),
            None => (false, name),
        };
        let resolved = self
            .catalog
            .table(&self.db, &self.schema, name)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        match resolved {
            Some(r) => Ok(Some(
                Arc::new(BsqlTable::new(self.access.clone(), r, with_key))
                    as Arc<dyn TableProvider>,
            )),
            // PostgreSQL searches pg_catalog implicitly, so an unqualified `pg_class` is the
            // catalog's (here only when no table of ours has that name).
            None if !with_key => {
                crate::pg_catalog::PgCatalog {
                    db: self.db.clone(),
                    catalog: self.catalog.clone(),
                }
                .table(name)
                .await
            }
            None => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names().iter().any(|n| n == name)
    }
}

/// A table as DataFusion scans it.
#[derive(Debug)]
pub struct BsqlTable {
    access: Access,
    resolved: Arc<Resolved>,
    schema: SchemaRef,
    with_key: bool,
}

impl BsqlTable {
    pub fn new(access: Access, resolved: Arc<Resolved>, with_key: bool) -> Self {
        let schema = if with_key {
            let mut fields: Vec<Field> = resolved
                .schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.push(Field::new(KEY_COLUMN, DataType::Binary, false));
            fields.push(Field::new(VALUE_COLUMN, DataType::Binary, false));
            Arc::new(Schema::new(fields))
        } else {
            resolved.schema.clone()
        };
        BsqlTable {
            access,
            resolved,
            schema,
            with_key,
        }
    }

    /// The literal each column is pinned to by a `col = literal` filter (the first one).
    fn pinned<'a>(&self, filters: &'a [Expr]) -> Vec<Option<&'a ScalarValue>> {
        let def = &self.resolved.def;
        let mut pinned = vec![None; def.columns.len()];
        for f in filters {
            let Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) = f
            else {
                continue;
            };
            if let (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) =
                (left.as_ref(), right.as_ref())
            {
                if let Some(i) = def.column(&c.name) {
                    pinned[i].get_or_insert(v);
                }
            }
        }
        pinned
    }

    /// The primary key, if `filters` pin every key column to a literal.
    fn point_key(&self, filters: &[Expr]) -> Option<Vec<u8>> {
        let def = &self.resolved.def;
        if def.pk.is_empty() {
            return None;
        }
        let pinned = self.pinned(filters);
        let mut row: Row = vec![row::Datum::Null; def.columns.len()];
        for &i in &def.pk {
            let d = row::datum_from_any_scalar(pinned[i]?, def.columns[i].ty).ok()?;
            if d.is_null() {
                return None;
            }
            row[i] = d;
        }
        Some(row::encode_key(def, &row))
    }

    /// The index that `filters` pin the most leading columns of (each `col = literal`, not
    /// NULL), and those columns' values.
    fn index_prefix(&self, filters: &[Expr]) -> Option<(&IndexTable, Vec<row::Datum>)> {
        let def = &self.resolved.def;
        let pinned = self.pinned(filters);
        let mut best: Option<(&IndexTable, Vec<row::Datum>)> = None;
        for ix in &self.resolved.indexes {
            let mut values = Vec::new();
            for &(c, _) in &ix.columns {
                let Some(v) = pinned[c] else { break };
                match row::datum_from_any_scalar(v, def.columns[c].ty) {
                    Ok(d) if !d.is_null() => values.push(d),
                    _ => break,
                }
            }
            if !values.is_empty() && best.as_ref().is_none_or(|(_, b)| values.len() > b.len()) {
                best = Some((ix, values));
            }
        }
        best
    }

    /// An ascending index whose first column `filters` bound (`<`, `<=`, `>`, `>=`,
    /// BETWEEN against literals), and the range of its entries' keys. Bounds are taken
    /// inclusively after conversion to the column's type: a superset, which DataFusion's
    /// own filters then cut to the exact rows.
    fn index_range(&self, filters: &[Expr]) -> Option<(&IndexTable, Vec<u8>, Vec<u8>)> {
        let def = &self.resolved.def;
        let n = def.columns.len();
        let mut low: Vec<Option<&ScalarValue>> = vec![None; n];
        let mut high: Vec<Option<&ScalarValue>> = vec![None; n];
        for f in filters {
            match f {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                    let (c, v, op) = match (left.as_ref(), right.as_ref()) {
                        (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
                        (Expr::Literal(v, _), Expr::Column(c)) => match op.swap() {
                            Some(o) => (c, v, o),
                            None => continue,
                        },
                        _ => continue,
                    };
                    let Some(i) = def.column(&c.name) else {
                        continue;
                    };
                    match op {
                        Operator::Gt | Operator::GtEq => low[i] = Some(v),
                        Operator::Lt | Operator::LtEq => high[i] = Some(v),
                        _ => {}
                    }
                }
                Expr::Between(b) if !b.negated => {
                    if let (Expr::Column(c), Expr::Literal(lo, _), Expr::Literal(hi, _)) =
                        (b.expr.as_ref(), b.low.as_ref(), b.high.as_ref())
                    {
                        if let Some(i) = def.column(&c.name) {
                            low[i] = Some(lo);
                            high[i] = Some(hi);
                        }
                    }
                }
                _ => {}
            }
        }
        let convert = |v: Option<&ScalarValue>, c: usize| -> Option<Option<row::Datum>> {
            match v {
                None => Some(None),
                Some(v) => match row::datum_from_any_scalar(v, def.columns[c].ty) {
                    Ok(d) if !d.is_null() => Some(Some(d)),
                    _ => None,
                },
            }
        };
        for ix in &self.resolved.indexes {
            let Some(&(c, false)) = ix.columns.first() else {
                continue;
            };
            if low[c].is_none() && high[c].is_none() {
                continue;
            }
            let (Some(lo), Some(hi)) = (convert(low[c], c), convert(high[c], c)) else {
                continue;
            };
            let (start, end) = ix.value_range(lo.as_ref(), hi.as_ref());
            return Some((ix, start, end));
        }
        None
    }

    async fn rows(&self, filters: &[Expr]) -> crate::error::SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let table = &self.resolved.table;
        if let Some(key) = self.point_key(filters) {
            return Ok(self
                .access
                .get(table, &key)
                .await?
                .map(|v| vec![(key, v)])
                .unwrap_or_default());
        }
        if let Some((ix, values)) = self.index_prefix(filters) {
            // The rows the index names (DataFusion applies every filter to them again).
            let keys = crate::index::lookup(&self.access, ix, &values).await?;
            let found = self.access.get_many(table, &keys).await?;
            return Ok(keys
                .into_iter()
                .zip(found)
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect());
        }
        if let Some((ix, start, end)) = self.index_range(filters) {
            let end = (!end.is_empty()).then_some(end);
            let keys: Vec<Vec<u8>> = self
                .access
                .scan_range(&ix.table, start, end)
                .await?
                .into_iter()
                .map(|(_, row_key)| row_key)
                .collect();
            let found = self.access.get_many(table, &keys).await?;
            return Ok(keys
                .into_iter()
                .zip(found)
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect());
        }
        self.access.scan_all(table).await
    }
}

#[async_trait]
impl TableProvider for BsqlTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters are used to find a point read; DataFusion still applies them all.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let external = |e: crate::error::SqlError| DataFusionError::External(Box::new(e));
        let kvs = self.rows(filters).await.map_err(external)?;
        let def = &self.resolved.def;
        let mut rows = Vec::with_capacity(kvs.len());
        for (_, v) in &kvs {
            rows.push(row::decode_value(def, v).map_err(external)?);
        }
        let mut columns: Vec<ArrayRef> = def
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| row::build_array(c.ty, rows.iter().map(|r| &r[i])))
            .collect();
        if self.with_key {
            columns.push(Arc::new(BinaryArray::from_iter_values(
                kvs.iter().map(|(k, _)| k.as_slice()),
            )));
            columns.push(Arc::new(BinaryArray::from_iter_values(
                kvs.iter().map(|(_, v)| v.as_slice()),
            )));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}
