//! The CQL native protocol v4 frame layer: the 9-byte header, LZ4 body compression, and
//! readers/writers for the protocol's notation (`[short]`, `[string]`, `[bytes]`, ...).
//! Every length read from a client is checked against what is left of the frame, and a
//! frame is capped at [`MAX_FRAME`], so no input can make the server over-allocate.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{CqlError, Result};

/// Largest frame body accepted (Cassandra's `native_transport_max_frame_size` is 16 MiB in
/// 4.x; we allow 64 MiB).
pub const MAX_FRAME: usize = 64 << 20;

pub mod opcode {
    pub const ERROR: u8 = 0x00;
    pub const STARTUP: u8 = 0x01;
    pub const READY: u8 = 0x02;
    pub const AUTHENTICATE: u8 = 0x03;
    pub const OPTIONS: u8 = 0x05;
    pub const SUPPORTED: u8 = 0x06;
    pub const QUERY: u8 = 0x07;
    pub const RESULT: u8 = 0x08;
    pub const PREPARE: u8 = 0x09;
    pub const EXECUTE: u8 = 0x0A;
    pub const REGISTER: u8 = 0x0B;
    pub const EVENT: u8 = 0x0C;
    pub const BATCH: u8 = 0x0D;
    pub const AUTH_CHALLENGE: u8 = 0x0E;
    pub const AUTH_RESPONSE: u8 = 0x0F;
    pub const AUTH_SUCCESS: u8 = 0x10;

    /// The opcode's name, as error messages spell it.
    pub fn name(op: u8) -> &'static str {
        match op {
            QUERY => "QUERY",
            PREPARE => "PREPARE",
            EXECUTE => "EXECUTE",
            BATCH => "BATCH",
            REGISTER => "REGISTER",
            STARTUP => "STARTUP",
            OPTIONS => "OPTIONS",
            AUTH_RESPONSE => "AUTH_RESPONSE",
            _ => "UNKNOWN",
        }
    }
}

pub const FLAG_COMPRESSION: u8 = 0x01;
pub const FLAG_TRACING: u8 = 0x02;
pub const FLAG_CUSTOM_PAYLOAD: u8 = 0x04;
pub const FLAG_WARNING: u8 = 0x08;

/// A request frame.
#[derive(Debug)]
pub struct Frame {
    pub version: u8,
    pub flags: u8,
    pub stream: i16,
    pub opcode: u8,
    pub body: Vec<u8>,
}

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The connection closed or failed.
    Io(std::io::Error),
    /// A protocol error to report on `stream` before closing.
    Protocol { stream: i16, error: CqlError },
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Read one frame; `None` at a clean end of stream. `lz4` tells whether compression was
/// negotiated (a compressed body is decompressed here).
pub async fn read_frame(
    r: &mut (impl AsyncRead + Unpin),
    lz4: bool,
) -> Result<Option<Frame>, FrameError> {
    let mut h = [0u8; 9];
    match r.read_exact(&mut h[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let version = h[0] & 0x7F;
    if h[0] & 0x80 != 0 {
        return Err(FrameError::Protocol {
            stream: 0,
            error: CqlError::protocol("Invalid frame: a response frame was sent to the server"),
        });
    }
    if version != 4 {
        // v1/v2 headers are 8 bytes, v3+ 9: read what a v3+ header would hold, best effort,
        // to answer on the right stream.
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            r.read_exact(&mut h[1..9]),
        )
        .await;
        let stream = if version >= 3 {
            i16::from_be_bytes([h[2], h[3]])
        } else {
            h[2] as i8 as i16
        };
        return Err(FrameError::Protocol {
            stream,
            error: CqlError::protocol(format!(
                "Invalid or unsupported protocol version ({version}); supported versions are (4/v4)"
            )),
        });
    }
    r.read_exact(&mut h[1..]).await?;
    let flags = h[1];
    let stream = i16::from_be_bytes([h[2], h[3]]);
    let opcode = h[4];
    let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::Protocol {
            stream,
            error: CqlError::protocol(format!(
                "Request is too big: length {len} exceeds maximum allowed length {MAX_FRAME}."
            )),
        });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    if flags & FLAG_COMPRESSION != 0 {
        if !lz4 {
            return Err(FrameError::Protocol {
                stream,
                error: CqlError::protocol(
                    "Compressed frame received but no compression was negotiated",
                ),
            });
        }
        body = decompress(&body).map_err(|error| FrameError::Protocol { stream, error })?;
    }
    Ok(Some(Frame {
        version,
        flags,
        stream,
        opcode,
        body,
    }))
}

