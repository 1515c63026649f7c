//! Segment names: validation and the mapping to POSIX shm names.

use crate::error::{Error, Result};

/// Prefix of every shmkit segment in `/dev/shm`, so `shmkit ls` can find them.
pub const PREFIX: &str = "shmkit.";

/// Longest accepted user name (the OS allows 255 bytes, the prefix takes some).
pub const MAX_NAME_LEN: usize = 200;

/// Directory where POSIX shared memory objects live on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// Checks a user-facing segment name.
///
/// Names are 1 to [`MAX_NAME_LEN`] bytes of `A-Z a-z 0-9 _ - .`, not starting with `.`.
///
/// # Errors
/// [`Error::InvalidName`] saying what is wrong.
///
/// ```
/// assert!(shmkit_segment::validate_name("jobs-1.q").is_ok());
/// assert!(shmkit_segment::validate_name("a/b").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 200 bytes");
    }
    if name.starts_with('.') {
        return bad("it starts with '.'");
    }
    if name.contains('/') {
        return bad("it contains '/'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return bad("only A-Z, a-z, 0-9, '_', '-' and '.' are allowed");
    }
    Ok(())
}

/// The `shm_open` name (`/shmkit.<name>`) of a validated user name.
pub(crate) fn os_name(name: &str) -> std::ffi::CString {
    // Validated names contain no NUL byte.
    std::ffi::CString::new(format!("/{PREFIX}{name}")).unwrap_or_default()
}

/// The path of a named segment under `/dev/shm`.
pub fn shm_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(SHM_DIR).join(format!("{PREFIX}{name}"))
}
