//! A duplex pipe between the main process and a child: the child greets, the parent
//! answers (the first Pipe program of the multiprocessing tutorials, in Rust).
//!
//! `cargo run --example pipe_duplex` forks the child (it inherits its end);
//! `cargo run --example pipe_duplex -- spawn` re-executes this binary and hands the
//! child its end as a token.
use shmkit::pipe::{Connection, EndToken, Pipe};
use shmkit::process::Process;

/// The child's side of the conversation.
fn talk(conn: Connection) -> Result<(), shmkit::pipe::Error> {
    conn.send("Welcome to Beijing!")?;
    let reply: String = conn.recv()?;
    println!("child {}: got {reply:?}", std::process::id());
    conn.close();
    Ok(())
}

/// Spawn entry point: rebuild the end from its token.
fn talk_token(token: EndToken) -> Result<(), shmkit::pipe::Error> {
    talk(Connection::from_token(&token)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::process::init();
    let spawn = std::env::args().nth(1).as_deref() == Some("spawn");
    let (parent_end, child_end) = Pipe::duplex()?;
    let mut p = if spawn {
        Process::spawn_fn(talk_token, child_end.token()?)
    } else {
        let end = child_end.clone();
        Process::new(move || talk(end))
    };
    p.start()?;
    let greeting: String = parent_end.recv()?;
    println!("parent: got {greeting:?}");
    parent_end.send("I'm coming!")?;
    p.join()?;
    // The parent's own copy of the child's end goes too: then the pipe is at EOF.
    child_end.close();
    match parent_end.recv::<String>() {
        Err(shmkit::pipe::Error::Eof) => println!("parent: EOF"),
        other => println!("parent: unexpected {other:?}"),
    }
    Ok(())
}
