//! The RESP wire: requests in (multibulk `*<n>\r\n$<len>\r\n...` or an
//! inline line, as redis-cli and telnet send), replies out in RESP2 or
//! RESP3 (`HELLO 3`). Limits are Redis's where Redis has them; breaking
//! one is a protocol error, after which Redis (and this port) answers the
//! error and closes the connection, as nothing after it can be framed.

use crate::frame::Frame;
use bytes::{Buf, Bytes, BytesMut};
use std::ops::Range;
use tokio_util::codec::{Decoder, Encoder};

/// The most arguments one request may have (Redis's limit).
pub const MAX_ARGS: usize = 1024 * 1024;
/// The longest inline request, and the longest `*` or `$` header line
/// (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE: usize = 64 * 1024;

/// A request: its arguments, the first the command's name.
pub type Args = Vec<Bytes>;

/// Why a request could not be framed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes are not RESP; the message is what Redis says.
    #[error("Protocol error: {0}")]
    Bad(String),
    /// The connection failed.
    #[error("reading the connection: {0}")]
    Io(#[from] std::io::Error),
}

fn bad(why: impl Into<String>) -> ProtocolError {
    ProtocolError::Bad(why.into())
}

/// Frames requests and replies on one connection.
#[derive(Debug)]
pub struct RespCodec {
    /// The longest bulk string a request may carry.
    max_bulk: usize,
    /// The largest request, all its arguments together.
    max_request: usize,
    /// Replies in RESP3 (after `HELLO 3`).
    pub resp3: bool,
    /// A multibulk request being read: how many arguments it has, where
    /// those read so far are in the buffer, and where reading goes on.
    partial: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    want: usize,
    args: Vec<Range<usize>>,
    pos: usize,
}

impl RespCodec {
    /// A codec refusing bulk strings over `max_bulk` bytes and requests
    /// over `max_request`.
    pub fn new(max_bulk: usize, max_request: usize) -> Self {
        RespCodec {
            max_bulk,
            max_request,
            resp3: false,
            partial: None,
        }
    }
}

/// The line starting at `from` (without its `\r\n`), and where the next
/// starts; `None` if it has not all arrived.
fn line(buf: &[u8], from: usize) -> Option<(Range<usize>, usize)> {
    let rest = buf.get(from..)?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let end = if nl > 0 && rest[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    Some((from..from + end, from + nl + 1))
}

/// A decimal header number (`*3`, `$5`) as Redis reads it.
fn number(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

impl RespCodec {
    fn multibulk(&mut self, buf: &mut BytesMut) -> Result<Option<Args>, ProtocolError> {
        let mut p = match self.partial.take() {
            Some(p) => p,
            None => {
                let Some((head, next)) = line(buf, 0) else {
                    if buf.len() > MAX_INLINE {
                        return Err(bad("too big mbulk count string"));
                    }
                    return Ok(None);
                };
                let n = number(&buf[head.start + 1..head.end])
                    .filter(|n| *n <= MAX_ARGS as i64)
                    .ok_or_else(|| bad("invalid multibulk length"))?;
                if n <= 0 {
                    buf.advance(next);
                    return Ok(Some(Vec::new()));
                }
                Partial {
                    want: n as usize,
                    args: Vec::new(),
                    pos: next,
                }
            }
        };
        while p.args.len() < p.want {
            let Some((head, next)) = line(buf, p.pos) else {
                if buf.len() - p.pos > MAX_INLINE {
                    return Err(bad("too big bulk count string"));
                }
                return self.wait(p, buf.len());
            };
            let h = &buf[head.clone()];
            if h.first() != Some(&b'$') {
                let got = h.first().map_or("\\r".into(), |b| (*b as char).to_string());
                return Err(bad(format!("expected '$', got '{got}'")));
            }
            let len = number(&h[1..])
                .filter(|n| (0..=self.max_bulk as i64).contains(n))
                .ok_or_else(|| bad("invalid bulk length"))? as usize;
            if buf.len() < next + len + 2 {
                if next + len + 2 > self.max_request {
                    return Err(bad("request too large"));
                }
                return self.wait(p, buf.len());
            }
            if &buf[next + len..next + len + 2] != b"\r\n" {
                return Err(bad("bulk string not followed by CRLF"));
            }
            p.args.push(next..next + len);
            p.pos = next + len + 2;
        }
        let frame = buf.split_to(p.pos).freeze();
        Ok(Some(p.args.into_iter().map(|r| frame.slice(r)).collect()))
    }

    fn wait(&mut self, p: Partial, have: usize) -> Result<Option<Args>, ProtocolError> {
        if have > self.max_request {
            return Err(bad("request too large"));
        }
        self.partial = Some(p);
        Ok(None)
    }
}

/// An inline request's words, split as Redis splits them (spaces between
/// words; `"..."` with backslash escapes and `'...'` quote one).
pub fn split_inline(line: &[u8]) -> Result<Args, ProtocolError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let mut word = Vec::new();
        match line[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    let Some(&c) = line.get(i) else {
                        return Err(bad("unbalanced quotes in request"));
                    };
                    i += 1;
                    if c == q {
                        break;
                    }
                    if c == b'\\' && q == b'"' {
                        let (b, used) = escape(&line[i..]);
                        word.push(b);
                        i += used;
                    } else if c == b'\\' && line.get(i) == Some(&b'\'') {
                        word.push(b'\'');
                        i += 1;
                    } else {
                        word.push(c);
                    }
                }
                if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                    return Err(bad("unbalanced quotes in request"));
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    word.push(line[i]);
                    i += 1;
                }
            }
        }
        out.push(Bytes::from(word));
    }
    Ok(out)
}

