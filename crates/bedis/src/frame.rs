//! RESP frames: parsing (RESP2 requests, plus inline commands) and encoding (RESP2 or RESP3).
//!
//! [`parse_request`] answers "is a whole request buffered?": `Ok(None)` means read more. Every
//! length is capped (bulk strings at 512 MiB as Redis's `proto-max-bulk-len`, arrays at
//! 1,048,576 elements, inline requests at 64 KiB) so garbage cannot exhaust memory.

use std::io::Write;

/// Largest bulk string accepted.
pub const MAX_BULK: usize = 512 << 20;
/// Largest multibulk (array) length accepted.
pub const MAX_ARRAY: usize = 1 << 20;
/// Largest inline request.
pub const MAX_INLINE: usize = 64 << 10;

/// A reply (or an element of one).
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Frame>),
    /// A map (RESP3); flattened into an array for RESP2.
    Map(Vec<(Frame, Frame)>),
    /// A double (RESP3); a bulk string for RESP2.
    Double(f64),
    /// A null array (`*-1` in RESP2, `_` in RESP3).
    NullArray,
    /// An out-of-band push (RESP3 `>`, pub/sub messages); an array for RESP2.
    Push(Vec<Frame>),
    /// Several replies to one command, sent one after the other (SUBSCRIBE of n channels).
    Seq(Vec<Frame>),
    /// A score (sorted sets): a RESP3 double, or a bulk string printed as Redis's `%.17g`.
    Score(f64),
}

impl Frame {
    pub fn ok() -> Frame {
        Frame::Simple("OK".into())
    }
    pub fn err(msg: impl Into<String>) -> Frame {
        Frame::Error(msg.into())
    }
    pub fn bulk(b: impl Into<Vec<u8>>) -> Frame {
        Frame::Bulk(b.into())
    }
    /// A nil reply (what a blocking command answers on timeout).
    pub fn is_null(&self) -> bool {
        matches!(self, Frame::Null | Frame::NullArray)
    }
    /// A push, or pushes only (sent even under CLIENT REPLY OFF).
    pub fn is_push(&self) -> bool {
        match self {
            Frame::Push(_) => true,
            Frame::Seq(items) => !items.is_empty() && items.iter().all(Frame::is_push),
            _ => false,
        }
    }

