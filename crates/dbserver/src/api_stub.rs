//! Placeholder listeners for the client API ports whose query layers have not landed yet
//! (BSQL 2521, BCQL 9542): the port is held (so a taken port fails at start, as it will later)
//! and a client gets its protocol's own "not available" error instead of a hang.

use std::net::TcpListener;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which protocol a placeholder speaks.
#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    Postgres,
    Cql,
}

fn pg_error(msg: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (tag, val) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "0A000"),
        (b'M', msg),
    ] {
        body.push(tag);
        body.extend_from_slice(val.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

async fn handle(mut sock: tokio::net::TcpStream, proto: Protocol) {
    let mut buf = vec![0u8; 4096];
    match proto {
        Protocol::Postgres => {
            // Answer an SSLRequest with 'N', then refuse the startup message.
            for _ in 0..2 {
                let Ok(n) = sock.read(&mut buf).await else {
                    return;
                };
                if n == 8 && buf[4..8] == [0x04, 0xd2, 0x16, 0x2f] {
                    if sock.write_all(b"N").await.is_err() {
                        return;
                    }
                    continue;
                }
                let _ = sock
                    .write_all(&pg_error(
                        "BSQL is not available yet in this build of AiSQL",
                    ))
                    .await;
                return;
            }
        }
        Protocol::Cql => {
            // Read the client's first frame header and answer with an ERROR frame
            // (code 0x000A protocol error is what drivers expect for unsupported versions).
            let Ok(n) = sock.read(&mut buf).await else {
                return;
            };
            if n < 9 {
                return;
            }
            let stream = [buf[2], buf[3]];
            let msg = b"BCQL is not available yet in this build of AiSQL";
            let mut body = Vec::new();
            body.extend_from_slice(&0x000Au32.to_be_bytes());
            body.extend_from_slice(&(msg.len() as u16).to_be_bytes());
            body.extend_from_slice(msg);
            let mut out = vec![0x84, 0, stream[0], stream[1], 0x00];
            out.extend_from_slice(&(body.len() as u32).to_be_bytes());
            out.extend_from_slice(&body);
            let _ = sock.write_all(&out).await;
        }
    }
}

/// Accept connections on `listener` and answer each with `proto`'s error until `shutdown`.
pub async fn serve_placeholder(
    listener: TcpListener,
    proto: Protocol,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                if let Ok((sock, _)) = accepted {
                    tokio::spawn(handle(sock, proto));
                }
            }
        }
    }
}
