//! Reading a seed or state file, which anyone may have put there: only a
//! regular file is read, opened so that a FIFO cannot block, and refused
//! from its size when over the cap for its kind. (File I/O, not wire code:
//! the sandbox's own, so that it needs nothing of flexsync.)

use std::fs::{self, File, Metadata};
use std::io::Read;
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A FIFO, socket, device or directory: reading it could block or
    /// never end.
    #[error("it is a {kind}, not a regular file")]
    NotRegular { kind: &'static str },
    /// Larger than the cap; nothing beyond the cap was read.
    #[error("it is larger than {}, the limit for this kind of file", size_text(*.cap))]
    TooLarge { cap: u64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `4 MiB`, `4096 bytes`: how caps are shown.
fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

fn not_regular(meta: &Metadata) -> ReadError {
    let t = meta.file_type();
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;
    #[cfg(unix)]
    let kind = if t.is_fifo() {
        "FIFO (named pipe)"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else {
        "special file"
    };
    #[cfg(not(unix))]
    let kind = "special file";
    ReadError::NotRegular {
        kind: if t.is_dir() { "directory" } else { kind },
    }
}

/// Reads a whole regular file of at most `cap` bytes as UTF-8 text. The
/// path is checked before opening (a FIFO is never opened), opened
/// non-blocking (in case it was swapped in between) and checked again; a
/// larger file is refused from its size, unread, and one that grows while
/// being read is cut off one byte past the cap.
pub(crate) fn read_text_capped(path: &Path, cap: u64) -> Result<String, ReadError> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading waits for a writer; with O_NONBLOCK it
        // returns at once. Reads of a regular file ignore it.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file: File = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge { cap });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge { cap });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_cap_is_refused_and_one_within_it_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abcd").unwrap();
        assert_eq!(read_text_capped(&path, 4).unwrap(), "abcd");
        let e = read_text_capped(&path, 3).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { cap: 3 }), "{e:?}");
        assert_eq!(
            ReadError::TooLarge { cap: 4 << 20 }.to_string(),
            "it is larger than 4 MiB, the limit for this kind of file"
        );
        assert_eq!(size_text(4096), "4 KiB");
        assert_eq!(size_text(100), "100 bytes");
    }

    #[test]
    fn a_directory_or_non_utf8_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_text_capped(dir.path(), 10).unwrap_err();
        assert_eq!(e.to_string(), "it is a directory, not a regular file");
        let path = dir.path().join("bin");
        std::fs::write(&path, b"ab\xff").unwrap();
        let e = read_text_capped(&path, 10).unwrap_err().to_string();
        assert!(e.contains("invalid byte at offset 2"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let e = read_text_capped(&path, 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a FIFO (named pipe), not a regular file"
        );
    }
}
