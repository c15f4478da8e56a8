//! A peer connection: a rustls handshake (mutual TLS 1.3), then frames in
//! TLS records the transport seals and opens itself (`records.rs`).
//!
//! The hand-off from rustls must not strand bytes inside it, so neither
//! side sends application data until it knows the other has taken its
//! keys: the accepting side takes them as soon as its handshake is done
//! and sends `Ready`; the dialling side takes them when its handshake is
//! done (nothing from the server can be in flight then: its server sends
//! no session tickets) and waits for `Ready` before its `Hello`.

use crate::NetError;
use crate::frame;
use crate::identity::{self, NodeIdentity};
use crate::records::{self, Opener, Sealer};
use crate::wire::{self, Frame};
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Socket reads ask for at least this much room. Large, so the incomplete
/// record moved to the buffer's front before a read is a small share of
/// what is read.
const READ_CHUNK: usize = 256 * 1024;

/// Large writes are sealed and sent this much at a time. Each write to a
/// loopback or LAN socket costs a push through the TCP stack and a wake-up
/// of the reader, so pieces must be large: 4 KiB messages in 1 MiB frames
/// went at 0.46-0.50 of plain TCP's rate with 64 KiB pieces, 0.71-0.72
/// with 128 KiB and 0.81-0.84 with 256 or 512 KiB (`cargo xtask bench
/// net`). Larger pieces only hold more memory.
const WRITE_PIECE: usize = 256 * 1024;

pub struct SecureReader {
    tcp: OwnedReadHalf,
    opener: Opener,
    /// Bytes read but not yet opened (an incomplete record).
    records: BytesMut,
}

/// The write half. Dropping it shuts the connection's sending side, so
/// the accepting side keeps its (unused) one for as long as it reads.
pub struct SecureWriter {
    tcp: OwnedWriteHalf,
    sealer: Sealer,
    sealed: Vec<u8>,
}

fn halves(tcp: TcpStream, (sealer, opener): (Sealer, Opener)) -> (SecureReader, SecureWriter) {
    let (r, w) = tcp.into_split();
    (
        SecureReader {
            tcp: r,
            opener,
            records: BytesMut::with_capacity(READ_CHUNK),
        },
        SecureWriter {
            tcp: w,
            sealer,
            sealed: Vec::new(),
        },
    )
}

/// A connection after its handshake: both halves, and whom the peer's
/// certificate speaks for.
pub type Session = (SecureReader, SecureWriter, NodeIdentity);

/// The accepting side: handshake, check the peer holds a node certificate,
/// take the keys, send `Ready`.
pub async fn accept(acceptor: &TlsAcceptor, tcp: TcpStream) -> Result<Session, NetError> {
    let tls = acceptor.accept(tcp).await?;
    let (tcp, conn) = tls.into_inner();
    let who = identity::of_peer(conn.peer_certificates())?;
    let keys = records::from_secrets(conn.dangerous_extract_secrets()?)?;
    let (r, mut w) = halves(tcp, keys);
    w.write_frame(&Frame::Ready).await?;
    Ok((r, w, who))
}

/// The dialling side: handshake, check the peer holds a node certificate,
/// take the keys, wait for `Ready` (within `limit`).
pub async fn connect(
    connector: &TlsConnector,
    name: ServerName<'static>,
    tcp: TcpStream,
    limit: Duration,
) -> Result<Session, NetError> {
    let tls = connector.connect(name, tcp).await?;
    let (tcp, conn) = tls.into_inner();
    let who = identity::of_peer(conn.peer_certificates())?;
    let keys = records::from_secrets(conn.dangerous_extract_secrets()?)?;
    let (mut r, w) = halves(tcp, keys);
    let mut buf = BytesMut::new();
    match r.read_frame(&mut buf, 1024, limit, limit).await? {
        Frame::Ready if buf.is_empty() => Ok((r, w, who)),
        _ => Err(NetError::Handshake("the peer did not say ready".into())),
    }
}

impl SecureReader {
    /// Reads the socket until at least one record is opened, appending its
    /// plaintext to `plain`; `Ok(0)` when the peer closed the connection.
    pub async fn read_plain(&mut self, plain: &mut BytesMut) -> Result<usize, NetError> {
        let before = plain.len();
        loop {
            self.opener.open(&mut self.records, plain)?;
            if plain.len() > before {
                return Ok(plain.len() - before);
            }
            self.records.reserve(READ_CHUNK);
            if self.tcp.read_buf(&mut self.records).await? == 0 {
                if !self.records.is_empty() {
                    return Err(NetError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
                return Ok(0);
            }
        }
    }

    /// Reads one frame: waits up to `idle` for it to begin, then at most
    /// `complete` in all for the rest (a peer trickling bytes is cut off).
    pub async fn read_frame(
        &mut self,
        buf: &mut BytesMut,
        max: usize,
        idle: Duration,
        complete: Duration,
    ) -> Result<Frame, NetError> {
        wire::from_body(&self.read_body(buf, max, idle, complete).await?)
    }

    /// Reads one frame's body (as `read_frame`, undecoded).
    pub async fn read_body(
        &mut self,
        buf: &mut BytesMut,
        max: usize,
        idle: Duration,
        complete: Duration,
    ) -> Result<Bytes, NetError> {
        let now = tokio::time::Instant::now;
        let mut deadline = (!buf.is_empty()).then(|| now() + complete);
        loop {
            if let Some(body) = frame::decode(buf, max)? {
                return Ok(body);
            }
            let until = deadline.unwrap_or_else(|| now() + idle);
            let n = tokio::time::timeout_at(until, self.read_plain(buf))
                .await
                .map_err(|_| match deadline {
                    None => NetError::Idle(idle),
                    Some(_) => NetError::Handshake("peer too slow".into()),
                })??;
            if n == 0 {
                return Err(NetError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            deadline.get_or_insert_with(|| now() + complete);
        }
    }
}

impl SecureWriter {
    /// Seals and writes `plain` (already framed).
    pub async fn write_plain(&mut self, plain: &[u8]) -> Result<(), NetError> {
        self.write_parts(&[], plain).await
    }

    /// Encodes, frames, seals and writes `f`.
    pub async fn write_frame(&mut self, f: &Frame) -> Result<(), NetError> {
        self.write_body(&wire::to_body(f)).await
    }

    /// Writes one frame of `body` (as `write_frame`, encoded already).
    pub async fn write_body(&mut self, body: &[u8]) -> Result<(), NetError> {
        let len = u32::try_from(body.len()).map_err(|_| NetError::FrameTooLarge {
            len: body.len(),
            max: u32::MAX as usize,
        })?;
        self.write_parts(&len.to_be_bytes(), body).await
    }

    /// Seals `prefix` then `rest` as one stream of records, and writes them
    /// a piece at a time.
    async fn write_parts(&mut self, mut prefix: &[u8], mut rest: &[u8]) -> Result<(), NetError> {
        loop {
            let (piece, tail) = rest.split_at(rest.len().min(WRITE_PIECE));
            self.sealed.clear();
            self.sealer.seal_parts(&[prefix, piece], &mut self.sealed)?;
            self.tcp.write_all(&self.sealed).await?;
            if tail.is_empty() {
                return Ok(());
            }
            (prefix, rest) = (&[], tail);
        }
    }
}
