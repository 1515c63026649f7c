//! Tokens: a serialisable description from which another process rebuilds a handle.
//!
//! A token names the segment (by name, path, or creator pid + fd), the kind and
//! version of the object, and its offset in the data area. It crosses `exec` (the
//! spawn start method), a pipe or a queue as ordinary serde data.
//!
//! An anonymous (memfd) segment is reopened, in order, from an inherited descriptor
//! with the same number (after fork, or when the spawner kept it open across exec),
//! or from `/proc/<creator>/fd/<n>` while the creator is alive. Either way the file's
//! (device, inode) must match the token's, so a reused descriptor number is never
//! mistaken for the segment.

use crate::error::{Error, Result};
use crate::segment::{Backing, Segment, SegmentOptions};
use crate::shim::pid::ProcessId;
use crate::{sys, Kind};
use serde::{Deserialize, Serialize};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Where a token's segment lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Source {
    /// A named segment.
    Named(String),
    /// A file-backed segment.
    File(PathBuf),
    /// An anonymous segment, by its creator's descriptor.
    Fd {
        /// The process holding the descriptor.
        holder: ProcessId,
        /// The descriptor number in that process.
        fd: i32,
        /// Device of the memfd.
        dev: u64,
        /// Inode of the memfd.
        ino: u64,
    },
}

/// A serialisable reference to an object in a segment.
///
/// ```
/// use shmkit_segment::{Kind, Segment, Token};
/// let seg = Segment::create_anonymous(Kind::RAW, 64)?;
/// let token: Token = seg.token()?.with_offset(16);
/// let back = Token::from_bytes(&token.to_bytes())?;
/// let again = back.open()?;
/// assert_eq!(again.total_size(), seg.total_size());
/// # Ok::<(), shmkit_segment::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    /// Where the segment is.
    pub source: Source,
    /// The kind in its header.
    pub kind: Kind,
    /// The kind's layout version.
    pub kind_version: u32,
    /// Offset of the object in the data area.
    pub offset: u64,
}

impl Token {
    /// The same token pointing at `offset` of the data area.
    pub fn with_offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Encodes the token with shmkit's codec (postcard).
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a token made by [`Token::to_bytes`].
    ///
    /// # Errors
    /// [`Error::TokenStale`] if the bytes are not a token.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        postcard::from_bytes(bytes).map_err(|e| Error::TokenStale {
            reason: format!("not a token: {e}"),
        })
    }

    /// Opens the segment, checking kind and version.
    ///
    /// # Errors
    /// [`Error::TokenStale`] when an anonymous segment is no longer reachable; else as
    /// [`SegmentOptions::open`]. The offset is checked by whoever uses it.
    pub fn open(&self) -> Result<Segment> {
        let opts = SegmentOptions::new(self.kind, 0).kind_version(self.kind_version);
        match &self.source {
            Source::Named(name) => opts.open(name),
            Source::File(path) => opts.open_file(path),
            Source::Fd {
                holder,
                fd,
                dev,
                ino,
            } => {
                let want = (*dev, *ino);
                if let Ok(st) = sys::fstat_raw(*fd) {
                    if (st.dev, st.ino) == want {
                        let dup = sys::dup_raw(*fd).map_err(|e| Error::io("dup", "memfd", e))?;
                        return opts.open_fd(dup);
                    }
                }
                let path = format!("/proc/{}/fd/{}\0", holder.pid, fd);
                let c = std::ffi::CStr::from_bytes_with_nul(path.as_bytes()).map_err(|e| {
                    Error::TokenStale {
                        reason: e.to_string(),
                    }
                })?;
                let stale = |why: String| Error::TokenStale {
                    reason: format!("anonymous segment of pid {} fd {}: {why}", holder.pid, fd),
                };
                if !holder.is_alive() {
                    return Err(stale(
                        "the holder has exited and the fd was not inherited".into(),
                    ));
                }
                let f = sys::open(c, libc::O_RDWR, 0).map_err(|e| stale(e.to_string()))?;
                let st =
                    sys::fstat(std::os::fd::AsFd::as_fd(&f)).map_err(|e| stale(e.to_string()))?;
                if (st.dev, st.ino) != want {
                    return Err(stale("the descriptor now names another file".into()));
                }
                opts.open_fd(f)
            }
        }
    }
}

pub(crate) fn token_of(seg: &Segment) -> Result<Token> {
    let info = seg.info();
    let source = match seg.backing() {
        Backing::Named(n) => Source::Named(n.clone()),
        Backing::File(p) => Source::File(p.clone()),
        Backing::Anonymous => {
            let st = seg.stat()?;
            Source::Fd {
                holder: ProcessId::current(),
                fd: seg.as_fd().as_raw_fd(),
                dev: st.dev,
                ino: st.ino,
            }
        }
    };
    Ok(Token {
        source,
        kind: info.kind,
        kind_version: info.kind_version,
        offset: 0,
    })
}
