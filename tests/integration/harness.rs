//! A small builder around the `recart` binary, in the style of casey/just's
//! integration tests: every `Test` owns a temporary directory that lives as
//! long as the `Test`, so several commands can run against the same files and
//! the same store.

use std::{
    ffi::OsStr,
    fmt::Write as _,
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use rusqlite::{Connection, OpenFlags, types::ValueRef};
use serde_json::Value;
use tempfile::TempDir;

pub const RECART: &str = env!("CARGO_BIN_EXE_recart");

/// How long one invocation of the binary may take before the test fails.
/// Generous: debug builds on a loaded two-core CI machine are slow.
const TIMEOUT: Duration = Duration::from_mins(2);

pub struct Test {
    tempdir: TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    current_dir: PathBuf,
    umask: Option<u32>,
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    pub fn new() -> Self {
        let tempdir = tempfile::Builder::new()
            .prefix("recart-test-")
            .tempdir()
            .expect("failed to create tempdir");
        Self {
            tempdir,
            args: Vec::new(),
            env: Vec::new(),
            current_dir: PathBuf::new(),
            umask: None,
        }
    }

    /// Write `contents` to `path` (relative to the tempdir), creating parent
    /// directories.
    pub fn file(self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Self {
        self.write(path, contents);
        self
    }

    /// Like `file`, but usable after the test has been built, e.g. to change
    /// the config between two runs.
    pub fn write(&self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        let path = self.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Run commands from `dir`, relative to the tempdir (default: the tempdir).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.current_dir = dir.as_ref().to_path_buf();
        self
    }

    /// Run the binary under this umask (set by `sh`), whatever the test
    /// runner's own.
    pub fn umask(mut self, umask: u32) -> Self {
        self.umask = Some(umask);
        self
    }

    pub fn path(&self) -> &Path {
        self.tempdir.path()
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.tempdir.path().join(rel)
    }

    pub fn exists(&self, rel: impl AsRef<Path>) -> bool {
        self.join(rel).exists()
    }

    pub fn read(&self, rel: impl AsRef<Path>) -> String {
        let path = self.join(rel);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Files directly in `dir` whose name ends with `suffix`, sorted; empty if
    /// `dir` does not exist.
    pub fn files_in(&self, dir: impl AsRef<Path>, suffix: &str) -> Vec<PathBuf> {
        let dir = self.join(dir);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.expect("read_dir entry").path())
            .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
            .collect();
        files.sort();
        files
    }

    /// Recursively copy `src` (an absolute path) to `dst` (relative).
    pub fn copy_dir(&self, src: impl AsRef<Path>, dst: impl AsRef<Path>) {
        copy_dir(src.as_ref(), &self.join(dst));
    }

    /// Run the binary with the builder's arguments.
    pub fn run(&self) -> Output {
        self.recart(&self.args)
    }

    /// The binary with `args`, in the tempdir and the test's environment,
    /// no input.
    fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut command = match self.umask {
            None => Command::new(RECART),
            Some(umask) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("umask {umask:03o} && exec \"$0\" \"$@\""))
                    .arg(RECART);
                shell
            }
        };
        command
            .args(args)
            .current_dir(self.join(&self.current_dir))
            .stdin(Stdio::null());
        // Hermetic: nothing from the developer's environment leaks in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RECART_") {
                command.env_remove(key);
            }
        }
        command.env("NO_COLOR", "1");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Starts the binary with `args`, its output discarded: for tests that
    /// kill it part-way.
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> std::process::Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {RECART}: {e}"))
    }

    /// Starts the binary with `args`, stdout and stderr piped: for tests
    /// that read what it says while it runs.
    pub fn spawn_piped<S: AsRef<OsStr>>(&self, args: &[S]) -> std::process::Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {RECART}: {e}"))
    }

    /// Run the binary with `args` (the builder's arguments are ignored), in
    /// the same tempdir and environment.
    pub fn recart<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let cwd = self.join(&self.current_dir);
        let mut command = self.command(args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());

        let rendered = format!(
            "recart {} (in {})",
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            cwd.display()
        );

        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {RECART}: {e}"));
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out_reader = thread::spawn(move || {
            let mut buf = Vec::new();
            stdout.read_to_end(&mut buf).ok();
            buf
        });
        let err_reader = thread::spawn(move || {
            let mut buf = Vec::new();
            stderr.read_to_end(&mut buf).ok();
            buf
        });

        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for recart") {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                let stdout = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
                let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
                panic!(
                    "{rendered} did not finish within {TIMEOUT:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
                );
            }
            thread::sleep(Duration::from_millis(10));
        };

        Output {
            command: rendered,
            status: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
        }
    }

    /// The store at `recart.db` in the tempdir.
    pub fn store(&self) -> Store {
        self.store_at("recart.db")
    }

    #[track_caller]
    pub fn store_at(&self, rel: impl AsRef<Path>) -> Store {
        let path = self.join(rel);
        assert!(path.exists(), "store {} does not exist", path.display());
        Store::open(&path)
    }

    /// The sends ledger, or nothing if the store or its `sends` table does
    /// not exist (e.g. after a dry-run).
    pub fn sends_if_any(&self) -> Vec<Send> {
        match self.store_if_exists() {
            Some(store) if store.has_table("sends") => store.sends(),
            _ => Vec::new(),
        }
    }

    /// The stored cart ids, or nothing if there is no store or carts table.
    pub fn cart_ids_if_any(&self) -> Vec<String> {
        match self.store_if_exists() {
            Some(store) if store.has_table("carts") => store.cart_ids(),
            _ => Vec::new(),
        }
    }

    /// The store, if the binary created it.
    pub fn store_if_exists(&self) -> Option<Store> {
        let path = self.join("recart.db");
        path.exists().then(|| Store::open(&path))
    }
}

