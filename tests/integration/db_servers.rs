//! Real MariaDB and PostgreSQL servers for the database-source tests: one
//! of each per test binary, started on first use in a temporary directory
//! on a free port, and stopped when the test binary exits (a watchdog
//! shell kills the server once this process is gone). Each test creates
//! its own database. Without the server's packages a test prints a note
//! and passes, unless `CI` is set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Server {
    pub port: u16,
    dir: PathBuf,
    /// The client program that loads fixtures.
    client: PathBuf,
    postgres: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `None` (after a note) when the server is not installed and `CI` is not
/// set.
fn missing(what: &str) -> Option<&'static Server> {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is not installed; .ci/run installs it"
    );
    eprintln!("note: {what} is not installed; skipping this database test");
    None
}

/// Runs `server` in the background under a watchdog that kills it (and
/// removes `dir`) once this test process is gone.
// The watchdog outlives this process by design: nobody waits for it.
#[allow(clippy::zombie_processes)]
fn watch(dir: &Path, server: &str) {
    let script = format!(
        "{server} >{dir}/server.log 2>&1 & pid=$!; \
         while kill -0 {me} 2>/dev/null; do sleep 0.5; done; \
         kill $pid; wait $pid; rm -rf {dir}",
        dir = dir.display(),
        me = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
}

fn wait_for(port: u16, dir: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_mins(1),
            "the server did not start: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A directory the servers' own users can enter.
fn server_dir(name: &str) -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(name)
        .tempdir_in("/tmp")
        .unwrap()
        .keep();
    run(Command::new("chmod").args(["755"]).arg(&dir));
    dir
}

/// TLS too (plain connections stay allowed): a certificate for 127.0.0.1
/// from a private CA, whose file `ca_file` names, and its key, in `keys`
/// (`server.crt`, `server.key`) for the server's `user`.
fn write_tls_files(dir: &Path, keys: &Path, user: &str) {
    let pki = crate::smtp_tls::Pki::new();
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(keys.join("server.crt"), &pki.server_pem).unwrap();
    std::fs::write(keys.join("server.key"), pki.server_key.serialize_pem()).unwrap();
    run(Command::new("chown")
        .arg(format!("{user}:{user}"))
        .arg(keys.join("server.crt"))
        .arg(keys.join("server.key")));
    run(Command::new("chmod")
        .args(["600"])
        .arg(keys.join("server.key")));
}

/// The MariaDB server (`mariadbd`), root without a password.
pub fn mariadb() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let server = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
                .into_iter()
                .map(PathBuf::from)
                .find(|path| path.exists())?;
            Command::new("mariadb-install-db")
                .arg("--help")
                .output()
                .ok()?;
            let dir = server_dir("recart-mariadb");
            let data = dir.join("data");
            run(Command::new("chown").args(["mysql:mysql"]).arg(&dir));
            run(Command::new("mariadb-install-db")
                .args(["--user=mysql", "--auth-root-authentication-method=normal"])
                .arg(format!("--datadir={}", data.display())));
            write_tls_files(&dir, &dir, "mysql");
            let port = free_port();
            watch(
                &dir,
                &format!(
                    "{} --no-defaults --user=mysql --datadir={} --port={port} \
                     --bind-address=127.0.0.1 --socket={dir}/mysqld.sock --skip-grant-tables \
                     --innodb-flush-log-at-trx-commit=0 --ssl-cert={dir}/server.crt \
                     --ssl-key={dir}/server.key",
                    server.display(),
                    data.display(),
                    dir = dir.display()
                ),
            );
            wait_for(port, &dir);
            Some(Server {
                port,
                dir,
                client: PathBuf::from("mariadb"),
                postgres: false,
            })
        })
        .as_ref()
        .or_else(|| missing("mariadb-server"))
}

/// The PostgreSQL server, trust authentication, `fsync=off`.
pub fn postgres() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let bindir = Command::new("pg_config").arg("--bindir").output().ok()?;
            let bindir = PathBuf::from(String::from_utf8(bindir.stdout).ok()?.trim());
            if !bindir.join("initdb").exists() {
                return None;
            }
            let dir = server_dir("recart-postgres");
            run(Command::new("chown").args(["postgres:postgres"]).arg(&dir));
            let data = dir.join("data");
            run(Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bindir.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-D"])
                .arg(&data));
            write_tls_files(&dir, &data, "postgres");
            let port = free_port();
            watch(
                &dir,
                &format!(
                    "runuser -u postgres -- {} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 \
                     -c fsync=off -c ssl=on",
                    bindir.join("postgres").display(),
                    data.display(),
                    dir.display()
                ),
            );
            wait_for(port, &dir);
            Some(Server {
                port,
                dir,
                client: bindir.join("psql"),
                postgres: true,
            })
        })
        .as_ref()
        .or_else(|| missing("postgresql"))
}

impl Server {
    /// Creates database `name` and loads `sql` into it; returns its URL.
    pub fn database(&self, name: &str, sql: &str) -> String {
        if self.postgres {
            self.psql("postgres", &format!("CREATE DATABASE {name};"));
            self.psql(name, sql);
            format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
        } else {
            self.sql("", &format!("CREATE DATABASE {name};"));
            self.sql(name, sql);
            format!("mysql://root@127.0.0.1:{}/{name}", self.port)
        }
    }

    /// Runs `sql` in database `name` (the shop changing its tables).
    pub fn execute(&self, name: &str, sql: &str) {
        if self.postgres {
            self.psql(name, sql);
        } else {
            self.sql(name, sql);
        }
    }

    fn sql(&self, database: &str, sql: &str) {
        use std::io::Write as _;
        let mut child = Command::new(&self.client)
            .args(["-h", "127.0.0.1", "-u", "root", "-P"])
            .arg(self.port.to_string())
            .arg(database)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn psql(&self, database: &str, sql: &str) {
        run(Command::new(&self.client)
            .args([
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
            ])
            .arg(self.port.to_string())
            .args(["-d", database, "-c", sql]));
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA of the server's certificate (for 127.0.0.1).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}
