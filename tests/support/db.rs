//! The database and cache servers of this machine, driven through their command-line clients for
//! test setup: PostgreSQL 127.0.0.1:5432 (trust auth, user postgres, db test), MariaDB
//! 127.0.0.1:3306 (root, empty password, db test), Redis 127.0.0.1:6379. Users created here have
//! unique names and are removed when their guard drops, even when a test fails.

use std::process::Command;

pub const PG: &str = "127.0.0.1:5432";
pub const MYSQL: &str = "127.0.0.1:3306";
pub const REDIS: &str = "127.0.0.1:6379";

/// A suffix unique to this test run and call.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{:x}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("client command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn psql(sql: &str) -> String {
    run(Command::new("psql").args([
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        "test",
        "-Atc",
        sql,
    ]))
}

pub fn mysql(sql: &str) -> String {
    run(Command::new("mysql").args(["-h", "127.0.0.1", "-uroot", "-N", "-B", "-e", sql]))
}

pub fn redis_cli(args: &[&str]) -> String {
    run(Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379"])
        .args(args))
}

/// Which server a user lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Postgres,
    Mysql,
    Redis,
}

/// A login created for one test, dropped with the guard.
pub struct TempUser {
    pub server: Server,
    pub name: String,
    pub password: String,
}

impl TempUser {
    /// A user with a password (PostgreSQL trust auth ignores it, see the tests).
    pub fn create(server: Server) -> TempUser {
        let name = unique("siembox_t");
        let password = format!("pw-{}", unique("S3cret"));
        match server {
            Server::Postgres => {
                psql(&format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"));
            }
            Server::Mysql => {
                mysql(&format!(
                    "CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'; GRANT SELECT ON test.* TO '{name}'@'127.0.0.1'"
                ));
            }
            Server::Redis => {
                redis_cli(&[
                    "ACL",
                    "SETUSER",
                    &name,
                    "on",
                    &format!(">{password}"),
                    "+@all",
                    "~*",
                ]);
            }
        }
        TempUser {
            server,
            name,
            password,
        }
    }

    /// A PostgreSQL role whose password is checked over TCP (a member of
    /// `siembox_password_login`, which scripts/test-prerequisites puts before the trust rule).
    pub fn create_password_checked() -> TempUser {
        let user = TempUser::create(Server::Postgres);
        psql(&format!("GRANT siembox_password_login TO {}", user.name));
        user
    }

    /// Connections the server has open for this user right now.
    pub fn sessions(&self) -> usize {
        match self.server {
            Server::Postgres => psql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = '{}'",
                self.name
            ))
            .parse()
            .unwrap(),
            Server::Mysql => mysql(&format!(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE user = '{}'",
                self.name
            ))
            .parse()
            .unwrap(),
            Server::Redis => redis_cli(&["CLIENT", "LIST"])
                .lines()
                .filter(|l| l.contains(&format!(" user={} ", self.name)))
                .count(),
        }
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let name = &self.name;
        let result = match self.server {
            Server::Postgres => Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-Atc"])
                .arg(format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'; DROP ROLE IF EXISTS {name}"
                ))
                .output(),
            Server::Mysql => Command::new("mysql")
                .args(["-h", "127.0.0.1", "-uroot", "-e"])
                .arg(format!("DROP USER IF EXISTS '{name}'@'127.0.0.1'"))
                .output(),
            Server::Redis => Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "ACL", "DELUSER", name])
                .output(),
        };
        if let Err(e) = result {
            eprintln!("cleanup of test user {name} failed: {e}");
        }
    }
}
