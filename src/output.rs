//! The one place that writes to the terminal: data to stdout, logs and
//! summaries to stderr. Library code reports through [`Output`].

use std::io::Write;

use serde::Serialize;

pub struct Output {
    out: Box<dyn Write>,
    err: Box<dyn Write>,
    /// stderr is a terminal: progress bars are shown.
    interactive: bool,
    /// stderr is systemd's journal (`JOURNAL_STREAM`).
    journal: bool,
    /// -1 quiet (warnings and errors only), 0 normal, 1 verbose.
    verbosity: i8,
    /// Logs as JSON lines instead of text.
    json_logs: bool,
}

/// How logs are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// One decision of a run, as printed (`--json` or the dry-run table).
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord<'a> {
    pub cart_id: &'a str,
    pub email: &'a str,
    pub step: Option<&'a str>,
    /// `send` (dry run), `sent`, `retry`, `failed`, `unknown` or `skip`.
    pub decision: &'a str,
    pub reason: Option<&'a str>,
}

impl Output {
    pub fn new(out: Box<dyn Write>, err: Box<dyn Write>) -> Output {
        Output {
            out,
            err,
            interactive: false,
            journal: false,
            verbosity: 0,
            json_logs: false,
        }
    }

    /// `-q` (-1), `-v` (1) and `--log-format`.
    pub fn configure(&mut self, verbosity: i8, format: LogFormat) {
        self.verbosity = verbosity;
        self.json_logs = format == LogFormat::Json;
    }

    /// The process's stdout and stderr.
    pub fn terminal() -> Output {
        use std::io::IsTerminal;
        let mut output = Output::new(
            Box::new(std::io::BufWriter::new(std::io::stdout())),
            Box::new(std::io::stderr()),
        );
        output.interactive = std::io::stderr().is_terminal();
        output.journal = stderr_is_the_journal();
        output
    }

    /// Whether every run's summary belongs on stderr: it is read as a log
    /// there (a terminal, systemd's journal, `-v`, `--log-format json`).
    /// Else stderr is cron's mail to the operator, which should come only
    /// when something needs a person.
    pub fn logs_every_run(&self) -> bool {
        self.interactive || self.journal || self.verbosity > 0 || self.json_logs
    }

    /// `--log-format json`.
    pub fn json_logs(&self) -> bool {
        self.json_logs
    }

    /// `-v`.
    pub fn verbose(&self) -> bool {
        self.verbosity > 0
    }

    /// A progress bar over `len` bytes on stderr when it is a terminal;
    /// a hidden one otherwise (cron, pipes, tests). Log through
    /// `bar.suspend(..)` while it is shown.
    pub fn progress(&self, len: u64) -> indicatif::ProgressBar {
        if !self.interactive {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(len),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    }

    /// A line of data on stdout. A closed pipe (`| head`) is not an error
    /// worth failing a run for, so write errors are ignored.
    pub fn data(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    fn write_log(&mut self, level: &str, line: &str) {
        let _ = self.out.flush();
        if self.json_logs {
            let record = serde_json::json!({ "level": level, "message": line });
            let _ = writeln!(self.err, "{record}");
        } else {
            let _ = writeln!(self.err, "{line}");
        }
    }

    /// An informational line on stderr (not with `-q`).
    pub fn log(&mut self, line: &str) {
        if self.verbosity >= 0 {
            self.write_log("info", line);
        }
    }

    /// A line only `-v` shows.
    pub fn detail(&mut self, line: &str) {
        if self.verbosity > 0 {
            self.write_log("debug", line);
        }
    }

    /// A warning on stderr: shown even with `-q` (rejected rows, files
    /// that could not be read).
    pub fn warn(&mut self, line: &str) {
        self.write_log("warning", line);
    }

    /// The error a command failed with.
    pub fn error(&mut self, line: &str) {
        self.write_log("error", line);
    }

    /// A summary: `text` as a log line, or in JSON mode the `fields` with
    /// the text as `message`.
    pub fn summary(&mut self, text: &str, fields: serde_json::Value) {
        if self.verbosity < 0 {
            return;
        }
        if self.json_logs {
            let mut record = serde_json::json!({ "level": "info", "message": text });
            if let (Some(record), serde_json::Value::Object(fields)) =
                (record.as_object_mut(), fields)
            {
                record.extend(fields);
            }
            let _ = self.out.flush();
            let _ = writeln!(self.err, "{record}");
        } else {
            self.write_log("info", text);
        }
    }

    /// Text on stdout as it is (it carries its own line ends).
    pub fn raw(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
    }

    pub fn json(&mut self, value: &impl Serialize) {
        match serde_json::to_string(value) {
            Ok(line) => self.data(&line),
            Err(error) => self.log(&format!("recart: cannot print JSON: {error}")),
        }
    }

    /// Prints rows as a table with aligned columns.
    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| -> String {
            let last = cells.len().saturating_sub(1);
            cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(index, (cell, width))| {
                    if index == last {
                        cell.to_string()
                    } else {
                        format!("{cell:<width$}")
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        self.data(&line(header.to_vec()));
        for row in rows {
            self.data(&line(row.iter().map(String::as_str).collect()));
        }
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
        let _ = self.err.flush();
    }
}

/// systemd sets `JOURNAL_STREAM` to the device and inode (`DEV:INODE`) of
/// the stream it connects to the journal; stderr is the journal when its
/// own match (an inherited variable with stderr redirected does not).
fn stderr_is_the_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    // The file descriptor's own metadata (stat follows /proc's link to
    // the open file, socket or pipe).
    std::fs::metadata("/proc/self/fd/2")
        .is_ok_and(|meta| stream.to_str() == Some(&format!("{}:{}", meta.dev(), meta.ino())))
}

impl Drop for Output {
    fn drop(&mut self) {
        self.flush();
    }
}
