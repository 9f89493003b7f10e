//! Reading the response body: streamed through the `compression` decoder and counted, never
//! held except the part the body checks need, and stopped at the body size limit (after
//! decompression, as blackbox applies `body_size_limit`). A gzip bomb or an endless body costs
//! the probe at most the limit of kept bytes, and nothing when no check needs them.

use super::connection::ResponseBody;
use super::request::Compression;
use http_body_util::BodyExt;
use std::io::Write;

/// A redirect body is read at most this far before the hop is abandoned for the next one.
const REDIRECT_DRAIN_LIMIT: usize = 64 * 1024;

/// Decoders hand their output to the collector in pieces of at most this size.
const DECODE_CHUNK: usize = 32 * 1024;

/// How far a body is read, and where that bound comes from (named in the failure).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimit {
    /// Decoded bytes; 0 means none.
    pub bytes: u64,
    /// The setting the bound comes from: `body_size_limit` or `limits.body_size_limit`.
    pub setting: &'static str,
}

pub(crate) struct Body {
    /// The decoded body (at most the limit), kept only when the caller asked for it.
    pub bytes: Option<Vec<u8>>,
    /// Bytes after decompression (the limit when it was exceeded, as blackbox counts).
    pub uncompressed_len: u64,
}

#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge(BodyLimit),
    Read(String),
    Decode(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(l) => write!(
                f,
                "response body is larger than {} ({} bytes); the rest was not read",
                l.setting, l.bytes
            ),
            BodyError::Read(e) => write!(f, "failed to read HTTP response body: {e}"),
            BodyError::Decode(e) => write!(f, "failed to decompress HTTP response body: {e}"),
        }
    }
}

/// Reads the body as far as `limit`, decoding it on the way; keeps the decoded bytes when
/// `keep` (body regexps, JSON checks). Returns what was read even on error, so the
/// uncompressed length can still be reported. The one body reader of the http prober.
pub(super) async fn read(
    mut body: ResponseBody,
    keep: bool,
    compression: Compression,
    limit: BodyLimit,
) -> (Body, Option<BodyError>) {
    let mut sink = Collector {
        kept: Vec::new(),
        keep,
        len: 0,
        limit: limit.bytes,
        over: false,
    };
    let mut failure = None;
    {
        let mut decoder = Decoder::new(compression, &mut sink);
        let mut ended = false;
        while let Some(frame) = body.frame().await {
            let data = match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue, // trailers
                },
                Err(e) => {
                    failure = Some(BodyError::Read(e));
                    break;
                }
            };
            match decoder.feed(&data) {
                Ok(true) => {
                    // The compressed stream ended; what follows it is not read (as Go's
                    // decoders stop at the end of their stream).
                    ended = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    failure = Some(BodyError::Decode(e.to_string()));
                    break;
                }
            }
        }
        if failure.is_none() || ended {
            if let Err(e) = decoder.finish() {
                failure = Some(BodyError::Decode(e.to_string()));
            }
        }
    }
    if sink.over {
        // The collector refused more: whatever error the decoder made of that is the limit.
        failure = Some(BodyError::TooLarge(limit));
    }
    (
        Body {
            uncompressed_len: sink.len,
            bytes: keep.then_some(sink.kept),
        },
        failure,
    )
}

/// Counts decoded bytes, keeps them up to the limit when asked, and refuses more (an error the
/// decoders pass up, which stops them mid-stream).
struct Collector {
    kept: Vec<u8>,
    keep: bool,
    len: u64,
    limit: u64,
    over: bool,
}

