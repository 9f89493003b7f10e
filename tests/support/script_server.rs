//! A scripted line-protocol server for `query_response` dialogues (SMTP, IMAP, IRC, POP3,
//! AMQP, PostgreSQL's SSLRequest, a unix-socket PING): each connection runs the same script of
//! sends, expected lines and STARTTLS, over TCP or a unix socket, with TLS from the first byte or
//! not at all. A step the client does not follow ends that connection, so a prober that sends
//! the wrong thing fails its own `expect` instead of the server pretending.

use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// One step of the server's side of a dialogue.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes.
    Send(&'static [u8]),
    /// Read one line (up to `\n`); it must contain this text.
    Expect(&'static str),
    /// Read exactly these bytes.
    ExpectBytes(&'static [u8]),
    /// Upgrade the connection to TLS with the server's acceptor.
    StartTls,
    /// Close the connection (after a TLS close_notify when on TLS), as a server that has said
    /// its last word does.
    Close,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct ScriptServer {
    /// `host:port` for TCP, the socket path for unix.
    pub target: String,
    task: JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptServer {
    /// Over TCP on 127.0.0.1; `implicit_tls` wraps every connection in TLS before the script,
    /// and `acceptor` also serves the script's `StartTls` steps.
    pub async fn tcp(
        script: Vec<Step>,
        acceptor: Option<TlsAcceptor>,
        implicit_tls: bool,
    ) -> ScriptServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap().to_string();
        let dialogue = Dialogue {
            script,
            acceptor,
            implicit_tls,
        };
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                dialogue.start(Box::new(s));
            }
        });
        ScriptServer {
            target,
            task,
            _dir: None,
        }
    }

    /// Over a unix socket in a fresh temporary directory.
    pub async fn unix(
        script: Vec<Step>,
        acceptor: Option<TlsAcceptor>,
        implicit_tls: bool,
    ) -> ScriptServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.sock");
        let mut server = Self::unix_at(&path, script, acceptor, implicit_tls);
        server._dir = Some(dir);
        server
    }

    /// Over a unix socket at `path`.
    pub fn unix_at(
        path: &Path,
        script: Vec<Step>,
        acceptor: Option<TlsAcceptor>,
        implicit_tls: bool,
    ) -> ScriptServer {
        let listener = UnixListener::bind(path).unwrap();
        let dialogue = Dialogue {
            script,
            acceptor,
            implicit_tls,
        };
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                dialogue.start(Box::new(s));
            }
        });
        ScriptServer {
            target: PathBuf::from(path).display().to_string(),
            task,
            _dir: None,
        }
    }
}

/// What every connection of one server runs.
struct Dialogue {
    script: Vec<Step>,
    acceptor: Option<TlsAcceptor>,
    implicit_tls: bool,
}

impl Dialogue {
    fn start(&self, stream: Box<dyn Stream>) {
        tokio::spawn(serve(
            stream,
            self.script.clone(),
            self.acceptor.clone(),
            self.implicit_tls,
        ));
    }
}

async fn serve(
    stream: Box<dyn Stream>,
    script: Vec<Step>,
    acceptor: Option<TlsAcceptor>,
    implicit_tls: bool,
) {
    let mut stream = stream;
    if implicit_tls {
        stream = match upgrade(stream, &acceptor).await {
            Some(s) => s,
            None => return,
        };
    }
    for step in script {
        let ok = match step {
            Step::Send(bytes) => stream.write_all(bytes).await.is_ok(),
            Step::Expect(text) => read_line(&mut stream)
                .await
                .is_some_and(|line| String::from_utf8_lossy(&line).contains(text)),
            Step::ExpectBytes(want) => {
                let mut got = vec![0u8; want.len()];
                stream.read_exact(&mut got).await.is_ok() && got == want
            }
            Step::Close => {
                let _ = stream.shutdown().await;
                return;
            }
            Step::StartTls => match upgrade(stream, &acceptor).await {
                Some(s) => {
                    stream = s;
                    true
                }
                None => return,
            },
        };
        if !ok {
            return;
        }
    }
    // Hold the connection until the client closes it, as a real server would.
    let mut sink = [0u8; 512];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}

async fn upgrade(
    stream: Box<dyn Stream>,
    acceptor: &Option<TlsAcceptor>,
) -> Option<Box<dyn Stream>> {
    let acceptor = acceptor.as_ref().expect("a TLS step needs an acceptor");
    acceptor
        .accept(stream)
        .await
        .ok()
        .map(|s| Box::new(s) as Box<dyn Stream>)
}

/// One line, byte by byte so nothing past it is consumed before a STARTTLS.
async fn read_line(stream: &mut Box<dyn Stream>) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.last() != Some(&b'\n') {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        line.push(byte[0]);
        if line.len() > 64 * 1024 {
            return None;
        }
    }
    Some(line)
}
