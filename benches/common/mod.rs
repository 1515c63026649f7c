//! Helpers shared by the benchmarks: CPU pinning and whole reads/writes on file
//! descriptors (the `pipe(2)` and Unix socket baselines).
#![allow(dead_code, unreachable_pub)]

/// CPUs online. Not `available_parallelism`: that follows this process's affinity,
/// which `pin` narrows to one CPU, and would then report one core for good.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).clamp(1, 1024)
}

/// Whether two processes can be pinned to different cores.
pub fn two_cores() -> bool {
    online_cpus() >= 2
}

fn set_affinity(set: &libc::cpu_set_t) {
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 = the calling thread.
    // On failure the mask stays as it was (pinning is best effort).
    let _ = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
}

/// Pins the calling thread to `cpu` (best effort); returns the previous mask.
pub fn pin(cpu: usize) -> libc::cpu_set_t {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `old` is a writable cpu_set_t of `size` bytes.
    unsafe { libc::sched_getaffinity(0, size, &mut old) };
    // SAFETY: as above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the benches pin to CPU 0 or 1, within CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    set_affinity(&set);
    old
}

/// Restores a mask returned by [`pin`].
pub fn restore(old: &libc::cpu_set_t) {
    set_affinity(old);
}

/// Unpins the calling thread (every online CPU).
pub fn unpin() {
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in 0..online_cpus() {
        // SAFETY: `cpu` < online CPUs <= 1024 = CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    set_affinity(&set);
}

/// Writes all of `buf` to `fd`.
///
/// # Panics
/// On a write error or a closed reader.
pub fn write_all(fd: i32, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of its length; `fd` is the caller's open fd.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        assert!(n > 0, "write: {}", std::io::Error::last_os_error());
        buf = &buf[n.unsigned_abs()..];
    }
}

/// Fills `buf` from `fd`.
///
/// # Panics
/// On a read error or end of file.
pub fn read_exact(fd: i32, mut buf: &mut [u8]) {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for writes of its length; `fd` is the caller's open fd.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        assert!(n > 0, "read: {}", std::io::Error::last_os_error());
        buf = &mut buf[n.unsigned_abs()..];
    }
}
