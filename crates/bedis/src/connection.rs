//! One client connection: read bytes, parse every complete request in the buffer (pipelining),
//! run them, write all replies at once, in request order. A protocol error is answered and
//! the connection closed, as Redis does.
//!
//! Pipelined requests run in *waves*: consecutive single-key data commands on distinct keys
//! run concurrently (each is its own Raft write or lease read, so a pipeline of 16 SETs costs
//! about one round trip, not 16). Any other command, or a second command on a key already in
//! the wave, ends the wave and runs after it — so every key, and the session, sees the
//! commands of one connection in the order they were sent.
//!
//! Every command is timed from dispatch to reply and reported to the server's
//! [`ApiMetrics`] under its name (unknown commands as `unknown`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::metrics::ApiMetrics;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cmd::{self, dispatch, Session};
use crate::db::Dbs;
use crate::frame::{parse_request, Frame};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Most unparsed input kept for one client (Redis's `client-query-buffer-limit`, 1 GiB).
const MAX_QUERY_BUFFER: usize = 1 << 30;

/// Input read from a client while one of its commands blocks is kept up to this size; then
/// reading pauses until the command ends.
const MAX_BUFFERED_WHILE_BLOCKED: usize = 64 << 20;

/// Serve one connection until the client leaves, sends QUIT, or breaks the protocol.
pub async fn handle(mut sock: TcpStream, dbs: Arc<Dbs>, metrics: ApiMetrics) {
    let _conn = metrics.connection();
    let _ = sock.set_nodelay(true);
    let addr = sock.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let (inbox, mut messages) = tokio::sync::mpsc::channel(crate::pubsub::QUEUE);
    let mut s = Session::new(NEXT_ID.fetch_add(1, Ordering::Relaxed), addr, Some(inbox));
    s.authenticated = !cmd::password_required();
    crate::CONNECTED_CLIENTS.fetch_add(1, Ordering::Relaxed);
    let kill = Arc::new(tokio::sync::Notify::new());
    dbs.clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            s.id,
            crate::db::ClientEntry {
                addr: s.addr.clone(),
                name: Vec::new(),
                db: 0,
                proto: 2,
                since: Instant::now(),
                kill: kill.clone(),
                unblock: None,
            },
        );
    tokio::select! {
        _ = serve(&mut sock, &mut s, &dbs, &metrics, &mut messages) => {}
        _ = kill.notified() => {}
    }
    dbs.clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&s.id);
    crate::CONNECTED_CLIENTS.fetch_sub(1, Ordering::Relaxed);
    dbs.pubsub.forget(s.id, &s.channels, &s.patterns);
}

