//! The spawn start method: re-execute the current binary and run a `fn(A) -> R`
//! there with a serde argument.
//!
//! ## How the child finds the function
//! Functions are named by their offset from an anchor function of this crate. Both
//! live in the same executable, which ASLR moves as one block, so `anchor + offset`
//! in the re-executed child is the same function. The child checks that it runs the
//! very file the parent runs (device and inode of `/proc/self/exe`), and `spawn_fn`
//! checks with `dladdr` that the function lives in the same object as the anchor.
//! The offset points at a monomorphised [`trampoline`] that decodes the argument as
//! `A` and calls the user's function.
//!
//! ## Protocol
//! Parent: writes the payload (offsets, argument, the child's name/daemon/parent) to
//! a memfd, makes a close-on-exec status pipe, and `posix_spawn`s `/proc/self/exe`
//! with both child-side fds kept open and `SHMKIT_SPAWN=<version>:<memfd>:<status fd>:<dev>:<ino>:<parent pid>`
//! in the environment. Child: an `.init_array` constructor (or [`init`], whichever
//! runs first) sees the variable, removes it, checks the executable, reads the
//! payload, sets the parent-death signal for a daemon, decodes the argument, writes
//! `R` on the status pipe, closes it, runs the target and `_exit`s with its code.
//! A failure before the target is written as `E<message>`. The parent's `start`
//! returns after `R`; EOF with nothing means the entry never ran.

use crate::child::{self, Child, ChildState};
use crate::error::{Error, Result};
use crate::exit::{run_target, IntoExitCode};
use crate::state::{self, Me};
use crate::sys;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shmkit_segment::shim::pid::current;
use shmkit_segment::shim::time::Deadline;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The environment variable that marks a process as a spawned shmkit child.
pub const SPAWN_ENV: &str = "SHMKIT_SPAWN";
const PROTOCOL: &str = "1";
/// How long `start` waits for a spawned child to report that its entry runs.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

type Trampoline = fn(usize, &[u8], &mut dyn FnMut()) -> std::result::Result<i32, String>;

/// Decodes the argument as `A`, reports readiness, and runs the `fn(A) -> R` at `f`.
fn trampoline<A: DeserializeOwned, R: IntoExitCode>(
    f: usize,
    arg: &[u8],
    ready: &mut dyn FnMut(),
) -> std::result::Result<i32, String> {
    let a: A = postcard::from_bytes(arg).map_err(|e| {
        format!(
            "cannot decode the argument as {}: {e}",
            std::any::type_name::<A>()
        )
    })?;
    // SAFETY: `f` is `anchor + offset` where the parent computed the offset from a
    // `fn(A) -> R` of this same executable (checked by device and inode) whose
    // trampoline is this very instantiation, so it is that function's address.
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    ready();
    Ok(run_target(move || f(a).into_exit_code()))
}

/// The anchor all offsets are measured from: a function of this crate, hence of the
/// main executable whenever this crate is linked statically (the Rust default).
#[inline(never)]
fn anchor() -> usize {
    anchor as fn() -> usize as usize
}

/// The load address of the object holding [`anchor`] (`None` if `dladdr` cannot say).
/// Looked up once: it cannot change while the process runs, and the pool names two
/// functions per submitted task.
fn anchor_base() -> Option<usize> {
    static BASE: OnceLock<Option<usize>> = OnceLock::new();
    *BASE.get_or_init(|| sys::object_base(anchor()))
}

/// A portable reference to a function of the main executable — its offset from an
/// anchor function of this crate, the naming [`Process::spawn_fn`](crate::Process::spawn_fn)
/// uses. Valid in this process, in forked children and in children started with the
/// spawn start method (the same executable re-executed: ASLR moves it as one block).
/// Layers above use it to name functions in their own messages (the pool's tasks).
///
/// ```
/// use shmkit_process::FnRef;
/// fn double(x: u32) -> u32 { 2 * x }
/// let r = FnRef::from_addr(double as fn(u32) -> u32 as usize).expect("in the executable");
/// assert_eq!(r.addr(), double as fn(u32) -> u32 as usize);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FnRef(i64);

impl FnRef {
    /// The reference to the code at `addr` (a `fn` pointer cast to `usize`); `None`
    /// when that code does not live in the same object as this crate (e.g. in a
    /// dynamically loaded library), so that another process could not find it.
    pub fn from_addr(addr: usize) -> Option<FnRef> {
        let base = anchor_base();
        if base.is_some() && sys::object_base(addr) != base {
            return None;
        }
        Some(FnRef(offset(addr) as i64))
    }

