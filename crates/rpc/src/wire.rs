//! `wire`: AiSQL's framed RPC over plain TCP for the hot node-to-node calls — Raft
//! AppendEntries and the tablet data calls (`Write`, `WriteMany`, `Read`, `Scan`). Everything
//! else (catalog, votes, snapshots, admin) stays on gRPC.
//!
//! Why: on the hot path HTTP/2 cost more than the work it carried (~16 % of the CPU of an RF=3
//! write load: hpack, flow control, a connection task that every message passes through, a
//! server task and two header blocks per unary call). YugabyteDB's own RPC layer is framed
//! TCP too.
//!
//! It shares the RPC port with gRPC: a connection whose first bytes are [`PREFACE`] speaks
//! this protocol, any other is handed to tonic ([`crate::incoming`]). After the preface both
//! directions carry frames:
//!
//! ```text
//! frame = payload length (u32 LE) ‖ method (u8) ‖ call id (u64 LE) ‖ payload
//! ```
//!
//! A request's payload is the prost encoding of the gRPC request message of the same name
//! (`RaftRequest` for AppendEntries). A reply carries the request's id and `method | 0x80`
//! with the prost reply, or [`ERROR`] with `code (i32 LE) ‖ message` (a `tonic::Status`).
//! Calls on one connection run concurrently; replies come in completion order. Method
//! [`Method::Ping`] is answered at once: a caller that has heard nothing for
//! [`PING_AFTER`] pings, and declares the connection dead after [`DEAD_AFTER`] more without
//! a frame (what HTTP/2 keep-alive did). Frames are written in batches: one `write` for
//! every frame queued while the previous one ran.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// The first bytes a client sends on a connection of this protocol.
pub const PREFACE: &[u8; 8] = b"AISQLW1\n";
/// The largest payload accepted (a bulk load's AppendEntries can be large).
pub const MAX_PAYLOAD: usize = 256 << 20;
/// The method byte of an error reply.
pub const ERROR: u8 = 0xFF;
const REPLY: u8 = 0x80;
const HEADER: usize = 13;
/// A caller that has heard nothing on its connection for this long sends a ping.
pub const PING_AFTER: Duration = Duration::from_secs(10);
/// ... and gives the connection up when nothing arrives for this long after the ping.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Frames written with one `write` at most (more wait for the next one).
const WRITE_BATCH: usize = 256 << 10;

/// The calls this protocol carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Method {
    Ping = 0,
    Append = 1,
    Write = 2,
    WriteMany = 3,
    Read = 4,
    Scan = 5,
}

impl Method {
    pub fn from_u8(b: u8) -> Option<Method> {
        Some(match b {
            0 => Method::Ping,
            1 => Method::Append,
            2 => Method::Write,
            3 => Method::WriteMany,
            4 => Method::Read,
            5 => Method::Scan,
            _ => return None,
        })
    }

    /// The `Service/Method` name its gRPC twin has (for metrics and `/rpcz`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Ping => "Wire/Ping",
            Method::Append => "RaftService/AppendEntries",
            Method::Write => "TabletService/Write",
            Method::WriteMany => "TabletService/WriteMany",
            Method::Read => "TabletService/Read",
            Method::Scan => "TabletService/Scan",
        }
    }
}

/// One frame, header included.
fn frame(method: u8, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.push(method);
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(payload);
    f
}

fn error_frame(id: u64, status: &tonic::Status) -> Vec<u8> {
    let mut p = (status.code() as i32).to_le_bytes().to_vec();
    p.extend_from_slice(status.message().as_bytes());
    frame(ERROR, id, &p)
}

fn decode_error(payload: &[u8]) -> tonic::Status {
    if payload.len() < 4 {
        return tonic::Status::internal("malformed error reply");
    }
    let code = i32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
    tonic::Status::new(
        tonic::Code::from_i32(code),
        String::from_utf8_lossy(&payload[4..]).into_owned(),
    )
}

