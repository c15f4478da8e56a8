//! A snapshot's data file: its bytes in checksummed blocks, so a reader
//! never hands out a damaged byte, and a digest of them all.
//!
//! Layout: the magic `RSNAPDAT`, then blocks of `len` (u32 LE, 1 to
//! `BLOCK`), CRC-32 of the bytes (u32 LE), the bytes; then a trailer:
//! `u32::MAX`, the total length (u64 LE), and a CRC-32 of those 12 bytes.
//! The SHA-256 of the bytes (not the framing) is the snapshot's digest,
//! kept in its meta file and checked when the reader reaches the end.

use raft_core::Digest;
use ring::digest::{Context, SHA256};
use std::io::{self, Read, Write};

pub(super) const MAGIC: &[u8; 8] = b"RSNAPDAT";
/// The most bytes in a block.
pub(super) const BLOCK: usize = 256 << 10;
const TRAILER: u32 = u32::MAX;

/// The digest of bytes already hashed.
fn finish(h: Context) -> Digest {
    let mut d = [0u8; 32];
    d.copy_from_slice(h.finish().as_ref());
    Digest(d)
}

/// The digest of `bytes`.
pub(crate) fn digest(bytes: &[u8]) -> Digest {
    let mut h = Context::new(&SHA256);
    h.update(bytes);
    finish(h)
}

/// Writes blocks to `out` as bytes arrive.
pub(super) struct BlockWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    hash: Context,
    total: u64,
}

impl<W: Write> BlockWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(BlockWriter {
            out,
            buf: Vec::with_capacity(BLOCK),
            hash: Context::new(&SHA256),
            total: 0,
        })
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let crc = crc32fast::hash(&self.buf);
        self.out.write_all(&(self.buf.len() as u32).to_le_bytes())?;
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&self.buf)?;
        self.hash.update(&self.buf);
        self.total += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the last block and the trailer; returns the output and the
    /// digest of everything written.
    pub fn finish(mut self) -> io::Result<(W, Digest)> {
        self.flush_block()?;
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&TRAILER.to_le_bytes());
        t[4..].copy_from_slice(&self.total.to_le_bytes());
        self.out.write_all(&t)?;
        self.out.write_all(&crc32fast::hash(&t).to_le_bytes())?;
        Ok((self.out, finish(self.hash)))
    }
}

impl<W: Write> Write for BlockWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            let take = (BLOCK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == BLOCK {
                self.flush_block()?;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a data file's bytes, checking each block before handing any of
/// it out and the digest at the end. `name` goes into every error.
pub(super) struct BlockReader<R: Read> {
    inner: R,
    name: String,
    expect: Option<Digest>,
    block: Vec<u8>,
    at: usize,
    /// Bytes of the file consumed, for error messages.
    offset: u64,
    total: u64,
    hash: Option<Context>,
    done: bool,
}

fn damaged(name: &str, offset: u64, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "snapshot {name}, byte {offset}: {what}: the snapshot is damaged; {}",
            crate::contain::REMEDY
        ),
    )
}

impl<R: Read> BlockReader<R> {
    /// Checks the magic; `expect` is the digest the bytes must have.
    pub fn new(mut inner: R, name: String, expect: Option<Digest>) -> io::Result<Self> {
        let mut m = [0u8; 8];
        inner.read_exact(&mut m).map_err(|e| damaged(&name, 0, e))?;
        if &m != MAGIC {
            return Err(damaged(&name, 0, "not a snapshot data file"));
        }
        Ok(BlockReader {
            inner,
            name,
            expect,
            block: Vec::new(),
            at: 0,
            offset: 8,
            total: 0,
            hash: Some(Context::new(&SHA256)),
            done: false,
        })
    }

    fn bad(&self, what: impl std::fmt::Display) -> io::Error {
        damaged(&self.name, self.offset, what)
    }

    fn read_exact_or_damaged(&mut self, buf: &mut [u8]) -> io::Result<()> {
        match self.inner.read_exact(buf) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.bad("the file ends early"))
            }
            other => other,
        }
    }

    /// Loads the next block; `false` at the (verified) end.
    fn next_block(&mut self) -> io::Result<bool> {
        let mut h = [0u8; 8];
        self.read_exact_or_damaged(&mut h)?;
        let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(h[4..].try_into().expect("4 bytes"));
        if len == TRAILER {
            return self.trailer(h).map(|()| false);
        }
        if len == 0 || len as usize > BLOCK {
            return Err(self.bad(format!("a block length of {len}")));
        }
        self.block.resize(len as usize, 0);
        let mut block = std::mem::take(&mut self.block);
        let read = self.read_exact_or_damaged(&mut block);
        self.block = block;
        read?;
        if crc32fast::hash(&self.block) != crc {
            return Err(self.bad("a block whose checksum does not match"));
        }
        self.hash.as_mut().expect("until done").update(&self.block);
        self.offset += 8 + len as u64;
        self.total += len as u64;
        self.at = 0;
        Ok(true)
    }

    fn trailer(&mut self, h: [u8; 8]) -> io::Result<()> {
        // `h` holds the marker and the low half of the total length.
        let mut rest = [0u8; 8];
        self.read_exact_or_damaged(&mut rest)?;
        let t = [&h[..], &rest[..4]].concat();
        let crc = u32::from_le_bytes(rest[4..].try_into().expect("4 bytes"));
        if crc32fast::hash(&t) != crc {
            return Err(self.bad("a trailer whose checksum does not match"));
        }
        let total = u64::from_le_bytes(t[4..].try_into().expect("8 bytes"));
        if total != self.total {
            return Err(self.bad(format!(
                "{} bytes where the trailer says {total}",
                self.total
            )));
        }
        let got = finish(self.hash.take().expect("once"));
        if let Some(want) = self.expect.filter(|w| *w != got) {
            return Err(self.bad(format!("digest {got} where its meta says {want}")));
        }
        if self.inner.read(&mut [0u8; 1])? != 0 {
            return Err(self.bad("bytes after the trailer"));
        }
        self.done = true;
        Ok(())
    }
}

impl<R: Read> Read for BlockReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.block.len() && (self.done || !self.next_block()?) {
            return Ok(0);
        }
        let n = (&self.block[self.at..]).read(buf)?;
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(bytes: &[u8]) -> (Vec<u8>, Digest) {
        let mut w = BlockWriter::new(Vec::new()).unwrap();
        w.write_all(bytes).unwrap();
        w.finish().unwrap()
    }

    fn read_all(file: &[u8], expect: Option<Digest>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        BlockReader::new(file, "t".into(), expect)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_across_blocks_and_the_digest_is_of_the_bytes() {
        let bytes: Vec<u8> = (0..BLOCK * 2 + 17).map(|i| (i * 7) as u8).collect();
        let (file, d) = file_of(&bytes);
        assert_eq!(d, digest(&bytes));
        assert_eq!(read_all(&file, Some(d)).unwrap(), bytes);
        let (empty, d0) = file_of(&[]);
        assert_eq!(read_all(&empty, Some(d0)).unwrap(), b"");
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_an_error() {
        let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let (file, d) = file_of(&bytes);
        for bit in 0..file.len() * 8 {
            let mut f = file.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            assert!(read_all(&f, Some(d)).is_err(), "bit {bit}");
        }
        for cut in 0..file.len() {
            assert!(read_all(&file[..cut], Some(d)).is_err(), "cut at {cut}");
        }
        let other = digest(b"something else");
        let e = read_all(&file, Some(other)).unwrap_err();
        assert!(e.to_string().contains("digest"), "{e}");
    }
}
