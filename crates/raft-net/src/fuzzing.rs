//! Entry points for fuzzing the peer transport's decoders (`cargo xtask
//! fuzz`; the targets are in `fuzz/`). Each takes arbitrary bytes and must
//! neither panic nor hang. Built with the `fuzzing` feature only: not part
//! of the API. `tests/fuzz_corpus.rs` runs the kept corpus and every
//! regression through them.

use crate::{frame, wire};
use bytes::BytesMut;

/// `data` as what a dialler sends an acceptor: the handshake (read with
/// its own limit, as `transport.rs` does, and checked), then frames up to
/// the frame limit. Every frame that decodes encodes back to itself.
pub fn peer_frames(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let Ok(Some(hello)) = frame::decode(&mut buf, wire::MAX_HELLO) else {
        return;
    };
    if let Ok((f, _ext)) = wire::split_hello(&hello) {
        let _ = wire::check_hello(&f, "fuzz");
    }
    while let Ok(Some(body)) = frame::decode(&mut buf, frame::DEFAULT_MAX_FRAME) {
        if let Ok(f) = wire::from_body(&body) {
            let again = wire::from_body(&wire::to_body(&f)).expect("invariant: frames round-trip");
            assert_eq!(again, f, "invariant: frames round-trip");
        }
    }
}

/// Inputs for `peer_frames` a real dialler sends: a hello, then frames of
/// every kind and a message of every body. Each is (target, name, bytes).
pub fn seeds() -> Vec<(String, String, Vec<u8>)> {
    use raft_core::{Body, Entry, Membership, Message, Mode, Payload, RejectHint, SnapshotMeta};
    let hello = wire::Frame::Hello {
        version: wire::PROTOCOL_VERSION,
        cluster: "fuzz".into(),
        node: 2,
        client_addr: "127.0.0.1:8002".into(),
    };
    let mut m = Membership::new([1, 2, 3]);
    m.addresses.insert(1, "127.0.0.1:7001".into());
    let entries = vec![
        Entry {
            term: 2,
            index: 5,
            payload: Payload::Noop,
        },
        Entry {
            term: 2,
            index: 6,
            payload: Payload::Normal(bytes::Bytes::from_static(b"kv1 payload")),
        },
        Entry {
            term: 2,
            index: 7,
            payload: Payload::Config(Box::new(m.clone())),
        },
    ];
    let bodies = vec![
        Body::Append {
            prev_index: 4,
            prev_term: 1,
            entries,
            commit: 3,
        },
        Body::AppendResponse {
            index: 4,
            reject: Some(RejectHint {
                conflict_term: Some(1),
                conflict_index: 2,
            }),
        },
        Body::Heartbeat {
            commit: 3,
            read_round: 9,
            all_applied: 2,
        },
        Body::HeartbeatResponse {
            read_round: 9,
            applied: 3,
        },
        Body::SnapshotChunk {
            meta: SnapshotMeta {
                index: 7,
                term: 2,
                membership: m,
                digest: Some(raft_core::Digest([7; 32])),
            },
            offset: 0,
            data: bytes::Bytes::from_static(b"RSNAPDAT"),
            done: false,
        },
        Body::SnapshotAck {
            index: 7,
            offset: 8,
        },
        Body::RequestVote {
            pre_vote: true,
            last_index: 7,
            last_term: 2,
            transfer: false,
        },
        Body::VoteResponse {
            pre_vote: true,
            granted: true,
        },
        Body::TimeoutNow,
        Body::ReadIndex { id: 11 },
        Body::ReadIndexResponse { id: 11, index: 7 },
        Body::Replaced { known: 42 },
    ];
    let message = |body| Message {
        from: 2,
        to: 1,
        term: 3,
        mode: Mode::Active,
        body,
        storage: 0,
    };
    let framed = |frames: &[Vec<u8>]| {
        let mut out = BytesMut::new();
        frame::encode(
            &wire::hello_body(&hello, &wire::HelloExt { storage: 77 }),
            &mut out,
        );
        for f in frames {
            frame::encode(f, &mut out);
        }
        out.to_vec()
    };
    let seed = |name: String, bytes| ("peer_frames".to_string(), name, bytes);
    let mut seeds = vec![seed("hello-only".into(), framed(&[]))];
    for (k, body) in bodies.into_iter().enumerate() {
        let f = wire::Frame::Messages(vec![message(body)]);
        seeds.push(seed(format!("message-{k}"), framed(&[wire::to_body(&f)])));
    }
    let others = [
        wire::Frame::Ready,
        wire::Frame::NotMember {
            config_index: 7,
            committed: true,
        },
    ];
    let bodies: Vec<_> = others.iter().map(wire::to_body).collect();
    seeds.push(seed("ready-not-member".into(), framed(&bodies)));
    seeds
}
