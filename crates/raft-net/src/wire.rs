//! What frames carry: first a handshake, then batches of Raft messages,
//! each body MessagePack (rmp-serde).

use crate::NetError;
use raft_core::{Message, NodeId};
use serde::{Deserialize, Serialize};

/// Bumped on any change to frames or messages.
pub const PROTOCOL_VERSION: u32 = 6;

/// The oldest version whose peers this node still accepts, for rolling
/// upgrades. Version 5 only added a frame the accepting side sends
/// (`NotMember`), which a version 4 dialler takes for a closed connection.
pub const MIN_PROTOCOL_VERSION: u32 = 4;

/// The version a dialler announces in its `Hello`: the oldest whose
/// accepting side understands everything it sends. Everything a version 5
/// dialler sends, a version 4 node reads, so version 4 nodes (which accept
/// only their own version) take version 5 nodes' connections and a
/// cluster upgrades one node at a time with every link up.
pub const HELLO_VERSION: u32 = 4;

/// What travels on a peer connection (`docs/wire.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The first frame on every connection, from the dialling side.
    Hello {
        /// The handshake version the dialler speaks (`HELLO_VERSION`).
        version: u32,
        /// Its cluster's name; another cluster's node is refused.
        cluster: String,
        /// Its node id.
        node: NodeId,
        /// Where the node serves clients (`host:port`, empty if nowhere),
        /// so peers can forward or redirect clients to the leader.
        client_addr: String,
    },
    /// Messages coalesced into one write.
    Messages(Vec<Message>),
    /// The first frame from the accepting side: it has taken its keys from
    /// rustls, so the dialling side may send (`session.rs`).
    Ready,
    /// The accepting side's last frame when it refuses a node that is not
    /// in its configuration: the index of that configuration, and whether
    /// it is committed. A node that sees itself in an older configuration
    /// learns from a committed one that it was removed.
    NotMember {
        /// The refusing side's configuration index.
        config_index: u64,
        /// Whether that configuration is committed there.
        committed: bool,
    },
}

/// What a dialler's `Hello` frame carries after the `Hello` itself:
/// fields added since version 4, in a second MessagePack value that older
/// nodes do not read (a decoder stops after the first value), so the
/// `Hello` stays what version 4 nodes accept. Every field has a default,
/// for the hellos of nodes that send no extension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloExt {
    /// The dialler's storage id (`raft_core::InitialState::storage`; 0:
    /// none), which the acceptor sets on every message of the connection
    /// (`Message::storage`).
    #[serde(default)]
    pub storage: u64,
}

/// A `Hello` frame's body: the hello, then its extension.
pub fn hello_body(hello: &Frame, ext: &HelloExt) -> Vec<u8> {
    let mut body = to_body(hello);
    body.extend(rmp_serde::to_vec(ext).expect("the extension always serializes"));
    body
}

/// A `Hello` frame's body read back: the frame, and its extension (the
/// default when the dialler sent none).
pub fn split_hello(body: &[u8]) -> Result<(Frame, HelloExt), NetError> {
    let malformed = |e: rmp_serde::decode::Error| NetError::Malformed(bounded(&e.to_string()));
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(body));
    let frame = Frame::deserialize(&mut de).map_err(malformed)?;
    let rest = &body[de.get_ref().position() as usize..];
    if rest.is_empty() {
        return Ok((frame, HelloExt::default()));
    }
    Ok((frame, rmp_serde::from_slice(rest).map_err(malformed)?))
}

/// The largest `Hello` body read (its strings are a cluster name and an
/// address): the handshake is read with this limit, not the frame limit,
/// before the peer is known.
pub const MAX_HELLO: usize = 4096;

/// How much of a decode error's text is kept: errors can quote what the
/// peer sent, and a peer chooses how much that is.
const MAX_ERROR_TEXT: usize = 200;

/// A frame's MessagePack body.
pub fn to_body(f: &Frame) -> Vec<u8> {
    rmp_serde::to_vec(f).expect("frames always serialize")
}

/// A frame from its body; `Malformed` (with a bounded message) if it
/// does not decode.
pub fn from_body(body: &[u8]) -> Result<Frame, NetError> {
    rmp_serde::from_slice(body).map_err(|e| NetError::Malformed(bounded(&e.to_string())))
}