/// `dir/<stem>.<extension>`, where recart writes the files of one (cart,
/// step) (README, "File names"), computed here on its own as the README
/// says: `<cart>.<step>.<hash>`.
/// Sends SIGTERM to `child` (a spawned `recart`) and waits for its end.
pub fn sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    child.wait().unwrap()
}

pub fn mail_file(dir: &str, cart_id: &str, step: &str, extension: &str) -> String {
    use sha2::{Digest, Sha256};
    let readable = |text: &str, chars: usize| -> String {
        let prefix: String = text
            .chars()
            .take(chars)
            .map(|c| match c {
                'A'..='Z' => c.to_ascii_lowercase(),
                'a'..='z' | '0'..='9' | '-' | '_' => c,
                _ => '_',
            })
            .collect();
        if prefix.is_empty() {
            "_".into()
        } else {
            prefix
        }
    };
    let hashed = [
        format!("{}:", cart_id.len()).as_bytes(),
        cart_id.as_bytes(),
        step.as_bytes(),
    ]
    .concat();
    let hash = hex::encode(Sha256::digest(hashed));
    format!(
        "{dir}/{}.{}.{}.{extension}",
        readable(cart_id, 40),
        readable(step, 20),
        &hash[..12]
    )
}

fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap_or_else(|e| panic!("mkdir {}: {e}", dst.display()));
    for entry in fs::read_dir(src).unwrap_or_else(|e| panic!("read_dir {}: {e}", src.display())) {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

#[derive(Debug)]
pub struct Output {
    pub command: String,
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn expect_status(&self, status: i32) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected exit status (wanted {status})\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn expect_success(&self) -> &Self {
        self.expect_status(0)
    }

    #[track_caller]
    pub fn expect_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout does not contain {needle:?}\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn expect_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr does not contain {needle:?}\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn expect_stdout_line(&self, line: &str) -> &Self {
        assert!(
            self.stdout.lines().any(|l| l.trim_end() == line),
            "stdout has no line {line:?}\n{}",
            self.describe()
        );
        self
    }

    /// Every stdout line parsed as JSON (JSON Lines); panics on a line that
    /// is not a JSON object.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let value: Value = serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("stdout line is not JSON ({e}): {l:?}\n{}", self.describe())
                });
                assert!(value.is_object(), "JSON line is not an object: {l}");
                value
            })
            .collect()
    }

    /// The `run --json` decisions, checked against the contract's shape.
    #[track_caller]
    pub fn decisions(&self) -> Vec<Decision> {
        self.json_lines()
            .iter()
            .map(|v| Decision::from_json(v).unwrap_or_else(|e| panic!("{e}\n{}", self.describe())))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub cart_id: String,
    pub email: String,
    pub step: Option<String>,
    /// The JSON's `decision`: send, sent, retry, failed, unknown or skip.
    pub outcome: String,
    pub reason: Option<String>,
}

