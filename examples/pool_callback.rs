//! `apply_async` with a callback that collects the results in the parent (and an
//! error callback for the job that fails).
use shmkit::pool::{Callbacks, Pool};
use std::sync::{Arc, Mutex};

fn square(x: u64) -> u64 {
    if x == 7 {
        panic!("seven is unlucky");
    }
    x * x
}

fn main() -> Result<(), shmkit::pool::Error> {
    shmkit::process::init();
    let main_pid = std::process::id();
    println!("main pid {main_pid}");
    let results = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let po = Pool::new(4)?;
    for i in 0..10 {
        let (res, errs) = (Arc::clone(&results), Arc::clone(&errors));
        let cb = Callbacks::new()
            .callback(move |v: u64| {
                // Callbacks run in the parent, one at a time.
                assert_eq!(std::process::id(), main_pid);
                res.lock().expect("no callback panicked").push(v);
            })
            .error_callback(move |e| {
                errs.lock()
                    .expect("no callback panicked")
                    .push(e.to_string());
            });
        po.apply_async_with(square, i, cb)?;
    }
    po.close();
    po.join()?; // returns after every callback ran
    let mut r = results.lock().expect("no callback panicked").clone();
    r.sort_unstable();
    println!("results: {r:?}");
    println!("errors: {:?}", errors.lock().expect("no callback panicked"));
    Ok(())
}
