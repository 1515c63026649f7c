//! Enumerating the shmkit segments on this machine (for `shmkit ls` and `shmkit gc`).

use crate::header::{HeaderSnapshot, HEADER_SIZE, MAGIC, STATE_READY};
use crate::name::{PREFIX, SHM_DIR};
use crate::Kind;
use std::io::{self, Read};

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
}

impl SegmentInfo {
    /// The kind tag, if the header was readable.
    pub fn kind(&self) -> Option<Kind> {
        self.header.map(|h| h.kind)
    }

    /// Stale: its creator is gone, or its header is unusable (never became ready).
    ///
    /// A stale segment may still be in use by processes that opened it; removing its
    /// name (`shmkit gc`) does not disturb them, it only stops new opens.
    pub fn is_stale(&self) -> bool {
        self.problem.is_some() || !self.creator_alive
    }
}

/// Lists every `shmkit.*` object in `/dev/shm`, with its header and creator liveness.
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
        out.push(inspect(name, &entry.path()));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn inspect(name: &str, path: &std::path::Path) -> SegmentInfo {
    let mut info = SegmentInfo {
        name: name.to_owned(),
        file_size: 0,
        header: None,
        creator_alive: false,
        problem: None,
    };
    let mut buf = [0u8; HEADER_SIZE];
    let read = std::fs::File::open(path).and_then(|mut f| {
        info.file_size = f.metadata()?.len();
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    });
    match read {
        Err(e) => info.problem = Some(format!("cannot read: {e}")),
        Ok(n) if n < HEADER_SIZE => {
            info.problem = Some(format!("only {n} bytes, shorter than a header"));
        }
        Ok(_) => match HeaderSnapshot::from_bytes(&buf) {
            Some(h) if h.magic == MAGIC => {
                info.creator_alive = h.creator.is_alive();
                if h.state != STATE_READY {
                    info.problem = Some(format!("not ready (state {})", h.state));
                } else if h.total_size != info.file_size {
                    info.problem = Some(format!(
                        "header says {} bytes, file has {}",
                        h.total_size, info.file_size
                    ));
                }
                info.header = Some(h);
            }
            _ => info.problem = Some("bad magic: not a shmkit segment".into()),
        },
    }
    info
}
