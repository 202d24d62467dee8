//! The PostgreSQL wire protocol (via pgwire): startup, simple query, extended query (parse /
//! bind / describe / execute with text and binary parameters and results), each connection
//! owning one [`Session`]. Every statement is counted and timed by type
//! ([`crate::session::statement_kind`]) in the server's [`ApiMetrics`].

use std::fmt::Debug;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use async_trait::async_trait;
use common::metrics::ApiMetrics;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{self, Expr, Statement};
use futures::{stream, Sink, SinkExt};
use pgwire::api::auth::sasl::scram::{ScramServerAuth, ScramServerAuthWaitingForClientFinal};
use pgwire::api::auth::sasl::SCRAM_SHA_256_METHOD;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider, Password, StartupHandler,
};
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    CopyResponse, DescribeResponse, DescribeStatementResponse, FieldFormat, FieldInfo,
    QueryResponse, Response, Tag,
};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type, METADATA_DATABASE, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::startup::{Authentication, PasswordMessageFamily};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::Mutex;

use crate::catalog::Catalog;
use crate::copy::{self, CopyIn};
use crate::error::{SqlError, SqlResult};
use crate::fast::{self, FastPlan};
use crate::pgtext::Style;
use crate::session::{parse, statement_kind, Output, Session, SERVER_VERSION};
use crate::types::SqlType;

/// Databases that exist on every cluster (created on first connection).
pub const BUILTIN_DATABASES: [&str; 3] = ["yugabyte", "postgres", "template1"];

/// Per-connection handlers.
pub struct Conn {
    catalog: Arc<Catalog>,
    session: Mutex<Option<Session>>,
    parser: Arc<Parser>,
    copy_in: Mutex<Option<CopyIn>>,
    metrics: ApiMetrics,
    /// Every connection of the server by (pid, secret key), for CancelRequest.
    cancels: Arc<ConnectionManager>,
    /// Clients must log in with a password (`--bsql_enable_auth`).
    password_auth: bool,
    /// Where the SCRAM exchange stands (with `password_auth`).
    scram: Mutex<Scram>,
}

/// The server side of a SCRAM-SHA-256 login.
enum Scram {
    /// Authentication requested; waiting for the client-first message.
    Requested,
    /// Server-first sent; waiting for the client's proof.
    Challenged(Box<ScramServerAuthWaitingForClientFinal>),
}

impl Conn {
    pub fn new(
        catalog: Arc<Catalog>,
        metrics: ApiMetrics,
        cancels: Arc<ConnectionManager>,
        password_auth: bool,
    ) -> Arc<Conn> {
        Arc::new_cyclic(|weak| Conn {
            metrics,
            catalog: catalog.clone(),
            session: Mutex::new(None),
            parser: Arc::new(Parser { conn: weak.clone() }),
            copy_in: Mutex::new(None),
            cancels,
            password_auth,
            scram: Mutex::new(Scram::Requested),
        })
    }