/// Read one frame; `None` at a clean end of the stream (between frames). The payload buffer
/// grows only as bytes arrive, so a header announcing a huge payload costs nothing by itself.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
) -> std::io::Result<Option<(u8, u64, Vec<u8>)>> {
    let mut hdr = [0u8; HEADER];
    let n = rd.read(&mut hdr).await?;
    if n == 0 {
        return Ok(None);
    }
    rd.read_exact(&mut hdr[n..]).await?;
    let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes (at most {MAX_PAYLOAD})"),
        ));
    }
    let method = hdr[4];
    let mut id = [0u8; 8];
    id.copy_from_slice(&hdr[5..13]);
    let mut payload = Vec::with_capacity(len.min(64 << 10));
    let got = rd.take(len as u64).read_to_end(&mut payload).await?;
    if got < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some((method, u64::from_le_bytes(id), payload)))
}

/// Write every frame `rx` yields, batching those already queued into one `write`.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(64 << 10);
    while let Some(first) = rx.recv().await {
        if rx.is_empty() {
            wr.write_all(&first).await?;
            continue;
        }
        buf.clear();
        buf.extend_from_slice(&first);
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(f) => buf.extend_from_slice(&f),
                Err(_) => break,
            }
        }
        wr.write_all(&buf).await?;
    }
    Ok(())
}

// ---- server -------------------------------------------------------------------------------

/// What a server answers on this protocol.
pub type WireFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, tonic::Status>> + Send>>;

/// A server's handler: the reply payload (a prost message) for one request payload.
pub trait WireHandler: Send + Sync + 'static {
    fn call(&self, method: Method, payload: Vec<u8>) -> WireFuture;
}

/// The server side of one connection (its preface already read): run each request as its
/// own task, write the replies as they finish. Ends when the client closes or sends garbage.
pub(crate) async fn serve(
    sock: TcpStream,
    handler: Arc<dyn WireHandler>,
    metrics: common::metrics::RpcMetrics,
) {
    let (rd, wr) = sock.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(wr, rx));
    let mut rd = BufReader::with_capacity(64 << 10, rd);
    loop {
        let (m, id, payload) = match read_frame(&mut rd).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "wire connection ended");
                break;
            }
        };
        let Some(method) = Method::from_u8(m) else {
            let _ = tx.send(error_frame(
                id,
                &tonic::Status::unimplemented(format!("unknown wire method {m}")),
            ));
            continue;
        };
        if method == Method::Ping {
            let _ = tx.send(frame(REPLY, id, &[]));
            continue;
        }
        let call = metrics.start(method.name());
        let fut = handler.call(method, payload);
        let tx = tx.clone();
        tokio::spawn(async move {
            let reply = fut.await;
            call.finish(reply.is_ok());
            let _ = tx.send(match reply {
                Ok(p) => frame(method as u8 | REPLY, id, &p),
                Err(s) => error_frame(id, &s),
            });
        });
    }
    drop(tx);
    // The writer ends once every running call has sent its reply.
    let _ = writer.await;
}

// ---- client -------------------------------------------------------------------------------

type Waiter = oneshot::Sender<Result<Vec<u8>, tonic::Status>>;

/// One client connection (connecting, open, or ended).
struct Conn {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    next_id: AtomicU64,
    /// Callers waiting for their reply; `None` once the connection has ended.
    pending: Mutex<Option<HashMap<u64, Waiter>>>,
    born: Instant,
    /// When a frame last arrived, in ms since `born`.
    heard_ms: AtomicU64,
}

impl Conn {
    fn pending(&self) -> std::sync::MutexGuard<'_, Option<HashMap<u64, Waiter>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn closed(&self) -> bool {
        self.pending().is_none() || self.tx.is_closed()
    }

    /// End the connection: every waiter fails at once.
    fn fail(&self, why: &str) {
        if let Some(p) = self.pending().take() {
            for (_, w) in p {
                let _ = w.send(Err(tonic::Status::unavailable(why.to_owned())));
            }
        }
    }

    /// Milliseconds since `born` (the clock of `heard_ms`).
    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn heard_ms(&self) -> u64 {
        self.heard_ms.load(Ordering::Relaxed)
    }
}

