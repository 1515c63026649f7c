//! Property tests: the pool's map/imap/starmap equal the sequential computation for
//! any input length and chunk size.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use shmkit_pool::Pool;
use std::sync::OnceLock;

fn mix(x: u32) -> u64 {
    u64::from(x).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        Pool::builder()
            .processes(2)
            .ring_bytes(4096)
            .build()
            .unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn map_equals_sequential(xs in proptest::collection::vec(any::<u32>(), 0..3000), cs in 1usize..700) {
        let want: Vec<u64> = xs.iter().map(|&x| mix(x)).collect();
        prop_assert_eq!(pool().map_async(mix, xs.clone(), Some(cs)).unwrap().get().unwrap(), want.clone());
        let ordered: Vec<u64> = pool().imap_chunksize(mix, xs.clone(), cs).unwrap().map(Result::unwrap).collect();
        prop_assert_eq!(ordered, want.clone());
        let mut unordered: Vec<u64> = pool().imap_unordered_chunksize(mix, xs, cs).unwrap().map(Result::unwrap).collect();
        let mut sorted = want;
        unordered.sort_unstable();
        sorted.sort_unstable();
        prop_assert_eq!(unordered, sorted);
    }
}
