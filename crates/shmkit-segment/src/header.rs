//! The segment header and its create → initialise → publish-ready protocol.
//!
//! ```text
//! offset size field               written by the creator
//!      0    8 magic               b"SHMKITSG" (little-endian u64)
//!      8    4 format_version      FORMAT_VERSION
//!     12    4 state               bits 0..31: UNINIT(0) -> INITIALISING(1) -> READY(2) | FAILED(3)
//!                                 bit 31: WAITERS (an opener sleeps on this word)
//!     16    4 kind                four ASCII bytes naming what lives in the segment
//!     20    4 kind_version        that object's own layout version
//!     24    8 total_size          bytes of the whole segment, header included
//!     32    4 creator_pid
//!     36    4 flags               reserved, 0
//!     40    8 creator_start_time  clock ticks since boot (pid-reuse guard)
//!     48    8 data_offset         HEADER_SIZE
//!     56   72 reserved            0
//! ```
//!
//! Every field is an atomic: other processes (or a fuzzer) may write the header at
//! any time, so it is only ever read with atomic loads and then validated.
//!
//! Protocol: the creator writes every field with `Relaxed` stores, then swaps `state`
//! to `INITIALISING` (Release), initialises the data area, then swaps `state` to
//! `READY` (Release, pairs with the opener's Acquire load in [`Header::wait_ready`]).
//!
//! Waking follows the rule of every shmkit wait: the waker makes a system call only
//! when a waiter has announced itself. An opener that finds `INITIALISING` sets the
//! `WAITERS` bit with a compare-exchange on `state` before it sleeps on the word; the
//! creator's swaps return the previous word, and only if it carried `WAITERS` does the
//! creator call `FUTEX_WAKE`. Both sides modify the same word, so either the opener's
//! compare-exchange fails (the state moved on: it re-checks) or the creator's swap
//! sees the bit. An opener never sets the bit on an `UNINIT` word — such a file may
//! not be a shmkit segment at all — so it polls that short window (the creator writes
//! the header a few system calls after creating the file).
//!
//! An opener that sees `INITIALISING` also checks the creator's (pid, start time) every
//! few milliseconds and reports a creator that died mid-initialisation.

use crate::shim::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::shim::futex;
use crate::shim::pid::ProcessId;
use crate::shim::time::Deadline;
use crate::Kind;
use std::time::Duration;

/// The magic number at offset 0.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMKITSG");
/// Version of the header format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes reserved for the header; the data area starts here (128-byte aligned).
pub const HEADER_SIZE: usize = 128;

/// `state`: nothing written yet (a fresh, zeroed file).
pub const STATE_UNINIT: u32 = 0;
/// `state`: header written, data area being initialised by the creator.
pub const STATE_INITIALISING: u32 = 1;
/// `state`: ready for use.
pub const STATE_READY: u32 = 2;
/// `state`: the creator's initialiser failed; the segment is unusable.
pub const STATE_FAILED: u32 = 3;

/// Bit 31 of the `state` word: an opener sleeps on it (futex) and must be woken.
pub const WAITERS: u32 = 1 << 31;

/// How long an opener sleeps between liveness checks of an initialising creator.
const POLL_SLICE: Duration = Duration::from_millis(5);

/// How long an opener sleeps between looks at an `UNINIT` header (loom yields instead).
#[cfg(not(shmkit_loom))]
const UNINIT_POLL: Duration = Duration::from_micros(200);

/// The header at offset 0 of every segment. See the module docs for the layout.
#[repr(C)]
#[derive(Debug)]
pub struct Header {
    magic: AtomicU64,
    format_version: AtomicU32,
    state: AtomicU32,
    kind: AtomicU32,
    kind_version: AtomicU32,
    total_size: AtomicU64,
    creator_pid: AtomicU32,
    flags: AtomicU32,
    creator_start_time: AtomicU64,
    data_offset: AtomicU64,
    reserved: [AtomicU64; 9],
}

#[cfg(not(shmkit_loom))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Header>() == HEADER_SIZE);
    assert!(align_of::<Header>() == 8);
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, format_version) == 8);
    assert!(offset_of!(Header, state) == 12);
    assert!(offset_of!(Header, kind) == 16);
    assert!(offset_of!(Header, kind_version) == 20);
    assert!(offset_of!(Header, total_size) == 24);
    assert!(offset_of!(Header, creator_pid) == 32);
    assert!(offset_of!(Header, flags) == 36);
    assert!(offset_of!(Header, creator_start_time) == 40);
    assert!(offset_of!(Header, data_offset) == 48);
    assert!(offset_of!(Header, reserved) == 56);
};

