//! How the command line fails: [`CliError`], its exit codes, and the mapping
//! of library errors onto them.
//!
//! Every failure is one line on stderr, `dfcache: <what went wrong>: <file or
//! key>`, and a distinct exit code (see [`Exit`]). Errors met while opening
//! the cache are told apart from errors met while working on it, because the
//! same library error means different things there (a corrupt commit record
//! at open means "cannot open"; a corrupt value later means "problem found").

use std::fmt;
use std::io;
use std::path::Path;

/// The process exit codes, documented in `dfcache --help` and the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Not a failure: standard output was closed early (`dfcache ls | head`);
    /// the command stops quietly.
    Stopped = 0,
    /// A key or group was not found, or problems were found (verify,
    /// damaged data, keys or file names that cannot be exported or
    /// imported, too few samples to train a dictionary).
    NotFound = 1,
    /// Usage error, or the cache (or an input file) could not be opened.
    Usage = 2,
    /// The cache is locked by another writer.
    Locked = 3,
    /// The operation failed part-way: I/O error, no space left, ...
    Failed = 4,
}

/// A failure to report: the one-line message and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// How the process exits.
    pub exit: Exit,
    /// What went wrong, without the `dfcache: ` prefix.
    pub message: String,
}

/// `Result` with [`CliError`].
pub type CliResult<T = ()> = Result<T, CliError>;

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl CliError {
    /// An error with an explicit exit code.
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
        }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Usage, message)
    }

    /// Not found or problems found (exit 1).
    pub fn not_found(message: impl Into<String>) -> CliError {
        CliError::new(Exit::NotFound, message)
    }

    /// Standard output was closed by its reader: stop quietly.
    pub fn stopped() -> CliError {
        CliError::new(Exit::Stopped, "")
    }

    /// An error writing to standard output.
    pub fn stdout(e: io::Error) -> CliError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CliError::stopped()
        } else {
            CliError::new(
                Exit::Failed,
                format!("cannot write the output: {}: standard output", plain_io(&e)),
            )
        }
    }

    /// An error opening the cache at `path` (exit 2, or 3 when locked).
    pub fn open(e: dfcache::Error, path: &Path) -> CliError {
        use dfcache::Error as E;
        let shown = path.display().to_string();
        match e {
            E::Locked { .. } => CliError::new(
                Exit::Locked,
                format!("cache file is locked by another writer: {shown}"),
            ),
            E::Io { ref source, .. } if source.kind() == io::ErrorKind::NotFound => {
                CliError::usage(format!("no such file: {shown}"))
            }
            E::Io { ref source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                CliError::usage(format!("permission denied: {shown}"))
            }
            E::Io { ref source, .. } => {
                CliError::usage(format!("cannot open: {}: {shown}", plain_io(source)))
            }
            other => CliError::usage(with_subject(other.to_string(), &shown)),
        }
    }

    /// An error while working on an open cache; `subject` (a key or a path)
    /// ends the message unless the library already named it.
    pub fn op(e: dfcache::Error, subject: &str) -> CliError {
        use dfcache::Error as E;
        let exit = match &e {
            E::Locked { .. } => Exit::Locked,
            E::NotACache { .. }
            | E::UnsupportedVersion { .. }
            | E::ReadOnly
            | E::InvalidKey { .. }
            | E::ValueTooLarge { .. }
            | E::InvalidArgument(_) => Exit::Usage,
            E::Corrupt { .. } => Exit::NotFound,
            _ => Exit::Failed,
        };
        CliError::new(exit, with_subject(e.to_string(), subject))
    }

    /// An I/O error on a file other than the cache (an input or output
    /// file): `what` says what was being done.
    pub fn io(e: &io::Error, what: &str, path: &Path) -> CliError {
        let exit = match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => Exit::Usage,
            _ => Exit::Failed,
        };
        CliError::new(exit, format!("{what}: {}: {}", plain_io(e), path.display()))
    }
}

/// An I/O error's text without the "(os error N)" suffix.
fn plain_io(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Appends `: subject` unless `message` already mentions it.
fn with_subject(message: String, subject: &str) -> String {
    if subject.is_empty() || message.contains(subject) {
        message
    } else {
        format!("{message}: {subject}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_map_to_exit_codes() {
        let p = Path::new("/x/c.dfc");
        let locked = CliError::open(dfcache::Error::Locked { path: None }, p);
        assert_eq!(locked.exit, Exit::Locked);
        assert!(locked.message.ends_with(": /x/c.dfc"), "{}", locked.message);
        let corrupt = dfcache::Error::Corrupt {
            what: "commit record",
            offset: 4096,
            detail: "bad".into(),
        };
        let at_open = CliError::open(corrupt, p);
        assert_eq!(at_open.exit, Exit::Usage);
        assert_eq!(
            at_open.message,
            "corrupt commit record at offset 4096: bad: /x/c.dfc"
        );
        let later = CliError::op(
            dfcache::Error::Corrupt {
                what: "value",
                offset: 1,
                detail: "crc".into(),
            },
            "k",
        );
        assert_eq!(later.exit, Exit::NotFound);
        let missing = CliError::open(
            dfcache::Error::Io {
                op: "opening",
                path: Some(p.into()),
                source: io::Error::from(io::ErrorKind::NotFound),
            },
            p,
        );
        assert_eq!(
            (missing.exit, missing.message.as_str()),
            (Exit::Usage, "no such file: /x/c.dfc")
        );
        let nospace = CliError::op(dfcache::Error::NoSpace { detail: "x".into() }, "k");
        assert_eq!(nospace.exit, Exit::Failed);
    }
}
