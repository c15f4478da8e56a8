//! Framing: a 4-byte big-endian length, then that many bytes of body. The
//! decoder never trusts the length: anything over the limit is an error
//! before a byte of it is buffered.

use crate::NetError;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Default largest body: room for a full append batch (1 MiB of entries)
/// with headroom, small enough that a hostile peer cannot make us buffer much.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Appends one frame holding `body` to `out`.
pub fn encode(body: &[u8], out: &mut BytesMut) {
    out.reserve(4 + body.len());
    out.put_u32(body.len() as u32);
    out.put_slice(body);
}

/// Takes one whole frame off the front of `buf`, if there is one.
pub fn decode(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, NetError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    if len > max {
        return Err(NetError::FrameTooLarge { len, max });
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_partial_input() {
        let mut out = BytesMut::new();
        encode(b"hello", &mut out);
        encode(b"", &mut out);
        let mut partial = BytesMut::from(&out[..6]);
        assert_eq!(decode(&mut partial, 100).unwrap(), None);
        assert_eq!(
            decode(&mut out, 100).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(decode(&mut out, 100).unwrap().as_deref(), Some(&b""[..]));
        assert!(out.is_empty());
    }

    #[test]
    fn oversized_length_is_refused_up_front() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            decode(&mut buf, 1024),
            Err(NetError::FrameTooLarge { .. })
        ));
        assert!(
            buf.capacity() < 1 << 20,
            "nothing was reserved for the claimed length"
        );
    }

    proptest! {
        /// Arbitrary bytes, fed in arbitrary chunks: the decoder returns
        /// frames, asks for more, or errors; it never panics and never
        /// returns a body over the limit.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096), cut in 0usize..4096, max in 0usize..2048) {
            let mut buf = BytesMut::new();
            let cut = cut.min(data.len());
            for chunk in [&data[..cut], &data[cut..]] {
                buf.extend_from_slice(chunk);
                while let Ok(Some(body)) = decode(&mut buf, max) {
                    prop_assert!(body.len() <= max);
                }
            }
        }

        /// Whatever is encoded comes back out, however it is split.
        #[test]
        fn frames_survive_any_split(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8), cut in 0usize..3000) {
            let mut wire = BytesMut::new();
            for b in &bodies {
                encode(b, &mut wire);
            }
            let cut = cut.min(wire.len());
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(chunk);
                while let Some(b) = decode(&mut buf, 300).unwrap() {
                    got.push(b.to_vec());
                }
            }
            prop_assert_eq!(got, bodies);
        }
    }
}
