//! TLS 1.3 application-data records (RFC 8446 §5.2), sealed and opened by
//! the transport itself once rustls has done the handshake.
//!
//! rustls authenticates the peer and agrees the keys; then the transport
//! takes the traffic secrets (`dangerous_extract_secrets`, the API meant
//! for kernel TLS) and protects records itself, as kernel TLS would. On
//! the wire nothing changes: these are the records rustls would have
//! written (the tests check rustls reads ours and we read its). What
//! changes is the copying: rustls reads the socket 4 KiB at a time into
//! its own buffer, then copies each decrypted record twice more before the
//! caller sees it; here bytes are read straight into one buffer, decrypted
//! in place and copied once, into the frame buffer.
//!
//! What rustls did after the handshake that this layer does not: key
//! updates (neither side asks for one; a peer that sends one is cut off)
//! and session tickets (the transport's server sends none). Before a key
//! would be used for more records than AES-GCM's confidentiality limit the
//! connection is closed, and the next one has fresh keys.

use crate::NetError;
use bytes::{Buf, BytesMut};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use tokio_rustls::rustls::{ConnectionTrafficSecrets, ExtractedSecrets};

const HEADER: usize = 5;
const TAG: usize = 16;
/// The most plaintext a record may carry.
const MAX_PLAIN: usize = 1 << 14;
/// The most ciphertext a record may carry (RFC 8446 §5.2).
const MAX_CIPHER: usize = MAX_PLAIN + 256;
const APPLICATION_DATA: u8 = 0x17;
const ALERT: u8 = 0x15;
/// Records sealed under one key before the connection is closed: below
/// AES-GCM's confidentiality limit (2^24.5 full-size records).
const MAX_RECORDS: u64 = 1 << 24;

struct Key {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl Key {
    fn new(seq: u64, secrets: ConnectionTrafficSecrets) -> Result<Self, NetError> {
        let (alg, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(NetError::Handshake("an unsupported cipher suite".into())),
        };
        let key = UnboundKey::new(alg, key.as_ref())
            .map_err(|_| NetError::Handshake("a traffic key of the wrong size".into()))?;
        let iv: [u8; 12] = iv
            .as_ref()
            .try_into()
            .map_err(|_| NetError::Handshake("a traffic IV of the wrong size".into()))?;
        Ok(Key {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// The per-record nonce: the IV with the sequence number XORed into
    /// its last 8 bytes. Each sequence number is used once.
    fn next_nonce(&mut self) -> Result<Nonce, NetError> {
        if self.seq >= MAX_RECORDS {
            return Err(NetError::Tls(tokio_rustls::rustls::Error::General(
                "key used for too many records; reconnecting for fresh keys".into(),
            )));
        }
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        self.seq += 1;
        Ok(Nonce::assume_unique_for_key(n))
    }
}

/// Protects outgoing records.
pub struct Sealer(Key);

/// Checks and decrypts incoming records.
pub struct Opener(Key);

/// The two directions' record protection of a connection whose handshake
/// is done.
pub(crate) fn from_secrets(s: ExtractedSecrets) -> Result<(Sealer, Opener), NetError> {
    Ok((
        Sealer(Key::new(s.tx.0, s.tx.1)?),
        Opener(Key::new(s.rx.0, s.rx.1)?),
    ))
}

fn bad(why: impl Into<String>) -> NetError {
    NetError::Tls(tokio_rustls::rustls::Error::General(why.into()))
}

impl Sealer {
    /// Appends to `out` the records carrying `plain`.
    #[cfg(test)]
    fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), NetError> {
        self.seal_parts(&[plain], out)
    }

    /// Appends to `out` the records carrying the concatenation of `parts`
    /// (a frame's length and its body, without joining them first: the
    /// one copy is into the record being sealed).
    pub fn seal_parts(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), NetError> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        out.reserve(total + total.div_ceil(MAX_PLAIN) * (HEADER + 1 + TAG));
        let (mut part, mut at) = (0, 0);
        let mut left = total;
        while left > 0 {
            let n = left.min(MAX_PLAIN);
            let len = n + 1 + TAG;
            let header = [APPLICATION_DATA, 3, 3, (len >> 8) as u8, len as u8];
            out.extend_from_slice(&header);
            let start = out.len();
            let mut need = n;
            while need > 0 {
                let p = parts[part];
                let take = need.min(p.len() - at);
                out.extend_from_slice(&p[at..at + take]);
                (need, at) = (need - take, at + take);
                if at == p.len() {
                    (part, at) = (part + 1, 0);
                }
            }
            out.push(APPLICATION_DATA);
            let nonce = self.0.next_nonce()?;
            let tag = self
                .0
                .key
                .seal_in_place_separate_tag(nonce, Aad::from(header), &mut out[start..])
                .map_err(|_| bad("sealing a record failed"))?;
            out.extend_from_slice(tag.as_ref());
            left -= n;
        }
        Ok(())
    }
}

impl Opener {
    /// Opens every complete record at the front of `records`, appending
    /// their plaintext to `plain`; an incomplete one stays for later.
    pub fn open(&mut self, records: &mut BytesMut, plain: &mut BytesMut) -> Result<(), NetError> {
        let mut at = 0;
        let r = self.open_all(&mut records[..], &mut at, plain);
        records.advance(at);
        r
    }

