//! Property: any sequence of messages (0 B to 1 MiB, 1000 per case) crosses a pipe
//! of any capacity byte-identical and in order, through every receive call
//! (including the zero-copy `recv_bytes_with`), every third one sent with the
//! zero-copy `send_bytes_with`.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use proptest::prelude::*;
use shmkit_pipe::Pipe;

/// Message `i` of a case: a 61-byte block that depends on (seed, i) repeated (61 is
/// odd, so a shifted or torn message is noticed), cut to `len` bytes.
fn fill(seed: u64, i: usize, len: usize) -> Vec<u8> {
    let mut x = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ len as u64 | 1;
    let block: Vec<u8> = (0..61)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut v = block.repeat(len / 61 + 1);
    v.truncate(len);
    v
}

/// Sizes from 0 to 1 MiB, spread over every order of magnitude.
fn size() -> impl Strategy<Value = usize> {
    (0u32..=20, any::<u32>()).prop_map(|(bits, r)| {
        let hi = 1usize << bits;
        (r as usize % hi + hi / 2).min(1 << 20)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    #[test]
    fn messages_round_trip_in_order(
        sizes in prop::collection::vec(size(), 1000),
        cap_bits in 8u32..=20,
        seed in any::<u64>(),
        how in prop::collection::vec(0u8..4, 1000),
    ) {
        let (rx, tx) = Pipe::builder().capacity(1 << cap_bits).one_way().unwrap();
        let sz = sizes.clone();
        let sender = std::thread::spawn(move || {
            for (i, &len) in sz.iter().enumerate() {
                let m = fill(seed, i, len);
                if i % 3 == 0 {
                    // SAFETY: only shmkit's pipe code touches this pipe's memory.
                    unsafe { tx.send_bytes_with(len, |b| b.copy_from_slice(&m)) }.unwrap();
                } else {
                    tx.send_bytes(&m).unwrap();
                }
            }
        });
        let mut buf = vec![0u8; 1 << 20];
        for (i, &len) in sizes.iter().enumerate() {
            let want = fill(seed, i, len);
            match how[i] {
                0 => prop_assert_eq!(rx.recv_bytes().unwrap(), want),
                1 => prop_assert_eq!(rx.recv_bytes_max(len).unwrap(), want),
                2 => {
                    let n = rx.recv_bytes_into(&mut buf, 0).unwrap();
                    prop_assert_eq!(&buf[..n], &want[..]);
                }
                _ => {
                    // SAFETY: only shmkit's pipe code writes this pipe's memory.
                    let same = unsafe { rx.recv_bytes_with(|m| m == &want[..]) }.unwrap();
                    prop_assert!(same, "message {} differs (recv_bytes_with)", i);
                }
            }
        }
        sender.join().unwrap();
        prop_assert!(matches!(rx.recv_bytes(), Err(shmkit_pipe::Error::Eof)));
    }
}