    /// Append the encoding of this frame for protocol version `proto` (2 or 3).
    pub fn encode(&self, proto: u8, out: &mut Vec<u8>) {
        match self {
            Frame::Simple(s) => {
                out.push(b'+');
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Frame::Error(s) => {
                out.push(b'-');
                // An error line must not contain CR or LF.
                out.extend(
                    s.bytes()
                        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
                );
                out.extend_from_slice(b"\r\n");
            }
            Frame::Integer(i) => {
                let _ = write!(out, ":{i}\r\n");
            }
            Frame::Bulk(b) => {
                let _ = write!(out, "${}\r\n", b.len());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Null => out.extend_from_slice(if proto >= 3 { b"_\r\n" } else { b"$-1\r\n" }),
            Frame::NullArray => {
                out.extend_from_slice(if proto >= 3 { b"_\r\n" } else { b"*-1\r\n" })
            }
            Frame::Array(items) => {
                let _ = write!(out, "*{}\r\n", items.len());
                for i in items {
                    i.encode(proto, out);
                }
            }
            Frame::Map(pairs) => {
                if proto >= 3 {
                    let _ = write!(out, "%{}\r\n", pairs.len());
                } else {
                    let _ = write!(out, "*{}\r\n", pairs.len() * 2);
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Frame::Push(items) => {
                let _ = write!(
                    out,
                    "{}{}\r\n",
                    if proto >= 3 { '>' } else { '*' },
                    items.len()
                );
                for i in items {
                    i.encode(proto, out);
                }
            }
            Frame::Seq(items) => {
                for i in items {
                    i.encode(proto, out);
                }
            }
            Frame::Score(d) if proto >= 3 => Frame::Double(*d).encode(proto, out),
            Frame::Score(d) => Frame::Bulk(format_score(*d).into_bytes()).encode(proto, out),
            Frame::Double(d) => {
                let s = format_double(*d);
                if proto >= 3 {
                    let _ = write!(out, ",{s}\r\n");
                } else {
                    Frame::Bulk(s.into_bytes()).encode(proto, out);
                }
            }
        }
    }
}

/// Format a double the way Redis prints scores and INCRBYFLOAT results.
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let s = format!("{d}");
    if s.contains('e') || s.len() <= 17 {
        s
    } else {
        format!("{d:.17}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// Format a double as C's `%.17g`, the way Redis 7.0 prints sorted-set scores.
pub fn format_score(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{d:.16e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if !(-4..17).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mant), exp.abs())
    } else {
        let decimals = (16 - exp).max(0) as usize;
        trim(&format!("{d:.decimals$}"))
    }
}

/// A parsed request (its arguments) and the number of bytes it took.
pub type Parsed = (Vec<Vec<u8>>, usize);

/// A malformed request; the connection answers `-ERR Protocol error: …` and closes.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

fn parse_len(line: &[u8], what: &str) -> Result<i64, ProtocolError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| ProtocolError(format!("invalid {what} length")))
}

/// Parse one request (an array of bulk strings, or an inline command) from the front of
/// `buf`. Returns the arguments and the bytes consumed, or `None` if incomplete.
pub fn parse_request(buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return parse_inline(buf);
    }
    let Some(end) = find_crlf(buf, 1) else {
        if buf.len() > MAX_INLINE {
            return Err(ProtocolError("too big mbulk count string".into()));
        }
        return Ok(None);
    };
    let n = parse_len(&buf[1..end], "multibulk")?;
    if n > MAX_ARRAY as i64 {
        return Err(ProtocolError("invalid multibulk length".into()));
    }
    let mut pos = end + 2;
    if n <= 0 {
        return Ok(Some((Vec::new(), pos)));
    }
    // The count is the client's word: do not reserve for it before the bytes arrive.
    let mut args = Vec::with_capacity((n as usize).min(64));
    for _ in 0..n {
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError(format!(
                "expected '$', got '{}'",
                buf[pos] as char
            )));
        }
        let Some(end) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > MAX_INLINE {
                return Err(ProtocolError("too big bulk count string".into()));
            }
            return Ok(None);
        };
        let len = parse_len(&buf[pos + 1..end], "bulk")?;
        if len < 0 || len as usize > MAX_BULK {
            return Err(ProtocolError("invalid bulk length".into()));
        }
        let start = end + 2;
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            return Ok(None);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err(ProtocolError("bulk string not terminated by CRLF".into()));
        }
        args.push(buf[start..stop].to_vec());
        pos = stop + 2;
    }
    Ok(Some((args, pos)))
}

fn parse_inline(buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    let args = split_inline(line)?;
    Ok(Some((args, nl + 1)))
}

/// Split an inline command line like Redis's `sdssplitargs`: whitespace separates words;
/// double quotes allow escapes, single quotes do not.
fn split_inline(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut word = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(ProtocolError("unbalanced quotes in request".into())),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\')
                            if line.get(i + 1) == Some(&b'x')
                                && line.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                                && line.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
                        {
                            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                            word.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                            i += 4;
                        }
                        Some(b'\\') if i + 1 < line.len() => {
                            let c = line[i + 1];
                            word.push(match c {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'a' => 7,
                                b'b' => 8,
                                other => other,
                            });
                            i += 2;
                        }
                        Some(&c) => {
                            word.push(c);
                            i += 1;
                        }
                    }
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(ProtocolError("unbalanced quotes in request".into())),
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                            word.push(b'\'');
                            i += 2;
                        }
                        Some(&c) => {
                            word.push(c);
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    word.push(line[i]);
                    i += 1;
                }
            }
        }
        // A closing quote must be followed by a space or the end (as sdssplitargs wants).
        if i < line.len() && !line[i].is_ascii_whitespace() {
            return Err(ProtocolError("unbalanced quotes in request".into()));
        }
        out.push(word);
    }
    Ok(out)
}

