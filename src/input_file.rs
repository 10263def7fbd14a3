//! Reading a file flexsync did not write itself (declarations, snapshots,
//! saved plans, secret, key and token files): any of them may
//! be hostile or a mistake. Only regular files are read, opened so that a
//! FIFO cannot block, and refused from their size when over their kind's cap.

use std::fs::{self, File, Metadata};
use std::io::Read;
use std::path::Path;

/// Why a file could not be read by [`read_capped`].
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A FIFO, socket, device or directory: opening or reading it could
    /// block forever or never end.
    #[error("it is a {kind}, not a regular file")]
    NotRegular { kind: &'static str },
    /// Larger than the cap for its kind of file; nothing beyond the cap
    /// was read.
    #[error("it is larger than {}, the limit for this kind of file", size_text(*.cap))]
    TooLarge { cap: u64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `4 MiB`, `64 KiB`, `100 bytes`: how caps are shown.
pub fn size_text(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// What kind of non-regular file `meta` describes, for messages.
fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO (named pipe)";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_block_device() {
            return "block device";
        }
        if t.is_char_device() {
            return "character device";
        }
    }
    "special file"
}

/// Opens `path` for reading only if it is a regular file, in a way that
/// cannot block: the resolved path is checked before opening (so a FIFO is
/// never opened), it is opened non-blocking (in case it was swapped for a
/// FIFO in between), and the opened file is checked again. Returns the file
/// and its size.
pub fn open_regular(path: &Path) -> Result<(File, u64), ReadError> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular {
            kind: kind_of(&meta),
        });
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading blocks until a writer appears; with
        // O_NONBLOCK it returns at once. Reads of a regular file ignore it.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular {
            kind: kind_of(&meta),
        });
    }
    Ok((file, meta.len()))
}

/// Reads a whole regular file of at most `cap` bytes. A larger file is
/// refused from its size before anything is read, and a file that grows
/// while being read is cut off one byte past the cap, so no more than
/// `cap + 1` bytes are ever held.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let (file, len) = open_regular(path)?;
    if len > cap {
        return Err(ReadError::TooLarge { cap });
    }
    // `len` is at most `cap`, so the allocation is bounded too.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge { cap });
    }
    Ok(bytes)
}

/// [`read_capped`] for text files: the bytes must be UTF-8.
pub fn read_text_capped(path: &Path, cap: u64) -> Result<String, ReadError> {
    let bytes = read_capped(path, cap)?;
    String::from_utf8(bytes).map_err(|e| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        ))
    })
}
