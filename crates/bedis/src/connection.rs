//! One client connection: read bytes, parse every complete request in the buffer (pipelining),
//! run them in order, write all replies at once. A protocol error is answered and the
//! connection closed, as Redis does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cmd::{dispatch, Session};
use crate::db::Dbs;
use crate::frame::{parse_request, Frame};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Serve one connection until the client leaves, sends QUIT, or breaks the protocol.
pub async fn handle(mut sock: TcpStream, dbs: Arc<Dbs>) {
    let _ = sock.set_nodelay(true);
    let addr = sock.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut s = Session {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        db: 0,
        proto: 2,
        name: None,
        lib_name: None,
        lib_ver: None,
        addr,
        quit: false,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut consumed = 0;
        loop {
            match parse_request(&buf[consumed..]) {
                Ok(Some((args, used))) => {
                    consumed += used;
                    if args.is_empty() {
                        continue;
                    }
                    let reply = dispatch(&mut s, &dbs, args).await;
                    reply.encode(s.proto, &mut out);
                    if s.quit {
                        let _ = sock.write_all(&out).await;
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    Frame::err(format!("ERR {e}")).encode(s.proto, &mut out);
                    let _ = sock.write_all(&out).await;
                    return;
                }
            }
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
