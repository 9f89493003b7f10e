//! A server a test runs as a child process on a free loopback port, which the test may kill
//! (as a crash would) and start again on the same port; killed when dropped. The servers that
//! need this (redis-server, FerretDB) wrap it with their own command line.

use std::process::{Child, Command, Stdio};

pub struct ChildServer {
    pub port: u16,
    what: &'static str,
    command: Box<dyn Fn() -> Command + Send + Sync>,
    child: Option<Child>,
}

impl ChildServer {
    /// Starts `command()` (which must listen on 127.0.0.1:`port`) and waits until it accepts.
    pub fn start(
        port: u16,
        what: &'static str,
        command: impl Fn() -> Command + Send + Sync + 'static,
    ) -> ChildServer {
        let mut s = ChildServer {
            port,
            what,
            command: Box::new(command),
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = (self.command)()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", self.what));
        self.child = Some(child);
        super::wait_for_listener(self.port, self.what);
        // A listener that is not ours (the port taken meanwhile) would let the test talk to
        // another server: ours must still be running.
        let exited = self.child.as_mut().map(|c| c.try_wait());
        assert!(
            matches!(exited, Some(Ok(None))),
            "{} exited at start ({exited:?}): port {} is held by another process",
            self.what,
            self.port
        );
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.what))
            .id()
    }

    /// SIGKILL: the server dies with its connections, as a crashed or OOM-killed one would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}
