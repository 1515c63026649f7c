//! proptest: random acquire / try_acquire / release / acquire_timeout sequences on a
//! Semaphore and a BoundedSemaphore against a plain-integer model.
#![cfg(not(shmkit_loom))]

use proptest::prelude::*;
use shmkit_sync::{BoundedSemaphore, Error, RawSemaphore, Semaphore, MAX_VALUE};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
enum Op {
    TryAcquire,
    /// Blocking acquire: only issued by the model when a permit is available.
    Acquire,
    AcquireZero,
    AcquireShort,
    Release,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::TryAcquire),
        Just(Op::Acquire),
        Just(Op::AcquireZero),
        Just(Op::AcquireShort),
        Just(Op::Release),
    ]
}

/// Applies `ops` to `acquire`-style closures and checks every result and the value
/// against the model (`bound = None` for an unbounded semaphore).
fn check(
    initial: u32,
    bound: Option<u32>,
    ops: &[Op],
    raw: &RawSemaphore,
) -> Result<(), TestCaseError> {
    let mut model = initial;
    for &op in ops {
        match op {
            Op::TryAcquire => {
                prop_assert_eq!(raw.try_acquire(), model > 0);
                model = model.saturating_sub(1);
            }
            Op::Acquire => {
                if model > 0 {
                    raw.acquire();
                    model -= 1;
                }
            }
            Op::AcquireZero => {
                let got = raw.acquire_until(shmkit_sync::futex::deadline_after(Duration::ZERO));
                prop_assert_eq!(got, model > 0);
                model = model.saturating_sub(1);
            }
            Op::AcquireShort => {
                let got = raw.acquire_until(shmkit_sync::futex::deadline_after(
                    Duration::from_micros(50),
                ));
                prop_assert_eq!(got, model > 0);
                model = model.saturating_sub(1);
            }
            Op::Release => {
                let limit = bound.unwrap_or(MAX_VALUE);
                let r = raw.release();
                if model < limit {
                    prop_assert!(r.is_ok());
                    model += 1;
                } else if bound.is_some() {
                    let ok = matches!(r, Err(Error::ReleasedTooManyTimes { bound: b }) if Some(b) == bound);
                    prop_assert!(ok, "expected ReleasedTooManyTimes");
                } else {
                    let ok = matches!(r, Err(Error::Overflow { .. }));
                    prop_assert!(ok, "expected Overflow");
                }
            }
        }
        prop_assert_eq!(raw.get_value(), model);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn semaphore_matches_model(initial in 0u32..5, ops in proptest::collection::vec(op(), 0..60)) {
        let s = Semaphore::new(initial).expect("semaphore");
        check(initial, None, &ops, s.raw())?;
    }

    #[test]
    fn semaphore_near_the_maximum(back in 0u32..3, ops in proptest::collection::vec(op(), 0..30)) {
        let initial = MAX_VALUE - back;
        let s = Semaphore::new(initial).expect("semaphore");
        check(initial, None, &ops, s.raw())?;
    }

    #[test]
    fn bounded_semaphore_matches_model(initial in 0u32..5, ops in proptest::collection::vec(op(), 0..60)) {
        let s = BoundedSemaphore::new(initial).expect("bounded");
        check(initial, Some(initial), &ops, s.raw())?;
    }
}