/// `text` cut to at most `MAX_ERROR_TEXT` bytes (on a character boundary),
/// saying how much was cut.
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_string();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes more)", &text[..end], text.len() - end)
}

/// Checks a peer's handshake against ours; returns the peer's node id and
/// client address.
pub fn check_hello<'a>(f: &'a Frame, cluster: &str) -> Result<(NodeId, &'a str), NetError> {
    match f {
        Frame::Hello {
            version,
            cluster: c,
            node,
            client_addr,
        } => {
            if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(version) {
                return Err(NetError::Handshake(format!(
                    "protocol version {version}, we speak \
                     {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
                )));
            }
            if c != cluster {
                return Err(NetError::Handshake(format!(
                    "cluster {}, we are {cluster:?}",
                    bounded(&format!("{c:?}"))
                )));
            }
            Ok((*node, client_addr))
        }
        Frame::Messages(_) | Frame::Ready | Frame::NotMember { .. } => {
            Err(NetError::Handshake("a frame other than hello first".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use raft_core::{Body, Entry, Mode, Payload};

    fn hello() -> Frame {
        Frame::Hello {
            version: HELLO_VERSION,
            cluster: "c".into(),
            node: 7,
            client_addr: "127.0.0.1:1".into(),
        }
    }

    #[test]
    fn a_hello_extension_is_read_by_new_nodes_and_passed_over_by_old_ones() {
        let ext = HelloExt { storage: 42 };
        let body = hello_body(&hello(), &ext);
        // What a node of version 4 or 5 does: decode one value.
        assert_eq!(from_body(&body).unwrap(), hello());
        assert_eq!(split_hello(&body).unwrap(), (hello(), ext));
        // A hello without one, from an older node.
        let old = to_body(&hello());
        assert_eq!(split_hello(&old).unwrap(), (hello(), HelloExt::default()));
        // Junk after the hello is an error, not a storage id.
        let mut junk = old.clone();
        junk.push(0xc1);
        assert!(split_hello(&junk).is_err());
    }

    #[test]
    fn messages_round_trip() {
        let m = Message {
            from: 1,
            to: 2,
            term: 3,
            mode: Mode::Reluctant,
            body: Body::Append {
                prev_index: 4,
                prev_term: 2,
                entries: vec![Entry {
                    term: 3,
                    index: 5,
                    payload: Payload::Normal(Bytes::from_static(b"x")),
                }],
                commit: 4,
            },
            storage: 0,
        };
        let f = Frame::Messages(vec![m]);
        assert_eq!(from_body(&to_body(&f)).unwrap(), f);
    }

    #[test]
    fn handshake_checks() {
        let ok = Frame::Hello {
            version: PROTOCOL_VERSION,
            cluster: "c".into(),
            node: 7,
            client_addr: "127.0.0.1:7500".into(),
        };
        assert_eq!(check_hello(&ok, "c").unwrap(), (7, "127.0.0.1:7500"));
        assert!(check_hello(&ok, "other").is_err());
        let speaking = |version| Frame::Hello {
            version,
            cluster: "c".into(),
            node: 7,
            client_addr: String::new(),
        };
        assert!(check_hello(&speaking(MIN_PROTOCOL_VERSION), "c").is_ok());
        assert!(check_hello(&speaking(MIN_PROTOCOL_VERSION - 1), "c").is_err());
        assert!(check_hello(&speaking(PROTOCOL_VERSION + 1), "c").is_err());
        assert!(check_hello(&speaking(0), "c").is_err());
        // What this node's dialler announces, its own acceptor takes.
        assert!(check_hello(&speaking(HELLO_VERSION), "c").is_ok());
        assert!((MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&HELLO_VERSION));
        assert!(from_body(b"\xc1garbage").is_err());
    }

    /// A decode error quotes what it could not use (serde's "invalid type:
    /// string ..."); one junk frame must not become a 16 MiB log line.
    #[test]
    fn decode_errors_are_bounded() {
        let junk = rmp_serde::to_vec(&"x".repeat(1 << 20)).unwrap();
        let e = from_body(&junk).unwrap_err().to_string();
        assert!(e.len() < 400, "{} bytes: {}", e.len(), &e[..400]);
        assert!(e.contains("bytes more"), "{e}");
        assert_eq!(bounded("short"), "short");
        let wide = "é".repeat(300);
        assert!(bounded(&wide).starts_with(&"é".repeat(100)));
    }
}