#[cfg(test)]
mod score_tests {
    use super::format_score;

    #[test]
    fn scores_print_like_redis() {
        // Each pair checked against redis-server 7.0.15.
        for (d, want) in [
            (1.1, "1.1000000000000001"),
            (0.1, "0.10000000000000001"),
            (1e20, "1e+20"),
            (123456789.123, "123456789.123"),
            (1e-5, "1.0000000000000001e-05"),
            (0.1 + 0.2, "0.30000000000000004"),
            (10.0, "10"),
            (-2.0, "-2"),
            (1.5, "1.5"),
        ] {
            assert_eq!(format_score(d), want);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mutation fuzzing of the request parser (the same function as `fuzz/fuzz_targets/resp.rs`
    /// runs under libFuzzer): valid requests with bytes flipped, inserted, dropped, cut short,
    /// and with huge lengths. Never a panic; `consumed` never beyond the input; a request
    /// parsed in pieces parses the same as whole.
    #[test]
    fn parser_survives_mutated_requests() {
        let seeds: &[&[u8]] = &[
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
            b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
            b"PING\r\n",
            b"set \"a b\" 'c\\'d' \"\\x41\\n\"\r\n",
            b"*-1\r\n*0\r\n",
            b"*1\r\n$2147483647\r\nxx\r\n",
            b"*99999999999999999999\r\n",
        ];
        let mut rng = common::fuzz::XorShift::new(0x9E37_79B9_7F4A_7C15);
        for round in 0..200_000 {
            let mut b = seeds[round % seeds.len()].to_vec();
            let edits = rng.below(4);
            common::fuzz::mutate(&mut rng, &mut b, edits, b"*$\r\n-0123456789", b"4294967296");
            let whole = parse_request(&b);
            if let Ok(Some((_, used))) = &whole {
                assert!(*used <= b.len());
            }
            // Fed in two pieces: incomplete until the whole request is there.
            let cut = rng.below(b.len() + 1);
            if let Ok(Some((args, used))) = parse_request(&b[..cut]) {
                assert!(used <= cut);
                assert_eq!(
                    whole.as_ref().ok().cloned().flatten(),
                    Some((args, used)),
                    "{b:?}"
                );
            }
        }
    }

    #[test]
    fn parses_arrays_incrementally() {
        let req = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for cut in 0..req.len() {
            assert_eq!(parse_request(&req[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (args, n) = parse_request(req).unwrap().unwrap();
        assert_eq!(args, vec![b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(n, req.len());
    }

    #[test]
    fn parses_inline_commands() {
        let (args, n) = parse_request(b"set k \"a b\\n\" 'c d'\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(
            args,
            vec![
                b"set".to_vec(),
                b"k".to_vec(),
                b"a b\n".to_vec(),
                b"c d".to_vec()
            ]
        );
        assert_eq!(n, 21);
    }

    #[test]
    fn rejects_garbage_and_huge_lengths() {
        assert!(parse_request(b"*abc\r\n").is_err());
        assert!(parse_request(b"*1\r\n+x\r\n").is_err());
        assert!(parse_request(b"*1\r\n$999999999999\r\n").is_err());
        assert!(parse_request(b"*99999999\r\n").is_err());
        assert!(parse_request(&vec![b'x'; MAX_INLINE + 1]).is_err());
    }

    #[test]
    fn encodes_both_protocols() {
        let mut v = Vec::new();
        Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]).encode(2, &mut v);
        assert_eq!(v, b"*2\r\n$1\r\na\r\n:1\r\n");
        v.clear();
        Frame::Null.encode(3, &mut v);
        assert_eq!(v, b"_\r\n");
        assert_eq!(format_double(10.6), "10.6");
        assert_eq!(format_double(3.0), "3");
    }

    #[test]
    fn never_panics_on_random_bytes() {
        let mut rng = common::fuzz::XorShift::new(0x9E3779B97F4A7C15);
        let alphabet = b"*$\r\n0123456789-abc ";
        for _ in 0..20_000 {
            let len = rng.below(40);
            let buf: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            let _ = parse_request(&buf);
        }
    }
}
