//! Replies, and how each is written in RESP2 and in RESP3. A type RESP2
//! lacks is written as Redis writes it there: a map as a flat array, a
//! double as a bulk string, a boolean as 1 or 0, a null as a null bulk.

use bytes::{BufMut, Bytes, BytesMut};

/// One reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`: the code (ERR, WRONGTYPE...) and the message.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$5\r\nhello`.
    Bulk(Bytes),
    /// No value (a missing key).
    Null,
    /// No array (an EXEC whose watched key changed).
    NullArray,
    /// `*2 ...`.
    Array(Vec<Frame>),
    /// `%1 ...` (a flat array in RESP2).
    Map(Vec<(Frame, Frame)>),
    /// `,1.5` (a bulk string in RESP2).
    Double(f64),
    /// `#t` (1 or 0 in RESP2).
    Bool(bool),
    /// Out-of-band data (pub/sub messages in RESP3).
    Push(Vec<Frame>),
    /// A text reply shown as is (INFO's in RESP3 is a verbatim string).
    Verbatim(String),
    /// Several replies in a row to one command (SUBSCRIBE answers once
    /// per channel).
    Seq(Vec<Frame>),
}

impl Frame {
    /// `+OK`.
    pub fn ok() -> Frame {
        Frame::Simple("OK".into())
    }

    /// `-ERR <msg>`.
    pub fn err(msg: impl std::fmt::Display) -> Frame {
        Frame::Error(format!("ERR {msg}"))
    }

    /// An error with its own code (`WRONGTYPE`, `TRYAGAIN`...).
    pub fn coded(code: &str, msg: impl std::fmt::Display) -> Frame {
        Frame::Error(format!("{code} {msg}"))
    }

    /// A bulk string.
    pub fn bulk(b: impl Into<Bytes>) -> Frame {
        Frame::Bulk(b.into())
    }

    /// A bulk string, or null.
    pub fn maybe(b: Option<Bytes>) -> Frame {
        b.map_or(Frame::Null, Frame::Bulk)
    }

    /// An array of bulk strings.
    pub fn strings<I: IntoIterator<Item = S>, S: Into<Bytes>>(items: I) -> Frame {
        Frame::Array(items.into_iter().map(|s| Frame::Bulk(s.into())).collect())
    }

    /// Whether it is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// Writes the frame, in RESP3 if `resp3`.
    pub fn write(&self, resp3: bool, out: &mut BytesMut) {
        match self {
            Frame::Simple(s) => line(out, b'+', s.as_bytes()),
            // A reply line may not hold a newline.
            Frame::Error(e) => line(out, b'-', e.replace(['\r', '\n'], " ").as_bytes()),
            Frame::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Frame::Bulk(b) => bulk(out, b'$', b),
            Frame::Null if resp3 => out.put_slice(b"_\r\n"),
            Frame::Null => out.put_slice(b"$-1\r\n"),
            Frame::NullArray if resp3 => out.put_slice(b"_\r\n"),
            Frame::NullArray => out.put_slice(b"*-1\r\n"),
            Frame::Array(items) => seq(out, b'*', items, resp3),
            Frame::Push(items) => seq(out, if resp3 { b'>' } else { b'*' }, items, resp3),
            Frame::Map(pairs) => {
                let (kind, n) = if resp3 {
                    (b'%', pairs.len())
                } else {
                    (b'*', 2 * pairs.len())
                };
                line(out, kind, n.to_string().as_bytes());
                for (k, v) in pairs {
                    k.write(resp3, out);
                    v.write(resp3, out);
                }
            }
            Frame::Double(d) if resp3 => line(out, b',', double(*d).as_bytes()),
            Frame::Double(d) => bulk(out, b'$', double(*d).as_bytes()),
            Frame::Bool(b) if resp3 => line(out, b'#', if *b { b"t" } else { b"f" }),
            Frame::Bool(b) => line(out, b':', if *b { b"1" } else { b"0" }),
            Frame::Verbatim(s) if resp3 => {
                bulk(out, b'=', format!("txt:{s}").as_bytes());
            }
            Frame::Verbatim(s) => bulk(out, b'$', s.as_bytes()),
            Frame::Seq(items) => items.iter().for_each(|f| f.write(resp3, out)),
        }
    }
}

fn double(d: f64) -> String {
    if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{d}")
    }
}

fn line(out: &mut BytesMut, kind: u8, body: &[u8]) {
    out.reserve(body.len() + 3);
    out.put_u8(kind);
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, kind: u8, body: &[u8]) {
    line(out, kind, body.len().to_string().as_bytes());
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

fn seq(out: &mut BytesMut, kind: u8, items: &[Frame], resp3: bool) {
    line(out, kind, items.len().to_string().as_bytes());
    for f in items {
        f.write(resp3, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(f: &Frame, resp3: bool) -> String {
        let mut b = BytesMut::new();
        f.write(resp3, &mut b);
        String::from_utf8_lossy(&b).into()
    }

    #[test]
    fn resp2_and_resp3_forms() {
        let m = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]);
        assert_eq!(wire(&m, false), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(wire(&m, true), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(wire(&Frame::Null, false), "$-1\r\n");
        assert_eq!(wire(&Frame::Null, true), "_\r\n");
        assert_eq!(wire(&Frame::NullArray, false), "*-1\r\n");
        assert_eq!(wire(&Frame::Double(1.5), false), "$3\r\n1.5\r\n");
        assert_eq!(wire(&Frame::Double(1.5), true), ",1.5\r\n");
        assert_eq!(wire(&Frame::err("a\r\nb"), false), "-ERR a  b\r\n");
        assert_eq!(wire(&Frame::Bool(true), true), "#t\r\n");
    }
}
