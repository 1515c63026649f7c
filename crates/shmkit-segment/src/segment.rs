//! [`Segment`]: one mapped shared-memory object with a validated header.

use crate::error::{Error, Result};
use crate::header::{Expect, Header, HeaderError, HeaderSnapshot, HEADER_SIZE};
use crate::name::{os_name, shm_path, validate_name};
use crate::shim::pid::{self, ProcessId};
use crate::shim::time::Deadline;
use crate::{sys, Kind, Shared};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

/// The largest segment shmkit maps (64 TiB): far above any machine's memory, well
/// below where sizes could overflow.
pub const MAX_SEGMENT_SIZE: u64 = 1 << 46;

/// Default time an opener waits for a creator to publish `READY`.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(2);

/// What backs a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A POSIX shm object `/dev/shm/shmkit.<name>`, opened by name.
    Named(String),
    /// A memfd: inherited over fork, reopened from a token's fd after exec.
    Anonymous,
    /// A regular file at a path.
    File(PathBuf),
}

/// How to create or open a segment. Start with [`SegmentOptions::new`].
///
/// ```
/// use shmkit_segment::{Kind, SegmentOptions};
/// let seg = SegmentOptions::new(Kind::RAW, 4096).create_anonymous(|_| {})?;
/// assert_eq!(seg.data_len(), 4096);
/// # Ok::<(), shmkit_segment::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    kind: Kind,
    kind_version: u32,
    data_len: usize,
    mode: u32,
    prefault: bool,
    huge_pages: bool,
    persist: bool,
    open_timeout: Duration,
}

impl SegmentOptions {
    /// Options for a segment holding a `kind` object with `data_len` bytes of data
    /// (after the header). Defaults: kind version 1, mode 0600, prefault on, no huge
    /// pages, unlinked when the creator's handle drops, open timeout 2 s.
    pub fn new(kind: Kind, data_len: usize) -> Self {
        SegmentOptions {
            kind,
            kind_version: 1,
            data_len,
            mode: 0o600,
            prefault: true,
            huge_pages: false,
            persist: false,
            open_timeout: DEFAULT_OPEN_TIMEOUT,
        }
    }

    /// The layout version of the object (checked by openers).
    pub fn kind_version(mut self, v: u32) -> Self {
        self.kind_version = v;
        self
    }

    /// Permission bits for a named or file segment (default 0600: owner only).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Pre-fault (reserve and populate) pages at creation and open (default on).
    pub fn prefault(mut self, on: bool) -> Self {
        self.prefault = on;
        self
    }

    /// Use huge pages: `MFD_HUGETLB` for anonymous segments (needs reserved huge pages
    /// and a size that is a multiple of the huge page size), `MADV_HUGEPAGE` otherwise.
    pub fn huge_pages(mut self, on: bool) -> Self {
        self.huge_pages = on;
        self
    }

    /// Keep a named segment when the creator's handle drops (remove it with
    /// [`unlink`] or `shmkit gc`).
    ///
    /// Note that [`list`](crate::list) calls a segment stale once its creator has
    /// exited, so `shmkit gc` removes a persisted segment after its creator is gone.
    pub fn persist(mut self, on: bool) -> Self {
        self.persist = on;
        self
    }

    /// How long an opener waits for the creator to finish initialising.
    pub fn open_timeout(mut self, t: Duration) -> Self {
        self.open_timeout = t;
        self
    }

    fn expect(&self) -> Expect {
        Expect {
            kind: self.kind,
            kind_version: self.kind_version,
        }
    }

    fn total_size(&self) -> Result<u64> {
        let total = (self.data_len as u64).saturating_add(HEADER_SIZE as u64);
        if total > MAX_SEGMENT_SIZE || self.data_len > isize::MAX as usize - HEADER_SIZE {
            return Err(Error::TooLarge {
                requested: total,
                max: MAX_SEGMENT_SIZE,
            });
        }
        Ok(total)
    }

    /// Creates the named segment `name`, runs `init` on it, then publishes it ready.
    ///
    /// Openers in other processes wait until `init` has returned. If `init` panics the
    /// segment is marked failed and unlinked, and the panic continues.
    ///
    /// # Errors
    /// `InvalidName`, `AlreadyExists`, `PermissionDenied`, `TooLarge`, or `Io`.
    pub fn create(&self, name: &str, init: impl FnOnce(&Segment)) -> Result<Segment> {
        validate_name(name)?;
        let total = self.total_size()?;
        let os = os_name(name);
        let fd = sys::shm_open(&os, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, self.mode)
            .map_err(|e| Error::from_open("shm_open", name, e))?;
        let undo = Undo::ShmUnlink(os);
        self.create_on(fd, Backing::Named(name.to_owned()), total, undo, init)
    }