/// Decompress a CQL LZ4 body: `[int uncompressed length]` then an LZ4 block.
pub fn decompress(body: &[u8]) -> Result<Vec<u8>> {
    if body.len() < 4 {
        return Err(CqlError::protocol("Invalid LZ4 body"));
    }
    let n = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    if n > MAX_FRAME {
        return Err(CqlError::protocol("LZ4 body too large"));
    }
    let mut out = vec![0u8; n];
    let got = lz4_flex::block::decompress_into(&body[4..], &mut out)
        .map_err(|e| CqlError::protocol(format!("Invalid LZ4 body: {e}")))?;
    if got != n {
        return Err(CqlError::protocol("Invalid LZ4 body: wrong length"));
    }
    Ok(out)
}

/// Compress a body for an LZ4 connection.
pub fn compress(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&lz4_flex::compress(body));
    out
}

/// Append a response frame (header + body) to `out`.
pub fn write_frame(out: &mut Vec<u8>, stream: i16, opcode: u8, body: &[u8], lz4: bool) {
    let compressed;
    let (flags, body) = if lz4 && !body.is_empty() {
        compressed = compress(body);
        (FLAG_COMPRESSION, &compressed[..])
    } else {
        (0, body)
    };
    out.push(0x84);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.push(opcode);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// A bound value of a QUERY, EXECUTE or BATCH.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Null,
    Unset,
    Bytes(Vec<u8>),
}

/// Reads the protocol notation from a body.
pub struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

fn short_body() -> CqlError {
    CqlError::protocol("Not enough bytes in the frame body")
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, i: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.b.len() - self.i
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self.b.get(self.i..self.i + n).ok_or_else(short_body)?;
        self.i += n;
        Ok(s)
    }
    pub fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn short(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    pub fn int(&mut self) -> Result<i32> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub fn long(&mut self) -> Result<i64> {
        let s = self.take(8)?;
        Ok(i64::from_be_bytes(s.try_into().map_err(|_| short_body())?))
    }
    pub fn string(&mut self) -> Result<String> {
        let n = self.short()? as usize;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| CqlError::protocol("Invalid UTF-8 string"))
    }
    pub fn long_string(&mut self) -> Result<String> {
        let n = self.int()?;
        if n < 0 {
            return Err(CqlError::protocol("Negative string length"));
        }
        let s = self.take(n as usize)?;
        String::from_utf8(s.to_vec()).map_err(|_| CqlError::protocol("Invalid UTF-8 string"))
    }
    pub fn short_bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.short()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    pub fn bytes(&mut self) -> Result<Option<Vec<u8>>> {
        let n = self.int()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?.to_vec()))
    }
    pub fn value(&mut self) -> Result<Bound> {
        let n = self.int()?;
        Ok(match n {
            -1 => Bound::Null,
            -2 => Bound::Unset,
            n if n < 0 => return Err(CqlError::protocol(format!("Invalid value length {n}"))),
            n => Bound::Bytes(self.take(n as usize)?.to_vec()),
        })
    }
    pub fn string_map(&mut self) -> Result<Vec<(String, String)>> {
        let n = self.short()?;
        (0..n)
            .map(|_| Ok((self.string()?, self.string()?)))
            .collect()
    }
    pub fn string_list(&mut self) -> Result<Vec<String>> {
        let n = self.short()?;
        (0..n).map(|_| self.string()).collect()
    }
}

/// Query parameters of QUERY and EXECUTE (spec 4.1.4).
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    pub consistency: u16,
    pub values: Vec<Bound>,
    pub names: Option<Vec<String>>,
    pub skip_metadata: bool,
    pub page_size: Option<i32>,
    pub paging_state: Option<Vec<u8>>,
    pub serial_consistency: Option<u16>,
    pub timestamp: Option<i64>,
}

impl QueryParams {
    pub fn read(r: &mut Reader) -> Result<Self> {
        let consistency = r.short()?;
        let flags = r.byte()?;
        let mut p = QueryParams {
            consistency,
            ..Default::default()
        };
        if flags & 0x01 != 0 {
            let n = r.short()?;
            let mut names = Vec::new();
            for _ in 0..n {
                if flags & 0x40 != 0 {
                    names.push(r.string()?.to_lowercase());
                }
                p.values.push(r.value()?);
            }
            if flags & 0x40 != 0 {
                p.names = Some(names);
            }
        }
        p.skip_metadata = flags & 0x02 != 0;
        if flags & 0x04 != 0 {
            p.page_size = Some(r.int()?);
        }
        if flags & 0x08 != 0 {
            p.paging_state = r.bytes()?;
        }
        if flags & 0x10 != 0 {
            p.serial_consistency = Some(r.short()?);
        }
        if flags & 0x20 != 0 {
            let ts = r.long()?;
            if ts == i64::MIN {
                return Err(CqlError::protocol("Out of bound timestamp, must be in [-9223372036854775807, 9223372036854775807]"));
            }
            p.timestamp = Some(ts);
        }
        Ok(p)
    }
}

