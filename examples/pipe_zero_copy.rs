//! Zero copy: a producer child writes 200 sensor frames of 64 KiB straight into the
//! pipe's ring (`send_bytes_with`), then sends one 3 MiB snapshot (bigger than the
//! ring, so it travels in fragments); the parent reads each frame in place, where it
//! lies in the pipe's shared memory (`recv_bytes_with`), and checks a checksum the
//! producer put in the frame header. The snapshot is assembled in a buffer the
//! receiving handle keeps and reuses.
//!
//! Both calls are `unsafe` because their closures access shared memory: no other
//! process may touch those bytes meanwhile, which holds for every process that uses
//! the pipe through shmkit.
use shmkit::pipe::{Error, Pipe};
use shmkit::process::Process;

const FRAMES: u64 = 200;
const FRAME: usize = 64 << 10;

/// Sum of the little-endian 64-bit words of `body`.
fn checksum(body: &[u8]) -> u64 {
    body.chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
        .fold(0, u64::wrapping_add)
}

/// Writes frame `i` into `f`: 8 bytes of checksum, then a body that depends on `i`.
fn write_frame(i: u64, f: &mut [u8]) {
    for (k, w) in f[8..].chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&(i * 1_000_003 + k as u64).to_le_bytes());
    }
    let sum = checksum(&f[8..]);
    f[..8].copy_from_slice(&sum.to_le_bytes());
}

/// Whether `msg` carries the checksum of its body.
fn intact(msg: &[u8]) -> bool {
    msg.len() >= 8 && msg[..8] == checksum(&msg[8..]).to_le_bytes()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (rx, tx) = Pipe::one_way()?;
    let mut producer = Process::new({
        let (rx, tx) = (rx.clone(), tx.clone());
        move || {
            rx.close();
            for i in 0..FRAMES {
                // Written in place, straight into the pipe's ring.
                // SAFETY: only shmkit's pipe code (in this process and the parent)
                // touches the pipe's shared memory.
                unsafe { tx.send_bytes_with(FRAME, |buf| write_frame(i, buf)) }?;
            }
            let mut snapshot = vec![0u8; 3 << 20];
            write_frame(FRAMES, &mut snapshot);
            tx.send_bytes(&snapshot)?;
            Ok::<(), Error>(())
        }
    });
    producer.start()?;
    tx.close();
    let (mut frames, mut good, mut bytes) = (0u64, 0u64, 0usize);
    loop {
        // SAFETY: only shmkit's pipe code (in this process and the producer) writes
        // the pipe's shared memory.
        let r = unsafe { rx.recv_bytes_with(|msg| (msg.len(), intact(msg))) };
        match r {
            Ok((len, ok)) => {
                frames += 1;
                good += u64::from(ok);
                bytes += len;
                if len > FRAME {
                    println!("parent: snapshot of {len} bytes intact: {ok}");
                }
            }
            Err(Error::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    producer.join()?;
    println!("parent: {frames} messages, {good} intact, {bytes} bytes");
    println!("parent: producer exit code {:?}", producer.exitcode());
    Ok(())
}
