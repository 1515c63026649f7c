//! The `shmkit` command: `demo` (a tour with timings), `ls` and `gc` (segments).
#![forbid(unsafe_code)]

mod demo;
mod ls;

const USAGE: &str = "usage: shmkit [demo | ls | gc [--dry-run] | help]

  demo           a tour of shmkit with timings (the default)
  ls             list shmkit segments in /dev/shm: kind, size, creator, alive/stale
  gc [--dry-run] remove the names of stale segments (creator gone or never ready)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let code = match args.first().map_or("demo", String::as_str) {
        "demo" => match demo::run() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("shmkit demo: {e}");
                1
            }
        },
        "ls" => ls::ls(rest),
        "gc" => ls::gc(rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            0
        }
        other => {
            eprintln!("shmkit: unknown command {other:?}\n{USAGE}");
            2
        }
    };
    std::process::exit(code);
}
