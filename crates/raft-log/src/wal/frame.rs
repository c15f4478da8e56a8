//! How the write-ahead log frames a record, and how it reads one back.
//!
//! A record written by this version (format 5) is a 12-byte header, then
//! the body:
//!
//! - `len` (u32 LE) with its top bit set (so the header says its own
//!   framing: no older writer sets that bit);
//! - the CRC-32 of the body (u32 LE);
//! - the CRC-32 of those 8 bytes (u32 LE).
//!
//! The header's own checksum is what tells a torn write from damage: a
//! torn write leaves a record's header whole (or the file ends inside it,
//! or the file grew and holds zeroes), so a whole header that does not
//! check is damage, wherever it is, and a header that checks gives a
//! length to trust. Segments written before format 5 have 8-byte headers
//! (`len`, body CRC) and are still read, with the older rules.

use std::io::{self, Read};

/// The header this version writes.
pub(crate) const HEADER: usize = 12;
const LEGACY_HEADER: usize = 8;
/// Set in the length field of every format 5 header.
const CHECKED: u32 = 1 << 31;
/// `append` refuses records this large, so a legacy length field at or
/// over it is damage, never a torn write (stores split writes far below).
pub(super) const MAX_RECORD: usize = 1 << 31;

/// The kind byte of a durable mark (the store's record kinds are 1..=4).
const MARK: u8 = 0xD0;
/// A mark's body: the kind, the segment id (u32), and the offset the mark
/// itself starts at (u64): every byte before it was durable.
const MARK_BODY: usize = 13;

/// How a segment's records are framed. A segment holds one framing only:
/// this version appends to format 5 segments only (a store rolls to a new
/// segment when the one it would append to is older).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Before format 5: no checksum over the header.
    Legacy,
    /// Format 5: the header is checksummed.
    Checked,
}

impl Framing {
    /// The framing of a segment whose file starts with `first` (its first
    /// four bytes, or fewer if the file is that short).
    pub fn of(first: &[u8]) -> Framing {
        match first.get(..4) {
            Some(len) if u32::from_le_bytes(len.try_into().expect("4 bytes")) & CHECKED == 0 => {
                Framing::Legacy
            }
            _ => Framing::Checked,
        }
    }

    pub fn header(self) -> usize {
        match self {
            Framing::Legacy => LEGACY_HEADER,
            Framing::Checked => HEADER,
        }
    }

    /// The length of a durable mark, header included.
    pub fn mark_len(self) -> u64 {
        (self.header() + MARK_BODY) as u64
    }

    /// The body's length and checksum a whole header says, or why it is
    /// damage.
    fn check(self, h: &[u8]) -> Result<(u64, u32), String> {
        let word = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().expect("4 bytes"));
        match self {
            Framing::Legacy => {
                let len = word(0) as u64;
                if len as usize >= MAX_RECORD {
                    return Err(format!("a record length of {len} bytes, over the limit"));
                }
                Ok((len, word(4)))
            }
            Framing::Checked => {
                if crc32fast::hash(&h[..8]) != word(8) {
                    return Err("a record header whose checksum does not match".into());
                }
                if word(0) & CHECKED == 0 {
                    return Err("a record header of an older format in a format 5 segment".into());
                }
                Ok(((word(0) & !CHECKED) as u64, word(4)))
            }
        }
    }
}

/// Frames a record in place: `buf` holds `HEADER` bytes of room, then the
/// body. Refuses a body of `MAX_RECORD` bytes or more.
pub(super) fn seal(buf: &mut [u8]) -> io::Result<()> {
    let len = u32::try_from(buf.len() - HEADER)
        .ok()
        .filter(|&l| (l as usize) < MAX_RECORD)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
    let crc = crc32fast::hash(&buf[HEADER..]);
    buf[..4].copy_from_slice(&(len | CHECKED).to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    let head = crc32fast::hash(&buf[..8]);
    buf[8..HEADER].copy_from_slice(&head.to_le_bytes());
    Ok(())
}

/// A durable mark for segment `seg`, to be written at offset `at`.
pub(super) fn mark_record(seg: u32, at: u64) -> [u8; HEADER + MARK_BODY] {
    let mut r = [0u8; HEADER + MARK_BODY];
    r[HEADER] = MARK;
    r[HEADER + 1..HEADER + 5].copy_from_slice(&seg.to_le_bytes());
    r[HEADER + 5..].copy_from_slice(&at.to_le_bytes());
    seal(&mut r).expect("invariant: a mark is far below the record limit");
    r
}

/// Whether `body` (a record whose checksum matched, found at `at`) is the
/// durable mark segment `seg` writes there.
pub(super) fn is_mark(body: &[u8], seg: u32, at: u64) -> bool {
    body.len() == MARK_BODY
        && body[0] == MARK
        && body[1..5] == seg.to_le_bytes()
        && body[5..] == at.to_le_bytes()
}

/// Whether `r` is exactly one whole durable mark of segment `seg`, found
/// at `at`.
pub(super) fn is_whole_mark(r: &[u8], framing: Framing, seg: u32, at: u64) -> bool {
    let h = framing.header();
    r.len() == framing.mark_len() as usize
        && framing
            .check(&r[..h])
            .is_ok_and(|(len, crc)| len as usize == MARK_BODY && crc32fast::hash(&r[h..]) == crc)
        && is_mark(&r[h..], seg, at)
}

pub(super) enum Next {
    Record,
    End,
    Bad(Bad),
}

/// A record that does not check.
pub(super) struct Bad {
    pub why: String,
    /// The bad record reaches the end of the file, as a torn last write does.
    pub at_end: bool,
    /// The record's whole length, when its header is trusted and the file
    /// holds all of it (only its body's checksum failed).
    pub skip: Option<u64>,
    /// No torn write leaves this: it is damage wherever it is.
    pub damage: bool,
}

fn torn(why: impl Into<String>, at_end: bool) -> io::Result<Next> {
    Ok(Next::Bad(Bad {
        why: why.into(),
        at_end,
        skip: None,
        damage: false,
    }))
}

fn damage(why: String) -> io::Result<Next> {
    Ok(Next::Bad(Bad {
        why,
        at_end: false,
        skip: None,
        damage: true,
    }))
}

fn rest_is_zero(r: &mut impl Read) -> io::Result<bool> {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)?;
    Ok(rest.iter().all(|&b| b == 0))
}