    /// The SCRAM step of a login: answer the client-first message with a challenge, check
    /// the client's proof. Returns whether the login is complete.
    async fn scram_step<C>(&self, client: &mut C, msg: PasswordMessageFamily) -> PgWireResult<bool>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_default();
        let failed = || {
            fatal(
                "28P01",
                format!("password authentication failed for user \"{user}\""),
            )
        };
        let mut state = self.scram.lock().await;
        match &*state {
            Scram::Requested => {
                let first = msg.into_sasl_initial_response()?;
                if first.auth_method != SCRAM_SHA_256_METHOD {
                    return Err(PgWireError::UnsupportedSASLAuthMethod(first.auth_method));
                }
                let role = match self.catalog.role(&user).await {
                    Ok(Some(r)) => r,
                    Ok(None) if user == crate::auth::DEFAULT_ROLE => {
                        crate::auth::RoleDef::default_role()
                    }
                    Ok(None) => return Err(failed()),
                    Err(e) => return Err(fatal("57P03", format!("cannot read roles: {e}"))),
                };
                if !role.login {
                    return Err(fatal(
                        "28000",
                        format!("role \"{user}\" is not permitted to log in"),
                    ));
                }
                if role.salted.is_empty() {
                    return Err(failed());
                }
                let data = first.data.unwrap_or_default();
                let mut server = ScramServerAuth::new();
                server.set_iterations(crate::auth::ITERATIONS);
                let (server_first, waiting) = server
                    .on_client_first_message(&data, Password::new(Some(role.salt), role.salted))?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLContinue(server_first.into()),
                    ))
                    .await?;
                *state = Scram::Challenged(Box::new(waiting));
                Ok(false)
            }
            Scram::Challenged(waiting) => {
                let last = msg.into_sasl_response()?;
                let server_final = waiting
                    .on_client_final_message(&last.data)
                    .map_err(|_| failed())?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLFinal(server_final.into()),
                    ))
                    .await?;
                *state = Scram::Requested;
                Ok(true)
            }
        }
    }

    /// The connection ended: end its session.
    pub async fn close(&self) {
        if let Some(mut s) = self.session.lock().await.take() {
            s.close().await;
        }
    }

    async fn with_session<C: ClientInfo, T>(
        &self,
        client: &C,
        f: impl AsyncFnOnce(&mut Session) -> T,
    ) -> T {
        let mut guard = self.session.lock().await;
        let session = guard.get_or_insert_with(|| {
            let md = client.metadata();
            let user = md
                .get(METADATA_USER)
                .cloned()
                .unwrap_or_else(|| "yugabyte".into());
            let db = md
                .get(METADATA_DATABASE)
                .cloned()
                .unwrap_or_else(|| user.clone());
            let mut session = Session::new(self.catalog.clone(), &db, &user);
            session.apply_startup(md.iter());
            session
        });
        f(session).await
    }
}

/// The handler set pgwire asks for, one per connection.
pub struct Handlers(pub Arc<Conn>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.0.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.0.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(DefaultCancelHandler::new(self.0.cancels.clone()))
    }
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        code.to_owned(),
        message,
    )))
}

#[async_trait]
impl StartupHandler for Conn {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let startup = match message {
            PgWireFrontendMessage::Startup(ref startup) => Some(startup),
            PgWireFrontendMessage::PasswordMessageFamily(msg) if self.password_auth => {
                if !self.scram_step(client, msg).await? {
                    return Ok(());
                }
                None
            }
            _ => return Ok(()),
        };
        if let Some(startup) = startup {
            protocol_negotiation(client, startup).await?;
            save_startup_parameters_to_metadata(client, startup);
        }
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_default();
        let db = client
            .metadata()
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_else(|| user.clone());
        if user.is_empty() {
            return Err(fatal(
                "28000",
                "no PostgreSQL user name specified in startup packet".into(),
            ));
        }
        if !database_exists(&self.catalog, &db).await? {
            return Err(fatal("3D000", format!("database \"{db}\" does not exist")));
        }
        if startup.is_some() && self.password_auth {
            // Ask for a password; the login continues in `scram_step`.
            client.set_state(PgWireConnectionState::AuthenticationInProgress);
            client
                .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                    vec![SCRAM_SHA_256_METHOD.to_owned()],
                )))
                .await?;
            return Ok(());
        }
        let (pid, secret) = RandomPidSecretKeyGenerator::default().generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        // A CancelRequest naming this (pid, key) stops the statement running then (pgwire
        // races each query against the handle; the guard unregisters on disconnect).
        let (handle, guard) = self.cancels.register(pid, secret);
        client.session_extensions().insert(handle);
        client.session_extensions().insert(guard);
        let mut params = DefaultServerParameterProvider::default();
        params.server_version = SERVER_VERSION.to_owned();
        params.time_zone = "UTC".to_owned();
        params.date_style = "ISO, MDY".to_owned();
        finish_authentication(client, &params).await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }
}

/// Whether database `db` exists (the built-in ones are created when first asked for).
async fn database_exists(catalog: &Catalog, db: &str) -> PgWireResult<bool> {
    if BUILTIN_DATABASES.contains(&db) {
        catalog
            .client
            .create_namespace(db, true)
            .await
            .map_err(|e| fatal("57P03", format!("the cluster is not ready: {e}")))?;
        return Ok(true);
    }
    let resp = catalog
        .client
        .list_tables()
        .await
        .map_err(|e| fatal("57P03", format!("the cluster is not ready: {e}")))?;
    Ok(resp.namespaces.iter().any(|n| n == db))
}

