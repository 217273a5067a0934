//! Values into and out of the cache in constant memory, for `put`, `get`,
//! `import` and `export`.
//!
//! In: a value of up to 1 MiB ([`WHOLE_MAX`]) is read whole and stored with
//! `put` (or `put_with_meta`), so it is compressed with the key's default
//! dictionary; anything longer is handed to `put_stream`, which stores it in
//! 1 MiB frames as it reads. Either way at most about 1 MiB of the value is
//! in memory at a time, whatever its length.
//!
//! Out: [`copy_out`] copies a `ValueReader` (one frame at a time) to any
//! writer, telling read failures (a damaged frame, a value replaced while it
//! was read) from write failures.

use std::io::{self, Cursor, Read, Write};

use dfcache::{DatasetFileCache, ValueReader};

use super::error::{CliError, Exit};

/// Values up to this length are stored whole; longer ones are streamed.
/// The library stores values of up to 1 MiB in one piece (with the
/// dictionary) and longer ones in 1 MiB frames either way.
pub const WHOLE_MAX: u64 = 1 << 20;

/// Why storing a value failed.
#[derive(Debug)]
pub enum PutFailed {
    /// Reading the input failed.
    Input(io::Error),
    /// The cache refused or failed.
    Cache(dfcache::Error),
}

/// A reader that remembers the first error of the reader it wraps (the
/// library reports an input error as its own I/O error) and counts bytes.
struct Watched<R, F> {
    inner: R,
    error: Option<io::Error>,
    on_read: F,
}

impl<R: Read, F: FnMut(u64)> Read for Watched<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                (self.on_read)(n as u64);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.error = Some(e);
                Err(copy)
            }
        }
    }
}

/// Stores what `src` yields under `key` (with `meta`, if given), in
/// constant memory; `on_read` is told of every chunk read (for progress
/// bars). Returns the value's length.
///
/// A streamed value and its metadata are stored in one change
/// (`put_stream_with_meta`), durable at the caller's flush.
///
/// # Errors
/// [`PutFailed::Input`] when reading `src` fails (nothing is stored);
/// [`PutFailed::Cache`] otherwise (for example
/// [`dfcache::Error::ValueTooLarge`] as soon as the value outgrows the
/// cache).
pub fn put_from(
    cache: &DatasetFileCache,
    key: &[u8],
    src: impl Read,
    meta: Option<&[u8]>,
    on_read: impl FnMut(u64),
) -> Result<u64, PutFailed> {
    let mut src = Watched {
        inner: src,
        error: None,
        on_read,
    };
    let mut head = Vec::new();
    (&mut src)
        .take(WHOLE_MAX + 1)
        .read_to_end(&mut head)
        .map_err(PutFailed::Input)?;
    if head.len() as u64 <= WHOLE_MAX {
        let r = match meta {
            Some(m) => cache.put_with_meta(key, &head, m),
            None => cache.put(key, &head),
        };
        return r.map(|()| head.len() as u64).map_err(PutFailed::Cache);
    }
    let stored =
        cache.put_stream_with_meta(key, Cursor::new(head).chain(&mut src), meta.unwrap_or(&[]));
    let len = match stored {
        Ok(n) => n,
        Err(e) => {
            return Err(match src.error.take() {
                Some(input) => PutFailed::Input(input),
                None => PutFailed::Cache(e),
            })
        }
    };
    Ok(len)
}

/// Why copying a value out failed.
#[derive(Debug)]
pub enum CopyFailed {
    /// Reading the value failed: a frame failed its checksum
    /// (`InvalidData`), or the entry was replaced or removed meanwhile.
    Read(io::Error),
    /// Writing the copy failed.
    Write(io::Error),
}

impl CopyFailed {
    /// The error for a failed read of the value of `key`: exit 1 for
    /// damaged data (a problem found), exit 4 otherwise (the entry changed
    /// while it was read, an I/O error).
    pub fn read_error(e: &io::Error, key: &str) -> CliError {
        let exit = match e.kind() {
            io::ErrorKind::InvalidData => Exit::NotFound,
            _ => Exit::Failed,
        };
        let text = e.to_string();
        let message = if text.contains(key) {
            text
        } else {
            format!("{text}: {key}")
        };
        CliError::new(exit, message)
    }
}

/// Copies the value `r` reads to `out`, 64 KiB at a time; `on_copy` is told
/// of each piece. Returns the bytes copied.
///
/// # Errors
/// See [`CopyFailed`].
pub fn copy_out(
    r: &mut ValueReader<'_>,
    out: &mut dyn Write,
    mut on_copy: impl FnMut(u64),
) -> Result<u64, CopyFailed> {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyFailed::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(CopyFailed::Write)?;
        total += n as u64;
        on_copy(n as u64);
    }
}
