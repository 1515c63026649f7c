//! Two consumers share one receiving end under a `Lock`; the producer sends ten
//! items and then one `None` per consumer as a stop sentinel.
//!
//! (shmkit already serialises receivers of a shared end, so a message is never torn
//! even without the lock; the lock is kept to mirror the tutorial's program, where it
//! is what keeps Python's pipe from corrupting.)
use shmkit::pipe::{Pipe, Receiver, Sender};
use shmkit::process::Process;
use shmkit::sync::Lock;

fn consumer(
    name: &'static str,
    rx: Receiver,
    tx: Sender,
    lock: Lock,
) -> impl FnOnce() -> Result<(), shmkit::pipe::Error> {
    move || {
        tx.close(); // the producer's end, inherited: not ours to keep open
        loop {
            let item: Option<u32> = {
                let _guard = lock.acquire();
                rx.recv()?
            };
            match item {
                Some(baozi) => println!("{name} got baozi {baozi}"),
                None => {
                    println!("{name} done");
                    return Ok(());
                }
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (rx, tx) = Pipe::one_way()?;
    let lock = Lock::new()?;
    let mut c1 = Process::new(consumer("c1", rx.clone(), tx.clone(), lock.clone()));
    let mut c2 = Process::new(consumer("c2", rx.clone(), tx.clone(), lock.clone()));
    let producer_tx = tx.clone();
    let producer_rx = rx.clone();
    let mut producer = Process::new(move || -> Result<(), shmkit::pipe::Error> {
        producer_rx.close();
        for i in 0..10u32 {
            producer_tx.send(&Some(i))?;
        }
        producer_tx.send(&None::<u32>)?;
        producer_tx.send(&None::<u32>)?;
        Ok(())
    });
    c1.start()?;
    c2.start()?;
    producer.start()?;
    rx.close();
    tx.close();
    for p in [&c1, &c2, &producer] {
        p.join()?;
    }
    println!(
        "main: exit codes {:?} {:?} {:?}",
        c1.exitcode(),
        c2.exitcode(),
        producer.exitcode()
    );
    Ok(())
}