    /// Creates an anonymous (memfd) segment, runs `init`, publishes it ready.
    ///
    /// Its size is sealed: no process can truncate it under a mapping.
    ///
    /// # Errors
    /// `TooLarge` or `Io` (`memfd_create` fails with huge pages when none are reserved).
    pub fn create_anonymous(&self, init: impl FnOnce(&Segment)) -> Result<Segment> {
        let total = self.total_size()?;
        let label = memfd_label(self.kind);
        let fd = sys::memfd_create(&label, self.huge_pages)
            .map_err(|e| Error::io("memfd_create", "memfd", e))?;
        self.create_on(fd, Backing::Anonymous, total, Undo::Nothing, init)
    }

    /// Creates a file-backed segment at `path` (which must not exist).
    ///
    /// If `init` panics the segment is marked failed and the file removed.
    ///
    /// # Errors
    /// `AlreadyExists`, `PermissionDenied`, `TooLarge`, or `Io`.
    pub fn create_file(&self, path: &Path, init: impl FnOnce(&Segment)) -> Result<Segment> {
        let total = self.total_size()?;
        let desc = path.display().to_string();
        let c = path_cstring(path, &desc)?;
        let fd = sys::open(&c, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, self.mode)
            .map_err(|e| Error::from_open("open", &desc, e))?;
        let undo = Undo::RemoveFile(c);
        self.create_on(fd, Backing::File(path.to_owned()), total, undo, init)
    }

    /// Sizes, maps and initialises a freshly created object.
    ///
    /// Order matters for openers and for `shmkit gc`: the header (with the creator's
    /// pid) is written right after the mapping exists, *before* the slow part
    /// (reserving and prefaulting pages, running `init`), so that the window in which a
    /// file exists without a readable header is a few system calls long.
    fn create_on(
        &self,
        fd: OwnedFd,
        backing: Backing,
        total: u64,
        undo: Undo,
        init: impl FnOnce(&Segment),
    ) -> Result<Segment> {
        // Until the Segment exists, `undo` removes the half-made name on any error.
        let undo = UndoOnDrop(undo);
        let desc = describe(&backing, self.kind);
        if self.mode != 0o600 && backing != Backing::Anonymous {
            // The umask may have removed bits: set exactly what was asked.
            sys::fchmod(fd.as_fd(), self.mode).map_err(|e| Error::io("fchmod", &desc, e))?;
        }
        sys::ftruncate(fd.as_fd(), total).map_err(|e| Error::io("ftruncate", &desc, e))?;
        if backing == Backing::Anonymous && !self.huge_pages {
            sys::seal_size(fd.as_fd()).map_err(|e| Error::io("fcntl(F_ADD_SEALS)", &desc, e))?;
        }
        let map = self.map(&fd, total, &desc)?;
        let creator = ProcessId::current();
        let seg = Segment::from_parts(map, fd, backing, total, Some(creator.pid));
        // From here on the Segment's own drop removes a named segment (if the name still
        // refers to it), and `Failed` removes a file and marks the header failed.
        undo.disarm();
        seg.header()
            .begin_init(self.kind, self.kind_version, total, creator);
        let failed = FailOnDrop(&seg);
        if self.prefault && !self.huge_pages {
            sys::fallocate(seg.as_fd(), total).map_err(|e| Error::io("fallocate", &desc, e))?;
            seg.populate();
        }
        init(&seg);
        std::mem::forget(failed);
        seg.header().publish_ready();
        seg.inner.set_persist(self.persist);
        seg.inner.set_snapshot(seg.header().snapshot());
        Ok(seg)
    }

