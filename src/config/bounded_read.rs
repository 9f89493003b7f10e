//! Reading a file the config names (the config itself, file_sd, secrets, keys) with its size
//! measured while reading, not taken from the file's reported size: `/dev/zero` reports 0 and
//! never ends, a pipe has no size, a file may grow between a stat and the read. A FIFO is read
//! without blocking forever: opening does not wait for a writer, and reading gives up after
//! `wait` without data.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a read waits for a FIFO's writer to send more.
pub const FIFO_WAIT: Duration = Duration::from_secs(2);

/// The file's bytes, at most `cap` of them: more is an error, as is a FIFO that sends nothing
/// within `wait` (or has no writer) and a directory.
pub fn read_bounded(path: &Path, cap: u64, wait: Duration) -> io::Result<Vec<u8>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_dir() {
        return Err(io::Error::other("is a directory"));
    }
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if out.len() as u64 + n as u64 > cap {
                    return Err(io::Error::other(format!(
                        "more than {cap} bytes (the limit), stopped reading there"
                    )));
                }
                out.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no data within {wait:?} (a pipe whose writer is silent?)"),
                    ));
                }
                wait_readable(&file, left);
            }
            Err(e) => return Err(e),
        }
    }
    if out.is_empty() && !kind.is_file() {
        // A FIFO opened without a writer reads as empty; an empty config from it would load.
        return Err(io::Error::other(
            "nothing to read: not a regular file (a pipe with no writer?)",
        ));
    }
    Ok(out)
}

/// As [`read_bounded`], as UTF-8 text.
pub fn read_bounded_text(path: &Path, cap: u64, wait: Duration) -> io::Result<String> {
    String::from_utf8(read_bounded(path, cap, wait)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not valid UTF-8 text"))
}

/// Sleeps until `file` has data or `left` has passed (poll(2) on one descriptor).
fn wait_readable(file: &std::fs::File, left: Duration) {
    let mut fd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for a descriptor `file` keeps open during the call.
    unsafe {
        libc::poll(&mut fd, 1, ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_read_whole_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abcdef").unwrap();
        assert_eq!(read_bounded(&p, 6, FIFO_WAIT).unwrap(), b"abcdef");
        let e = read_bounded(&p, 5, FIFO_WAIT).unwrap_err().to_string();
        assert!(e.contains("more than 5 bytes"), "{e}");
        std::fs::write(&p, b"").unwrap();
        assert!(read_bounded(&p, 5, FIFO_WAIT).unwrap().is_empty());
    }

    #[test]
    fn dev_zero_stops_at_the_cap() {
        let e = read_bounded(Path::new("/dev/zero"), 1 << 20, FIFO_WAIT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 1048576 bytes"), "{e}");
    }

    #[test]
    fn a_fifo_without_writer_or_with_a_silent_one_does_not_hang() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path in our own temporary directory.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_bounded(&p, 1 << 20, FIFO_WAIT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no writer"), "{e}");
        // A writer that holds the pipe open and sends nothing.
        // (Read-write: on Linux that opens a FIFO at once, reader or not.)
        let _writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let started = Instant::now();
        let e = read_bounded(&p, 1 << 20, Duration::from_millis(200))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no data within"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