/// The byte a backslash escape inside `"..."` stands for, and how many
/// bytes after the backslash it used.
fn escape(s: &[u8]) -> (u8, usize) {
    let hex = |b: u8| (b as char).to_digit(16);
    match s {
        [b'x', h, l, ..] if hex(*h).is_some() && hex(*l).is_some() => {
            ((hex(*h).unwrap_or(0) * 16 + hex(*l).unwrap_or(0)) as u8, 3)
        }
        [b'n', ..] => (b'\n', 1),
        [b'r', ..] => (b'\r', 1),
        [b't', ..] => (b'\t', 1),
        [b'b', ..] => (8, 1),
        [b'a', ..] => (7, 1),
        [c, ..] => (*c, 1),
        [] => (b'\\', 0),
    }
}

impl Decoder for RespCodec {
    type Item = Args;
    type Error = ProtocolError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Args>, ProtocolError> {
        loop {
            if buf.is_empty() {
                return Ok(None);
            }
            if self.partial.is_some() || buf[0] == b'*' {
                return self.multibulk(buf);
            }
            let Some((text, next)) = line(buf, 0) else {
                if buf.len() > MAX_INLINE {
                    return Err(bad("too big inline request"));
                }
                return Ok(None);
            };
            let args = split_inline(&buf[text])?;
            buf.advance(next);
            // An empty line is no request (Redis skips it).
            if !args.is_empty() {
                return Ok(Some(args));
            }
        }
    }
}

impl Encoder<Frame> for RespCodec {
    type Error = std::io::Error;

    fn encode(&mut self, f: Frame, out: &mut BytesMut) -> Result<(), std::io::Error> {
        f.write(self.resp3, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec() -> RespCodec {
        RespCodec::new(1 << 20, 4 << 20)
    }

    fn all(c: &mut RespCodec, bytes: &[u8]) -> Result<Vec<Args>, ProtocolError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(a) = c.decode(&mut buf)? {
            out.push(a);
        }
        Ok(out)
    }

    fn words(a: &Args) -> Vec<String> {
        a.iter()
            .map(|b| String::from_utf8_lossy(b).into())
            .collect()
    }

    #[test]
    fn multibulk_inline_and_quotes() {
        let got = all(
            &mut codec(),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET a \"b c\\x41\\n\" 'd e'\r\n\r\nPING\n",
        )
        .unwrap();
        let w: Vec<_> = got.iter().map(words).collect();
        assert_eq!(w[0], ["GET", "k"]);
        assert_eq!(w[1], ["SET", "a", "b cA\n", "d e"]);
        assert_eq!(w[2], ["PING"]);
    }

    #[test]
    fn what_redis_refuses_is_refused() {
        let cases: &[(&[u8], &str)] = &[
            (b"*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$', got ':'"),
            (b"*1\r\n$1099511627776\r\n", "invalid bulk length"),
            (b"*x\r\n", "invalid multibulk length"),
            (b"*1\r\n$-5\r\n", "invalid bulk length"),
            (b"*1\r\n$1\r\nab\r\n", "bulk string not followed by CRLF"),
            (b"SET \"a\r\n", "unbalanced quotes in request"),
        ];
        for (input, want) in cases {
            let e = all(&mut codec(), input).unwrap_err().to_string();
            assert_eq!(e, format!("Protocol error: {want}"), "{input:?}");
        }
        let inline = vec![b'a'; MAX_INLINE + 1];
        let e = all(&mut codec(), &inline).unwrap_err().to_string();
        assert!(e.contains("too big inline request"), "{e}");
    }

    #[test]
    fn a_bulk_over_the_limit_is_refused_before_it_arrives() {
        let mut c = RespCodec::new(16, 1 << 20);
        let e = all(&mut c, b"*1\r\n$17\r\n").unwrap_err().to_string();
        assert!(e.contains("invalid bulk length"), "{e}");
        let mut c = RespCodec::new(1 << 20, 64);
        let e = all(&mut c, b"*2\r\n$60\r\n").unwrap_err().to_string();
        assert!(e.contains("request too large"), "{e}");
    }

    proptest! {
        /// Any split of any pipelined requests decodes to the requests.
        #[test]
        fn requests_survive_any_split(
            reqs in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..5),
                1..6,
            ),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let mut wire = Vec::new();
            for r in &reqs {
                wire.extend_from_slice(format!("*{}\r\n", r.len()).as_bytes());
                for a in r {
                    wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                    wire.extend_from_slice(a);
                    wire.extend_from_slice(b"\r\n");
                }
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.sort();
            let mut c = codec();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([wire.len()]) {
                buf.extend_from_slice(&wire[from..cut]);
                from = cut;
                while let Some(a) = c.decode(&mut buf).unwrap() {
                    got.push(a.iter().map(|b| b.to_vec()).collect::<Vec<_>>());
                }
            }
            prop_assert_eq!(got, reqs);
        }

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut c = codec();
            let _ = all(&mut c, &bytes);
        }
    }
}