/// A plain copy of the header's fields, read with `Relaxed` loads (or from bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSnapshot {
    /// Magic number.
    pub magic: u64,
    /// Header format version.
    pub format_version: u32,
    /// Init state (without the [`WAITERS`] bit).
    pub state: u32,
    /// Kind tag.
    pub kind: Kind,
    /// The kind's layout version.
    pub kind_version: u32,
    /// Total size in bytes.
    pub total_size: u64,
    /// Creator (pid, start time).
    pub creator: ProcessId,
    /// Data area offset.
    pub data_offset: u64,
}

impl HeaderSnapshot {
    /// Decodes the first [`HEADER_SIZE`] bytes of a segment file (for listings, which
    /// read with `pread` rather than mapping). Returns `None` if `bytes` is too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let u32_at = |o: usize| -> Option<u32> {
            Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?))
        };
        let u64_at = |o: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?))
        };
        Some(HeaderSnapshot {
            magic: u64_at(0)?,
            format_version: u32_at(8)?,
            state: u32_at(12)? & !WAITERS,
            kind: Kind(u32_at(16)?),
            kind_version: u32_at(20)?,
            total_size: u64_at(24)?,
            creator: ProcessId {
                pid: u32_at(32)?,
                start_time: u64_at(40)?,
            },
            data_offset: u64_at(48)?,
        })
    }
}

/// What an opener expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// Kind tag.
    pub kind: Kind,
    /// The kind's layout version.
    pub kind_version: u32,
}

/// Why [`Header::wait_ready`] or [`Header::validate`] refused a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Bad magic or an impossible state/size.
    Corrupt(String),
    /// Wrong header format version.
    Incompatible {
        /// Found version.
        found: u32,
    },
    /// Wrong kind.
    WrongKind {
        /// Found kind.
        found: Kind,
    },
    /// Wrong kind layout version.
    KindVersion {
        /// Found version.
        found: u32,
    },
    /// The header's total size differs from the file's.
    Truncated {
        /// Size the header claims.
        expected: u64,
    },
    /// The creator died while initialising.
    CreatorDied {
        /// The creator's pid.
        pid: u32,
    },
    /// The creator marked the segment failed.
    CreatorFailed,
    /// Not ready before the deadline.
    NotReady,
}

impl Header {
    /// A zeroed header, as a fresh mapping holds it (for loom models and tests; real
    /// headers live in shared memory and are never constructed).
    #[cfg(any(test, shmkit_loom))]
    pub fn new_zeroed() -> Self {
        Header {
            magic: AtomicU64::new(0),
            format_version: AtomicU32::new(0),
            state: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            kind_version: AtomicU32::new(0),
            total_size: AtomicU64::new(0),
            creator_pid: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            creator_start_time: AtomicU64::new(0),
            data_offset: AtomicU64::new(0),
            reserved: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Creator step 1: writes every field and moves `state` to `INITIALISING`.
    pub fn begin_init(&self, kind: Kind, kind_version: u32, total_size: u64, creator: ProcessId) {
        // Relaxed: all of these are published by the Release store of `state` below.
        self.magic.store(MAGIC, Ordering::Relaxed);
        self.format_version.store(FORMAT_VERSION, Ordering::Relaxed);
        self.kind.store(kind.0, Ordering::Relaxed);
        self.kind_version.store(kind_version, Ordering::Relaxed);
        self.total_size.store(total_size, Ordering::Relaxed);
        self.creator_pid.store(creator.pid, Ordering::Relaxed);
        self.creator_start_time
            .store(creator.start_time, Ordering::Relaxed);
        self.data_offset
            .store(HEADER_SIZE as u64, Ordering::Relaxed);
        // Release: pairs with the Acquire load in `wait_ready`, publishing the fields.
        self.set_state(STATE_INITIALISING);
    }

    /// Swaps in `state` (Release, pairs with the opener's Acquire load) and wakes the
    /// openers that announced themselves with [`WAITERS`] — no system call otherwise.
    fn set_state(&self, state: u32) {
        let prev = self.state.swap(state, Ordering::Release);
        if prev & WAITERS != 0 {
            futex::wake_all(&self.state);
        }
    }

    /// Creator step 2: the data area is initialised; publish `READY` and wake openers.
    pub fn publish_ready(&self) {
        // Release: pairs with the Acquire load in `wait_ready`, so an opener that sees
        // READY also sees everything the creator wrote into the data area.
        self.set_state(STATE_READY);
    }

    /// Creator, on failure: mark the segment unusable and wake openers.
    pub fn publish_failed(&self) {
        // Release: pairs with the Acquire load in `wait_ready`.
        self.set_state(STATE_FAILED);
    }

    /// The current state, without the [`WAITERS`] bit (Acquire: pairs with the
    /// creator's Release swaps).
    pub fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire) & !WAITERS
    }

