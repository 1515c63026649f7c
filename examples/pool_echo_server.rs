//! A TCP upper-casing echo server on 127.0.0.1 (an ephemeral port) whose work is
//! done by a `Pool(4)`, and a client in the same program that checks the replies.
//! The server serves a fixed number of connections, then everything shuts down.
use shmkit::pool::Pool;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

const CLIENTS: usize = 4;
const LINES: usize = 5;

/// The work, done in a pool worker: upper-case one line.
fn upper(line: String) -> (String, u32) {
    (line.to_uppercase(), std::process::id())
}

fn serve(pool: &Pool, conn: TcpStream) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    conn.set_nodelay(true)?;
    let mut out = conn.try_clone()?;
    for line in BufReader::new(conn).lines() {
        let (reply, pid) = pool.apply(upper, line?)?;
        writeln!(out, "{reply}")?;
        println!("server: worker {pid} answered {reply:?}");
    }
    Ok(())
}

fn client(port: u16, id: usize) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_nodelay(true)?;
    let mut out = conn.try_clone()?;
    let mut replies = BufReader::new(conn).lines();
    for i in 0..LINES {
        let msg = format!("hello {id}.{i} from the client");
        writeln!(out, "{msg}")?;
        let reply = replies.next().ok_or("the server closed the connection")??;
        if reply != msg.to_uppercase() {
            return Err(format!("bad reply {reply:?} to {msg:?}").into());
        }
    }
    out.shutdown(std::net::Shutdown::Write)?;
    Ok(LINES)
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    shmkit::process::init();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    println!("server listening on 127.0.0.1:{port}");
    let pool = Pool::new(4)?;
    let ok = std::thread::scope(|s| {
        let server = s.spawn(|| {
            std::thread::scope(|conns| {
                for _ in 0..CLIENTS {
                    let (conn, _) = listener.accept()?;
                    let pool = &pool;
                    conns.spawn(move || {
                        if let Err(e) = serve(pool, conn) {
                            eprintln!("server: {e}");
                        }
                    });
                }
                Ok::<(), std::io::Error>(())
            })
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| s.spawn(move || client(port, id)))
            .collect();
        let mut ok = 0;
        for c in clients {
            match c.join() {
                Ok(Ok(n)) => ok += n,
                Ok(Err(e)) => eprintln!("client: {e}"),
                Err(_) => eprintln!("client panicked"),
            }
        }
        let _ = server.join();
        ok
    });
    pool.close();
    pool.join()?;
    println!("client: {ok} of {} replies correct", CLIENTS * LINES);
    if ok != CLIENTS * LINES {
        return Err("some replies were wrong".into());
    }
    Ok(())
}
