//! The `shmkit` command: `demo` (a tour with timings), `ls` and `gc` (segments).
fn main() {
    let cmd = std::env::args().nth(1).unwrap_or_else(|| "demo".into());
    match cmd.as_str() {
        "demo" => println!("shmkit demo: under construction"),
        _ => {
            eprintln!("usage: shmkit [demo|ls|gc]");
            std::process::exit(2);
        }
    }
}
