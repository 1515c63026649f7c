//! loom model of the header's create → initialise → publish-ready protocol.
//!
//! Run: `RUSTFLAGS="--cfg shmkit_loom" cargo test -p shmkit-segment --test loom --release`.
#![cfg(shmkit_loom)]

use loom::sync::Arc;
use shmkit_segment::header::{Expect, Header, HeaderError, STATE_READY};
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use shmkit_segment::shim::pid::ProcessId;
use shmkit_segment::shim::time::Deadline;
use shmkit_segment::Kind;

const K: Kind = Kind::from_tag(*b"LOOM");
const E: Expect = Expect {
    kind: K,
    kind_version: 1,
};
const CREATOR: ProcessId = ProcessId {
    pid: 42,
    start_time: 7,
};

/// An opener that waits without a deadline sees READY and the creator's data write,
/// never a half-initialised segment, and is never left asleep (no lost wake-up).
#[test]
fn opener_sees_initialised_data_after_ready() {
    loom::model(|| {
        let header = Arc::new(Header::new_zeroed());
        let data = Arc::new(AtomicU64::new(0));
        let (h, d) = (Arc::clone(&header), Arc::clone(&data));
        let creator = loom::thread::spawn(move || {
            h.begin_init(K, 1, 4096, CREATOR);
            d.store(99, Ordering::Relaxed); // the "initialisation"
            h.publish_ready();
        });
        let snap = header
            .wait_ready(E, 4096, Deadline::NEVER, |_| true)
            .expect("ready");
        assert_eq!(snap.state, STATE_READY);
        assert_eq!(snap.creator, CREATOR);
        assert_eq!(data.load(Ordering::Relaxed), 99);
        creator.join().expect("creator");
    });
}

/// A creator that dies after `begin_init` is reported as dead, never waited on forever.
#[test]
fn dead_creator_is_reported() {
    loom::model(|| {
        let header = Arc::new(Header::new_zeroed());
        let h = Arc::clone(&header);
        let creator = loom::thread::spawn(move || h.begin_init(K, 1, 4096, CREATOR));
        creator.join().expect("creator");
        let r = header.wait_ready(E, 4096, Deadline::NEVER, |_| false);
        assert_eq!(r, Err(HeaderError::CreatorDied { pid: 42 }));
    });
}
