//! Enumerating the shmkit segments on this machine (for `shmkit ls` and `shmkit gc`).

use crate::header::{
    HeaderSnapshot, HEADER_SIZE, MAGIC, STATE_FAILED, STATE_INITIALISING, STATE_READY,
};
use crate::name::{PREFIX, SHM_DIR};
use crate::Kind;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

/// How long a file without a readable header is presumed to be mid-creation.
///
/// A creator writes the header a few system calls after creating the file (see
/// `SegmentOptions::create`), so anything older than this without one is debris.
pub const CREATION_GRACE: Duration = Duration::from_secs(10);

/// One named segment found in `/dev/shm`.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// The user-facing name (without the `shmkit.` prefix).
    pub name: String,
    /// Size of the file in bytes.
    pub file_size: u64,
    /// The header, if it could be read and has the right magic.
    pub header: Option<HeaderSnapshot>,
    /// Whether the creator (pid + start time) still runs.
    pub creator_alive: bool,
    /// Why the header could not be read or is not usable, if so.
    pub problem: Option<String>,
    /// Time since the file was last changed, if known.
    pub age: Option<Duration>,
    /// Whether this user could read the file at all.
    pub readable: bool,
}

impl SegmentInfo {
    /// The kind tag, if the header was readable.
    pub fn kind(&self) -> Option<Kind> {
        self.header.map(|h| h.kind)
    }

    /// The creator's pid, if the header was readable.
    pub fn creator_pid(&self) -> Option<u32> {
        self.header.map(|h| h.creator.pid)
    }

    /// Stale: nobody can use it any more and `shmkit gc` may remove its name.
    ///
    /// That is: its creator has exited (or was killed), or its creator gave up
    /// initialising it, or it has had no readable header for longer than
    /// [`CREATION_GRACE`]. A segment being initialised by a live creator is *not*
    /// stale, nor is one this user cannot read (its state is unknown).
    ///
    /// Note that a segment made to persist is stale once its creator exits. A stale
    /// segment may still be mapped by processes that opened it; removing its name does
    /// not disturb them, it only stops new opens.
    pub fn is_stale(&self) -> bool {
        match &self.header {
            Some(h) => !self.creator_alive || h.state == STATE_FAILED,
            None => self.readable && self.age.is_some_and(|a| a >= CREATION_GRACE),
        }
    }
}

/// Lists every `shmkit.*` object in `/dev/shm`, with its header and creator liveness.
///
/// Never blocks on or follows what it finds (a FIFO or symlink planted in `/dev/shm`
/// is listed with a problem).
///
/// # Errors
/// When `/dev/shm` cannot be read. Unreadable segments are listed with a `problem`.
pub fn list() -> io::Result<Vec<SegmentInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        out.push(inspect_path(name, &entry.path()));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Inspects the one named segment `name` (as [`list`] does), or `None` if there is no
/// `/dev/shm/shmkit.<name>`. `shmkit gc` re-checks each candidate with it just before
/// removing it, narrowing the window in which a new segment could take the name.
pub fn inspect(name: &str) -> Option<SegmentInfo> {
    let path = crate::name::shm_path(name);
    std::fs::symlink_metadata(&path).ok()?;
    Some(inspect_path(name, &path))
}

/// Reads up to `buf.len()` bytes from the start of a regular file, without following
/// symlinks or blocking on FIFOs. Returns (bytes read, file size, age).
fn read_head(path: &Path, buf: &mut [u8]) -> io::Result<(usize, u64, Option<Duration>)> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    let age = meta
        .modified()
        .ok()
        .map(|m| m.elapsed().unwrap_or(Duration::ZERO));
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok((n, meta.len(), age))
}

fn inspect_path(name: &str, path: &Path) -> SegmentInfo {
    let mut info = SegmentInfo {
        name: name.to_owned(),
        file_size: 0,
        header: None,
        creator_alive: false,
        problem: None,
        age: std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .map(|m| m.elapsed().unwrap_or(Duration::ZERO)),
        readable: true,
    };
    let mut buf = [0u8; HEADER_SIZE];
    match read_head(path, &mut buf) {
        Err(e) => {
            info.readable = e.kind() != io::ErrorKind::PermissionDenied;
            info.problem = Some(format!("cannot read: {e}"));
        }
        Ok((n, size, age)) => {
            info.file_size = size;
            info.age = age.or(info.age);
            if n < HEADER_SIZE {
                info.problem = Some(format!("only {n} bytes, shorter than a header"));
            } else {
                match HeaderSnapshot::from_bytes(&buf) {
                    Some(h) if h.magic == MAGIC => {
                        info.creator_alive = h.creator.is_alive();
                        info.problem = match h.state {
                            STATE_READY if h.total_size != size => Some(format!(
                                "header says {} bytes, file has {size}",
                                h.total_size
                            )),
                            STATE_READY => None,
                            STATE_INITIALISING if info.creator_alive => {
                                Some("being initialised".into())
                            }
                            STATE_INITIALISING => Some("creator died while initialising".into()),
                            STATE_FAILED => Some("creator failed to initialise it".into()),
                            s => Some(format!("unknown state {s}")),
                        };
                        info.header = Some(h);
                    }
                    _ => info.problem = Some("bad magic: not a shmkit segment".into()),
                }
            }
        }
    }
    info
}
