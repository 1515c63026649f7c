//! A named queue shared by a writer task and a reader task running in a pool (what
//! Python does with `Manager().Queue()`; here the queue is shared memory, no server).
use shmkit::pool::Pool;
use shmkit::queue::Queue;
use std::time::Duration;

const ITEMS: u32 = 10;

fn writer(name: String) -> Result<(), String> {
    let q: Queue<String> = Queue::open(&name).map_err(|e| e.to_string())?;
    for i in 0..ITEMS {
        let item = format!("message {i} from pid {}", std::process::id());
        q.put(item).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn reader(name: String) -> Result<Vec<String>, String> {
    let q: Queue<String> = Queue::open(&name).map_err(|e| e.to_string())?;
    (0..ITEMS)
        .map(|_| {
            q.get_timeout(Duration::from_secs(10))
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::process::init();
    let name = format!("pool-queue-example-{}", std::process::id());
    let q: Queue<String> = Queue::create(&name, 4)?; // maxsize 4: the writer waits for the reader
    let po = Pool::new(2)?;
    let w = po.apply_async(writer, name.clone())?;
    let r = po.apply_async(reader, name.clone())?;
    w.get()??;
    for line in r.get()?? {
        println!("reader got: {line}");
    }
    po.close();
    po.join()?;
    drop(q); // the creator's handle unlinks the name
    println!("done");
    Ok(())
}