    /// Opens records in place from `*at` on; `*at` ends past the last one
    /// opened (no `split_to`: it would make the buffer shared, and every
    /// later `reserve` would then copy it).
    fn open_all(
        &mut self,
        buf: &mut [u8],
        at: &mut usize,
        plain: &mut BytesMut,
    ) -> Result<(), NetError> {
        while buf.len() - *at >= HEADER {
            let h: [u8; HEADER] = buf[*at..*at + HEADER].try_into().expect("5 bytes");
            let len = u16::from_be_bytes([h[3], h[4]]) as usize;
            if h[0] != APPLICATION_DATA || h[1..3] != [3, 3] {
                return Err(bad(format!("not a TLS 1.3 record: header {h:02x?}")));
            }
            if !(1 + TAG..=MAX_CIPHER).contains(&len) {
                return Err(bad(format!("a record of {len} bytes")));
            }
            let body = *at + HEADER..*at + HEADER + len;
            if buf.len() < body.end {
                return Ok(());
            }
            let nonce = self.0.next_nonce()?;
            let inner = self
                .0
                .key
                .open_in_place(nonce, Aad::from(h), &mut buf[body.clone()])
                .map_err(|_| bad("a record failed authentication"))?;
            // Inner plaintext: content, content type, zero padding.
            let Some(end) = inner.iter().rposition(|&b| b != 0) else {
                return Err(bad("a record with no content type"));
            };
            match inner[end] {
                APPLICATION_DATA => plain.extend_from_slice(&inner[..end]),
                ALERT => return Err(bad("the peer sent an alert")),
                t => return Err(bad(format!("an unexpected record of type {t}"))),
            }
            *at = body.end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::rustls::crypto::cipher::{AeadKey, Iv};

    fn pair(seq: u64) -> (Sealer, Opener) {
        let key = || ConnectionTrafficSecrets::Aes256Gcm {
            key: AeadKey::from([7u8; 32]),
            iv: Iv::from([9u8; 12]),
        };
        (
            Sealer(Key::new(seq, key()).unwrap()),
            Opener(Key::new(seq, key()).unwrap()),
        )
    }

    #[test]
    fn records_round_trip_whole_split_and_in_pieces() {
        let (mut s, mut o) = pair(3);
        let data: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        s.seal(&data, &mut wire).unwrap();
        s.seal(b"", &mut wire).unwrap();
        s.seal(b"tail", &mut wire).unwrap();
        // Three records for the data, none for nothing, one for the tail.
        assert_eq!(wire.len(), data.len() + 4 * (HEADER + 1 + TAG) + 4);
        // Fed a byte at a time, the opener waits for whole records.
        let (mut buf, mut plain) = (BytesMut::new(), BytesMut::new());
        for b in &wire {
            buf.extend_from_slice(&[*b]);
            o.open(&mut buf, &mut plain).unwrap();
        }
        assert!(buf.is_empty());
        assert_eq!(&plain[..data.len()], &data[..]);
        assert_eq!(&plain[data.len()..], b"tail");
    }

    #[test]
    fn parts_seal_like_their_concatenation() {
        let a: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
        let parts: [&[u8]; 4] = [b"len!", &a[..3], &[], &a[3..]];
        let (mut s1, _) = pair(5);
        let (mut s2, _) = pair(5);
        let (mut w1, mut w2) = (Vec::new(), Vec::new());
        s1.seal(&parts.concat(), &mut w1).unwrap();
        s2.seal_parts(&parts, &mut w2).unwrap();
        assert_eq!(w1, w2);
    }

    #[test]
    fn tampering_replay_and_garbage_are_refused() {
        let (mut s, _) = pair(0);
        let mut wire = Vec::new();
        s.seal(b"hello", &mut wire).unwrap();
        for i in 0..wire.len() {
            let mut w = wire.clone();
            w[i] ^= 1;
            let (_, mut o) = pair(0);
            let r = o.open(&mut BytesMut::from(&w[..]), &mut BytesMut::new());
            // A flipped length bit may only leave the record incomplete.
            assert!(r.is_err() || i == 3 || i == 4, "flip at byte {i} accepted");
        }
        // Out of order (a replayed or dropped record): wrong nonce.
        let (_, mut o) = pair(1);
        assert!(
            o.open(&mut BytesMut::from(&wire[..]), &mut BytesMut::new())
                .is_err()
        );
        let (_, mut o) = pair(0);
        let mut junk = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        assert!(o.open(&mut junk, &mut BytesMut::new()).is_err());
        let mut huge = BytesMut::from(&[APPLICATION_DATA, 3, 3, 0xff, 0xff][..]);
        assert!(o.open(&mut huge, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn a_key_is_retired_before_its_limit() {
        let (mut s, _) = pair(MAX_RECORDS - 1);
        let mut wire = Vec::new();
        s.seal(b"last", &mut wire).unwrap();
        assert!(s.seal(b"one too many", &mut wire).is_err());
    }
}