    /// The address the reference names in the calling process. Turning it back into
    /// a function (`transmute`) is sound only for the type it was made from, in a
    /// process running the same executable (forked, or spawned by this crate, which
    /// checks the executable's device and inode).
    pub fn addr(self) -> usize {
        let off = isize::try_from(self.0).unwrap_or(isize::MIN);
        (anchor() as isize).wrapping_add(off) as usize
    }
}

/// What the parent computes at `spawn_fn`.
pub(crate) struct SpawnSpec {
    trampoline_off: isize,
    fn_off: isize,
    arg: std::result::Result<Vec<u8>, postcard::Error>,
    in_executable: bool,
}

fn offset(addr: usize) -> isize {
    (addr as isize).wrapping_sub(anchor() as isize)
}

impl SpawnSpec {
    pub(crate) fn new<A, R>(f: fn(A) -> R, arg: &A) -> Self
    where
        A: Serialize + DeserializeOwned,
        R: IntoExitCode,
    {
        let tramp = trampoline::<A, R> as Trampoline as usize;
        let fn_addr = f as usize;
        let base = anchor_base();
        let in_executable = base.is_none()
            || (sys::object_base(fn_addr) == base && sys::object_base(tramp) == base);
        SpawnSpec {
            trampoline_off: offset(tramp),
            fn_off: offset(fn_addr),
            arg: postcard::to_allocvec(arg),
            in_executable,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    trampoline_off: i64,
    fn_off: i64,
    arg: Vec<u8>,
    me: Me,
}

/// Whether this process was spawned by shmkit and its entry has not run (so it must
/// not start children: that could recurse).
pub(crate) fn unconsumed() -> bool {
    // The entry removes the variable before anything else runs, so the answer cannot
    // change after the first look: cache it (no environment lock per start).
    static UNCONSUMED: OnceLock<bool> = OnceLock::new();
    *UNCONSUMED.get_or_init(|| std::env::var_os(SPAWN_ENV).is_some())
}

fn exe_id() -> std::io::Result<(u64, u64)> {
    static ID: OnceLock<(u64, u64)> = OnceLock::new();
    if let Some(id) = ID.get() {
        return Ok(*id);
    }
    let id = sys::dev_ino("/proc/self/exe")?;
    Ok(*ID.get_or_init(|| id))
}

fn cstring(bytes: &[u8]) -> CString {
    // Environment strings and argv[0] cannot contain NUL; drop anything after one.
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap_or_default()
}

/// Parent side of the spawn start method.
pub(crate) fn start(spec: &SpawnSpec, me: Me, name: &str, daemon: bool) -> Result<Child> {
    // Make sure the constructor that runs the child's entry is linked in.
    std::hint::black_box(&SPAWN_ENTRY);
    if !spec.in_executable {
        return Err(Error::NotInExecutable);
    }
    let arg = match &spec.arg {
        Ok(a) => a.clone(),
        Err(e) => {
            return Err(Error::Encode {
                name: name.to_owned(),
                source: e.clone(),
            })
        }
    };
    let os = |op, e| Error::os(op, name, e);
    let parent_pid = current();
    let payload = Payload {
        trampoline_off: spec.trampoline_off as i64,
        fn_off: spec.fn_off as i64,
        arg,
        me,
    };
    let bytes = postcard::to_allocvec(&payload).map_err(|e| Error::Encode {
        name: name.to_owned(),
        source: e,
    })?;
    let memfd = sys::memfd(c"shmkit-spawn").map_err(|e| os("memfd_create", e))?;
    let mut mem = File::from(memfd);
    mem.write_all(&bytes).map_err(|e| os("write", e))?;
    let (status_rd, status_wr) = sys::pipe().map_err(|e| os("pipe2", e))?;
    let (dev, ino) = exe_id().map_err(|e| os("stat(/proc/self/exe)", e))?;
    let marker = format!(
        "{SPAWN_ENV}={PROTOCOL}:{}:{}:{dev}:{ino}:{parent_pid}",
        mem.as_raw_fd(),
        status_wr.as_raw_fd()
    );
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != OsStr::new(SPAWN_ENV))
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv)
        })
        .collect();
    envp.push(cstring(marker.as_bytes()));
    let argv0 = std::env::args_os()
        .next()
        .map_or_else(|| cstring(b"shmkit-spawn"), |a| cstring(a.as_bytes()));

    let pid = sys::spawn(
        c"/proc/self/exe",
        &[argv0],
        &envp,
        &[mem.as_raw_fd(), status_wr.as_raw_fd()],
    )
    .map_err(|e| os("posix_spawn", e))?;
    drop(status_wr);
    drop(mem);
    let state = Arc::new(ChildState::new(pid, name.to_owned(), daemon));
    let mut st = state::lock();
    st.prune();
    child::register(&mut st, Arc::clone(&state));
    drop(st);
    let handle = Child { inner: state };
    match handshake(status_rd, pid) {
        Ok(()) => Ok(handle),
        Err(e) => {
            // The child will not run the target: make sure it is gone and reaped.
            let _ = handle.kill();
            let _ = handle.join();
            Err(e)
        }
    }
}