impl Decision {
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let string = |key: &str| -> Result<String, String> {
            match v.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                other => Err(format!(
                    "decision {v}: {key:?} should be a string, is {other:?}"
                )),
            }
        };
        let nullable = |key: &str| -> Result<Option<String>, String> {
            match v.get(key) {
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Null) => Ok(None),
                other => Err(format!(
                    "decision {v}: {key:?} should be a string or null, is {other:?}"
                )),
            }
        };
        let decision = Self {
            cart_id: string("cart_id")?,
            email: string("email")?,
            step: nullable("step")?,
            outcome: string("decision")?,
            reason: nullable("reason")?,
        };
        if !["send", "sent", "retry", "failed", "unknown", "skip"]
            .contains(&decision.outcome.as_str())
        {
            return Err(format!(
                "decision {v}: unknown decision {:?}",
                decision.outcome
            ));
        }
        Ok(decision)
    }
}

/// Decisions for one cart.
pub fn for_cart<'a>(decisions: &'a [Decision], cart_id: &str) -> Vec<&'a Decision> {
    decisions.iter().filter(|d| d.cart_id == cart_id).collect()
}

/// Sorted cart ids of the decisions with `decision` (e.g. "sent").
pub fn carts_with(decisions: &[Decision], decision: &str) -> Vec<String> {
    let mut ids: Vec<String> = decisions
        .iter()
        .filter(|d| d.outcome == decision)
        .map(|d| d.cart_id.clone())
        .collect();
    ids.sort();
    ids
}

/// Read-only-by-convention access to the `SQLite` store for assertions.
pub struct Store {
    conn: Connection,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Send {
    pub cart_id: String,
    pub step: String,
    pub state: String,
}

impl Store {
    fn open(path: &Path) -> Self {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap_or_else(|e| panic!("open store {}: {e}", path.display()));
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        Self { conn }
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    #[track_caller]
    pub fn count(&self, sql: &str) -> i64 {
        self.conn
            .query_row(sql, [], |row| row.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.count(&format!(
            "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = '{table}'"
        )) > 0
    }

    pub fn columns(&self, table: &str) -> Vec<String> {
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap();
        stmt.query_map([], |row| row.get::<_, String>(1))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// All rows of the `sends` ledger, sorted.
    pub fn sends(&self) -> Vec<Send> {
        let mut stmt = self
            .conn
            .prepare("SELECT cart_id, step, state FROM sends")
            .expect("sends table with columns cart_id, step, state");
        let mut sends: Vec<Send> = stmt
            .query_map([], |row| {
                Ok(Send {
                    cart_id: text(row.get_ref(0)?),
                    step: text(row.get_ref(1)?),
                    state: text(row.get_ref(2)?),
                })
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        sends.sort();
        sends
    }

    /// `(cart_id, step)` of the sends in `state`, sorted.
    pub fn sends_in(&self, state: &str) -> Vec<(String, String)> {
        self.sends()
            .into_iter()
            .filter(|s| s.state == state)
            .map(|s| (s.cart_id, s.step))
            .collect()
    }

    /// How many line items are stored (table `items` or `cart_items`).
    pub fn item_count(&self) -> i64 {
        let table = ["items", "cart_items", "line_items"]
            .into_iter()
            .find(|t| self.has_table(t))
            .expect("a table of line items");
        self.count(&format!("SELECT count(*) FROM {table}"))
    }

    /// The name of the carts table's id column (`cart_id` or `id`).
    fn cart_id_column(&self) -> &'static str {
        let columns = self.columns("carts");
        if columns.iter().any(|c| c == "cart_id") {
            "cart_id"
        } else if columns.iter().any(|c| c == "id") {
            "id"
        } else {
            panic!("carts table has neither cart_id nor id column: {columns:?}")
        }
    }

    /// Sorted ids of the stored carts.
    pub fn cart_ids(&self) -> Vec<String> {
        let column = self.cart_id_column();
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {column} FROM carts ORDER BY 1"))
            .unwrap();
        stmt.query_map([], |row| Ok(text(row.get_ref(0)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    pub fn cart_status(&self, cart_id: &str) -> Option<String> {
        let column = self.cart_id_column();
        self.conn
            .query_row(
                &format!("SELECT status FROM carts WHERE {column} = ?1"),
                [cart_id],
                |row| Ok(text(row.get_ref(0)?)),
            )
            .ok()
    }

    /// Every row of `table`, rendered as text and sorted: for before/after
    /// comparisons.
    pub fn dump(&self, table: &str) -> Vec<String> {
        if !self.has_table(table) {
            return Vec::new();
        }
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT * FROM {table}"))
            .unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |row| {
                let mut line = String::new();
                for i in 0..n {
                    write!(line, "{}|", text(row.get_ref(i)?)).unwrap();
                }
                Ok(line)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        rows
    }
}

fn text(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!("blob:{}", b.len()),
    }
}