/// Writers for the protocol notation.
pub mod w {
    pub fn short(out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    pub fn int(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    pub fn long(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    pub fn string(out: &mut Vec<u8>, s: &str) {
        short(out, s.len() as u16);
        out.extend_from_slice(s.as_bytes());
    }
    pub fn long_string(out: &mut Vec<u8>, s: &str) {
        int(out, s.len() as i32);
        out.extend_from_slice(s.as_bytes());
    }
    pub fn bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                int(out, b.len() as i32);
                out.extend_from_slice(b);
            }
            None => int(out, -1),
        }
    }
    pub fn short_bytes(out: &mut Vec<u8>, b: &[u8]) {
        short(out, b.len() as u16);
        out.extend_from_slice(b);
    }
    pub fn string_list(out: &mut Vec<u8>, l: &[&str]) {
        short(out, l.len() as u16);
        for s in l {
            string(out, s);
        }
    }
    pub fn string_multimap(out: &mut Vec<u8>, m: &[(&str, &[&str])]) {
        short(out, m.len() as u16);
        for (k, v) in m {
            string(out, k);
            string_list(out, v);
        }
    }
}

#[cfg(test)]
mod tests {

    /// Mutation fuzzing (the same calls as `fuzz/fuzz_targets/cql_frame.rs` and
    /// `cql_statement.rs` under libFuzzer): QUERY parameter blocks, LZ4 bodies and CQL
    /// statements with bytes flipped, inserted, dropped and cut. An error, never a panic.
    #[test]
    fn parsers_survive_mutated_input() {
        let mut params = Vec::new();
        w::short(&mut params, 1);
        params.push(0x01 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40);
        w::short(&mut params, 2);
        w::string(&mut params, "a");
        w::bytes(&mut params, Some(b"xyz"));
        w::string(&mut params, "b");
        w::bytes(&mut params, None);
        w::int(&mut params, 100);
        w::bytes(&mut params, Some(b"state"));
        w::short(&mut params, 8);
        w::long(&mut params, 42);
        let seeds: Vec<Vec<u8>> = vec![
            params,
            compress(b"SELECT * FROM ks.t WHERE k = 1"),
            b"SELECT a, writetime(b), ttl(c) FROM ks.t WHERE k IN (1, 2) AND c > 3 ORDER BY c DESC LIMIT 10 ALLOW FILTERING".to_vec(),
            b"INSERT INTO t (k, m, l) VALUES (?, {'a': [1, 2]}, (1, 'x')) IF NOT EXISTS USING TTL 5".to_vec(),
            b"UPDATE t USING TIMESTAMP 3 SET m['k'] = 'v', l = l + [1], c = c - 1 WHERE k = 0x0a IF x = 1".to_vec(),
            b"CREATE TABLE IF NOT EXISTS ks.t (k int, c text, s int static, PRIMARY KEY ((k), c)) WITH CLUSTERING ORDER BY (c DESC)".to_vec(),
            b"BEGIN BATCH INSERT INTO t (k) VALUES (1); DELETE FROM t WHERE k = 2; APPLY BATCH".to_vec(),
        ];
        let mut rng = common::fuzz::XorShift::new(0x2545_F491_4F6C_DD1D);
        for round in 0..30_000 {
            let mut b = seeds[round % seeds.len()].clone();
            let edits = 1 + rng.below(3);
            let alphabet = b"'\"(){}[]<>,;?:-.0x9eE ";
            common::fuzz::mutate(&mut rng, &mut b, edits, alphabet, &[0xFF, 0xFF, 0xFF, 0x7F]);
            let _ = decompress(&b);
            let _ = QueryParams::read(&mut Reader::new(&b));
            let _ = Reader::new(&b).string_map();
            let _ = crate::parser::parse(&String::from_utf8_lossy(&b));
        }
    }
    use super::*;

    #[test]
    fn lz4_round_trip() {
        let body = b"SELECT * FROM system.local WHERE key='local'".repeat(10);
        assert_eq!(decompress(&compress(&body)).unwrap(), body);
        assert!(decompress(&[0xFF, 0xFF, 0xFF, 0xFF, 1]).is_err());
    }

    #[test]
    fn reader_never_panics() {
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let mut r = Reader::new(&junk);
            let _ = QueryParams::read(&mut r);
            let mut r = Reader::new(&junk);
            let _ = r.string_map();
        }
    }
}
