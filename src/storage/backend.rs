//! The I/O seam of the block storage.
//!
//! Every byte dfcache writes, every length change and every sync goes through
//! a [`StorageBackend`]. [`FileBackend`] is the real one; tests wrap it to
//! record writes and syncs (to simulate power loss at every sync point) or to
//! inject failures. Reads of committed data go through a read-only memory map
//! of [`StorageBackend::file`], so a backend must keep that file's contents
//! equal to what was written through it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Where the block storage reads and writes bytes.
///
/// Implementations must be usable from several threads; dfcache serialises
/// all writes (one writer), but reads of headers may happen concurrently.
pub trait StorageBackend: Send + Sync + 'static {
    /// Reads exactly `buf.len()` bytes at `offset`.
    ///
    /// # Errors
    /// The underlying I/O error, including `UnexpectedEof` past the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Writes all of `buf` at `offset`, extending the file if needed. The
    /// bytes need not be durable until [`sync`](Self::sync) returns.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Sets the length of the file (grow with zeros, or truncate).
    ///
    /// # Errors
    /// The underlying I/O error.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Makes every earlier write and length change durable.
    ///
    /// # Errors
    /// The underlying I/O error. After a failed sync dfcache poisons the
    /// handle: the state of the file on disk is unknown.
    fn sync(&self) -> io::Result<()>;

    /// The current length of the file.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    ///
    /// # Errors
    /// As [`len`](Self::len).
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The file that holds the bytes, for memory mapping and locking.
    fn file(&self) -> &File;
}

/// The default backend: positional reads and writes on a [`File`],
/// `fdatasync` for [`sync`](StorageBackend::sync).
#[derive(Debug)]
pub struct FileBackend {
    file: File,
}

impl FileBackend {
    /// Wraps an open file. It must be open for reading, and for writing if
    /// the cache will be written.
    pub fn new(file: File) -> FileBackend {
        FileBackend { file }
    }
}

impl StorageBackend for FileBackend {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn file(&self) -> &File {
        &self.file
    }
}
