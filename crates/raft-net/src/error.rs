use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("{path}: {reason}")]
    CertFile { path: PathBuf, reason: String },
    #[error("TLS setup: {0}")]
    Tls(#[from] tokio_rustls::rustls::Error),
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    FrameTooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
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
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
