//! One CQL connection: reads frames, answers STARTUP/OPTIONS/REGISTER in order, runs
//! QUERY/PREPARE/EXECUTE/BATCH concurrently (one task per stream id, as drivers pipeline
//! up to 32k streams), and writes responses through one writer task that coalesces
//! frames into few syscalls. Schema changes are pushed to connections that REGISTERed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use common::metrics::ApiMetrics;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::error::{code, CqlError, Extra, Result};
use crate::exec::{ColSpec, Ctx, Engine, Outcome, Rows, SchemaChange};
use crate::frame::{self, opcode, w, Bound, Frame, FrameError, QueryParams, Reader};
use crate::parser::{self, Stmt};

/// Most requests of one connection in flight at once.
const MAX_IN_FLIGHT: usize = 4096;

struct Conn {
    keyspace: Mutex<Option<String>>,
    /// The role logged in with (password authentication only).
    user: Mutex<Option<String>>,
    lz4: AtomicBool,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Conn {
    fn send(&self, stream: i16, op: u8, body: &[u8]) {
        let mut out = Vec::with_capacity(body.len() + 9);
        frame::write_frame(&mut out, stream, op, body, self.lz4.load(Ordering::Relaxed));
        let _ = self.tx.send(out);
    }
    fn user(&self) -> Option<String> {
        self.user.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn keyspace(&self) -> Option<String> {
        self.keyspace
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub async fn handle(sock: TcpStream, engine: Arc<Engine>, metrics: ApiMetrics) {
    let _conn = metrics.connection();
    let (mut rd, mut wr) = sock.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(mut buf) = rx.recv().await {
            if rx.is_empty() {
                // Let the statements that are about to answer do so: one write for a burst.
                tokio::task::yield_now().await;
            }
            while buf.len() < 256 * 1024 {
                match rx.try_recv() {
                    Ok(more) => buf.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if wr.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let conn = Arc::new(Conn {
        keyspace: Mutex::new(None),
        user: Mutex::new(None),
        lz4: AtomicBool::new(false),
        tx,
        slots: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
    });
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, &mut rd);
    let mut started = false;
    // STARTUP answered with AUTHENTICATE; no AUTH_SUCCESS yet.
    let mut authenticating = false;
    loop {
        let f = match frame::read_frame(&mut rd, conn.lz4.load(Ordering::Relaxed)).await {
            Ok(Some(f)) => f,
            Ok(None) | Err(FrameError::Io(_)) => break,
            Err(FrameError::Protocol { stream, error }) => {
                conn.send(stream, opcode::ERROR, &error_body(&error));
                break;
            }
        };
        match f.opcode {
            opcode::OPTIONS => {
                let mut b = Vec::new();
                w::string_multimap(
                    &mut b,
                    &[
                        ("CQL_VERSION", &[crate::system::CQL_VERSION]),
                        ("COMPRESSION", &["lz4"]),
                        ("PROTOCOL_VERSIONS", &["4/v4"]),
                    ],
                );
                conn.send(f.stream, opcode::SUPPORTED, &b);
            }
            opcode::STARTUP => {
                let opts = match Reader::new(&f.body).string_map() {
                    Ok(o) => o,
                    Err(e) => {
                        conn.send(f.stream, opcode::ERROR, &error_body(&e));
                        continue;
                    }
                };
                let mut lz4 = false;
                let mut bad = None;
                for (k, v) in &opts {
                    if k.eq_ignore_ascii_case("COMPRESSION") {
                        if v.eq_ignore_ascii_case("lz4") {
                            lz4 = true;
                        } else {
                            bad = Some(CqlError::protocol(format!(
                                "Unknown compression algorithm: {v}"
                            )));
                        }
                    }
                }
                if let Some(e) = bad {
                    conn.send(f.stream, opcode::ERROR, &error_body(&e));
                    continue;
                }
                if engine.auth.enabled {
                    let mut b = Vec::new();
                    w::string(&mut b, crate::auth::AUTHENTICATOR);
                    conn.send(f.stream, opcode::AUTHENTICATE, &b);
                    authenticating = true;
                } else {
                    started = true;
                    conn.send(f.stream, opcode::READY, &[]);
                }
                conn.lz4.store(lz4, Ordering::Relaxed);
            }
            opcode::REGISTER => {
                if let Ok(kinds) = Reader::new(&f.body).string_list() {
                    if kinds.iter().any(|k| k == "SCHEMA_CHANGE") {
                        let mut events = engine.events.subscribe();
                        let c = conn.clone();
                        tokio::spawn(async move {
                            while let Ok(ev) = events.recv().await {
                                let mut b = Vec::new();
                                w::string(&mut b, "SCHEMA_CHANGE");
                                schema_change_body(&mut b, &ev);
                                c.send(-1, opcode::EVENT, &b);
                                if c.tx.is_closed() {
                                    break;
                                }
                            }
                        });
                    }
                }
                conn.send(f.stream, opcode::READY, &[]);
            }
            opcode::AUTH_RESPONSE if authenticating => {
                let token = Reader::new(&f.body).bytes().map(|b| b.unwrap_or_default());
                let res = match token {
                    Ok(t) => engine.auth.login(&engine.catalog, &t).await,
                    Err(e) => Err(e),
                };
                match res {
                    Ok(user) => {
                        *conn.user.lock().unwrap_or_else(|e| e.into_inner()) = Some(user);
                        authenticating = false;
                        started = true;
                        let mut b = Vec::new();
                        w::bytes(&mut b, None);
                        conn.send(f.stream, opcode::AUTH_SUCCESS, &b);
                    }
                    Err(e) => conn.send(f.stream, opcode::ERROR, &error_body(&e)),
                }
            }
            opcode::AUTH_RESPONSE => {
                conn.send(
                    f.stream,
                    opcode::ERROR,
                    &error_body(&CqlError::protocol(
                        "Unexpected message AUTH_RESPONSE, expecting STARTUP",
                    )),
                );
            }
            opcode::QUERY | opcode::PREPARE | opcode::EXECUTE | opcode::BATCH => {
                if authenticating {
                    conn.send(
                        f.stream,
                        opcode::ERROR,
                        &error_body(&CqlError::protocol(format!(
                            "Unexpected message {}, expecting SASL_RESPONSE",
                            opcode::name(f.opcode)
                        ))),
                    );
                    continue;
                }
                if !started {
                    conn.send(
                        f.stream,
                        opcode::ERROR,
                        &error_body(&CqlError::protocol(
                            "Unexpected message QUERY, expecting STARTUP or OPTIONS",
                        )),
                    );
                    continue;
                }
                let Ok(permit) = conn.slots.clone().acquire_owned().await else {
                    break;
                };
                let (c, e, m) = (conn.clone(), engine.clone(), metrics.clone());
                tokio::spawn(async move {
                    let stream = f.stream;
                    let t0 = std::time::Instant::now();
                    let mut kind = "unknown";
                    // Boxed: the statement's future is large, and the task would copy it
                    // inline when spawned and again when it completes.
                    let (op, body) = match Box::pin(request(&e, &c, f, &mut kind)).await {
                        Ok(body) => (opcode::RESULT, body),
                        Err(err) => (opcode::ERROR, error_body(&err)),
                    };
                    m.observe(kind, t0.elapsed(), op == opcode::RESULT);
                    c.send(stream, op, &body);
                    drop(permit);
                });
            }
            op => {
                conn.send(
                    f.stream,
                    opcode::ERROR,
                    &error_body(&CqlError::protocol(format!("Unknown opcode {op:#04x}"))),
                );
            }
        }
    }
    drop(conn);
    let _ = writer.await;
}

fn now() -> (i64, i64) {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    (us / 1000, us)
}

/// Order named bind values by the statement's marker names.
fn order_values(params: &QueryParams, names: &[Option<String>]) -> Result<Vec<Bound>> {
    let Some(given) = &params.names else {
        return Ok(params.values.clone());
    };
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let n = n.clone().ok_or_else(|| {
                CqlError::invalid(format!(
                    "Named values given but bind marker {i} has no name"
                ))
            })?;
            given
                .iter()
                .position(|g| *g == n)
                .map(|p| params.values[p].clone())
                .ok_or_else(|| {
                    CqlError::invalid(format!("Invalid named value: no value given for {n}"))
                })
        })
        .collect()
}

/// Run one request; `kind` is set to its statement type (for metrics).
async fn request(
    engine: &Engine,
    conn: &Conn,
    f: Frame,
    kind: &mut &'static str,
) -> Result<Vec<u8>> {
    let mut r = Reader::new(&f.body);
    let (now_ms, now_us) = now();
    let ks = conn.keyspace();
    let user = conn.user();
    match f.opcode {
        opcode::QUERY => {
            let q = r.long_string()?;
            let params = QueryParams::read(&mut r)?;
            let parsed = parser::parse(&q)?;
            *kind = parsed.stmt.kind();
            let values = order_values(&params, &parsed.bind_names)?;
            if values.len() != parsed.bind_names.len() && !values.is_empty() {
                return Err(CqlError::invalid(format!(
                    "There were {} markers(?) in CQL but {} bound variables",
                    parsed.bind_names.len(),
                    values.len()
                )));
            }
            let ctx = Ctx {
                ks: ks.as_deref(),
                params: &params,
                values: &values,
                now_ms,
                now_us,
                user: user.as_deref(),
            };
            let out = engine.execute(&parsed.stmt, &ctx).await?;
            Ok(result_body(conn, out, false))
        }
        opcode::PREPARE => {
            *kind = "prepare";
            let q = r.long_string()?;
            let p = engine.prepare(&q, ks.as_deref()).await?;
            let mut b = Vec::new();
            w::int(&mut b, 4);
            w::short_bytes(&mut b, &p.id);
            // Bind metadata with partition-key indexes.
            let global = common_table(&p.binds);
            w::int(&mut b, if global.is_some() { 1 } else { 0 });
            w::int(&mut b, p.binds.len() as i32);
            w::int(&mut b, p.pk_indexes.len() as i32);
            for i in &p.pk_indexes {
                w::short(&mut b, *i);
            }
            col_specs(&mut b, &p.binds, global);
            if p.result.is_empty() {
                w::int(&mut b, 0x0004);
                w::int(&mut b, 0);
            } else {
                let global = common_table(&p.result);
                w::int(&mut b, if global.is_some() { 1 } else { 0 });
                w::int(&mut b, p.result.len() as i32);
                col_specs(&mut b, &p.result, global);
            }
            Ok(b)
        }
        opcode::EXECUTE => {
            let id = r.short_bytes()?;
            let params = QueryParams::read(&mut r)?;
            let p = engine
                .get_prepared(&id)
                .ok_or_else(|| CqlError::unprepared(&id))?;
            *kind = p.parsed.stmt.kind();
            let values = order_values(&params, &p.parsed.bind_names)?;
            if values.len() != p.binds.len() {
                return Err(CqlError::invalid(format!(
                    "There were {} markers(?) in CQL but {} bound variables",
                    p.binds.len(),
                    values.len()
                )));
            }
            let ks = p.ks.clone().or(ks);
            let ctx = Ctx {
                ks: ks.as_deref(),
                params: &params,
                values: &values,
                now_ms,
                now_us,
                user: user.as_deref(),
            };
            let out = engine.execute(&p.parsed.stmt, &ctx).await?;
            let skip = params.skip_metadata && !p.result.is_empty();
            Ok(result_body(conn, out, skip))
        }
        opcode::BATCH => {
            *kind = "batch";
            let kind = match r.byte()? {
                0 => parser::BatchKind::Logged,
                1 => parser::BatchKind::Unlogged,
                2 => parser::BatchKind::Counter,
                k => return Err(CqlError::protocol(format!("Invalid BATCH type {k}"))),
            };
            let n = r.short()?;
            let mut entries: Vec<(Arc<Stmt>, Vec<Bound>, Option<String>)> = Vec::new();
            for _ in 0..n {
                let (stmt, pks) = match r.byte()? {
                    0 => {
                        let q = r.long_string()?;
                        (Arc::new(parser::parse(&q)?.stmt), None)
                    }
                    1 => {
                        let id = r.short_bytes()?;
                        let p = engine
                            .get_prepared(&id)
                            .ok_or_else(|| CqlError::unprepared(&id))?;
                        (Arc::new(p.parsed.stmt.clone()), p.ks.clone())
                    }
                    k => {
                        return Err(CqlError::protocol(format!(
                            "Invalid query kind in BATCH: {k}"
                        )))
                    }
                };
                let nv = r.short()?;
                let vals = (0..nv).map(|_| r.value()).collect::<Result<Vec<_>>>()?;
                entries.push((stmt, vals, pks));
            }
            let consistency = r.short()?;
            let flags = r.byte()?;
            let mut params = QueryParams {
                consistency,
                ..Default::default()
            };
            if flags & 0x10 != 0 {
                params.serial_consistency = Some(r.short()?);
            }
            if flags & 0x20 != 0 {
                params.timestamp = Some(r.long()?);
            }
            let ctx = Ctx {
                ks: ks.as_deref(),
                params: &params,
                values: &[],
                now_ms,
                now_us,
                user: user.as_deref(),
            };
            let list: Vec<(&Stmt, &[Bound])> = entries
                .iter()
                .map(|(s, v, _)| (s.as_ref(), v.as_slice()))
                .collect();
            let out =
                crate::dml::batch(engine, kind, &parser::Using::default(), &list, &ctx).await?;
            Ok(result_body(conn, out, false))
        }
        _ => Err(CqlError::protocol("unexpected opcode")),
    }
}

fn common_table(cols: &[ColSpec]) -> Option<(String, String)> {
    let first = cols.first()?;
    cols.iter()
        .all(|c| c.ks == first.ks && c.table == first.table)
        .then(|| (first.ks.clone(), first.table.clone()))
}

fn col_specs(b: &mut Vec<u8>, cols: &[ColSpec], global: Option<(String, String)>) {
    if let Some((ks, t)) = &global {
        w::string(b, ks);
        w::string(b, t);
    }
    for c in cols {
        if global.is_none() {
            w::string(b, &c.ks);
            w::string(b, &c.table);
        }
        w::string(b, &c.name);
        c.ty.write_option(b);
    }
}

fn rows_body(b: &mut Vec<u8>, rows: &Rows, skip_metadata: bool) {
    w::int(b, 2);
    let global = common_table(&rows.cols);
    let mut flags = 0;
    if global.is_some() && !skip_metadata {
        flags |= 0x0001;
    }
    if rows.paging_state.is_some() {
        flags |= 0x0002;
    }
    if skip_metadata {
        flags |= 0x0004;
    }
    w::int(b, flags);
    w::int(b, rows.cols.len() as i32);
    if let Some(ps) = &rows.paging_state {
        w::bytes(b, Some(ps));
    }
    if !skip_metadata {
        col_specs(b, &rows.cols, global);
    }
    w::int(b, rows.rows.len() as i32);
    for r in &rows.rows {
        for c in r {
            w::bytes(b, c.as_deref());
        }
    }
}

fn schema_change_body(b: &mut Vec<u8>, sc: &SchemaChange) {
    w::string(b, sc.change);
    w::string(b, sc.target);
    w::string(b, &sc.keyspace);
    if let Some(n) = &sc.name {
        w::string(b, n);
    }
}

fn result_body(conn: &Conn, out: Outcome, skip_metadata: bool) -> Vec<u8> {
    let mut b = Vec::new();
    match out {
        Outcome::Void => w::int(&mut b, 1),
        Outcome::Rows(rows) => rows_body(&mut b, &rows, skip_metadata),
        Outcome::SetKeyspace(ks) => {
            w::int(&mut b, 3);
            w::string(&mut b, &ks);
            *conn.keyspace.lock().unwrap_or_else(|e| e.into_inner()) = Some(ks);
        }
        Outcome::SchemaChange(sc) => {
            w::int(&mut b, 5);
            schema_change_body(&mut b, &sc);
        }
    }
    b
}

pub fn error_body(e: &CqlError) -> Vec<u8> {
    let mut b = Vec::new();
    w::int(&mut b, e.code);
    w::string(&mut b, &e.message);
    match (&e.extra, e.code) {
        (Extra::AlreadyExists { keyspace, table }, _) => {
            w::string(&mut b, keyspace);
            w::string(&mut b, table);
        }
        (Extra::Unprepared(id), _) => w::short_bytes(&mut b, id),
        (_, code::UNAVAILABLE) => {
            w::short(&mut b, 1);
            w::int(&mut b, 1);
            w::int(&mut b, 0);
        }
        (_, code::WRITE_TIMEOUT) => {
            w::short(&mut b, 1);
            w::int(&mut b, 0);
            w::int(&mut b, 1);
            w::string(&mut b, "SIMPLE");
        }
        (_, code::READ_TIMEOUT) => {
            w::short(&mut b, 1);
            w::int(&mut b, 0);
            w::int(&mut b, 1);
            b.push(0);
        }
        _ => {}
    }
    b
}
