//! Every way opening a segment can fail, each with its own error variant: never a
//! panic, never a crash.
#![allow(clippy::unwrap_used)]

mod common;

use common::{fork, wait, Cleanup, Exit, TempDir};
use shmkit_segment::header::{FORMAT_VERSION, HEADER_SIZE, MAGIC};
use shmkit_segment::{Error, Kind, Segment, SegmentOptions};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

const QUEUE: Kind = Kind::from_tag(*b"QUEU");
const LOCK: Kind = Kind::from_tag(*b"LOCK");
const SHORT: Duration = Duration::from_millis(100);

/// A ready file-backed segment of `QUEUE` v2 with 4096 data bytes, to be damaged.
fn good_file(dir: &TempDir) -> std::path::PathBuf {
    let p = dir.join("seg");
    SegmentOptions::new(QUEUE, 4096)
        .kind_version(2)
        .create_file(&p, |_| {})
        .unwrap();
    p
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn open_file(path: &Path) -> Result<Segment, Error> {
    SegmentOptions::new(QUEUE, 0)
        .kind_version(2)
        .open_timeout(SHORT)
        .open_file(path)
}

#[test]
fn a_good_file_opens() {
    let dir = TempDir::new("good");
    let p = good_file(&dir);
    let s = open_file(&p).unwrap();
    assert_eq!(
        (s.kind(), s.info().kind_version, s.data_len()),
        (QUEUE, 2, 4096)
    );
}

#[test]
fn missing_name_is_not_found() {
    let name = common::unique_name("missing");
    let e = Segment::open(&name, QUEUE).unwrap_err();
    assert!(
        matches!(&e, Error::NotFound { segment } if *segment == name),
        "{e:?}"
    );
    assert!(matches!(
        shmkit_segment::unlink(&name),
        Err(Error::NotFound { .. })
    ));
    let dir = TempDir::new("missing");
    assert!(matches!(
        open_file(&dir.join("nope")),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn wrong_kind() {
    let name = common::unique_name("kind");
    let _s = Segment::create(&name, QUEUE, 64).unwrap();
    let e = Segment::open(&name, LOCK).unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongKind {
                expected: LOCK,
                found: QUEUE,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn older_and_newer_kind_versions() {
    let name = common::unique_name("kver");
    let _s = SegmentOptions::new(QUEUE, 64)
        .kind_version(2)
        .create(&name, |_| {})
        .unwrap();
    for (mine, found) in [(1, 2), (3, 2)] {
        let e = SegmentOptions::new(QUEUE, 0)
            .kind_version(mine)
            .open(&name)
            .unwrap_err();
        assert!(
            matches!(e, Error::KindVersion { expected, found: f, kind: QUEUE, .. }
                if expected == mine && f == found),
            "{e:?}"
        );
    }
}

#[test]
fn other_header_format_version_is_incompatible() {
    let dir = TempDir::new("fmt");
    let p = good_file(&dir);
    for v in [0u32, FORMAT_VERSION + 1, u32::MAX] {
        patch(&p, 8, &v.to_le_bytes());
        let e = open_file(&p).unwrap_err();
        assert!(
            matches!(e, Error::Incompatible { expected: FORMAT_VERSION, found, .. } if found == v),
            "{e:?}"
        );
    }
}

#[test]
fn truncated_file() {
    let dir = TempDir::new("trunc");
    let p = good_file(&dir);
    let total = (HEADER_SIZE + 4096) as u64;
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(total - 100).unwrap();
    let e = open_file(&p).unwrap_err();
    assert!(
        matches!(e, Error::Truncated { expected, found, .. } if expected == total && found == total - 100),
        "{e:?}"
    );
    // Shorter than a header: the opener waits (bounded) for the creator's ftruncate.
    f.set_len(50).unwrap();
    let e = open_file(&p).unwrap_err();
    assert!(
        matches!(e, Error::Truncated { expected, found: 50, .. } if expected == HEADER_SIZE as u64),
        "{e:?}"
    );
    f.set_len(0).unwrap();
    assert!(matches!(
        open_file(&p),
        Err(Error::Truncated { found: 0, .. })
    ));
}

#[test]
fn garbage_header_is_corrupt() {
    let dir = TempDir::new("garbage");
    let p = good_file(&dir);
    patch(&p, 0, b"NOTSHMKT and then some more garbage");
    let e = open_file(&p).unwrap_err();
    assert!(
        matches!(&e, Error::Corrupt { reason, .. } if reason.contains("magic")),
        "{e:?}"
    );

    // Right magic, impossible state.
    let p = dir.join("state");
    std::fs::write(&p, vec![0u8; HEADER_SIZE + 64]).unwrap();
    patch(&p, 0, &MAGIC.to_le_bytes());
    patch(&p, 12, &77u32.to_le_bytes());
    assert!(matches!(open_file(&p), Err(Error::Corrupt { .. })));

    // A longer file than the header says.
    let longer = TempDir::new("longer");
    let p = good_file(&longer);
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len((HEADER_SIZE + 8192) as u64).unwrap();
    assert!(matches!(open_file(&p), Err(Error::Corrupt { .. })));
}

#[test]
fn zeroed_file_is_not_ready_after_the_timeout() {
    let dir = TempDir::new("zero");
    let p = dir.join("zero");
    std::fs::write(&p, vec![0u8; 4096]).unwrap();
    let t = Instant::now();
    let e = open_file(&p).unwrap_err();
    assert!(matches!(e, Error::NotReady { waited: SHORT, .. }), "{e:?}");
    assert!(t.elapsed() >= SHORT);
    assert_eq!(
        std::fs::read(&p).unwrap(),
        vec![0u8; 4096],
        "an opener never writes into a file that is not (yet) a shmkit segment"
    );
    // The same for a named object that never becomes ready.
    let name = common::unique_name("zero");
    let _c = Cleanup(name.clone());
    std::fs::write(shmkit_segment::shm_path(&name), vec![0u8; 4096]).unwrap();
    let e = SegmentOptions::new(QUEUE, 0)
        .open_timeout(SHORT)
        .open(&name)
        .unwrap_err();
    assert!(matches!(e, Error::NotReady { .. }), "{e:?}");
}

#[test]
fn creator_killed_during_init_is_reported_dead() {
    let name = common::unique_name("died");
    let _c = Cleanup(name.clone());
    let child = fork(|| {
        let _ = SegmentOptions::new(QUEUE, 4096).create(&name, |_| {
            // SAFETY: getpid has no preconditions.
            let me = unsafe { libc::getpid() };
            // SAFETY: kill takes a pid and a signal by value; we kill ourselves.
            unsafe { libc::kill(me, libc::SIGKILL) };
        });
        1
    });
    assert_eq!(wait(child), Exit::Signal(libc::SIGKILL));
    let t = Instant::now();
    let e = SegmentOptions::new(QUEUE, 0)
        .open_timeout(Duration::from_secs(30))
        .open(&name)
        .unwrap_err();
    assert!(
        matches!(e, Error::CreatorDied { pid, .. } if i64::from(pid) == i64::from(child)),
        "{e:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "reported without waiting out the timeout"
    );
}

#[test]
fn creator_killed_while_an_opener_waits_is_reported_dead() {
    let name = common::unique_name("died-wait");
    let _c = Cleanup(name.clone());
    let child_name = name.clone();
    // The child parks inside its initialiser: the parent kills it there.
    let parked = common::fork_parked(move |park| {
        let _ = SegmentOptions::new(QUEUE, 4096).create(&child_name, |_| park());
        1
    });
    let child = parked.pid;
    let opener = std::thread::spawn(move || {
        SegmentOptions::new(QUEUE, 0)
            .open_timeout(Duration::from_secs(30))
            .open(&name)
    });
    common::kill(child);
    assert_eq!(wait(child), Exit::Signal(libc::SIGKILL));
    let e = opener.join().unwrap().unwrap_err();
    assert!(matches!(e, Error::CreatorDied { .. }), "{e:?}");
}

#[test]
fn panicking_initialiser_is_creator_failed() {
    let name = common::unique_name("failed");
    let mut dup = None;
    let mut waiter = None;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        SegmentOptions::new(QUEUE, 64).create(&name, |s| {
            dup = Some(s.as_fd().try_clone_to_owned().unwrap());
            // An opener that is (probably) asleep when the creator gives up.
            let fd = s.as_fd().try_clone_to_owned().unwrap();
            waiter = Some(std::thread::spawn(move || {
                SegmentOptions::new(QUEUE, 0)
                    .open_timeout(Duration::from_secs(30))
                    .open_fd(fd)
            }));
            panic!("initialiser fails");
        })
    }));
    assert!(r.is_err(), "the panic continues");
    assert!(!common::shm_exists(&name), "a failed segment is unlinked");
    let e = SegmentOptions::new(QUEUE, 0)
        .open_fd(dup.take().unwrap())
        .unwrap_err();
    assert!(matches!(e, Error::CreatorFailed { .. }), "{e:?}");
    let e = waiter.take().unwrap().join().unwrap().unwrap_err();
    assert!(matches!(e, Error::CreatorFailed { .. }), "{e:?}");
}

#[test]
fn invalid_names() {
    let long = "x".repeat(shmkit_segment::MAX_NAME_LEN + 1);
    let opts = SegmentOptions::new(QUEUE, 64);
    for bad in [
        "", "a/b", "/abs", ".hidden", "..", "sp ace", "nul\0", "é", "tab\t", &long,
    ] {
        for r in [
            opts.create(bad, |_| {}).map(drop),
            opts.open(bad).map(drop),
            opts.open_or_create(bad, |_| {}).map(drop),
            shmkit_segment::unlink(bad),
        ] {
            assert!(
                matches!(r, Err(Error::InvalidName { .. })),
                "{bad:?}: {r:?}"
            );
        }
    }
    let ok = "x".repeat(shmkit_segment::MAX_NAME_LEN);
    assert!(shmkit_segment::validate_name(&ok).is_ok());
}

#[test]
fn already_exists() {
    let name = common::unique_name("exists");
    let _a = Segment::create(&name, QUEUE, 64).unwrap();
    let e = Segment::create(&name, QUEUE, 64).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    let dir = TempDir::new("exists");
    let p = good_file(&dir);
    let e = SegmentOptions::new(QUEUE, 64)
        .create_file(&p, |_| {})
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    assert!(
        open_file(&p).is_ok(),
        "the failed create left the file alone"
    );
}

#[test]
fn permission_denied() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // Root ignores file modes, so a root test drops to `nobody` in the child; a
    // non-root owner is refused by mode 000.
    let mode = if root { 0o600 } else { 0o000 };
    let name = common::unique_name("perm");
    let _s = SegmentOptions::new(QUEUE, 64)
        .mode(mode)
        .create(&name, |_| {})
        .unwrap();
    let child = fork(|| {
        if root {
            // SAFETY: setuid takes a uid by value.
            if unsafe { libc::setuid(65534) } != 0 {
                return 3;
            }
        }
        match SegmentOptions::new(QUEUE, 0).open(&name) {
            Err(Error::PermissionDenied { .. }) => 0,
            Err(_) => 1,
            Ok(_) => 2,
        }
    });
    assert_eq!(wait(child), Exit::Code(0));
}

#[test]
fn errors_say_what_to_do() {
    let e = Segment::open("no-such-segment-anywhere", QUEUE).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = Error::CreatorDied {
        segment: "x".into(),
        pid: 1,
    };
    assert!(e.to_string().contains("shmkit gc"), "{e}");
}