    /// Copies the fields with `Relaxed` loads; call after an Acquire load of `state`
    /// saw `INITIALISING` or later (or accept a torn view).
    pub fn snapshot(&self) -> HeaderSnapshot {
        // Relaxed: ordered after the caller's Acquire load of `state`.
        HeaderSnapshot {
            magic: self.magic.load(Ordering::Relaxed),
            format_version: self.format_version.load(Ordering::Relaxed),
            state: self.state.load(Ordering::Relaxed) & !WAITERS,
            kind: Kind(self.kind.load(Ordering::Relaxed)),
            kind_version: self.kind_version.load(Ordering::Relaxed),
            total_size: self.total_size.load(Ordering::Relaxed),
            creator: ProcessId {
                pid: self.creator_pid.load(Ordering::Relaxed),
                start_time: self.creator_start_time.load(Ordering::Relaxed),
            },
            data_offset: self.data_offset.load(Ordering::Relaxed),
        }
    }

    /// Opener: waits until `READY` (or a final failure, or `deadline`), then validates.
    ///
    /// `creator_alive` is asked while the state is `INITIALISING`; a `false` answer
    /// ends the wait with [`HeaderError::CreatorDied`].
    ///
    /// # Errors
    /// Every [`HeaderError`]; a garbage header fails fast with `Corrupt`.
    pub fn wait_ready(
        &self,
        expect: Expect,
        file_size: u64,
        deadline: Deadline,
        creator_alive: impl Fn(ProcessId) -> bool,
    ) -> Result<HeaderSnapshot, HeaderError> {
        loop {
            // Acquire: pairs with the creator's Release swaps of `state`.
            let word = self.state.load(Ordering::Acquire);
            let state = word & !WAITERS;
            let snap = self.snapshot();
            if snap.magic != 0 && snap.magic != MAGIC {
                return Err(HeaderError::Corrupt(format!(
                    "bad magic {:#018x} (expected {MAGIC:#018x})",
                    snap.magic
                )));
            }
            match state {
                STATE_READY => return Self::validate(&snap, expect, file_size),
                STATE_FAILED => return Err(HeaderError::CreatorFailed),
                STATE_INITIALISING => {
                    if snap.magic != MAGIC {
                        return Err(HeaderError::Corrupt("initialising without magic".into()));
                    }
                    if snap.format_version != FORMAT_VERSION {
                        return Err(HeaderError::Incompatible {
                            found: snap.format_version,
                        });
                    }
                    if !creator_alive(snap.creator) {
                        return Err(HeaderError::CreatorDied {
                            pid: snap.creator.pid,
                        });
                    }
                }
                STATE_UNINIT => {}
                other => return Err(HeaderError::Corrupt(format!("unknown state {other}"))),
            }
            if deadline.is_expired() {
                return Err(HeaderError::NotReady);
            }
            if state == STATE_UNINIT {
                // Not announced (this may not be a shmkit file): a short timed sleep,
                // cut short if the word changes before it starts.
                #[cfg(shmkit_loom)]
                crate::shim::yield_now();
                #[cfg(not(shmkit_loom))]
                futex::wait(
                    &self.state,
                    word,
                    Deadline::after(UNINIT_POLL).min(deadline),
                );
                continue;
            }
            // INITIALISING: announce ourselves, so the creator's swap to READY wakes us.
            if word & WAITERS == 0 {
                // Relaxed: the bit carries no data; what we read is ordered by the
                // Acquire load at the top of the loop. On failure the state moved on.
                if self
                    .state
                    .compare_exchange(word, word | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
            }
            // Wake up every POLL_SLICE to re-check the creator's liveness. (Under loom a
            // finite wait returns at once, which would make this a spin loop: the model
            // waits for a wake-up instead.)
            let slice = if cfg!(not(shmkit_loom)) {
                Deadline::after(POLL_SLICE).min(deadline)
            } else {
                deadline
            };
            if !futex::wait(&self.state, word | WAITERS, slice) && deadline.is_expired() {
                return Err(HeaderError::NotReady);
            }
        }
    }

    /// Checks a ready header against what the opener expects and the file's size.
    ///
    /// # Errors
    /// The first mismatch found, most fundamental first.
    pub fn validate(
        snap: &HeaderSnapshot,
        expect: Expect,
        file_size: u64,
    ) -> Result<HeaderSnapshot, HeaderError> {
        if snap.magic != MAGIC {
            return Err(HeaderError::Corrupt(format!(
                "bad magic {:#018x}",
                snap.magic
            )));
        }
        if snap.format_version != FORMAT_VERSION {
            return Err(HeaderError::Incompatible {
                found: snap.format_version,
            });
        }
        if snap.data_offset != HEADER_SIZE as u64 {
            return Err(HeaderError::Corrupt(format!(
                "data offset {} (expected {HEADER_SIZE})",
                snap.data_offset
            )));
        }
        if snap.total_size < HEADER_SIZE as u64 {
            return Err(HeaderError::Corrupt(format!(
                "total size {} is smaller than the header",
                snap.total_size
            )));
        }
        if snap.total_size > file_size {
            return Err(HeaderError::Truncated {
                expected: snap.total_size,
            });
        }
        if snap.total_size < file_size {
            return Err(HeaderError::Corrupt(format!(
                "total size {} but the file has {file_size} bytes",
                snap.total_size
            )));
        }
        if snap.kind != expect.kind {
            return Err(HeaderError::WrongKind { found: snap.kind });
        }
        if snap.kind_version != expect.kind_version {
            return Err(HeaderError::KindVersion {
                found: snap.kind_version,
            });
        }
        Ok(*snap)
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;

    const K: Kind = Kind::from_tag(*b"TEST");
    const E: Expect = Expect {
        kind: K,
        kind_version: 3,
    };

    fn ready(size: u64) -> Header {
        let h = Header::new_zeroed();
        h.begin_init(K, 3, size, ProcessId::current());
        h.publish_ready();
        h
    }

    #[test]
    fn ready_header_validates() {
        let h = ready(4096);
        let s = h
            .wait_ready(E, 4096, Deadline::NEVER, |_| true)
            .expect("ready");
        assert_eq!(s.kind, K);
        assert_eq!(HeaderSnapshot::from_bytes(&[0; 8]), None);
    }

    #[test]
    fn each_mismatch_has_its_error() {
        let h = ready(4096);
        let other = Expect {
            kind: Kind::from_tag(*b"OTHR"),
            kind_version: 3,
        };
        let newer = Expect {
            kind: K,
            kind_version: 4,
        };
        let d = Deadline::NEVER;
        assert!(matches!(
            h.wait_ready(other, 4096, d, |_| true),
            Err(HeaderError::WrongKind { .. })
        ));
        assert!(matches!(
            h.wait_ready(newer, 4096, d, |_| true),
            Err(HeaderError::KindVersion { found: 3 })
        ));
        assert!(matches!(
            h.wait_ready(E, 100, d, |_| true),
            Err(HeaderError::Truncated { expected: 4096 })
        ));
        assert!(matches!(
            h.wait_ready(E, 8192, d, |_| true),
            Err(HeaderError::Corrupt(_))
        ));
    }

    #[test]
    fn an_announced_opener_is_woken_and_the_bit_never_shows() {
        let h = std::sync::Arc::new(Header::new_zeroed());
        h.begin_init(K, 3, 4096, ProcessId::current());
        // Release store: no opener has announced itself yet.
        assert_eq!(h.state.load(Ordering::Relaxed), STATE_INITIALISING);
        let opener = std::thread::spawn({
            let h = std::sync::Arc::clone(&h);
            move || h.wait_ready(E, 4096, Deadline::after(Duration::from_secs(60)), |_| true)
        });
        // Wait (bounded) until the opener has set WAITERS: it sleeps announced.
        let until = Deadline::after(Duration::from_secs(60));
        while h.state.load(Ordering::Relaxed) & WAITERS == 0 {
            assert!(!until.is_expired(), "the opener never announced itself");
            std::thread::yield_now();
        }
        assert_eq!(h.state(), STATE_INITIALISING, "state() hides the bit");
        assert_eq!(h.snapshot().state, STATE_INITIALISING);
        h.publish_ready();
        assert_eq!(
            h.state.load(Ordering::Relaxed),
            STATE_READY,
            "the swap clears it"
        );
        assert!(opener.join().expect("opener").is_ok());
        let mut bytes = [0u8; HEADER_SIZE];
        bytes[12..16].copy_from_slice(&(STATE_READY | WAITERS).to_le_bytes());
        assert_eq!(
            HeaderSnapshot::from_bytes(&bytes).map(|s| s.state),
            Some(STATE_READY)
        );
    }

    #[test]
    fn dead_creator_and_timeouts_are_reported() {
        let h = Header::new_zeroed();
        h.begin_init(K, 3, 4096, ProcessId::current());
        let d = Deadline::after(Duration::from_millis(20));
        assert_eq!(
            h.wait_ready(E, 4096, d, |_| false),
            Err(HeaderError::CreatorDied {
                pid: crate::shim::pid::current()
            })
        );
        assert_eq!(
            h.wait_ready(E, 4096, d, |_| true),
            Err(HeaderError::NotReady)
        );
        h.publish_failed();
        assert_eq!(
            h.wait_ready(E, 4096, d, |_| true),
            Err(HeaderError::CreatorFailed)
        );
        let z = Header::new_zeroed();
        assert_eq!(
            z.wait_ready(E, 4096, Deadline::after(Duration::ZERO), |_| true),
            Err(HeaderError::NotReady)
        );
    }
}
