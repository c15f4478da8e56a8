use std::path::PathBuf;

/// What the transport and its TLS setup report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A certificate, key or CA file cannot be used (missing, not PEM, a
    /// certificate without the subjectAltName peers check).
    #[error("{path}: {reason}")]
    CertFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, and how to fix it where known.
        reason: String,
    },
    /// rustls refused the configuration (a key that does not go with
    /// the certificate, an unsupported algorithm).
    #[error("TLS setup: {0}")]
    Tls(#[from] tokio_rustls::rustls::Error),
    /// A peer sent a frame over the limit; the connection is closed.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    FrameTooLarge {
        /// The frame's declared length.
        len: usize,
        /// The limit (`NetConfig::max_frame`).
        max: usize,
    },
    /// A frame did not decode; the connection is closed.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The handshake failed (another cluster, an unknown node, a version
    /// this node does not speak, an identity the certificate does not
    /// carry).
    #[error("handshake refused: {0}")]
    Handshake(String),
    /// An inbound connection carried nothing for the idle timeout (two
    /// followers never talk): closed quietly, its dialler reconnects when
    /// it has something to say.
    #[error("idle for {0:?}")]
    Idle(std::time::Duration),
    /// The peer refused this node: not in its configuration.
    #[error("not a member of the peer's configuration {0:?}")]
    NotMember(crate::transport::ConfigStamp),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
