//! Thin safe(ish) wrappers over the libc calls this crate needs. Every `unsafe`
//! block in the crate that touches the OS lives here (plus the fork itself and the
//! spawn entry's address arithmetic, which say why at their call sites).

use shmkit_segment::shim::time::Deadline;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// What `fork` returned.
pub(crate) enum Forked {
    /// We are the new child.
    Child,
    /// We are the parent of `pid`.
    Parent(u32),
}

/// `fork(2)`.
///
/// # Safety
/// In a multi-threaded process the child may only rely on state no other thread
/// could have held at the moment of the fork; the caller must keep the child's work
/// to what is safe there and must end the child with [`exit_now`].
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions of its own; the caller upholds
    // the rules for what the child may do afterwards (see `# Safety`).
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p.unsigned_abs())),
    }
}

/// `_exit(2)`: ends the process at once, running no destructors, atexit handlers or
/// unwinding (the only safe way out of a forked child).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Python-style exit code from a `waitpid` status: `n` for `exit(n)`, `-N` for signal N.
pub(crate) fn exit_code_of(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        // Stopped/continued are not reported without WUNTRACED/WCONTINUED.
        -1
    }
}

/// `waitpid(pid, WNOHANG)`: `Some(exit code)` when the child was reaped now,
/// `None` when it still runs.
///
/// # Errors
/// `ECHILD` when `pid` is not an unreaped child of this process.
pub(crate) fn try_reap(pid: u32) -> io::Result<Option<i32>> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid, writable int; waitpid has no other preconditions.
        let r = unsafe { libc::waitpid(pid_t(pid), &mut status, libc::WNOHANG) };
        if r == 0 {
            return Ok(None);
        }
        if r > 0 {
            return Ok(Some(exit_code_of(status)));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Blocks until child `pid` has exited, without reaping it (`waitid(WNOWAIT)`).
///
/// # Errors
/// `ECHILD` when `pid` is not an unreaped child (e.g. another thread reaped it).
pub(crate) fn wait_exit_no_reap(pid: u32) -> io::Result<()> {
    let id = libc::id_t::from(pid);
    loop {
        // SAFETY: siginfo_t is plain data for which all zeroes is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t; the other arguments are values.
        let r = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            // Reaped meanwhile: it has exited, which is what we waited for.
            Some(libc::ECHILD) => return Ok(()),
            _ => return Err(e),
        }
    }
}

pub(crate) fn pid_t(pid: u32) -> libc::pid_t {
    libc::pid_t::try_from(pid).unwrap_or(libc::pid_t::MAX)
}

