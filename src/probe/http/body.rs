//! Reading the response body: `body_size_limit` (after decompression, as blackbox), the
//! `compression` decoders, and draining a redirect's body before following it.

use super::connection::ResponseBody;
use super::request::Compression;
use http_body_util::BodyExt;
use std::io::Read;

/// A redirect body is read at most this far before the hop is abandoned for the next one.
const REDIRECT_DRAIN_LIMIT: usize = 64 * 1024;

pub(super) struct Body {
    /// The decoded body, kept only when the caller asked for it (regexps need it).
    pub bytes: Option<Vec<u8>>,
    /// Bytes after decompression (at most the limit when it was exceeded).
    pub uncompressed_len: u64,
}

#[derive(Debug)]
pub(super) enum BodyError {
    TooLarge(u64),
    Read(String),
    Decode(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(n) => write!(
                f,
                "response body is larger than body_size_limit ({n} bytes)"
            ),
            BodyError::Read(e) => write!(f, "failed to read HTTP response body: {e}"),
            BodyError::Decode(e) => write!(f, "failed to decompress HTTP response body: {e}"),
        }
    }
}

/// Reads the whole body. `limit` 0 means none. Returns what was read even on error, so the
/// uncompressed length can still be reported.
pub(super) async fn read(
    mut body: ResponseBody,
    keep: bool,
    compression: Compression,
    limit: u64,
) -> (Body, Option<BodyError>) {
    let decode = compression != Compression::Identity;
    let mut raw: Vec<u8> = Vec::new();
    let mut raw_len: u64 = 0;
    let mut error = None;
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(f) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue, // trailers
            },
            Err(e) => {
                error = Some(BodyError::Read(e));
                break;
            }
        };
        raw_len += data.len() as u64;
        if keep || decode {
            raw.extend_from_slice(&data);
        }
        // Compressed data is smaller than what it decodes to, so the limit bounds it too.
        if limit > 0 && raw_len > limit {
            error = Some(BodyError::TooLarge(limit));
            raw.truncate(limit as usize);
            raw_len = limit;
            break;
        }
    }
    if !decode {
        return (
            Body {
                bytes: keep.then_some(raw),
                uncompressed_len: raw_len,
            },
            error,
        );
    }
    let (decoded, decode_error) = decompress(&raw, compression, limit);
    let uncompressed_len = decoded.len() as u64;
    (
        Body {
            bytes: keep.then_some(decoded),
            uncompressed_len,
        },
        error.or(decode_error),
    )
}

/// Decodes `raw`, stopping past `limit` (0: none).
fn decompress(raw: &[u8], compression: Compression, limit: u64) -> (Vec<u8>, Option<BodyError>) {
    let reader: Box<dyn Read + '_> = match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        // Raw DEFLATE, as blackbox reads it; zlib-wrapped data (what RFC 9110 names "deflate")
        // is recognised by its header and accepted too.
        Compression::Deflate if is_zlib(raw) => Box::new(flate2::read::ZlibDecoder::new(raw)),
        Compression::Deflate => Box::new(flate2::read::DeflateDecoder::new(raw)),
        Compression::Brotli => Box::new(brotli_decompressor::Decompressor::new(raw, 4096)),
        Compression::Identity => Box::new(raw),
    };
    let mut out = Vec::with_capacity(raw.len().saturating_mul(3));
    let cap = if limit > 0 { limit + 1 } else { u64::MAX };
    match reader.take(cap).read_to_end(&mut out) {
        Ok(_) if limit > 0 && out.len() as u64 > limit => {
            out.truncate(limit as usize);
            (out, Some(BodyError::TooLarge(limit)))
        }
        Ok(_) => (out, None),
        Err(e) => (out, Some(BodyError::Decode(e.to_string()))),
    }
}

fn is_zlib(raw: &[u8]) -> bool {
    raw.len() >= 2 && raw[0] & 0x0f == 8 && (u16::from(raw[0]) << 8 | u16::from(raw[1])) % 31 == 0
}

/// Reads and drops up to 64 KiB of a redirect's body; the connection is closed after it anyway.
pub(super) async fn drain(mut body: ResponseBody) {
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(d) = frame.into_data() {
            seen += d.len();
            if seen >= REDIRECT_DRAIN_LIMIT {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_gzip_and_both_deflates() {
        let text = b"hello hello hello hello";
        let (out, err) = decompress(&gzip(text), Compression::Gzip, 0);
        assert!(err.is_none());
        assert_eq!(out, text);
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(text).unwrap();
        assert_eq!(
            decompress(&raw.finish().unwrap(), Compression::Deflate, 0).0,
            text
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text).unwrap();
        assert_eq!(
            decompress(&z.finish().unwrap(), Compression::Deflate, 0).0,
            text
        );
    }

    #[test]
    fn limit_applies_after_decompression_and_garbage_fails() {
        let (out, err) = decompress(&gzip(&[b'a'; 1000]), Compression::Gzip, 100);
        assert_eq!(out.len(), 100);
        assert!(matches!(err, Some(BodyError::TooLarge(100))));
        let (_, err) = decompress(b"not gzip at all", Compression::Gzip, 0);
        assert!(matches!(err, Some(BodyError::Decode(_))));
    }
}