/// Connections to peers by address, opened on first use and again after one ends. Shared
/// by every caller in a process (part of [`crate::ChannelPool`]).
#[derive(Clone)]
pub struct WirePool {
    conns: Arc<RwLock<HashMap<String, Arc<Conn>>>>,
    /// [`PING_AFTER`] and [`DEAD_AFTER`] (shorter in tests).
    ping_after: Duration,
    dead_after: Duration,
}

impl Default for WirePool {
    fn default() -> Self {
        WirePool {
            conns: Arc::default(),
            ping_after: PING_AFTER,
            dead_after: DEAD_AFTER,
        }
    }
}

impl WirePool {
    fn conn(&self, addr: &str) -> Arc<Conn> {
        if let Some(c) = self
            .conns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(addr)
        {
            if !c.closed() {
                return c.clone();
            }
        }
        let mut conns = self.conns.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = conns.get(addr) {
            if !c.closed() {
                return c.clone();
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Arc::new(Conn {
            tx,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(Some(HashMap::new())),
            born: Instant::now(),
            heard_ms: AtomicU64::new(0),
        });
        conns.insert(addr.to_owned(), conn.clone());
        tokio::spawn(run_conn(addr.to_owned(), conn.clone(), rx));
        conn
    }

    /// Call `method` on `addr` with `req`, waiting at most `timeout` for the reply.
    pub async fn call<Req, Resp>(
        &self,
        addr: &str,
        method: Method,
        req: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let payload = self
            .call_raw(addr, method, req.encode_to_vec(), timeout)
            .await?;
        Resp::decode(&payload[..])
            .map_err(|e| tonic::Status::internal(format!("malformed reply from {addr}: {e}")))
    }

    async fn call_raw(
        &self,
        addr: &str,
        method: Method,
        payload: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, tonic::Status> {
        let conn = self.conn(addr);
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = oneshot::channel();
        match conn.pending().as_mut() {
            Some(p) => p.insert(id, tx),
            None => {
                return Err(tonic::Status::unavailable(format!(
                    "connection to {addr} closed"
                )))
            }
        };
        let forget = |conn: &Conn| {
            if let Some(p) = conn.pending().as_mut() {
                p.remove(&id);
            }
        };
        if conn.tx.send(frame(method as u8, id, &payload)).is_err() {
            forget(&conn);
            return Err(tonic::Status::unavailable(format!(
                "connection to {addr} closed"
            )));
        }
        drop(payload);
        let started = Instant::now();
        let deadline = timeout.map(|t| started + t);
        // When a ping went out (ms on the connection's clock), until a frame arrives. Both
        // sides of the comparison are whole milliseconds of one clock: an answer that
        // arrives within the millisecond the ping was sent counts.
        let mut pinged: Option<u64> = None;
        let (ping_after, dead_after) = (self.ping_after, self.dead_after);
        loop {
            // Wake at the deadline, or to check the connection is alive.
            let mut wake = Instant::now() + ping_after.min(dead_after);
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            match tokio::time::timeout_at(wake.into(), &mut rx).await {
                Ok(Ok(r)) => return r,
                Ok(Err(_)) => {
                    return Err(tonic::Status::unavailable(format!(
                        "connection to {addr} closed"
                    )))
                }
                Err(_) => {}
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                forget(&conn);
                return Err(tonic::Status::deadline_exceeded(format!(
                    "call to {addr} timed out after {:?}",
                    now - started
                )));
            }
            let (now_ms, heard_ms) = (conn.now_ms(), conn.heard_ms());
            match pinged {
                Some(at) if heard_ms >= at => pinged = None,
                Some(at) if now_ms >= at + dead_after.as_millis() as u64 => {
                    conn.fail(&format!("{addr} did not answer a ping for {dead_after:?}"));
                    return Err(tonic::Status::unavailable(format!(
                        "{addr} did not answer a ping"
                    )));
                }
                _ => {}
            }
            if pinged.is_none() && now_ms.saturating_sub(heard_ms) >= ping_after.as_millis() as u64
            {
                pinged = Some(now_ms);
                let _ = conn.tx.send(frame(Method::Ping as u8, 0, &[]));
            }
        }
    }
}

/// Connect, send the preface, then write queued frames and hand replies to their callers
/// until the connection ends.
async fn run_conn(addr: String, conn: Arc<Conn>, rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let sock = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return conn.fail(&format!("connect to {addr}: {e}")),
        Err(_) => return conn.fail(&format!("connect to {addr}: timed out")),
    };
    let _ = sock.set_nodelay(true);
    let (rd, mut wr) = sock.into_split();
    let writer_conn = conn.clone();
    let writer = tokio::spawn(async move {
        let r = match wr.write_all(PREFACE).await {
            Ok(()) => write_loop(wr, rx).await,
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            writer_conn.fail(&format!("write: {e}"));
        }
    });
    let mut rd = BufReader::with_capacity(64 << 10, rd);
    let why = loop {
        match read_frame(&mut rd).await {
            Ok(Some((m, id, payload))) => {
                conn.heard_ms.store(conn.now_ms(), Ordering::Relaxed);
                if m == REPLY | Method::Ping as u8 && id == 0 {
                    continue;
                }
                let waiter = conn.pending().as_mut().and_then(|p| p.remove(&id));
                if let Some(w) = waiter {
                    let _ = w.send(if m == ERROR {
                        Err(decode_error(&payload))
                    } else {
                        Ok(payload)
                    });
                }
            }
            Ok(None) => break format!("{addr} closed the connection"),
            Err(e) => break format!("read from {addr}: {e}"),
        }
    };
    tracing::debug!(peer = %addr, reason = %why, "wire connection ended");
    conn.fail(&why);
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `Write` after `delay`, anything else at once (an empty reply).
    struct Slow(Duration);

    impl WireHandler for Slow {
        fn call(&self, method: Method, _payload: Vec<u8>) -> WireFuture {
            let delay = if method == Method::Write {
                self.0
            } else {
                Duration::ZERO
            };
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(Vec::new())
            })
        }
    }