fn handshake(status: OwnedFd, pid: u32) -> Result<()> {
    let deadline = Deadline::after(HANDSHAKE_TIMEOUT);
    let mut f = File::from(status);
    let mut msg = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let readable =
            sys::wait_readable(f.as_fd(), deadline).map_err(|e| Error::os("poll", "spawn", e))?;
        if !readable {
            return Err(Error::EntryNotRun {
                pid,
                detail: format!("no word from the child within {HANDSHAKE_TIMEOUT:?}"),
            });
        }
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                msg.extend_from_slice(&buf[..n]);
                if msg.first() == Some(&b'R') {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::os("read", "spawn", e)),
        }
    }
    match msg.split_first() {
        Some((b'E', reason)) => Err(Error::SpawnFailed {
            pid,
            reason: String::from_utf8_lossy(reason).into_owned(),
        }),
        _ => Err(Error::EntryNotRun {
            pid,
            detail: "it exited (or closed the status pipe) without reporting".into(),
        }),
    }
}

/// Runs the spawned child's entry if this process is a spawned shmkit child, and
/// never returns in that case; returns at once otherwise.
///
/// shmkit registers this as an `.init_array` constructor, so it normally runs before
/// `main` and calling it is not required; call it as the **first line of `main`**
/// anyway where the binary might be linked without running constructors. Any later
/// call is a no-op.
pub fn init() {
    let Some(value) = std::env::var_os(SPAWN_ENV) else {
        return;
    };
    // Before anything else, so that nothing this process starts sees it.
    std::env::remove_var(SPAWN_ENV);
    let code = child_main(value.as_bytes());
    sys::exit_now(code)
}

extern "C" fn spawn_entry_ctor() {
    init();
}

/// Runs [`init`] before `main` in every program that links this crate.
///
/// The dynamic loader (or the static start-up code) calls each `.init_array` entry as
/// `fn(argc, argv, envp)`; a C function taking no parameters may be called that way on
/// every Linux ABI (extra arguments are ignored). `#[used]` keeps the entry even though
/// nothing names it, and `start` names it too, so the object holding it is linked
/// whenever the spawn method is used. Outside a spawned child it only reads one
/// environment variable.
#[used]
#[link_section = ".init_array"]
static SPAWN_ENTRY: extern "C" fn() = spawn_entry_ctor;

struct Marker {
    memfd: i32,
    status: i32,
    dev: u64,
    ino: u64,
    parent: u32,
}

fn parse_marker(v: &[u8]) -> Option<Marker> {
    let s = std::str::from_utf8(v).ok()?;
    let mut it = s.split(':');
    if it.next()? != PROTOCOL {
        return None;
    }
    let m = Marker {
        memfd: it.next()?.parse().ok()?,
        status: it.next()?.parse().ok()?,
        dev: it.next()?.parse().ok()?,
        ino: it.next()?.parse().ok()?,
        parent: it.next()?.parse().ok()?,
    };
    (m.memfd >= 0 && m.status >= 0 && m.memfd != m.status).then_some(m)
}

fn child_main(value: &[u8]) -> i32 {
    let Some(m) = parse_marker(value) else {
        let _ = writeln!(
            std::io::stderr(),
            "shmkit: malformed {SPAWN_ENV} (version mismatch between parent and child?)"
        );
        return 1;
    };
    // SAFETY: the parent passed these two descriptors to this process (posix_spawn
    // kept them open at these numbers) for it alone, and nothing else here owns them.
    let status = unsafe { sys::own_fd(m.status) };
    // SAFETY: as above, for the payload memfd.
    let memfd = unsafe { sys::own_fd(m.memfd) };
    // Do not leak the status pipe into whatever the target starts.
    let _ = sys::set_cloexec(status.as_raw_fd());
    let _ = sys::set_cloexec(memfd.as_raw_fd());
    let mut status = Some(File::from(status));
    let code = child_run(&m, memfd, &mut status);
    if let Err(msg) = &code {
        if let Some(mut s) = status.take() {
            let _ = s.write_all(format!("E{msg}").as_bytes());
        }
    }
    code.unwrap_or(1)
}

