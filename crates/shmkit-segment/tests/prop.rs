//! Property tests: whatever bytes a header holds and whatever size the file has,
//! `open` returns an error or a valid segment — it never panics, crashes or hangs.
#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use shmkit_segment::header::{
    FORMAT_VERSION, HEADER_SIZE, MAGIC, STATE_FAILED, STATE_INITIALISING, STATE_READY,
};
use shmkit_segment::shim::pid::ProcessId;
use shmkit_segment::{Error, Kind, SegmentOptions};
use std::os::unix::fs::FileExt;
use std::time::Duration;

const K: Kind = Kind::from_tag(*b"PROP");

/// Either a plausible value for a header field or an arbitrary one, so that the
/// generated headers reach every check, not only the magic number.
/// The first value of `good` is the valid one and is picked most often.
fn field_u64(good: Vec<u64>) -> impl Strategy<Value = u64> {
    prop_oneof![6 => Just(good[0]), 2 => proptest::sample::select(good), 1 => any::<u64>()]
}

fn field_u32(good: Vec<u32>) -> impl Strategy<Value = u32> {
    prop_oneof![6 => Just(good[0]), 2 => proptest::sample::select(good), 1 => any::<u32>()]
}

#[derive(Debug, Clone)]
struct Case {
    header: Vec<u8>,
    file_size: u64,
    use_total_as_size: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let me = ProcessId::current();
    (
        (
            field_u64(vec![MAGIC, 0]),
            field_u32(vec![FORMAT_VERSION, 0, FORMAT_VERSION + 1]),
            field_u32(vec![STATE_READY, 0, STATE_INITIALISING, STATE_FAILED, 4]),
            field_u32(vec![K.0, Kind::RAW.0]),
            field_u32(vec![1, 2]),
            field_u64(vec![
                4096 + HEADER_SIZE as u64,
                HEADER_SIZE as u64,
                4096,
                0,
                64,
            ]),
        ),
        (
            // A live creator (this process) makes INITIALISING headers wait out the
            // (short) open timeout; dead ones are reported at once.
            field_u32(vec![me.pid, 0, 1]),
            field_u64(vec![me.start_time, 0]),
            field_u64(vec![HEADER_SIZE as u64, 0, 64]),
            proptest::collection::vec(any::<u8>(), 72),
        ),
        prop_oneof![
            Just(0u64),
            0u64..HEADER_SIZE as u64,
            Just(HEADER_SIZE as u64),
            HEADER_SIZE as u64..3 * 4096,
            Just(4096 + HEADER_SIZE as u64),
        ],
        any::<bool>(),
    )
        .prop_map(
            |((magic, fv, state, kind, kv, total), (pid, start, data_off, reserved), size, t)| {
                let mut h = Vec::with_capacity(HEADER_SIZE);
                h.extend(magic.to_le_bytes());
                h.extend(fv.to_le_bytes());
                h.extend(state.to_le_bytes());
                h.extend(kind.to_le_bytes());
                h.extend(kv.to_le_bytes());
                h.extend(total.to_le_bytes());
                h.extend(pid.to_le_bytes());
                h.extend(0u32.to_le_bytes());
                h.extend(start.to_le_bytes());
                h.extend(data_off.to_le_bytes());
                h.extend(reserved);
                assert_eq!(h.len(), HEADER_SIZE);
                Case {
                    header: h,
                    file_size: size,
                    use_total_as_size: t,
                }
            },
        )
}

/// Builds the file `c` describes and opens it; `Ok(true)` when it opened.
fn check(c: &Case) -> Result<bool, TestCaseError> {
    let dir = common::TempDir::new("prop");
    let path = dir.join("seg");
    let f = std::fs::File::create(&path).unwrap();
    f.write_all_at(&c.header, 0).unwrap();
    let total = u64::from_le_bytes(c.header[24..32].try_into().unwrap());
    let size = if c.use_total_as_size && total < 1 << 20 {
        total
    } else {
        c.file_size
    };
    f.set_len(size).unwrap();
    drop(f);
    let r = SegmentOptions::new(K, 0)
        .kind_version(1)
        .open_timeout(Duration::from_millis(5))
        .open_file(&path);
    match r {
        Ok(seg) => {
            let info = seg.info();
            prop_assert_eq!(info.magic, MAGIC);
            prop_assert_eq!(info.format_version, FORMAT_VERSION);
            prop_assert_eq!(info.state, STATE_READY);
            prop_assert_eq!(info.kind, K);
            prop_assert_eq!(info.kind_version, 1);
            prop_assert_eq!(info.total_size, size);
            prop_assert_eq!(seg.data_len() as u64 + HEADER_SIZE as u64, size);
            if seg.data_len() >= 8 {
                seg.get::<shmkit_segment::shim::atomic::AtomicU64>(seg.data_len() - 8)
                    .unwrap();
            }
            Ok(true)
        }
        Err(
            Error::Corrupt { .. }
            | Error::Incompatible { .. }
            | Error::WrongKind { .. }
            | Error::KindVersion { .. }
            | Error::Truncated { .. }
            | Error::CreatorDied { .. }
            | Error::CreatorFailed { .. }
            | Error::NotReady { .. },
        ) => Ok(false),
        Err(e) => Err(TestCaseError::fail(format!("unexpected error kind: {e:?}"))),
    }
}

#[test]
fn open_of_any_header_and_size_is_an_error_or_a_valid_segment() {
    let config = ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let opened = shmkit_segment::shim::atomic::AtomicUsize::new(0);
    let refused = shmkit_segment::shim::atomic::AtomicUsize::new(0);
    proptest::test_runner::TestRunner::new(config)
        .run(&case(), |c| {
            let counter = if check(&c)? { &opened } else { &refused };
            counter.fetch_add(1, shmkit_segment::shim::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    // The generator must reach both outcomes, or the property proves little.
    let (o, r) = (opened.into_inner(), refused.into_inner());
    eprintln!("opened {o}, refused {r}");
    assert!(o > 0 && r > 0, "opened {o}, refused {r}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_logic_never_panics_on_random_inputs(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = shmkit_segment::fuzzing::open_input(&input);
    }

    #[test]
    fn fuzz_logic_with_a_valid_header_prefix(
        flags in any::<u8>(),
        state in prop_oneof![Just(STATE_READY), any::<u32>()],
        data in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut input = vec![flags | 0b0110_1111];
        input.extend(MAGIC.to_le_bytes());
        input.extend(FORMAT_VERSION.to_le_bytes());
        input.extend(state.to_le_bytes());
        input.extend(K.0.to_le_bytes());
        input.extend(1u32.to_le_bytes());
        input.extend([0u8; HEADER_SIZE - 24]);
        input.extend(data);
        let r = shmkit_segment::fuzzing::open_input(&input);
        if state == STATE_READY {
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }
}