/// Turn an [`Output`] into a pgwire response (`format`: the result column formats).
fn respond(out: Output, format: &Format, style: Style) -> PgWireResult<Response> {
    Ok(match out {
        Output::Rows { schema, batches } => {
            Response::Query(query_response(&schema, batches, format, style)?)
        }
        Output::Returning {
            command,
            schema,
            batches,
        } => {
            let mut r = query_response(&schema, batches, format, style)?;
            r.set_command_tag(command);
            Response::Query(r)
        }
        Output::Command(tag) => Response::Execution(command_tag(&tag)),
        Output::Begin(tag) => Response::TransactionStart(command_tag(&tag)),
        Output::End(tag) => Response::TransactionEnd(command_tag(&tag)),
    })
}

/// A result set as pgwire sends it.
fn query_response(
    schema: &SchemaRef,
    batches: Vec<datafusion::arrow::array::RecordBatch>,
    format: &Format,
    style: Style,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(fields_of(schema, format)?);
    let mut rows = Vec::new();
    for b in batches {
        rows.extend(encode_recordbatch(
            fields.clone(),
            pg_text_columns(b, format, style)?,
        ));
    }
    Ok(QueryResponse::new(fields, stream::iter(rows)))
}

/// Text-format columns whose text PostgreSQL writes differently from Arrow, as that text
/// ([`crate::pgtext::column_text`]: floats, plain numerics, dates and timestamps).
/// Binary-format columns are left alone.
fn pg_text_columns(
    batch: datafusion::arrow::array::RecordBatch,
    format: &Format,
    style: Style,
) -> PgWireResult<datafusion::arrow::array::RecordBatch> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let text = |i: usize, dt: &DataType| {
        crate::pgtext::rewrites(dt) && format.format_for(i) == FieldFormat::Text
    };
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .enumerate()
        .any(|(i, f)| text(i, f.data_type()))
    {
        return Ok(batch);
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, (f, c)) in schema.fields().iter().zip(batch.columns()).enumerate() {
        let out = text(i, f.data_type())
            .then(|| crate::pgtext::column_text(c, style))
            .flatten();
        match out {
            Some(out) => {
                fields.push(Field::new(f.name(), out.data_type().clone(), true));
                columns.push(out);
            }
            None => {
                fields.push(f.as_ref().clone());
                columns.push(c.clone());
            }
        }
    }
    datafusion::arrow::array::RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| PgWireError::ApiError(Box::new(e)))
}

/// pgwire's Tag from a full command tag text (`INSERT 0 3`, `UPDATE 2`, `CREATE TABLE`).
fn command_tag(text: &str) -> Tag {
    let mut parts = text.rsplitn(2, ' ');
    let last = parts.next().unwrap_or_default();
    match (last.parse::<usize>(), parts.next()) {
        (Ok(n), Some(head)) => match head.strip_suffix(" 0") {
            Some(cmd) if cmd == "INSERT" => Tag::new(cmd).with_oid(0).with_rows(n),
            _ => Tag::new(head).with_rows(n),
        },
        _ => Tag::new(text),
    }
}

/// Result columns, described with the PostgreSQL types of their Arrow types.
fn fields_of(schema: &SchemaRef, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    arrow_schema_to_pg_fields(schema, format, None)
}

/// An ErrorResponse for a statement that failed.
fn error_response(e: SqlError) -> Response {
    Response::Error(Box::new(e.info()))
}

fn to_pg(e: SqlError) -> PgWireError {
    e.into()
}

