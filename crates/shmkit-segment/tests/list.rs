//! Lifetime of names in `/dev/shm`: nothing is left behind by create/drop, and
//! `list()` tells live segments from stale ones.
#![allow(clippy::unwrap_used)]

mod common;

use common::{wait, Cleanup, Exit};
use shmkit_segment::{list, Kind, SegmentInfo, SegmentOptions};
use std::path::Path;

const K: Kind = Kind::from_tag(*b"LIST");

fn find(name: &str) -> Option<SegmentInfo> {
    list().unwrap().into_iter().find(|i| i.name == name)
}

/// Descriptors of this process that refer to objects this test made (other tests run
/// on other threads of this process and open their own).
fn our_fds(prefix: &str, dir: &Path) -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.display().to_string())
        .filter(|l| {
            l.contains(prefix)
                || l.contains("memfd:shmkit:LOOP")
                || l.starts_with(&*dir.to_string_lossy())
        })
        .collect()
}

fn ours(prefix: &str) -> Vec<String> {
    std::fs::read_dir(shmkit_segment::SHM_DIR)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(prefix))
        .collect()
}

#[test]
fn create_and_drop_in_a_loop_leaves_nothing_behind() {
    let prefix = common::unique_name("loop");
    let dir = common::TempDir::new("loop");
    for i in 0..200 {
        let name = format!("{prefix}-{i}");
        let prefault = i % 2 == 0;
        let opts = SegmentOptions::new(Kind::from_tag(*b"LOOP"), 4096 * (i % 5)).prefault(prefault);
        let seg = opts.create(&name, |_| {}).unwrap();
        let other = opts.open(&name).unwrap();
        drop(seg);
        drop(other);
        drop(opts.create_anonymous(|_| {}).unwrap());
        let path = dir.join(&format!("f{i}"));
        drop(opts.create_file(&path, |_| {}).unwrap());
        std::fs::remove_file(&path).unwrap();
        if i % 20 != 0 {
            continue;
        }
        // A failed initialisation leaves nothing either.
        let r = std::panic::catch_unwind(|| opts.create(&name, |_| panic!("init fails")));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| opts.create_file(&path, |_| panic!("init fails")));
        assert!(r.is_err());
        assert!(!path.exists(), "failed file segment removed");
    }
    assert_eq!(ours(&prefix), Vec::<String>::new());
    assert_eq!(
        our_fds(&prefix, dir.path()),
        Vec::<String>::new(),
        "no descriptor leaked"
    );
    assert!(Path::new(dir.path()).read_dir().unwrap().next().is_none());
}

#[test]
fn persisted_segment_survives_its_handle_until_unlinked() {
    let name = common::unique_name("persist");
    let _c = Cleanup(name.clone());
    drop(
        SegmentOptions::new(K, 64)
            .persist(true)
            .create(&name, |_| {})
            .unwrap(),
    );
    assert!(common::shm_exists(&name));
    SegmentOptions::new(K, 0).open(&name).unwrap();
    shmkit_segment::unlink(&name).unwrap();
    assert!(!common::shm_exists(&name));
}

#[test]
fn segment_of_a_killed_creator_is_stale() {
    let name = common::unique_name("killed");
    let _c = Cleanup(name.clone());
    let child_name = name.clone();
    // The child parks (holding the segment) only once it created it.
    let parked = common::fork_parked(move |park| {
        let Ok(_seg) = SegmentOptions::new(K, 8192).create(&child_name, |_| {}) else {
            return 1;
        };
        park();
        2
    });
    let child = parked.pid;

    let live = find(&name).expect("listed while its creator runs");
    assert_eq!(live.kind(), Some(K));
    assert_eq!(live.file_size, 8192 + 128);
    assert_eq!(live.creator_pid().map(i64::from), Some(i64::from(child)));
    assert!(live.creator_alive && !live.is_stale(), "{live:?}");
    assert_eq!(live.problem, None);

    common::kill(child);
    assert_eq!(wait(child), Exit::Signal(libc::SIGKILL));
    let dead = find(&name).expect("a killed creator cannot unlink");
    assert!(!dead.creator_alive && dead.is_stale(), "{dead:?}");
    let again = shmkit_segment::inspect(&name).expect("inspect finds it too");
    assert!(again.is_stale() && again.header == dead.header);
    assert!(shmkit_segment::inspect("no-such-segment-at-all").is_none());
    assert_eq!(dead.problem, None, "the segment itself is intact");
}

#[test]
fn segment_being_initialised_is_not_stale_until_its_creator_dies() {
    let name = common::unique_name("initialising");
    let _c = Cleanup(name.clone());
    let child_name = name.clone();
    let parked = common::fork_parked(move |park| {
        let _ = SegmentOptions::new(K, 64).create(&child_name, |_| park());
        2
    });
    let child = parked.pid;
    let info = find(&name).unwrap();
    assert!(info.creator_alive && !info.is_stale(), "{info:?}");
    assert_eq!(info.problem.as_deref(), Some("being initialised"));
    common::kill(child);
    wait(child);
    let info = find(&name).unwrap();
    assert!(info.is_stale(), "{info:?}");
    assert_eq!(
        info.problem.as_deref(),
        Some("creator died while initialising")
    );
}

#[test]
fn debris_in_dev_shm_is_listed_without_blocking() {
    let fifo = common::unique_name("fifo");
    let junk = common::unique_name("junk");
    let _c = (Cleanup(fifo.clone()), Cleanup(junk.clone()));
    let path = std::ffi::CString::new(
        shmkit_segment::shm_path(&fifo)
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    // SAFETY: `path` is a valid NUL-terminated string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    std::fs::write(shmkit_segment::shm_path(&junk), b"not a segment").unwrap();
    // list() would hang here if it opened the FIFO blocking.
    let f = find(&fifo).unwrap();
    assert!(f.problem.is_some() && f.header.is_none(), "{f:?}");
    let j = find(&junk).unwrap();
    assert!(
        j.problem.is_some() && !j.is_stale(),
        "young debris may be mid-creation: {j:?}"
    );
}
