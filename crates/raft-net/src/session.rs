//! A peer connection: a rustls handshake (mutual TLS 1.3), then frames
//! over the rustls stream (tokio-rustls): rustls seals and opens every
//! record, and does the key updates; nothing here touches cryptography.
//!
//! The accepting side sends `Ready` as its first frame, then only a
//! refusal; the dialling side waits for `Ready` before its `Hello`. (Up to
//! version 5 the transport took the keys from rustls and protected
//! records itself, and `Ready` marked the hand-off; it stays for the
//! nodes of those versions, which wait for it.)

use crate::NetError;
use crate::frame;
use crate::identity::{self, NodeIdentity};
use crate::wire::{self, Frame};
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// Reads ask for at least this much room, so a large frame arrives in few
/// reads.
const READ_CHUNK: usize = 256 * 1024;

/// The socket is buffered below rustls, this much each way: rustls reads
/// its input 4 KiB at a time and writes each record as it seals it. In
/// `cargo xtask bench net`, 4 KiB messages over one stream went at 0.48-0.50
/// of plain TCP's rate unbuffered, 0.40-0.44 with reads buffered alone and
/// 0.54-0.55 with both; flushing once a frame keeps the records of one
/// frame in few writes.
const SOCKET_BUFFER: usize = 256 * 1024;

/// What rustls runs over: the socket, buffered.
type Socket = BufStream<TcpStream>;

fn buffered(tcp: TcpStream) -> Socket {
    BufStream::with_capacity(SOCKET_BUFFER, SOCKET_BUFFER, tcp)
}

/// The read half of a peer connection: whole frames, decoded.
pub struct SecureReader {
    tls: ReadHalf<TlsStream<Socket>>,
}

/// The write half. Dropping it does not close the connection: the
/// accepting side keeps its (unused) one for as long as it reads.
pub struct SecureWriter {
    tls: WriteHalf<TlsStream<Socket>>,
    /// One frame's length prefix and body, so rustls seals them as full
    /// records rather than a 4-byte record and then the body's.
    frame: Vec<u8>,
}

fn halves(tls: TlsStream<Socket>) -> (SecureReader, SecureWriter) {
    let (r, w) = tokio::io::split(tls);
    (
        SecureReader { tls: r },
        SecureWriter {
            tls: w,
            frame: Vec::new(),
        },
    )
}

/// A connection after its handshake: both halves, and whom the peer's
/// certificate speaks for.
pub type Session = (SecureReader, SecureWriter, NodeIdentity);

/// The accepting side: handshake, check the peer holds a node certificate,
/// send `Ready`.
pub async fn accept(acceptor: &TlsAcceptor, tcp: TcpStream) -> Result<Session, NetError> {
    let tls = acceptor.accept(buffered(tcp)).await?;
    let who = identity::of_peer(tls.get_ref().1.peer_certificates())?;
    let (r, mut w) = halves(TlsStream::Server(tls));
    w.write_frame(&Frame::Ready).await?;
    Ok((r, w, who))
}

/// The dialling side: handshake, check the peer holds a node certificate,
/// wait for `Ready` (within `limit`).
pub async fn connect(
    connector: &TlsConnector,
    name: ServerName<'static>,
    tcp: TcpStream,
    limit: Duration,
) -> Result<Session, NetError> {
    let tls = connector.connect(name, buffered(tcp)).await?;
    let who = identity::of_peer(tls.get_ref().1.peer_certificates())?;
    let (mut r, w) = halves(TlsStream::Client(tls));
    let mut buf = BytesMut::new();
    match r.read_frame(&mut buf, 1024, limit, limit).await? {
        Frame::Ready if buf.is_empty() => Ok((r, w, who)),
        _ => Err(NetError::Handshake("the peer did not say ready".into())),
    }
}

impl SecureReader {
    /// Reads what has arrived, appending its plaintext to `plain`; `Ok(0)`
    /// when the peer closed the connection. Cancel-safe.
    pub async fn read_plain(&mut self, plain: &mut BytesMut) -> Result<usize, NetError> {
        plain.reserve(READ_CHUNK);
        Ok(self.tls.read_buf(plain).await?)
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
    /// Writes one frame and flushes it.
    pub async fn write_frame(&mut self, f: &Frame) -> Result<(), NetError> {
        self.write_body(&wire::to_body(f)).await
    }

    /// Writes one frame of `body` (as `write_frame`, encoded already).
    pub async fn write_body(&mut self, body: &[u8]) -> Result<(), NetError> {
        let len = u32::try_from(body.len()).map_err(|_| NetError::FrameTooLarge {
            len: body.len(),
            max: u32::MAX as usize,
        })?;
        self.frame.clear();
        self.frame.extend_from_slice(&len.to_be_bytes());
        self.frame.extend_from_slice(body);
        self.tls.write_all(&self.frame).await?;
        self.tls.flush().await?;
        if self.frame.capacity() > 4 * READ_CHUNK {
            // A rare huge frame (a snapshot chunk is 256 KiB) keeps no
            // memory afterwards.
            self.frame = Vec::new();
        }
        Ok(())
    }
}
