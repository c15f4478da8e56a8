//! A minimal RESP client for tests that need one inside tokio (the
//! `redis` crate's is blocking here): TLS with the test certificates, one
//! command at a time, every call bounded in time.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

pub struct RespConn {
    s: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

const LIMIT: Duration = Duration::from_secs(5);

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time")
}

/// A TLS connection to 127.0.0.1:`port` with the test client
/// certificate (`with_cert`) or none.
pub async fn tls(port: u16, with_cert: bool) -> std::io::Result<TlsStream<TcpStream>> {
    let d = super::certs();
    let (crt, key) = (
        d.join("transport-client.crt"),
        d.join("transport-client.key"),
    );
    let pair = with_cert.then_some((crt.as_path(), key.as_path()));
    let tls = raft_net::tls::client_config(&d.join("transport-ca.pem"), pair)
        .map_err(std::io::Error::other)?;
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let go = async {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
    };
    tokio::time::timeout(LIMIT, go)
        .await
        .map_err(|_| timed_out())?
}

impl RespConn {
    pub async fn connect(port: u16) -> std::io::Result<RespConn> {
        let s = tls(port, true).await?;
        Ok(RespConn { s, buf: Vec::new() })
    }

    /// Sends one command and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        tokio::time::timeout(LIMIT, self.s.write_all(&req))
            .await
            .map_err(|_| timed_out())??;
        loop {
            if let Some((r, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Ok(r);
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(LIMIT, self.s.read(&mut chunk))
                .await
                .map_err(|_| timed_out())??;
            if n == 0 {
                return Err(std::io::Error::other("closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// One reply from the start of `b`, and its length; `None` if incomplete.
pub fn parse(b: &[u8]) -> Option<(Reply, usize)> {
    let nl = b.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&b[1..nl]).ok()?;
    let next = nl + 2;
    match b.first()? {
        b'+' => Some((Reply::Simple(line.into()), next)),
        b'-' => Some((Reply::Error(line.into()), next)),
        b':' => Some((Reply::Int(line.parse().ok()?), next)),
        b'$' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some((Reply::Bulk(None), next));
            }
            let end = next + n as usize;
            (b.len() >= end + 2).then(|| (Reply::Bulk(Some(b[next..end].to_vec())), end + 2))
        }
        b'*' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some((Reply::Array(None), next));
            }
            let mut at = next;
            let mut items = Vec::new();
            for _ in 0..n {
                let (r, used) = parse(&b[at..])?;
                items.push(r);
                at += used;
            }
            Some((Reply::Array(Some(items)), at))
        }
        _ => None,
    }
}
