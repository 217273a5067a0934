//! Standard output: a buffered writer whose errors become [`CliError`]s (a
//! closed pipe stops the command quietly instead of panicking as `println!`
//! would), and `--json` documents.

use std::io::{self, BufWriter, Stdout, Write};

use serde::Serialize;

use super::error::{CliError, CliResult};

/// Buffered standard output.
pub struct Out {
    w: BufWriter<Stdout>,
}

impl Out {
    /// Standard output, buffered.
    pub fn new() -> Out {
        Out {
            w: BufWriter::with_capacity(64 << 10, io::stdout()),
        }
    }

    /// Writes a line.
    ///
    /// # Errors
    /// See [`CliError::stdout`].
    pub fn line(&mut self, s: impl AsRef<str>) -> CliResult {
        self.bytes(s.as_ref().as_bytes())?;
        self.bytes(b"\n")
    }

    /// Writes raw bytes.
    ///
    /// # Errors
    /// See [`CliError::stdout`].
    pub fn bytes(&mut self, b: &[u8]) -> CliResult {
        self.w.write_all(b).map_err(CliError::stdout)
    }

    /// Writes `v` as one JSON document (pretty-printed) and a newline.
    ///
    /// # Errors
    /// See [`CliError::stdout`].
    pub fn json<T: Serialize>(&mut self, v: &T) -> CliResult {
        serde_json::to_writer_pretty(&mut self.w, v).map_err(|e| CliError::stdout(e.into()))?;
        self.bytes(b"\n")
    }

    /// The buffered writer itself, for copies that tell their own read
    /// and write errors apart (map write errors with
    /// [`CliError::stdout`]).
    pub fn writer(&mut self) -> &mut dyn Write {
        &mut self.w
    }

    /// Flushes what is buffered.
    ///
    /// # Errors
    /// See [`CliError::stdout`].
    pub fn flush(&mut self) -> CliResult {
        self.w.flush().map_err(CliError::stdout)
    }
}

impl Default for Out {
    fn default() -> Self {
        Out::new()
    }
}

/// Left-aligned `label  value` lines for the text form of `info` and
/// `stats`.
pub fn field(label: &str, value: impl std::fmt::Display) -> String {
    format!("{label:<16} {value}")
}