impl Write for Collector {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = if self.limit == 0 {
            buf.len()
        } else {
            usize::try_from(self.limit - self.len)
                .unwrap_or(usize::MAX)
                .min(buf.len())
        };
        if self.keep {
            self.kept.extend_from_slice(&buf[..room]);
        }
        self.len += room as u64;
        if room < buf.len() {
            self.over = true;
            return Err(std::io::Error::other("body size limit reached"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The configured decoder, writing into the collector. `deflate` is chosen on the first two
/// bytes: raw DEFLATE, as blackbox reads it, or zlib-wrapped data (what RFC 9110 names
/// "deflate"), recognised by its header.
enum Decoder<'a> {
    Identity(&'a mut Collector),
    Gzip(flate2::write::MultiGzDecoder<&'a mut Collector>),
    DeflateUndecided(Option<&'a mut Collector>, Vec<u8>),
    Deflate(flate2::write::DeflateDecoder<&'a mut Collector>),
    Zlib(flate2::write::ZlibDecoder<&'a mut Collector>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<&'a mut Collector>>),
}

impl<'a> Decoder<'a> {
    fn new(compression: Compression, sink: &'a mut Collector) -> Decoder<'a> {
        match compression {
            Compression::Identity => Decoder::Identity(sink),
            Compression::Gzip => Decoder::Gzip(flate2::write::MultiGzDecoder::new(sink)),
            Compression::Deflate => Decoder::DeflateUndecided(Some(sink), Vec::new()),
            Compression::Brotli => Decoder::Brotli(Box::new(
                brotli_decompressor::DecompressorWriter::new(sink, DECODE_CHUNK),
            )),
        }
    }

    /// Decodes `data`; `Ok(true)` when the compressed stream has ended.
    fn feed(&mut self, data: &[u8]) -> std::io::Result<bool> {
        if let Decoder::DeflateUndecided(sink, head) = self {
            head.extend_from_slice(data);
            if head.len() < 2 {
                return Ok(false);
            }
            let head = std::mem::take(head);
            let sink = sink
                .take()
                .expect("an undecided decoder holds the collector");
            *self = Self::deflate_for(&head, sink);
            return self.feed(&head);
        }
        let writer: &mut dyn Write = match self {
            Decoder::Identity(s) => *s,
            Decoder::Gzip(d) => d,
            Decoder::Deflate(d) => d,
            Decoder::Zlib(d) => d,
            Decoder::Brotli(d) => d.as_mut(),
            Decoder::DeflateUndecided(..) => unreachable!("decided above"),
        };
        write_all(writer, data)
    }

    /// Flushes what the decoder still holds; an error for a stream that is cut short.
    fn finish(mut self) -> std::io::Result<()> {
        if let Decoder::DeflateUndecided(sink, head) = &mut self {
            if head.is_empty() {
                return Ok(());
            }
            // One byte in all: not enough to tell, and no valid stream either way.
            let head = std::mem::take(head);
            let sink = sink
                .take()
                .expect("an undecided decoder holds the collector");
            self = Self::deflate_for(&head, sink);
            self.feed(&head)?;
        }
        match self {
            Decoder::Identity(_) | Decoder::DeflateUndecided(..) => Ok(()),
            Decoder::Gzip(mut d) => d.try_finish(),
            Decoder::Deflate(mut d) => d.try_finish(),
            Decoder::Zlib(mut d) => d.try_finish(),
            Decoder::Brotli(d) => d
                .into_inner()
                .map(|_| ())
                .map_err(|_| std::io::Error::other("invalid or truncated brotli stream")),
        }
    }

    fn deflate_for(head: &[u8], sink: &'a mut Collector) -> Decoder<'a> {
        if is_zlib(head) {
            Decoder::Zlib(flate2::write::ZlibDecoder::new(sink))
        } else {
            Decoder::Deflate(flate2::write::DeflateDecoder::new(sink))
        }
    }
}

/// Writes `data` through a decoder; `Ok(true)` when it accepts no more (its stream ended).
fn write_all(w: &mut dyn Write, mut data: &[u8]) -> std::io::Result<bool> {
    while !data.is_empty() {
        match w.write(data) {
            Ok(0) => return Ok(true),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
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

    /// Runs `raw` through the decoder in pieces of `piece` bytes, as frames would arrive.
    fn decode(
        raw: &[u8],
        compression: Compression,
        limit: u64,
        piece: usize,
    ) -> (Vec<u8>, u64, Option<String>) {
        let mut sink = Collector {
            kept: Vec::new(),
            keep: true,
            len: 0,
            limit,
            over: false,
        };
        let mut error = None;
        {
            let mut d = Decoder::new(compression, &mut sink);
            let mut ended = false;
            for chunk in raw.chunks(piece) {
                match d.feed(chunk) {
                    Ok(true) => {
                        ended = true;
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            if error.is_none() || ended {
                if let Err(e) = d.finish() {
                    error = Some(e.to_string());
                }
            }
        }
        if sink.over {
            error = Some("over".into());
        }
        (sink.kept, sink.len, error)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_gzip_and_both_deflates_in_any_pieces() {
        let text = b"hello hello hello hello";
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(text).unwrap();
        let raw = raw.finish().unwrap();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text).unwrap();
        let z = z.finish().unwrap();
        for piece in [1, 2, 3, 1000] {
            for (data, c) in [
                (gzip(text), Compression::Gzip),
                (raw.clone(), Compression::Deflate),
                (z.clone(), Compression::Deflate),
                (text.to_vec(), Compression::Identity),
            ] {
                let (out, len, err) = decode(&data, c, 0, piece);
                assert_eq!(err, None, "{c:?} in pieces of {piece}");
                assert_eq!(out, text, "{c:?} in pieces of {piece}");
                assert_eq!(len, text.len() as u64);
            }
        }
    }

    #[test]
    fn limit_applies_after_decompression_and_garbage_fails() {
        let (out, len, err) = decode(&gzip(&[b'a'; 1000]), Compression::Gzip, 100, 4096);
        assert_eq!((out.len(), len), (100, 100));
        assert_eq!(err.as_deref(), Some("over"));
        // Exactly at the limit is no error (http.MaxBytesReader's rule).
        let (_, len, err) = decode(&gzip(&[b'a'; 100]), Compression::Gzip, 100, 4096);
        assert_eq!((len, err), (100, None));
        let (_, _, err) = decode(b"not gzip at all", Compression::Gzip, 0, 4096);
        assert!(err.is_some_and(|e| e != "over"));
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit_without_decoding_the_rest() {
        // 64 MiB of zeros in about 64 KiB; only the first MiB may be decoded.
        let bomb = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..64 {
                e.write_all(&zeros).unwrap();
            }
            e.finish().unwrap()
        };
        let (out, len, err) = decode(&bomb, Compression::Gzip, 1 << 20, 16 * 1024);
        assert_eq!(len, 1 << 20);
        assert_eq!(out.len(), 1 << 20);
        assert_eq!(err.as_deref(), Some("over"));
    }
}