#[async_trait]
impl SimpleQueryHandler for Conn {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if copy::is_copy(query) {
            let t0 = Instant::now();
            let r = self.copy(client, query).await.map(|r| vec![r]);
            self.metrics.observe("copy", t0.elapsed(), r.is_ok());
            return r;
        }
        if let Some(tag) = crate::session::maintenance(query) {
            self.metrics
                .observe("maintenance", std::time::Duration::ZERO, true);
            return Ok(vec![Response::Execution(Tag::new(tag))]);
        }
        // psql's `\d <table>` follow-up queries: PostgreSQL-only syntax, answered directly.
        if let Some(req) = crate::describe::recognise(query) {
            let (r, style) = self
                .with_session(client, async |s| {
                    let r = crate::describe::answer(&s.catalog, &s.db, &req).await;
                    (r, s.text_style())
                })
                .await;
            self.metrics
                .observe("describe", std::time::Duration::ZERO, r.is_ok());
            return Ok(vec![match r {
                Ok(o) => respond(o, &Format::UnifiedText, style)?,
                Err(e) => error_response(e),
            }]);
        }
        let stmts = parse(query).map_err(to_pg)?;
        if stmts.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut out = Vec::with_capacity(stmts.len());
        let mut notices = Vec::new();
        self.with_session(client, async |session| {
            session.source = query.to_owned();
            for stmt in stmts {
                let (kind, t0) = (statement_kind(&stmt), Instant::now());
                if let Err(e) = crate::references::check(&stmt, query)
                    .and_then(|()| crate::literals::check(&stmt, query))
                    .and_then(|()| crate::strings::check(&stmt, query))
                {
                    out.push(error_response(e));
                    break;
                }
                let r = session.execute(stmt).await;
                notices.append(&mut session.notices);
                self.metrics.observe(kind, t0.elapsed(), r.is_ok());
                match r {
                    Ok(o) => out.push(respond(o, &Format::UnifiedText, session.text_style())?),
                    Err(e) => {
                        // Like PostgreSQL: the error ends this query string.
                        out.push(error_response(e.locate(query)));
                        break;
                    }
                }
            }
            Ok::<_, PgWireError>(())
        })
        .await?;
        // NOTICEs go out before the results (with one statement per query, as psql sends a
        // script, that is where PostgreSQL puts them: before the command's completion).
        for (code, message) in notices {
            let notice = ErrorInfo::new("NOTICE".to_owned(), code.to_owned(), message);
            client
                .feed(PgWireBackendMessage::NoticeResponse(notice.into()))
                .await?;
        }
        Ok(out)
    }
}

impl Conn {
    /// Start a COPY.
    async fn copy<C: ClientInfo>(&self, client: &C, sql: &str) -> PgWireResult<Response> {
        let cmd = copy::parse(sql).map_err(to_pg)?;
        if let Some(path) = cmd.file.clone() {
            let n = self
                .with_session(client, async |s| {
                    Box::pin(copy::copy_file(s, cmd, &path)).await
                })
                .await
                .map_err(to_pg)?;
            return Ok(Response::Execution(Tag::new("COPY").with_rows(n)));
        }
        if cmd.from {
            let started = self
                .with_session(client, async |s| CopyIn::start(s, cmd).await)
                .await
                .map_err(to_pg)?;
            let columns = started.columns();
            *self.copy_in.lock().await = Some(started);
            Ok(Response::CopyIn(CopyResponse::new(
                0,
                columns,
                stream::empty(),
            )))
        } else {
            let (_, lines) = self
                .with_session(client, async |s| copy::copy_out(s, &cmd).await)
                .await
                .map_err(to_pg)?;
            let columns = cmd.columns.len();
            let data = lines
                .into_iter()
                .map(|l| Ok(CopyData::new(l.into())))
                .collect::<Vec<_>>();
            Ok(Response::CopyOut(CopyResponse::new(
                0,
                columns,
                stream::iter(data),
            )))
        }
    }
}

#[async_trait]
impl CopyHandler for Conn {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut guard = self.copy_in.lock().await;
        let Some(copy_in) = guard.as_mut() else {
            return Err(SqlError::new("08P01", "COPY data without COPY").into());
        };
        let r = self
            .with_session(client, async |s| copy_in.data(s, &data.data).await)
            .await;
        if r.is_err() {
            *guard = None;
        }
        r.map_err(to_pg)
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(mut copy_in) = self.copy_in.lock().await.take() else {
            return Err(SqlError::new("08P01", "COPY done without COPY").into());
        };
        let n = self
            .with_session(client, async |s| copy_in.done(s).await)
            .await
            .map_err(to_pg)?;
        client
            .send(PgWireBackendMessage::CommandComplete(
                Tag::new("COPY").with_rows(n).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        *self.copy_in.lock().await = None;
        SqlError::new("57014", format!("COPY from stdin failed: {}", fail.message)).into()
    }
}

/// A prepared statement.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub stmt: Statement,
    /// The point fast path, if the statement fits it.
    pub fast: Option<FastPlan>,
    /// Parameter types, as described to the client.
    pub params: Vec<Type>,
    /// Result columns (empty for commands).
    pub schema: Option<SchemaRef>,
}

