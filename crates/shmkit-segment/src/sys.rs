//! Thin, checked wrappers over the fd system calls a segment needs.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn own(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: `fd` was just returned by the kernel as a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `shm_open(name, flags | O_CLOEXEC, mode)`.
pub(crate) fn shm_open(name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::shm_open(name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    own(fd)
}

/// `shm_unlink(name)`.
pub(crate) fn shm_unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    cvt(unsafe { libc::shm_unlink(name.as_ptr()) }).map(drop)
}

/// `unlink(path)`.
pub(crate) fn unlink(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    cvt(unsafe { libc::unlink(path.as_ptr()) }).map(drop)
}

/// `open(path, flags | O_CLOEXEC, mode)`.
pub(crate) fn open(path: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    own(fd)
}

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING [| MFD_HUGETLB])`.
pub(crate) fn memfd_create(name: &CStr, huge: bool) -> io::Result<OwnedFd> {
    let mut flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    if huge {
        flags = libc::MFD_CLOEXEC | libc::MFD_HUGETLB;
    }
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    own(fd)
}

/// `ftruncate(fd, len)`.
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: ftruncate takes an fd and a length by value.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len) }).map(drop)
}

/// Reserves backing pages (`fallocate`), so running out of memory is an error now
/// rather than a SIGBUS later. Filesystems without fallocate are not an error.
pub(crate) fn fallocate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: fallocate takes an fd, mode and range by value.
    match cvt(unsafe { libc::fallocate(fd.as_raw_fd(), 0, 0, len) }) {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
        r => r.map(drop),
    }
}

/// Seals a memfd's size (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`), so no process
/// holding it can truncate it under a mapping.
pub(crate) fn seal_size(fd: BorrowedFd<'_>) -> io::Result<()> {
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: F_ADD_SEALS takes an int argument by value.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }).map(drop)
}

/// `fchmod(fd, mode)`.
pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: fchmod takes an fd and mode by value.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

/// What `fstat` says of a segment's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) size: u64,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// `fstat(fd)`.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is a writable stat buffer; the kernel fills it on success.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so the buffer is initialised (it was zeroed anyway).
    let st = unsafe { st.assume_init() };
    Ok(Stat {
        size: u64::try_from(st.st_size).unwrap_or(0),
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// `stat(path)`.
pub(crate) fn stat(path: &CStr) -> io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `path` is NUL-terminated; `st` is a writable stat buffer.
    cvt(unsafe { libc::stat(path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: stat succeeded, so the buffer is initialised (it was zeroed anyway).
    let st = unsafe { st.assume_init() };
    Ok(Stat {
        size: u64::try_from(st.st_size).unwrap_or(0),
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// Whether `fd` is an open descriptor in this process.
pub(crate) fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD on any int is harmless; it fails with EBADF if not open.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

/// `fstat` of a raw fd number that may or may not be open.
pub(crate) fn fstat_raw(fd: i32) -> io::Result<Stat> {
    if !fd_is_open(fd) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the fd was just checked to be open; the borrow ends within this call,
    // and we never close it.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    fstat(b)
}

/// Duplicates a raw fd number (close-on-exec).
pub(crate) fn dup_raw(fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on any int is harmless; it fails with EBADF if not open.
    own(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
}