    /// Maps `len` bytes of `fd`, shared, read-write. Never prefaults: a creator
    /// prefaults after writing the header, an opener after validating it (so a hostile
    /// file's size cannot make us allocate memory).
    fn map(&self, fd: &OwnedFd, len: u64, desc: &str) -> Result<memmap2::MmapRaw> {
        let len = usize::try_from(len).map_err(|_| Error::TooLarge {
            requested: len,
            max: MAX_SEGMENT_SIZE,
        })?;
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(fd.as_raw_fd())
            .map_err(|e| Error::io("mmap", desc, e))?;
        if self.huge_pages {
            // Best effort: transparent huge pages may be disabled for shmem.
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        Ok(map)
    }

    /// Opens the named segment `name`, waiting up to the open timeout for it to be ready.
    ///
    /// The options' kind and kind version are checked; their `data_len` is not (the
    /// segment has the size its creator gave it: check [`Segment::data_len`] against
    /// your layout — every access is bounds-checked anyway).
    ///
    /// # Errors
    /// `InvalidName`, `NotFound`, `PermissionDenied`, `Corrupt`, `Incompatible`,
    /// `WrongKind`, `KindVersion`, `Truncated`, `CreatorDied`, `CreatorFailed`,
    /// `NotReady`, or `Io` — each specific, never a crash.
    pub fn open(&self, name: &str) -> Result<Segment> {
        validate_name(name)?;
        let fd = sys::shm_open(&os_name(name), libc::O_RDWR, 0)
            .map_err(|e| Error::from_open("shm_open", name, e))?;
        self.open_on(fd, Backing::Named(name.to_owned()))
    }

    /// Opens a file-backed segment.
    ///
    /// # Errors
    /// As [`SegmentOptions::open`].
    pub fn open_file(&self, path: &Path) -> Result<Segment> {
        let desc = path.display().to_string();
        let c = path_cstring(path, &desc)?;
        let fd = sys::open(&c, libc::O_RDWR, 0).map_err(|e| Error::from_open("open", &desc, e))?;
        self.open_on(fd, Backing::File(path.to_owned()))
    }

    /// Opens a segment from a descriptor (an inherited memfd, or one received over a
    /// Unix socket). The descriptor is consumed.
    ///
    /// # Errors
    /// As [`SegmentOptions::open`].
    pub fn open_fd(&self, fd: OwnedFd) -> Result<Segment> {
        self.open_on(fd, Backing::Anonymous)
    }

    /// Opens `name` if it exists, or creates it (running `init`) if not. Race-free:
    /// when many processes call this at once exactly one creates, and the others open
    /// the segment it made (after it is ready). Returns whether this call created it.
    ///
    /// # Errors
    /// As [`SegmentOptions::create`] and [`SegmentOptions::open`].
    pub fn open_or_create(
        &self,
        name: &str,
        init: impl FnOnce(&Segment),
    ) -> Result<(Segment, bool)> {
        validate_name(name)?;
        let mut init = Some(init);
        for _ in 0..64 {
            match self.create(name, |s| {
                if let Some(f) = init.take() {
                    f(s);
                }
            }) {
                Ok(seg) => return Ok((seg, true)),
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
            match self.open(name) {
                Ok(seg) => return Ok((seg, false)),
                // Unlinked between our create and open: try again.
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::NotReady {
            segment: name.to_owned(),
            waited: self.open_timeout,
        })
    }

    fn open_on(&self, fd: OwnedFd, backing: Backing) -> Result<Segment> {
        let desc = describe(&backing, self.kind);
        let deadline = Deadline::after(self.open_timeout);
        // The creator sizes the file before writing the header: wait for the size.
        let size = loop {
            let st = sys::fstat(fd.as_fd()).map_err(|e| Error::io("fstat", &desc, e))?;
            if st.size >= HEADER_SIZE as u64 {
                break st.size;
            }
            if deadline.is_expired() {
                return Err(Error::Truncated {
                    segment: desc,
                    expected: HEADER_SIZE as u64,
                    found: st.size,
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        if size > MAX_SEGMENT_SIZE {
            return Err(Error::Corrupt {
                segment: desc,
                reason: format!("file size {size} exceeds the {MAX_SEGMENT_SIZE} byte limit"),
            });
        }
        let map = self.map(&fd, size, &desc)?;
        let seg = Segment::from_parts(map, fd, backing, size, None);
        let snap = seg
            .header()
            .wait_ready(self.expect(), size, deadline, |c| c.is_alive())
            .map_err(|e| {
                header_error(
                    e,
                    desc,
                    self.kind,
                    self.kind_version,
                    size,
                    self.open_timeout,
                )
            })?;
        seg.inner.set_snapshot(snap);
        if self.prefault {
            seg.populate();
        }
        Ok(seg)
    }
}

fn header_error(
    e: HeaderError,
    segment: String,
    kind: Kind,
    kind_version: u32,
    size: u64,
    waited: Duration,
) -> Error {
    match e {
        HeaderError::Corrupt(reason) => Error::Corrupt { segment, reason },
        HeaderError::Incompatible { found } => Error::Incompatible {
            segment,
            expected: crate::header::FORMAT_VERSION,
            found,
        },
        HeaderError::WrongKind { found } => Error::WrongKind {
            segment,
            expected: kind,
            found,
        },
        HeaderError::KindVersion { found } => Error::KindVersion {
            segment,
            kind,
            expected: kind_version,
            found,
        },
        HeaderError::Truncated { expected } => Error::Truncated {
            segment,
            expected,
            found: size,
        },
        HeaderError::CreatorDied { pid } => Error::CreatorDied { segment, pid },
        HeaderError::CreatorFailed => Error::CreatorFailed { segment },
        HeaderError::NotReady => Error::NotReady { segment, waited },
    }
}

fn describe(backing: &Backing, kind: Kind) -> String {
    match backing {
        Backing::Named(n) => n.clone(),
        Backing::Anonymous => format!("memfd:{kind}"),
        Backing::File(p) => p.display().to_string(),
    }
}

fn path_cstring(path: &Path, desc: &str) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::InvalidName {
        name: desc.to_owned(),
        reason: "the path contains a NUL byte",
    })
}

/// The label of an anonymous segment's memfd (shown in `/proc/<pid>/fd`).
fn memfd_label(kind: Kind) -> CString {
    let mut label = *b"shmkit:????\0";
    for (dst, b) in label[7..11].iter_mut().zip(kind.tag()) {
        if b.is_ascii_graphic() {
            *dst = b;
        }
    }
    CString::from_vec_with_nul(label.to_vec()).unwrap_or_default()
}

/// How to remove a half-created object whose `Segment` does not exist yet.
enum Undo {
    Nothing,
    ShmUnlink(CString),
    RemoveFile(CString),
}

/// Runs an [`Undo`] when dropped, unless disarmed.
struct UndoOnDrop(Undo);

impl UndoOnDrop {
    fn disarm(mut self) {
        self.0 = Undo::Nothing;
    }
}

impl Drop for UndoOnDrop {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.0, Undo::Nothing) {
            Undo::Nothing => {}
            Undo::ShmUnlink(n) => {
                let _ = sys::shm_unlink(&n);
            }
            Undo::RemoveFile(p) => {
                let _ = sys::unlink(&p);
            }
        }
    }
}

/// Marks the header failed if creation does not finish (an error or a panic in
/// `init`), and removes a file-backed segment's file (a named one is unlinked by the
/// `Segment`'s drop).
struct FailOnDrop<'a>(&'a Segment);

impl Drop for FailOnDrop<'_> {
    fn drop(&mut self) {
        self.0.header().publish_failed();
        if let Backing::File(path) = self.0.backing() {
            if let Ok(c) = CString::new(path.as_os_str().as_bytes()) {
                if same_file(&self.0.inner.fd, &c) {
                    let _ = sys::unlink(&c);
                }
            }
        }
    }
}

/// A mapped shared-memory segment: a [`Header`] followed by `data_len()` bytes.
///
/// Cloning is cheap (an `Arc`); every clone maps the same memory. After `fork` the
/// child's copies map the same memory too. A named segment is unlinked when the last
/// handle of the *creating process* drops, unless it was made to persist; handles in
/// other processes (or a forked child) never unlink it.
///
/// Accessors hand out `&T` only for [`Shared`] types (valid for every bit pattern,
/// mutated only through atomics), always bounds- and alignment-checked.
///
/// ```
/// use shmkit_segment::{shim::atomic::{AtomicU64, Ordering}, Kind, Segment};
/// let seg = Segment::create_anonymous(Kind::RAW, 64)?;
/// let counter: &AtomicU64 = seg.get(8)?;
/// counter.fetch_add(1, Ordering::Relaxed);
/// assert!(seg.get::<AtomicU64>(64).is_err()); // out of bounds
/// assert!(seg.get::<AtomicU64>(3).is_err()); // misaligned
/// # Ok::<(), shmkit_segment::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Segment {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    map: memmap2::MmapRaw,
    fd: OwnedFd,
    backing: Backing,
    total_size: u64,
    created: bool,
    owner_pid: u32,
    persist: std::sync::Mutex<bool>,
    snapshot: std::sync::OnceLock<HeaderSnapshot>,
}