/// `kill(pid, sig)`.
pub(crate) fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes plain integers; the caller ensures `pid` is an unreaped child,
    // so the number cannot have been reused.
    let r = unsafe { libc::kill(pid_t(pid), sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits until `fd` is readable or `deadline` passes; `true` when readable.
/// EINTR is retried against the same absolute deadline.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, deadline: Deadline) -> io::Result<bool> {
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = deadline.remaining().map(|d| libc::timespec {
            // Saturate absurd timeouts instead of wrapping.
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(d.subsec_nanos()),
        });
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `pfd` is one valid pollfd, `tsp` is null or points to a live timespec,
        // and a null signal mask leaves the mask unchanged.
        let r = unsafe { libc::ppoll(&mut pfd, 1, tsp, std::ptr::null()) };
        if r > 0 {
            return Ok(true);
        }
        if r == 0 {
            if deadline.is_expired() {
                return Ok(false);
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Polls several fds (blocking, no timeout); returns the indices that are readable.
pub(crate) fn wait_any_readable(fds: &[RawFd]) -> io::Result<Vec<usize>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let n = libc::nfds_t::try_from(pfds.len()).unwrap_or(libc::nfds_t::MAX);
    loop {
        // SAFETY: `pfds` is a valid array of `n` pollfds owned by this frame.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), n, -1) };
        if r >= 0 {
            return Ok(pfds
                .iter()
                .enumerate()
                .filter(|(_, p)| p.revents != 0)
                .map(|(i, _)| i)
                .collect());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: deliver `sig` to this process when the thread
/// that created it exits.
pub(crate) fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    let arg = libc::c_ulong::try_from(sig).unwrap_or(libc::SIGKILL as libc::c_ulong);
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, arg, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The parent's pid (`getppid`).
pub(crate) fn parent_pid() -> u32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    let p = unsafe { libc::getppid() };
    p.unsigned_abs()
}

/// CPUs this process may run on (`sched_getaffinity`), or `None` if unknown.
pub(crate) fn affinity_cpu_count() -> Option<usize> {
    // SAFETY: cpu_set_t is a plain bit array for which all zeroes is valid (empty).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed; pid 0 is us.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return None;
    }
    // SAFETY: `set` is an initialised cpu_set_t.
    let n = unsafe { libc::CPU_COUNT(&set) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two ints, as pipe2 requires.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned fds[0] as a new descriptor owned by nobody else.
    let rd = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: likewise fds[1].
    let wr = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    Ok((rd, wr))
}

/// `eventfd(0, EFD_CLOEXEC)`.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes plain integers and returns a new fd or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned `fd` as a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `memfd_create(name, MFD_CLOEXEC)`.
pub(crate) fn memfd(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned `fd` as a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets `FD_CLOEXEC` on an fd number this process owns.
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD with an integer flag; on a bad fd the call fails with EBADF.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes ownership of an inherited fd number.
///
/// # Safety
/// `fd` must be an open descriptor that nothing else in this process owns.
pub(crate) unsafe fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: guaranteed by the caller.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Load base of the object (executable or library) containing `addr`, if the
/// dynamic loader knows it.
pub(crate) fn object_base(addr: usize) -> Option<usize> {
    // SAFETY: Dl_info is plain data for which all zeroes is valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only inspects the address and writes into `info`.
    let r = unsafe { libc::dladdr(addr as *const libc::c_void, &mut info) };
    if r == 0 || info.dli_fbase.is_null() {
        None
    } else {
        Some(info.dli_fbase as usize)
    }
}

/// `posix_spawn` of `path` with `argv` and `envp`, keeping the (CLOEXEC) fds in
/// `keep` open across the exec at the same numbers, with an empty signal mask.
pub(crate) fn spawn(
    path: &CStr,
    argv: &[CString],
    envp: &[CString],
    keep: &[RawFd],
) -> io::Result<u32> {
    let mut argv_p: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv_p.push(std::ptr::null_mut());
    let mut envp_p: Vec<*mut libc::c_char> = envp.iter().map(|a| a.as_ptr().cast_mut()).collect();
    envp_p.push(std::ptr::null_mut());

    let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
    // SAFETY: init writes a fresh file-actions object into `actions`.
    let r = unsafe { libc::posix_spawn_file_actions_init(actions.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    let actions = FileActions(actions);
    for &fd in keep {
        // SAFETY: `actions` was initialised above; dup2(fd, fd) clears FD_CLOEXEC in
        // the child (glibc >= 2.29, POSIX 2024).
        let r = unsafe { libc::posix_spawn_file_actions_adddup2(actions.ptr(), fd, fd) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
    }
    let mut attr = std::mem::MaybeUninit::<libc::posix_spawnattr_t>::uninit();
    // SAFETY: init writes a fresh attribute object into `attr`.
    let r = unsafe { libc::posix_spawnattr_init(attr.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    let attr = SpawnAttr(attr);
    // SAFETY: sigset_t is plain data; sigemptyset below initialises it properly.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `empty` is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(&mut empty) };
    // SAFETY: `attr` was initialised above and `empty` is a valid set.
    let r = unsafe { libc::posix_spawnattr_setsigmask(attr.ptr(), &empty) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    let flags = libc::c_short::try_from(libc::POSIX_SPAWN_SETSIGMASK).unwrap_or(0);
    // SAFETY: `attr` was initialised above.
    let r = unsafe { libc::posix_spawnattr_setflags(attr.ptr(), flags) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is valid for the call: `path` is NUL-terminated, argv and
    // envp are NULL-terminated arrays of NUL-terminated strings that outlive the call,
    // and `actions`/`attr` were initialised above.
    let r = unsafe {
        libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            actions.ptr(),
            attr.ptr(),
            argv_p.as_ptr(),
            envp_p.as_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(pid.unsigned_abs())
}

struct FileActions(std::mem::MaybeUninit<libc::posix_spawn_file_actions_t>);
impl FileActions {
    fn ptr(&self) -> *mut libc::posix_spawn_file_actions_t {
        self.0.as_ptr().cast_mut()
    }
}
impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: constructed only after a successful init; destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(self.0.as_mut_ptr()) };
    }
}

struct SpawnAttr(std::mem::MaybeUninit<libc::posix_spawnattr_t>);
impl SpawnAttr {
    fn ptr(&self) -> *mut libc::posix_spawnattr_t {
        self.0.as_ptr().cast_mut()
    }
}
impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: constructed only after a successful init; destroyed once.
        unsafe { libc::posix_spawnattr_destroy(self.0.as_mut_ptr()) };
    }
}

/// (device, inode) of `path` (following symlinks, so `/proc/self/exe` names the
/// running executable even when its file was replaced).
pub(crate) fn dev_ino(path: &str) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}