/// Reads the next record's body into `body`; `left` is how many bytes the
/// file holds from here.
pub(super) fn read_record(
    r: &mut impl Read,
    body: &mut Vec<u8>,
    left: u64,
    framing: Framing,
) -> io::Result<Next> {
    let hl = framing.header();
    if left == 0 {
        return Ok(Next::End);
    }
    if left < hl as u64 {
        return torn("a partial record header", true);
    }
    let mut h = [0u8; HEADER];
    let h = &mut h[..hl];
    r.read_exact(h)?;
    if h.iter().all(|&b| b == 0) {
        // A file extended but not written: zeroes up to its end.
        return torn("zeroes where a record should start", rest_is_zero(r)?);
    }
    let (len, crc) = match framing.check(h) {
        Ok(v) => v,
        // A header torn inside (its end never written) with zeroes after
        // it, as a file extended before its bytes landed leaves.
        Err(why) if framing == Framing::Checked && h[hl - 1] == 0 && rest_is_zero(r)? => {
            return torn(format!("{why}, then zeroes to the end"), true);
        }
        Err(why) => return damage(why),
    };
    let room = left - hl as u64;
    if len > room {
        return torn(format!("a record of {len} bytes with {room} left"), true);
    }
    body.resize(len as usize, 0);
    r.read_exact(body)?;
    if crc32fast::hash(body) != crc {
        return Ok(Next::Bad(Bad {
            why: "a record whose checksum does not match".into(),
            at_end: len == room,
            skip: Some(hl as u64 + len),
            damage: false,
        }));
    }
    Ok(Next::Record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER];
        b.extend_from_slice(body);
        seal(&mut b).unwrap();
        b
    }

    fn read(bytes: &[u8], framing: Framing) -> Next {
        let mut body = Vec::new();
        read_record(&mut &bytes[..], &mut body, bytes.len() as u64, framing).unwrap()
    }

    #[test]
    fn a_record_reads_back_and_says_its_framing() {
        let b = framed(b"\x04hello");
        assert_eq!(Framing::of(&b), Framing::Checked);
        let mut body = Vec::new();
        let next = read_record(&mut &b[..], &mut body, b.len() as u64, Framing::Checked);
        assert!(matches!(next.unwrap(), Next::Record));
        assert_eq!(body, b"\x04hello");
        let legacy = [&6u32.to_le_bytes()[..], &[0; 4]].concat();
        assert_eq!(Framing::of(&legacy), Framing::Legacy);
        assert_eq!(Framing::of(&[]), Framing::Checked);
    }

    #[test]
    fn any_flipped_header_bit_is_damage_and_a_cut_header_is_torn() {
        let b = framed(b"\x04some body bytes");
        for bit in 0..HEADER * 8 {
            let mut d = b.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            match read(&d, Framing::Checked) {
                Next::Bad(bad) => assert!(bad.damage, "bit {bit}: {}", bad.why),
                _ => panic!("bit {bit}: read as a record"),
            }
        }
        for cut in 1..b.len() {
            match read(&b[..cut], Framing::Checked) {
                Next::Bad(bad) => assert!(!bad.damage && bad.at_end, "cut {cut}: {}", bad.why),
                _ => panic!("cut {cut}: read as a record"),
            }
        }
    }

    #[test]
    fn a_header_whose_end_reads_as_zeroes_to_the_end_of_the_file_is_torn() {
        let mut b = framed(b"\x04body");
        let n = b.len();
        b[HEADER - 2..].fill(0);
        let Next::Bad(bad) = read(&b, Framing::Checked) else {
            panic!("read as a record")
        };
        assert!(!bad.damage && bad.at_end, "{}", bad.why);
        b[n - 1] = 1;
        let Next::Bad(bad) = read(&b, Framing::Checked) else {
            panic!("read as a record")
        };
        assert!(bad.damage, "{}", bad.why);
    }

    #[test]
    fn a_whole_mark_is_recognised_only_where_it_was_written() {
        let m = mark_record(7, 300);
        assert!(is_whole_mark(&m, Framing::Checked, 7, 300));
        assert!(!is_whole_mark(&m, Framing::Checked, 7, 301));
        assert!(!is_whole_mark(&m, Framing::Checked, 8, 300));
        assert!(!is_whole_mark(&m, Framing::Legacy, 7, 300));
    }
}
