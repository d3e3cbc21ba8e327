//! An exclusive lock on an output directory, held while a run or a sweep writes into it, so
//! that two processes given the same `--out` cannot interleave their checkpoints and tables.
//!
//! The lock is the operating system's advisory lock on `DIR/.lock` ([`std::fs::File::try_lock`]):
//! it is released when the holder exits, however it exits (a crash or `kill -9` leaves no stale
//! lock), and the file itself, which records the holder's process id, is harmless when left
//! behind. On a file system that does not support locks the directory is used unguarded, as
//! before locks existed.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{LabError, Result, io};

/// Held while a process writes into a directory; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Create `dir` if needed and lock it.
    ///
    /// # Errors
    /// [`LabError::InUse`] when another process holds the lock (with its process id where it
    /// can be read); I/O errors creating the directory or the lock file.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = Self::file(dir);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                return Err(LabError::InUse {
                    dir: dir.into(),
                    holder,
                });
            }
            // A file system without locks (some network mounts): write unguarded rather
            // than refuse to run at all.
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
            Err(TryLockError::Error(e)) => return Err(io(&path, e)),
        }
        file.set_len(0).map_err(|e| io(&path, e))?;
        write!(file, "{}", std::process::id()).map_err(|e| io(&path, e))?;
        Ok(Self { _file: file })
    }

    /// `DIR/.lock`.
    pub fn file(dir: &Path) -> PathBuf {
        dir.join(".lock")
    }
}
