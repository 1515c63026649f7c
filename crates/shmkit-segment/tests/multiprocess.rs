//! Multi-process tests: forked and exec'd children open the same segment by name, by
//! inherited fd and by token, write into it, and the parent sees the writes; eight
//! processes race `open_or_create`.
//!
//! Forking from the multi-threaded libtest harness is only safe because the children
//! do little and `_exit`; `cargo nextest` runs each test in its own process anyway.
#![allow(clippy::unwrap_used)]

mod common;

use common::{fork, wait, Cleanup, Exit, Pipe};
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use shmkit_segment::{Error, Kind, Segment, SegmentOptions, Source, Token};
use std::os::fd::AsRawFd;
use std::process::Command;

const HELPER: &str = env!("CARGO_BIN_EXE_shmkit-segment-helper");

fn word(seg: &Segment, offset: usize) -> u64 {
    // Acquire: pairs with the child's store (the child has exited anyway).
    seg.get::<AtomicU64>(offset)
        .unwrap()
        .load(Ordering::Acquire)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run_helper(args: &[&str]) {
    let out = Command::new(HELPER)
        .args(args)
        .output()
        .expect("run helper");
    assert!(
        out.status.success(),
        "helper {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn forked_child_writes_by_name() {
    let name = common::unique_name("fork-name");
    let seg = Segment::create(&name, Kind::RAW, 64).unwrap();
    let child = fork(|| {
        let Ok(s) = Segment::open(&name, Kind::RAW) else {
            return 1;
        };
        let Ok(w) = s.get::<AtomicU64>(8) else {
            return 2;
        };
        w.store(0xC0FFEE, Ordering::Release);
        0
    });
    assert_eq!(wait(child), Exit::Code(0));
    assert_eq!(word(&seg, 8), 0xC0FFEE);
    drop(seg);
    assert!(
        !common::shm_exists(&name),
        "creator's drop unlinks the name"
    );
}

#[test]
fn forked_child_inherits_anonymous_segment_and_reopens_its_fd() {
    let seg = SegmentOptions::new(Kind::RAW, 4096)
        .create_anonymous(|s| {
            s.get::<AtomicU64>(0).unwrap().store(7, Ordering::Relaxed);
        })
        .unwrap();
    let token = seg.token().unwrap();
    assert!(matches!(token.source, Source::Fd { .. }));
    let child = fork(|| {
        // The inherited mapping: no system call needed.
        let inherited_ok = seg
            .get::<AtomicU64>(0)
            .ok()
            .map(|w| w.load(Ordering::Acquire))
            == Some(7);
        if !inherited_ok {
            return 1;
        }
        seg.get::<AtomicU64>(8)
            .unwrap()
            .store(11, Ordering::Release);
        // The token: reopened from the inherited fd, mapped a second time.
        let Ok(again) = token.open() else { return 2 };
        again
            .get::<AtomicU64>(16)
            .unwrap()
            .store(22, Ordering::Release);
        if again.is_creator() || seg.is_creator() {
            return 3;
        }
        0
    });
    assert_eq!(wait(child), Exit::Code(0));
    assert_eq!((word(&seg, 8), word(&seg, 16)), (11, 22));
}

#[test]
fn execd_child_writes_by_name() {
    let name = common::unique_name("exec-name");
    let seg = Segment::create(&name, Kind::RAW, 64).unwrap();
    run_helper(&["name", &name, "24", "4242"]);
    assert_eq!(word(&seg, 24), 4242);
}

#[test]
fn execd_child_writes_by_named_token() {
    let name = common::unique_name("exec-ntok");
    let seg = Segment::create(&name, Kind::RAW, 64).unwrap();
    let token = seg.token().unwrap().with_offset(32);
    assert_eq!(token.source, Source::Named(name.clone()));
    run_helper(&["token", &hex(&token.to_bytes()), "99"]);
    assert_eq!(word(&seg, 32), 99);
}

#[test]
fn execd_child_reopens_memfd_token_through_proc() {
    // The fd is close-on-exec, so the child reaches it through /proc/<parent>/fd/<n>.
    let seg = Segment::create_anonymous(Kind::RAW, 64).unwrap();
    let token = seg.token().unwrap().with_offset(40);
    run_helper(&["token", &hex(&token.to_bytes()), "1234"]);
    assert_eq!(word(&seg, 40), 1234);
}

#[test]
fn execd_child_reopens_memfd_token_from_inherited_fd() {
    let seg = Segment::create_anonymous(Kind::RAW, 64).unwrap();
    // A copy of the descriptor without close-on-exec, so the child inherits it.
    let fd = seg.as_fd().try_clone_to_owned().unwrap();
    // SAFETY: F_SETFD with 0 clears FD_CLOEXEC on an fd we own.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) };
    assert_eq!(r, 0);
    let mut token = seg.token().unwrap().with_offset(48);
    if let Source::Fd { fd: n, holder, .. } = &mut token.source {
        *n = fd.as_raw_fd();
        // A holder that does not exist: only the inherited descriptor can work.
        holder.start_time = holder.start_time.wrapping_add(12345);
    }
    run_helper(&["token", &hex(&token.to_bytes()), "5678"]);
    assert_eq!(word(&seg, 48), 5678);
    drop(fd);
    // Without the inherited descriptor the same token is stale, not a crash.
    let out = Command::new(HELPER)
        .args(["token", &hex(&token.to_bytes()), "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be opened"));
}

#[test]
fn token_of_exited_holder_is_stale() {
    let seg = Segment::create_anonymous(Kind::RAW, 64).unwrap();
    let mut token = seg.token().unwrap();
    if let Source::Fd { fd, holder, .. } = &mut token.source {
        *fd = 100_000; // not open here
        holder.start_time = holder.start_time.wrapping_add(1); // not alive
    }
    assert!(matches!(token.open(), Err(Error::TokenStale { .. })));
    assert!(matches!(
        Token::from_bytes(&[0xff, 0xff, 0xff]),
        Err(Error::TokenStale { .. })
    ));
}

/// Exit codes of the racing children.
const CREATED: i32 = 10;
const OPENED: i32 = 11;

#[test]
fn eight_processes_race_open_or_create() {
    const N: usize = 8;
    let name = common::unique_name("race");
    let _cleanup = Cleanup(name.clone());
    let mut go = Pipe::new();
    let opts = SegmentOptions::new(Kind::RAW, 4096)
        // The creator may exit before the last child opens: keep the name.
        .persist(true)
        .open_timeout(std::time::Duration::from_secs(30));
    let children: Vec<_> = (0..N)
        .map(|_| {
            let (opts, name, go_r, go_w) = (opts.clone(), name.clone(), go.r, go.w);
            fork(move || {
                // SAFETY: closes this child's copy of the write end, so that the
                // parent's close is the last and the read below sees EOF.
                unsafe { libc::close(go_w) };
                let mut b = 0u8;
                // Block until the parent closes the pipe: every child starts at once.
                // SAFETY: reads at most one byte into a live local.
                while unsafe { libc::read(go_r, std::ptr::addr_of_mut!(b).cast(), 1) } < 0 {}
                match opts.open_or_create(&name, |s| {
                    // Some initialisation work, so openers really wait for READY.
                    s.get::<AtomicU64>(8)
                        .unwrap()
                        .store(0xAB, Ordering::Relaxed);
                }) {
                    Ok((seg, created)) => {
                        if seg
                            .get::<AtomicU64>(8)
                            .ok()
                            .map(|w| w.load(Ordering::Acquire))
                            != Some(0xAB)
                        {
                            return 3;
                        }
                        seg.get::<AtomicU64>(0)
                            .unwrap()
                            .fetch_add(1, Ordering::AcqRel);
                        if created {
                            CREATED
                        } else {
                            OPENED
                        }
                    }
                    Err(_) => 4,
                }
            })
        })
        .collect();
    go.close_write();
    let exits: Vec<Exit> = children.into_iter().map(wait).collect();
    let created = exits.iter().filter(|e| **e == Exit::Code(CREATED)).count();
    let opened = exits.iter().filter(|e| **e == Exit::Code(OPENED)).count();
    assert_eq!((created, opened), (1, N - 1), "exits: {exits:?}");
    let seg = Segment::open(&name, Kind::RAW).unwrap();
    assert_eq!(
        word(&seg, 0),
        N as u64,
        "every process used the same segment"
    );
}

#[test]
fn open_or_create_in_one_process_creates_then_opens() {
    let name = common::unique_name("ooc");
    let opts = SegmentOptions::new(Kind::RAW, 64);
    let (a, created_a) = opts.open_or_create(&name, |_| {}).unwrap();
    let (b, created_b) = opts.open_or_create(&name, |_| panic!("not run")).unwrap();
    assert!(created_a && !created_b);
    a.get::<AtomicU64>(0).unwrap().store(5, Ordering::Relaxed);
    assert_eq!(word(&b, 0), 5);
}
