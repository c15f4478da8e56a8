//! Raft peer transport: mutual-TLS TCP (tokio-rustls, TLS 1.3 only), frames
//! of a length prefix and a MessagePack body, a handshake naming protocol
//! version, cluster and node. The wire format is in `docs/wire.md`.

#![deny(missing_docs)]

mod error;
pub mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod identity;
pub mod session;
pub mod tls;
mod transport;
pub mod wire;

pub use error::NetError;
pub use identity::{ClientIdentity, NodeIdentity};
pub use tls::{TlsFiles, TlsSetup};
pub use transport::{ConfigStamp, NetConfig, Refusal, Transport};