    fn fast_pool() -> WirePool {
        WirePool {
            ping_after: Duration::from_millis(60),
            dead_after: Duration::from_millis(60),
            ..WirePool::default()
        }
    }

    /// A call that outlasts several ping rounds on a quiet connection succeeds while the
    /// peer answers pings (on loopback the answer usually comes within the millisecond the
    /// ping left: that counts), and one to a peer that never answers fails soon after.
    #[tokio::test]
    async fn pings_keep_a_slow_call_alive_and_find_a_silent_peer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut preface = [0u8; 8];
                sock.read_exact(&mut preface).await.unwrap();
                let metrics = common::metrics::RpcMetrics::default();
                tokio::spawn(serve(
                    sock,
                    Arc::new(Slow(Duration::from_millis(700))),
                    metrics,
                ));
            }
        });
        let pool = fast_pool();
        for _ in 0..3 {
            let r: Result<(), tonic::Status> = pool
                .call_raw(&addr, Method::Write, Vec::new(), None)
                .await
                .map(drop);
            assert!(r.is_ok(), "{r:?}");
        }

        // A peer that takes the connection and never says anything.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap().to_string();
        let started = Instant::now();
        let r = pool.call_raw(&addr, Method::Write, Vec::new(), None).await;
        let err = r.expect_err("a silent peer");
        assert!(err.message().contains("did not answer a ping"), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        drop(silent);
    }

    #[tokio::test]
    async fn frames_round_trip_and_bad_lengths_are_refused() {
        let f = frame(3, 42, b"hello");
        let mut rd = &f[..];
        let (m, id, p) = read_frame(&mut rd).await.unwrap().unwrap();
        assert_eq!((m, id, &p[..]), (3, 42, &b"hello"[..]));
        assert!(read_frame(&mut rd).await.unwrap().is_none());

        let mut huge = frame(1, 1, b"");
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_frame(&mut &huge[..]).await.is_err());

        let cut = &frame(1, 1, b"abc")[..15];
        assert!(read_frame(&mut &cut[..]).await.is_err());

        let s = decode_error(&error_frame(7, &tonic::Status::not_found("gone"))[HEADER..]);
        assert_eq!((s.code(), s.message()), (tonic::Code::NotFound, "gone"));
    }
}
