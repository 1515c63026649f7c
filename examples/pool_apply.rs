//! Blocking `apply`: each call waits for its job, so the jobs run one after another
//! (Python's synchronous pool example).
use shmkit::pool::Pool;
use std::time::Duration;

fn worker(msg: u32) -> u32 {
    println!("job {msg} running in pid {}", std::process::id());
    std::thread::sleep(Duration::from_millis(20));
    println!("job {msg} finished");
    msg * 10
}

fn main() -> Result<(), shmkit::pool::Error> {
    shmkit::process::init();
    let po = Pool::new(3)?;
    println!("----start----");
    for i in 0..5 {
        let r = po.apply(worker, i)?; // blocks until the job is done
        println!("apply({i}) returned {r}");
    }
    po.close();
    po.join()?;
    println!("-----end-----");
    Ok(())
}
