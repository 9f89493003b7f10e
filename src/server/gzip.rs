//! gzip of response bodies. Large ones (a `/metrics` of 10 000 scheduled targets is 18 MB) are
//! compressed in two halves on two threads, as pigz does: the first half as raw deflate ending in
//! a sync flush (byte-aligned, not final), the second as an independent final stream, and the
//! two CRC-32s combined. The result is one ordinary gzip member any client reads.

use flate2::write::{DeflateEncoder, GzEncoder};
use flate2::Compression;
use std::io::Write;

/// Bodies at least this large are compressed on two threads.
const PARALLEL_MIN_BYTES: usize = 4 << 20;

/// gzip header: magic, deflate, no flags, no mtime, no extra flags, OS unknown (RFC 1952).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

fn level() -> Compression {
    // Scrapes are frequent and the network is usually near: speed over size.
    Compression::fast()
}

pub fn compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    compress_split_from(data, PARALLEL_MIN_BYTES)
}

fn compress_split_from(data: &[u8], parallel_min_bytes: usize) -> std::io::Result<Vec<u8>> {
    if data.len() < parallel_min_bytes {
        let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4), level());
        enc.write_all(data)?;
        return enc.finish();
    }
    let (first, second) = data.split_at(data.len() / 2);
    let ((first_deflate, first_crc), second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| -> std::io::Result<_> {
            let mut enc = DeflateEncoder::new(Vec::with_capacity(second.len() / 4), level());
            enc.write_all(second)?;
            Ok((enc.finish()?, crc(second)))
        });
        let first = deflate_unfinished(first).map(|d| (d, crc(first)));
        let second = match second.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Ok::<_, std::io::Error>((first?, second?))
    })?;
    let (second_deflate, second_crc) = second;
    let mut crc = first_crc;
    crc.combine(&second_crc);
    let mut out = Vec::with_capacity(HEADER.len() + first_deflate.len() + second_deflate.len() + 8);
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&first_deflate);
    out.extend_from_slice(&second_deflate);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952).
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(out)
}

/// Raw deflate of `data` up to a sync flush, without the final block, so more may follow.
fn deflate_unfinished(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = DeflateEncoder::new(Vec::with_capacity(data.len() / 4), level());
    enc.write_all(data)?;
    enc.flush()?;
    // Taken before the encoder is dropped: dropping it writes the final block into what is
    // left, an empty buffer thrown away.
    Ok(std::mem::take(enc.get_mut()))
}

fn crc(data: &[u8]) -> crc32fast::Hasher {
    let mut h = crc32fast::Hasher::new();
    h.update(data);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::{GzDecoder, MultiGzDecoder};
    use std::io::Read;

    /// Text like a /metrics body, with enough variety that deflate has work to do.
    fn body(len: usize) -> Vec<u8> {
        let mut s = String::new();
        let mut i = 0u64;
        while s.len() < len {
            i += 1;
            s.push_str(&format!(
                "probe_http_duration_seconds{{target=\"https://h{}.example\",phase=\"connect\"}} {}\n",
                i % 977,
                i.wrapping_mul(2_654_435_761) % 100_000
            ));
        }
        s.truncate(len);
        s.into_bytes()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        // GzDecoder checks the CRC-32 and length in the trailer and reads one member only.
        let mut out = Vec::new();
        GzDecoder::new(gz).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn two_halves_make_one_valid_member() {
        for len in [0, 1, 2, 3, 100_001, 300_000] {
            let data = body(len);
            let gz = compress_split_from(&data, 0).unwrap();
            assert_eq!(gunzip(&gz), data, "length {len}");
            let mut all = Vec::new();
            MultiGzDecoder::new(&gz[..]).read_to_end(&mut all).unwrap();
            assert_eq!(all, data, "one member only, length {len}");
        }
    }

    #[test]
    fn small_bodies_use_one_ordinary_member() {
        let data = body(10_000);
        let gz = compress(&data).unwrap();
        assert_eq!(gunzip(&gz), data);
        assert!(gz.len() < data.len() / 3, "{} of {}", gz.len(), data.len());
    }

    #[test]
    fn the_trailer_covers_both_halves() {
        let data = body(300_000);
        let gz = compress_split_from(&data, 0).unwrap();
        let trailer = &gz[gz.len() - 8..];
        let crc = u32::from_le_bytes(trailer[..4].try_into().unwrap());
        let isize = u32::from_le_bytes(trailer[4..].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(&data));
        assert_eq!(isize as usize, data.len());
    }
}
