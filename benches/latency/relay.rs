//! The least a relay on another core can do, for `trace.sh relay`: a TCP relay with one thread per
//! direction, blocking `read` then `write`, `TCP_NODELAY`, no TLS, no HTTP. TLS runs end to end
//! (oha to nginx), so what it adds to a request is only the relaying: two reads, two writes and two
//! wake-ups of its core. Not part of capscope; built by trace.sh with `rustc -O`.
//!
//! usage: relay LISTEN_ADDR UPSTREAM_ADDR

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn relay(client: TcpStream, upstream: &str) -> std::io::Result<()> {
    let origin = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    origin.set_nodelay(true)?;
    let (client2, origin2) = (client.try_clone()?, origin.try_clone()?);
    thread::spawn(move || pump(client, origin));
    thread::spawn(move || pump(origin2, client2));
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream] = &args[..] else {
        eprintln!("usage: relay LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let listener = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("relay: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    for client in listener.incoming().flatten() {
        if let Err(e) = relay(client, upstream) {
            eprintln!("relay: {e}");
        }
    }
}
