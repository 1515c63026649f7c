//! `shmkit ls` and `shmkit gc`: the named segments in `/dev/shm`, and removing the
//! stale ones.

use shmkit::segment::{self, SegmentInfo};

/// `shmkit ls`: a table of every shmkit segment. Returns the exit code.
pub(crate) fn ls(args: &[String]) -> i32 {
    if let Some(a) = args.first() {
        eprintln!("shmkit ls: unexpected argument {a:?}");
        return 2;
    }
    let Some(list) = list_segments("ls") else {
        return 1;
    };
    if list.is_empty() {
        println!("no shmkit segments in {}", segment::SHM_DIR);
        return 0;
    }
    print!("{}", table(&list));
    let stale = list.iter().filter(|i| i.is_stale()).count();
    if stale > 0 {
        println!("\n{stale} stale; `shmkit gc` removes their names (`--dry-run` to preview)");
    }
    0
}

/// Every shmkit segment, or `None` after telling the user why the list failed.
fn list_segments(cmd: &str) -> Option<Vec<SegmentInfo>> {
    segment::list()
        .map_err(|e| eprintln!("shmkit {cmd}: cannot read {}: {e}", segment::SHM_DIR))
        .ok()
}

/// `shmkit gc [--dry-run]`: unlinks the stale segments. Returns the exit code.
pub(crate) fn gc(args: &[String]) -> i32 {
    let dry_run = match args {
        [] => false,
        [a] if a == "--dry-run" || a == "-n" => true,
        [a, ..] => {
            eprintln!("shmkit gc: unexpected argument {a:?} (only --dry-run)");
            return 2;
        }
    };
    let Some(list) = list_segments("gc") else {
        return 1;
    };
    let mut code = 0;
    let mut n = 0;
    for info in list.iter().filter(|i| i.is_stale()) {
        n += 1;
        let why = reason(info);
        if dry_run {
            println!("would remove {} ({why})", info.name);
            continue;
        }
        // Look again just before removing: the name may have been reused meanwhile.
        if !segment::inspect(&info.name).is_some_and(|i| i.is_stale()) {
            continue;
        }
        // Remove the path itself rather than `segment::unlink`: debris may carry a
        // name that `validate_name` refuses. Mappings held by other processes stay
        // valid; only new opens stop finding it.
        match std::fs::remove_file(segment::shm_path(&info.name)) {
            Ok(()) => println!("removed {} ({why})", info.name),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                eprintln!("shmkit gc: cannot remove {}: {e}", info.name);
                code = 1;
            }
        }
    }
    if n == 0 {
        println!("nothing to remove");
    }
    code
}

fn reason(info: &SegmentInfo) -> String {
    match (&info.header, &info.problem) {
        (_, Some(p)) => p.clone(),
        (Some(h), None) => format!("creator pid {} is gone", h.creator.pid),
        (None, None) => "unknown".into(),
    }
}

fn status(info: &SegmentInfo) -> &'static str {
    if info.is_stale() {
        "stale"
    } else if info.header.is_some() && info.creator_alive {
        "alive"
    } else {
        "unknown"
    }
}

/// Bytes in a short human form (`4.0 KiB`).
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn table(list: &[SegmentInfo]) -> String {
    let mut rows = vec![["NAME", "KIND", "SIZE", "CREATOR", "STATUS", "PROBLEM"].map(String::from)];
    for i in list {
        rows.push([
            i.name.clone(),
            i.kind().map_or_else(|| "-".into(), |k| k.to_string()),
            human(i.file_size),
            i.creator_pid()
                .map_or_else(|| "-".into(), |p| p.to_string()),
            status(i).into(),
            i.problem.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (k, (c, w)) in r.iter().zip(widths).enumerate() {
            if k + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human(100), "100 B");
        assert_eq!(human(4096 + 128), "4.1 KiB");
        assert_eq!(human(64 << 20), "64.0 MiB");
    }

    #[test]
    fn table_aligns_columns() {
        let info = SegmentInfo {
            name: "jobs".into(),
            file_size: 4224,
            header: None,
            creator_alive: false,
            problem: Some("bad magic: not a shmkit segment".into()),
            age: None,
            readable: true,
        };
        let t = table(&[info]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("NAME  KIND  SIZE"));
        assert!(lines[1].starts_with("jobs  -     4.1 KiB"));
    }
}
