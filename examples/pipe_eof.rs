//! EOF after the producer closes: the consumer child closes the sending end it
//! inherited, the parent closes the receiving end it does not use, sends ten
//! messages and closes; the child reads until `Error::Eof` (Python's EOFError).
//!
//! Leave out either `close` and the consumer waits forever — exactly as in Python:
//! an end is closed only once it is closed in every process that holds it.
use shmkit::pipe::{Error, Pipe};
use shmkit::process::Process;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (left, right) = Pipe::duplex()?;
    let (l, r) = (left.clone(), right.clone());
    let mut consumer = Process::new(move || {
        l.close(); // without this the consumer never sees EOF
        let mut n = 0;
        loop {
            match r.recv::<String>() {
                Ok(msg) => {
                    n += 1;
                    println!("consumer: {msg} {n}");
                }
                Err(Error::Eof) => {
                    println!("consumer: EOF after {n} messages");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    });
    consumer.start()?;
    right.close();
    for _ in 0..10 {
        left.send("hello")?;
    }
    left.close();
    consumer.join()?;
    println!("main: consumer exit code {:?}", consumer.exitcode());
    Ok(())
}