async fn serve(
    sock: &mut TcpStream,
    s: &mut Session,
    dbs: &Dbs,
    metrics: &ApiMetrics,
    messages: &mut tokio::sync::mpsc::Receiver<Frame>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            r = sock.read(&mut chunk) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            Some(msg) = messages.recv() => {
                msg.encode(s.proto, &mut out);
                while let Ok(m) = messages.try_recv() {
                    m.encode(s.proto, &mut out);
                }
                if sock.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
                continue;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_QUERY_BUFFER {
            // Redis's client-query-buffer-limit: one request may not hold more than this.
            tracing::warn!(client = %s.addr, "closing a client whose query buffer passed 1 GiB");
            return;
        }
        let mut consumed = 0;
        let mut requests = Vec::new();
        let mut broken = None;
        loop {
            match parse_request(&buf[consumed..]) {
                Ok(Some((args, used))) => {
                    consumed += used;
                    if !args.is_empty() {
                        requests.push(args);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        let mut wave: Vec<Vec<Vec<u8>>> = Vec::new();
        for args in requests {
            // Inside MULTI every command is only queued: no waves.
            let single = cmd::single_key(&args).filter(|_| {
                s.multi.is_none() && s.replies == cmd::ReplyMode::On && !s.subscribed()
            });
            // A single-key command's key is its first argument.
            let joins = single.is_some_and(|k| !wave.iter().any(|w| w[1] == k));
            if !joins {
                run_wave(s, dbs, metrics, std::mem::take(&mut wave), &mut out).await;
            }
            if single.is_some() {
                wave.push(args);
            } else {
                // Keep CLIENT LIST current after the commands that change the session,
                // without a lock on every command.
                let changes_session = matches!(
                    cmd::command_name(&args),
                    "select" | "client" | "hello" | "reset"
                );
                let blocking = cmd::is_blocking(&args);
                let round = cmd::push_round();
                let reply = if blocking && s.multi.is_none() {
                    // A blocked client that disconnects stops waiting (and is no longer
                    // counted in `blocked_clients`); what it sends meanwhile waits in `buf`.
                    let unblock = Arc::new(cmd::Unblock::default());
                    let id = s.id;
                    set_unblock(dbs, id, Some(unblock.clone()));
                    let run = cmd::UNBLOCK.scope(unblock.clone(), timed(s, dbs, metrics, args));
                    tokio::pin!(run);
                    let reply = loop {
                        tokio::select! {
                            reply = &mut run => break reply,
                            r = sock.read(&mut chunk), if buf.len() < MAX_BUFFERED_WHILE_BLOCKED => match r {
                                Ok(0) | Err(_) => {
                                    set_unblock(dbs, id, None);
                                    return;
                                }
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            },
                        }
                    };
                    set_unblock(dbs, id, None);
                    if unblock.wants_error() && reply.is_null() {
                        Frame::err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
                    } else {
                        reply
                    }
                } else {
                    timed(s, dbs, metrics, args).await
                };
                if !blocking && cmd::push_round() != round {
                    cmd::settle().await;
                }
                if changes_session {
                    if let Some(e) = dbs
                        .clients
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_mut(&s.id)
                    {
                        e.db = s.db;
                        e.proto = s.proto;
                        e.name = s.name.clone().unwrap_or_default();
                    }
                }
                // Pub/sub notifications are pushes: CLIENT REPLY OFF does not stop them.
                if s.take_reply() || reply.is_push() {
                    reply.encode(s.proto, &mut out);
                }
                if s.quit {
                    let _ = sock.write_all(&out).await;
                    return;
                }
            }
        }
        run_wave(s, dbs, metrics, wave, &mut out).await;
        if let Some(e) = broken {
            Frame::err(format!("ERR {e}")).encode(s.proto, &mut out);
            let _ = sock.write_all(&out).await;
            return;
        }
        buf.drain(..consumed);
        if !out.is_empty() {
            if sock.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// Record (or clear) the blocking command of client `id` for CLIENT UNBLOCK.
fn set_unblock(dbs: &Dbs, id: u64, unblock: Option<Arc<cmd::Unblock>>) {
    if let Some(e) = dbs
        .clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(&id)
    {
        e.unblock = unblock;
    }
}

/// Run one command, reporting it to `metrics`.
async fn timed(s: &mut Session, dbs: &Dbs, metrics: &ApiMetrics, args: Vec<Vec<u8>>) -> Frame {
    let name = cmd::command_name(&args);
    let t0 = Instant::now();
    let reply = dispatch(s, dbs, args).await;
    metrics.observe(name, t0.elapsed(), !matches!(reply, Frame::Error(_)));
    reply
}

/// Run single-key commands on distinct keys concurrently; append their replies in order.
/// Plain SETs among them go to their tablets together (see [`cmd::plain_sets`]).
async fn run_wave(
    s: &mut Session,
    dbs: &Dbs,
    metrics: &ApiMetrics,
    wave: Vec<Vec<Vec<u8>>>,
    out: &mut Vec<u8>,
) {
    let round = cmd::push_round();
    if wave.len() <= 1 {
        for args in wave {
            timed(s, dbs, metrics, args).await.encode(s.proto, out);
        }
    } else {
        let (db, proto, authenticated) = (s.db, s.proto, s.authenticated);
        let batch_sets = cmd::plain_sets_allowed(s);
        let (sets, others): (Vec<_>, Vec<_>) = wave
            .into_iter()
            .enumerate()
            .partition(|(_, args)| batch_sets && cmd::is_plain_set(args));
        let runs = others.into_iter().map(|(i, args)| async move {
            // Single-key commands only read the database index and protocol from the session.
            let mut local = Session::local(db, proto);
            local.authenticated = authenticated;
            (i, timed(&mut local, dbs, metrics, args).await)
        });
        let set_run = async {
            if sets.is_empty() {
                return Vec::new();
            }
            let t0 = Instant::now();
            let (at, args): (Vec<usize>, Vec<_>) = sets.into_iter().unzip();
            let replies = cmd::plain_sets(dbs, db, &args).await;
            let took = t0.elapsed();
            for r in &replies {
                metrics.observe("set", took, !matches!(r, Frame::Error(_)));
            }
            at.into_iter().zip(replies).collect()
        };
        let (mut replies, set_replies) =
            futures::future::join(futures::future::join_all(runs), set_run).await;
        replies.extend(set_replies);
        replies.sort_unstable_by_key(|(i, _)| *i);
        for (_, reply) in replies {
            reply.encode(proto, out);
        }
    }
    if cmd::push_round() != round {
        cmd::settle().await;
    }
}