/// Parses statements for the extended protocol, inferring parameter and result types.
pub struct Parser {
    conn: std::sync::Weak<Conn>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut stmts = parse(sql).map_err(to_pg)?;
        if stmts.len() > 1 {
            return Err(SqlError::syntax(
                "cannot insert multiple commands into a prepared statement",
            )
            .into());
        }
        let Some(stmt) = stmts.pop() else {
            return Ok(None);
        };
        crate::references::check(&stmt, sql).map_err(to_pg)?;
        crate::literals::check(&stmt, sql).map_err(to_pg)?;
        crate::strings::check(&stmt, sql).map_err(to_pg)?;
        let Some(conn) = self.conn.upgrade() else {
            return Err(SqlError::internal("connection closed").into());
        };
        let mut stmt = stmt;
        let nparams = count_params(&stmt);
        let (params, schema) = conn
            .with_session(client, async |s| {
                s.temp.rewrite_names(&mut stmt);
                describe(s, &stmt, nparams).await
            })
            .await;
        let params = (0..nparams)
            .map(|i| {
                types
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .or_else(|| params.get(i).cloned())
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        Ok(Some(Prepared {
            fast: fast::plan(&stmt),
            stmt,
            params,
            schema,
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.params.clone())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.schema {
            Some(s) => fields_of(s, format.unwrap_or(&Format::UnifiedText)),
            None => Ok(Vec::new()),
        }
    }
}

/// A statement's description whose "no rows" is NoData even with parameters.
struct StatementDescription(DescribeStatementResponse);

impl DescribeResponse for StatementDescription {
    fn parameters(&self) -> Option<&[Type]> {
        Some(&self.0.parameters)
    }

    fn fields(&self) -> &[FieldInfo] {
        &self.0.fields
    }

    fn no_data() -> Self {
        StatementDescription(DescribeStatementResponse::no_data())
    }

    fn is_no_data(&self) -> bool {
        self.0.fields.is_empty()
    }
}

/// Number of `$n` parameters (the highest n).
fn count_params(stmt: &Statement) -> usize {
    let mut stmt = stmt.clone();
    let mut max = 0;
    let _ = ast::visit_expressions_mut(&mut stmt, |e| {
        if let Expr::Value(v) = e {
            if let ast::Value::Placeholder(p) = &v.value {
                if let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                    max = max.max(n);
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    max
}

/// Parameter types and result schema of a statement, as far as DataFusion can infer them.
async fn describe(s: &Session, stmt: &Statement, nparams: usize) -> (Vec<Type>, Option<SchemaRef>) {
    let mut types = vec![Type::UNKNOWN; nparams];
    let plannable = matches!(
        stmt,
        Statement::Query(_) | Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
    );
    if !plannable {
        return (types, None);
    }
    let _ = s.catalog.table_names(&s.db).await;
    let mut stmt = stmt.clone();
    if let Ok(views) = s.catalog.views(&s.db).await {
        if crate::views::expand(&mut stmt, &views).is_err() {
            return (types, None);
        }
    }
    let stmt = &stmt;
    let plan = s
        .ctx
        .state()
        .statement_to_plan(DfStatement::Statement(Box::new(stmt.clone())))
        .await;
    let Ok(plan) = plan else {
        return (types, None);
    };
    if let Ok(found) = plan.get_parameter_types() {
        for (name, dt) in found {
            let Some(i) = name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| n.checked_sub(1))
            else {
                continue;
            };
            if let (Some(slot), Some(dt)) = (types.get_mut(i), dt) {
                *slot = SqlType::pg_of_arrow(&dt);
            }
        }
    }
    let schema = matches!(stmt, Statement::Query(_))
        .then(|| crate::session::pg_schema(stmt, &Arc::new(plan.schema().as_arrow().clone())));
    (types, schema)
}

/// A binary array parameter as array input text (`{1,2,NULL}`).
fn array_text<T: ToString>(items: Option<Vec<Option<T>>>) -> String {
    let items: Vec<String> = items
        .unwrap_or_default()
        .into_iter()
        .map(|i| match i {
            Some(v) => crate::pgtext::array_item(&v.to_string()),
            None => "NULL".to_owned(),
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

/// The value of parameter `i` as PostgreSQL text (`None`: NULL), whatever its format.
fn param_text<S: Clone>(portal: &Portal<S>, i: usize, ty: &Type) -> PgWireResult<Option<String>> {
    let raw = portal.parameters.get(i).cloned().flatten();
    let Some(raw) = raw else {
        return Ok(None);
    };
    let binary = matches!(portal.parameter_format.format_for(i), FieldFormat::Binary);
    let text: String = if !binary {
        String::from_utf8(raw.to_vec())
            .map_err(|_| SqlError::new("22021", "invalid byte sequence for encoding \"UTF8\""))
            .map_err(to_pg)?
    } else {
        match *ty {
            Type::BOOL => portal
                .parameter::<bool>(i, ty)?
                .unwrap_or_default()
                .to_string(),
            Type::INT2 => portal
                .parameter::<i16>(i, ty)?
                .unwrap_or_default()
                .to_string(),
            Type::INT4 => portal
                .parameter::<i32>(i, ty)?
                .unwrap_or_default()
                .to_string(),
            Type::INT8 => portal
                .parameter::<i64>(i, ty)?
                .unwrap_or_default()
                .to_string(),
            Type::FLOAT4 => portal
                .parameter::<f32>(i, ty)?
                .unwrap_or_default()
                .to_string(),
            Type::FLOAT8 => portal
                .parameter::<f64>(i, ty)?
                .unwrap_or_default()
                .to_string(),
            Type::NUMERIC => portal
                .parameter::<rust_decimal::Decimal>(i, ty)?
                .unwrap_or_default()
                .to_string(),
            Type::DATE => portal
                .parameter::<chrono::NaiveDate>(i, ty)?
                .map(|d| d.to_string())
                .unwrap_or_default(),
            Type::TIME => portal
                .parameter::<chrono::NaiveTime>(i, ty)?
                .map(|d| d.to_string())
                .unwrap_or_default(),
            Type::TIMESTAMP => portal
                .parameter::<chrono::NaiveDateTime>(i, ty)?
                .map(|d| d.to_string())
                .unwrap_or_default(),
            Type::TIMESTAMPTZ => portal
                .parameter::<chrono::DateTime<chrono::FixedOffset>>(i, ty)?
                .map(|d| d.to_rfc3339())
                .unwrap_or_default(),
            Type::BYTEA => {
                let b = portal.parameter::<Vec<u8>>(i, ty)?.unwrap_or_default();
                let mut s = String::from("\\x");
                for byte in b {
                    s.push_str(&format!("{byte:02x}"));
                }
                s
            }
            Type::UUID => uuid::Uuid::from_slice(&raw)
                .map_err(|_| SqlError::invalid_input("invalid binary uuid parameter"))
                .map_err(to_pg)?
                .to_string(),
            // jsonb's binary form is a version byte (1) and the text.
            Type::JSONB if raw.first() == Some(&1) => String::from_utf8(raw[1..].to_vec())
                .map_err(|_| SqlError::new("22021", "invalid byte sequence for encoding \"UTF8\""))
                .map_err(to_pg)?,
            Type::BOOL_ARRAY => array_text(portal.parameter::<Vec<Option<bool>>>(i, ty)?),
            Type::INT2_ARRAY => array_text(portal.parameter::<Vec<Option<i16>>>(i, ty)?),
            Type::INT4_ARRAY => array_text(portal.parameter::<Vec<Option<i32>>>(i, ty)?),
            Type::INT8_ARRAY => array_text(portal.parameter::<Vec<Option<i64>>>(i, ty)?),
            Type::FLOAT4_ARRAY => array_text(portal.parameter::<Vec<Option<f32>>>(i, ty)?),
            Type::FLOAT8_ARRAY => array_text(portal.parameter::<Vec<Option<f64>>>(i, ty)?),
            Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => {
                array_text(portal.parameter::<Vec<Option<String>>>(i, ty)?)
            }
            Type::JSON => String::from_utf8(raw.to_vec())
                .map_err(|_| SqlError::new("22021", "invalid byte sequence for encoding \"UTF8\""))
                .map_err(to_pg)?,
            _ => portal.parameter::<String>(i, ty)?.unwrap_or_default(),
        }
    };
    Ok(Some(text))
}

/// The value of parameter `i` as a SQL expression (a typed literal).
fn param_expr<S: Clone>(portal: &Portal<S>, i: usize, ty: &Type) -> PgWireResult<Expr> {
    let Some(text) = param_text(portal, i, ty)? else {
        return Ok(Expr::value(ast::Value::Null));
    };
    let cast = |expr, data_type| Expr::Cast {
        kind: ast::CastKind::DoubleColon,
        expr: Box::new(expr),
        data_type,
        array: false,
        format: None,
    };
    // An array of a type BSQL stores: `ARRAY['1','2']::int[]`, which DataFusion casts
    // element by element (the statement's rewrites, `types::array_literals` among them,
    // ran at Parse).
    let stored = crate::types::ArrayOf::ALL
        .into_iter()
        .find(|a| SqlType::Array(*a).pg() == *ty);
    if let (Some(a), Some(array)) = (stored, crate::types::array_expr(&text, true)) {
        let elem = cast_type(&a.elem().pg()).unwrap_or(ast::DataType::Text);
        let data_type =
            ast::DataType::Array(ast::ArrayElemTypeDef::SquareBracket(Box::new(elem), None));
        return Ok(cast(array, data_type));
    }
    let lit = Expr::value(ast::Value::SingleQuotedString(text));
    Ok(match cast_type(ty) {
        Some(data_type) => cast(lit, data_type),
        // Text-like and unknown: a plain string literal, cast where it is used.
        None => lit,
    })
}

/// The type a bound parameter of PostgreSQL type `ty` is cast to (`None`: text-like or
/// unknown, left a string literal).
fn cast_type(ty: &Type) -> Option<ast::DataType> {
    Some(match *ty {
        Type::BOOL => ast::DataType::Boolean,
        Type::INT2 => ast::DataType::SmallInt(None),
        Type::INT4 => ast::DataType::Integer(None),
        Type::INT8 => ast::DataType::BigInt(None),
        Type::FLOAT4 => ast::DataType::Real,
        Type::FLOAT8 => ast::DataType::DoublePrecision,
        Type::NUMERIC => ast::DataType::Numeric(ast::ExactNumberInfo::None),
        Type::DATE => ast::DataType::Date,
        Type::TIME => ast::DataType::Time(None, ast::TimezoneInfo::None),
        Type::TIMESTAMP => ast::DataType::Timestamp(None, ast::TimezoneInfo::None),
        Type::TIMESTAMPTZ => ast::DataType::Timestamp(None, ast::TimezoneInfo::WithTimeZone),
        _ => return None,
    })
}

/// Replace `$n` placeholders with the portal's parameter values.
fn bind<S: Clone>(stmt: &mut Statement, portal: &Portal<S>, types: &[Type]) -> PgWireResult<()> {
    let mut err = None;
    let _ = ast::visit_expressions_mut(stmt, |e| {
        if let Expr::Value(v) = e {
            if let ast::Value::Placeholder(p) = &v.value {
                let Some(i) = p
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| n.checked_sub(1))
                else {
                    return ControlFlow::Continue(());
                };
                if i >= portal.parameter_len() {
                    err = Some(SqlError::new(
                        "08P01",
                        format!("there is no parameter ${}", i + 1),
                    ));
                    return ControlFlow::Break(());
                }
                let ty = types.get(i).cloned().unwrap_or(Type::TEXT);
                match param_expr(portal, i, &ty) {
                    Ok(x) => *e = x,
                    Err(e2) => {
                        err = Some(SqlError::new("22P02", e2.to_string()));
                        return ControlFlow::Break(());
                    }
                }
            }
        }
        ControlFlow::Continue(())
    });
    match err {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

#[async_trait]
impl ExtendedQueryHandler for Conn {
    type Statement = Prepared;
    type QueryParser = Parser;

    /// As pgwire's, except that Describe of a statement returning no rows ends with NoData,
    /// as PostgreSQL's does (pgwire sends an empty RowDescription when the statement has
    /// parameters, and JDBC then takes an INSERT for a query).
    async fn on_describe<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Describe,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use pgwire::api::store::Entry;
        // Answers are queued for the Sync's write (`crate::coalesce`): libpq describes the
        // portal of every prepared execution.
        let client = &mut crate::coalesce::Coalesced::new(client);
        if message.target_type != pgwire::messages::extendedquery::TARGET_TYPE_BYTE_STATEMENT {
            return self._on_describe(client, message).await;
        }
        let name = message.name.as_deref().unwrap_or("");
        let described = match client.portal_store().get_statement(name) {
            Some(Entry::Value(stmt)) => self.do_describe_statement(client, &stmt).await?,
            Some(Entry::Empty) => DescribeStatementResponse::no_data(),
            None => return Err(PgWireError::StatementNotFound(name.to_owned())),
        };
        pgwire::api::query::send_describe_response(client, &StatementDescription(described)).await
    }

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// pgwire's Bind, with BindComplete queued for the Sync's write instead of flushed
    /// (`crate::coalesce`).
    async fn on_bind<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Bind,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use pgwire::api::store::Entry;
        use pgwire::api::DEFAULT_NAME;
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_statement(statement_name) {
            Some(Entry::Value(statement)) => {
                let portal = Portal::try_new(&message, statement)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(Entry::Empty) => {
                if !message.parameters.is_empty() {
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "ERROR".to_owned(),
                        "08P01".to_owned(),
                        format!(
                            "bind message supplies {} parameters, but prepared statement \"{}\" requires 0",
                            message.parameters.len(),
                            message.statement_name.as_deref().unwrap_or("")
                        ),
                    ))));
                }
                client.portal_store().put_empty_portal(portal_name);
            }
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(
                pgwire::messages::extendedquery::BindComplete::new(),
            ))
            .await?;
        Ok(())
    }

    /// pgwire's Execute, its answer queued for the Sync's write (`crate::coalesce`).
    async fn on_execute<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Execute,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self._on_execute(&mut crate::coalesce::Coalesced::new(client), message)
            .await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared: &Prepared = &portal.statement.statement;
        let (kind, t0) = (statement_kind(&prepared.stmt), Instant::now());
        let r = self.execute_portal(client, portal).await;
        self.metrics.observe(kind, t0.elapsed(), r.is_ok());
        if r.is_ok() {
            self.cursor_portals(client, &prepared.stmt).await;
        }
        r
    }
}

impl Conn {
    /// After `stmt` succeeded: a cursor it declared is also a portal of the connection, as
    /// in PostgreSQL (drivers Describe it: psycopg does before FETCHing from it), and one it
    /// closed is no longer.
    async fn cursor_portals<C>(&self, client: &C, stmt: &Statement)
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
    {
        match stmt {
            Statement::Declare { stmts } => {
                for d in stmts {
                    let (Some(name), Some(q)) = (d.names.first(), &d.for_query) else {
                        continue;
                    };
                    let name = crate::ddl::ident(name);
                    let parse = pgwire::messages::extendedquery::Parse::new(
                        None,
                        q.to_string(),
                        Vec::new(),
                    );
                    let Ok(Some(stored)) = pgwire::api::stmt::StoredStatement::parse(
                        client,
                        &parse,
                        self.parser.clone(),
                    )
                    .await
                    else {
                        continue;
                    };
                    client
                        .portal_store()
                        .put_portal(Arc::new(Portal::new_cursor(name, Arc::new(stored))));
                }
            }
            Statement::Close { cursor } => match cursor {
                ast::CloseCursor::Specific { name } => {
                    client.portal_store().rm_portal(&crate::ddl::ident(name))
                }
                ast::CloseCursor::All => {}
            },
            _ => {}
        }
    }

    /// Run a bound portal (the extended protocol's Execute).
    async fn execute_portal<C: ClientInfo>(
        &self,
        client: &C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<Response> {
        let prepared: &Prepared = &portal.statement.statement;
        if let Some(plan) = &prepared.fast {
            let params = (0..portal.parameter_len())
                .map(|i| param_text(portal, i, prepared.params.get(i).unwrap_or(&Type::TEXT)))
                .collect::<PgWireResult<Vec<_>>>()?;
            let (out, style) = self
                .with_session(client, async |s| {
                    (s.execute_fast(plan, &params).await, s.text_style())
                })
                .await;
            if let Some(out) = out.map_err(to_pg)? {
                return respond(out, &portal.result_column_format, style);
            }
        }
        let mut stmt = prepared.stmt.clone();
        bind(&mut stmt, portal, &prepared.params)?;
        let (out, style): (SqlResult<Output>, Style) = self
            .with_session(client, async |s| (s.execute(stmt).await, s.text_style()))
            .await;
        respond(out.map_err(to_pg)?, &portal.result_column_format, style)
    }
}