impl Inner {
    fn set_persist(&self, on: bool) {
        *self.persist.lock().unwrap_or_else(|e| e.into_inner()) = on;
    }

    fn set_snapshot(&self, s: HeaderSnapshot) {
        let _ = self.snapshot.set(s);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.created
            || self.owner_pid != pid::current()
            || *self.persist.lock().unwrap_or_else(|e| e.into_inner())
        {
            return;
        }
        match &self.backing {
            Backing::Named(name) => {
                // Unlink only if the name still refers to our object (someone may have
                // unlinked it and created another one of the same name meanwhile).
                let path = CString::new(shm_path(name).as_os_str().as_bytes()).unwrap_or_default();
                if same_file(&self.fd, &path) {
                    let _ = sys::shm_unlink(&os_name(name));
                }
            }
            Backing::File(_) | Backing::Anonymous => {}
        }
    }
}

fn same_file(fd: &OwnedFd, path: &CString) -> bool {
    match (sys::fstat(fd.as_fd()), sys::stat(path)) {
        (Ok(a), Ok(b)) => a.dev == b.dev && a.ino == b.ino,
        _ => false,
    }
}

impl Segment {
    fn from_parts(
        map: memmap2::MmapRaw,
        fd: OwnedFd,
        backing: Backing,
        total_size: u64,
        creator_pid: Option<u32>,
    ) -> Self {
        Segment {
            inner: Arc::new(Inner {
                map,
                fd,
                backing,
                total_size,
                created: creator_pid.is_some(),
                owner_pid: creator_pid.unwrap_or(0),
                persist: std::sync::Mutex::new(false),
                snapshot: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Creates a named segment of `data_len` zeroed bytes holding a `kind` object.
    ///
    /// # Errors
    /// See [`SegmentOptions::create`].
    pub fn create(name: &str, kind: Kind, data_len: usize) -> Result<Segment> {
        SegmentOptions::new(kind, data_len).create(name, |_| {})
    }

    /// Creates an anonymous (memfd) segment of `data_len` zeroed bytes.
    ///
    /// # Errors
    /// See [`SegmentOptions::create_anonymous`].
    pub fn create_anonymous(kind: Kind, data_len: usize) -> Result<Segment> {
        SegmentOptions::new(kind, data_len).create_anonymous(|_| {})
    }

    /// Opens the named segment `name` holding a `kind` object of layout version 1.
    ///
    /// # Errors
    /// See [`SegmentOptions::open`].
    pub fn open(name: &str, kind: Kind) -> Result<Segment> {
        SegmentOptions::new(kind, 0).open(name)
    }

    /// The header at offset 0.
    pub fn header(&self) -> &Header {
        let ptr = self.inner.map.as_ptr().cast::<Header>();
        // SAFETY: every Segment maps at least HEADER_SIZE bytes (checked at creation
        // and open), the mapping is page aligned (so aligned for Header), lives as long
        // as `self`, and Header consists only of atomics, valid for any bit pattern.
        unsafe { &*ptr }
    }

    /// Header fields as validated at open (or written at creation).
    pub fn info(&self) -> HeaderSnapshot {
        *self.inner.snapshot.get_or_init(|| self.header().snapshot())
    }

    /// What backs this segment.
    pub fn backing(&self) -> &Backing {
        &self.inner.backing
    }

    /// The name of a named segment.
    pub fn name(&self) -> Option<&str> {
        match &self.inner.backing {
            Backing::Named(n) => Some(n),
            _ => None,
        }
    }

    /// The kind tag in the header.
    pub fn kind(&self) -> Kind {
        self.info().kind
    }

    /// Total mapped size, header included.
    pub fn total_size(&self) -> u64 {
        self.inner.total_size
    }

    /// Bytes in the data area (after the header).
    pub fn data_len(&self) -> usize {
        self.inner.map.len() - HEADER_SIZE
    }

    /// Pointer to the start of the data area (128-byte aligned).
    pub fn data_ptr(&self) -> NonNull<u8> {
        let base = self.inner.map.as_mut_ptr();
        // SAFETY: the mapping is at least HEADER_SIZE bytes long, so base+HEADER_SIZE
        // is within (or one past the end of) the same allocation.
        let p = unsafe { base.add(HEADER_SIZE) };
        NonNull::new(p).unwrap_or(NonNull::dangling())
    }

    /// A bounds-checked pointer to `len` bytes at `offset` of the data area.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if the range does not fit.
    pub fn range(&self, offset: usize, len: usize) -> Result<NonNull<u8>> {
        let size = self.data_len();
        match offset.checked_add(len) {
            Some(end) if end <= size => {}
            _ => {
                return Err(Error::OutOfBounds {
                    offset: offset as u64,
                    len: len as u64,
                    size: size as u64,
                })
            }
        }
        // SAFETY: offset + len <= data_len was checked just above.
        let p = unsafe { self.data_ptr().as_ptr().add(offset) };
        Ok(NonNull::new(p).unwrap_or(NonNull::dangling()))
    }

    /// A reference to the `T` at `offset` of the data area.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::Misaligned`].
    pub fn get<T: Shared>(&self, offset: usize) -> Result<&T> {
        let p = self.range(offset, std::mem::size_of::<T>())?;
        if p.as_ptr() as usize % std::mem::align_of::<T>() != 0 {
            return Err(Error::Misaligned {
                offset: offset as u64,
                align: std::mem::align_of::<T>() as u64,
            });
        }
        // SAFETY: in bounds and aligned (checked above), inside a mapping that lives as
        // long as `self`; `T: Shared` is valid for every bit pattern and mutated only
        // through atomics/cells, so a shared reference is sound even while other
        // processes write it.
        Ok(unsafe { &*p.as_ptr().cast::<T>() })
    }

    /// A slice of `count` `T`s at `offset` of the data area.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::Misaligned`].
    pub fn get_slice<T: Shared>(&self, offset: usize, count: usize) -> Result<&[T]> {
        let bytes = count
            .checked_mul(std::mem::size_of::<T>())
            .ok_or(Error::OutOfBounds {
                offset: offset as u64,
                len: u64::MAX,
                size: self.data_len() as u64,
            })?;
        let p = self.range(offset, bytes)?;
        if p.as_ptr() as usize % std::mem::align_of::<T>() != 0 {
            return Err(Error::Misaligned {
                offset: offset as u64,
                align: std::mem::align_of::<T>() as u64,
            });
        }
        // SAFETY: as in `get`: in bounds, aligned, lives as long as `self`, and
        // `T: Shared` tolerates concurrent atomic mutation and any bit pattern.
        Ok(unsafe { std::slice::from_raw_parts(p.as_ptr().cast::<T>(), count) })
    }

    /// The segment's descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }

    /// Whether this process created the segment (and will unlink a named one on drop).
    pub fn is_creator(&self) -> bool {
        self.inner.created && self.inner.owner_pid == pid::current()
    }

    /// Keep the named segment after the creator's handles drop.
    pub fn persist(&self) {
        self.inner.set_persist(true);
    }

    /// A token that rebuilds this segment in another process (see [`crate::Token`]).
    ///
    /// # Errors
    /// `Io` if the descriptor cannot be examined.
    pub fn token(&self) -> Result<crate::Token> {
        crate::token::token_of(self)
    }

    /// A short human description: name, path, or `memfd:<kind>`.
    pub fn describe(&self) -> String {
        describe(&self.inner.backing, self.info().kind)
    }

    /// Faults every page in, writable, so first use does not fault: one
    /// `MADV_POPULATE_WRITE` (Linux 5.14+), or a read of every page on older kernels.
    /// Best effort: errors are ignored (the pages then fault in on first use).
    fn populate(&self) {
        if self
            .inner
            .map
            .advise(memmap2::Advice::PopulateWrite)
            .is_ok()
        {
            return;
        }
        let base = self.inner.map.as_ptr();
        for off in (0..self.inner.map.len()).step_by(4096) {
            let p = base.wrapping_add(off);
            // SAFETY: `off` < the mapping's length, so `p` is in bounds of the live
            // mapping; a volatile read of a byte of shared memory is fine whatever other
            // processes write there (u8 is valid for every bit pattern).
            let _ = unsafe { std::ptr::read_volatile(p) };
        }
    }

    pub(crate) fn stat(&self) -> Result<sys::Stat> {
        sys::fstat(self.as_fd()).map_err(|e| Error::io("fstat", &self.describe(), e))
    }
}

/// Removes the name `name` (mappings stay valid until every process unmaps them).
///
/// # Errors
/// `InvalidName`, `NotFound`, `PermissionDenied` or `Io`.
pub fn unlink(name: &str) -> Result<()> {
    validate_name(name)?;
    sys::shm_unlink(&os_name(name)).map_err(|e| Error::from_open("shm_unlink", name, e))
}