/// The child's entry after the descriptors are owned: `Err` for a failure before
/// the target ran (reported to the parent), else the target's exit code.
fn child_run(
    m: &Marker,
    memfd: OwnedFd,
    status: &mut Option<File>,
) -> std::result::Result<i32, String> {
    let fail = |msg: String| Err::<i32, String>(msg);
    match sys::dev_ino("/proc/self/exe") {
        Ok(id) if id == (m.dev, m.ino) => {}
        Ok(_) => return fail("the child runs a different executable than the parent".into()),
        Err(e) => return fail(format!("stat /proc/self/exe: {e}")),
    }
    let mut mem = File::from(memfd);
    let mut bytes = Vec::new();
    if let Err(e) = mem
        .rewind()
        .and_then(|()| mem.read_to_end(&mut bytes).map(|_| ()))
    {
        return fail(format!("reading the payload: {e}"));
    }
    drop(mem);
    let payload: Payload = match postcard::from_bytes(&bytes) {
        Ok(p) => p,
        Err(e) => return fail(format!("decoding the payload: {e}")),
    };
    let daemon = payload.me.daemon;
    state::lock().become_child(payload.me);
    crate::exit::install_panic_hook();
    if daemon
        && (sys::set_parent_death_signal(libc::SIGKILL).is_err() || sys::parent_pid() != m.parent)
    {
        return fail("the parent died before the daemon child started".into());
    }
    let base = anchor() as isize;
    let (Ok(t_off), Ok(f_off)) = (
        isize::try_from(payload.trampoline_off),
        isize::try_from(payload.fn_off),
    ) else {
        return fail("bad function offsets".into());
    };
    let tramp_addr = base.wrapping_add(t_off) as usize;
    let fn_addr = base.wrapping_add(f_off) as usize;
    // SAFETY: the parent computed `trampoline_off` from a `Trampoline` of this same
    // executable (device and inode checked above), relative to the same anchor, so
    // `tramp_addr` is that function's address here.
    let tramp = unsafe { std::mem::transmute::<usize, Trampoline>(tramp_addr) };
    let mut ready = || {
        if let Some(mut s) = status.take() {
            let _ = s.write_all(b"R");
        }
    };
    tramp(fn_addr, &payload.arg, &mut ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe_with(bytes: &[u8]) -> OwnedFd {
        let (rd, wr) = sys::pipe().expect("pipe");
        let mut w = File::from(wr);
        w.write_all(bytes).expect("write");
        rd // `w` closes here: the reader sees the bytes, then EOF
    }

    #[test]
    fn handshake_reports_each_outcome() {
        assert!(handshake(pipe_with(b"R"), 1).is_ok());
        match handshake(pipe_with(b"Eargument did not decode"), 7) {
            Err(Error::SpawnFailed { pid: 7, reason }) => {
                assert_eq!(reason, "argument did not decode");
            }
            other => panic!("{other:?}"),
        }
        let e = handshake(pipe_with(b""), 9).expect_err("EOF without a word");
        assert!(matches!(e, Error::EntryNotRun { pid: 9, .. }), "{e}");
        assert!(e.to_string().contains("shmkit::process::init()"), "{e}");
    }

    #[test]
    fn markers_parse_strictly() {
        let m = parse_marker(b"1:5:6:7:8:9").expect("valid");
        assert_eq!((m.memfd, m.status, m.dev, m.ino, m.parent), (5, 6, 7, 8, 9));
        assert!(parse_marker(b"2:5:6:7:8:9").is_none()); // other protocol version
        assert!(parse_marker(b"1:5:5:7:8:9").is_none()); // same fd twice
        assert!(parse_marker(b"1:-1:6:7:8:9").is_none());
        assert!(parse_marker(b"1:5:6").is_none());
        assert!(parse_marker(b"\xff").is_none());
    }

    fn add_one(x: i32) -> i32 {
        x + 1
    }

    #[test]
    fn functions_of_the_executable_are_found_and_offsets_round_trip() {
        let spec = SpawnSpec::new(add_one, &41i32);
        assert!(spec.in_executable);
        let f = anchor().wrapping_add_signed(spec.fn_off);
        assert_eq!(f, add_one as fn(i32) -> i32 as usize);
        let t = anchor().wrapping_add_signed(spec.trampoline_off);
        // SAFETY: `t` is the address of `trampoline::<i32, i32>`, computed exactly as
        // the spawned child computes it.
        let tramp = unsafe { std::mem::transmute::<usize, Trampoline>(t) };
        let mut ready = false;
        let arg = spec.arg.as_ref().expect("encodes").clone();
        // run_target returns the exit code: add_one(41) = 42.
        assert_eq!(tramp(f, &arg, &mut || ready = true), Ok(42));
        assert!(ready);
    }
}
