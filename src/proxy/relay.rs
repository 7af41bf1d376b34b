//! Copying bytes both ways between two connections that capscope no longer reads as HTTP: raw
//! CONNECT tunnels (`connect.rs`) and connections upgraded after a 101 (`upgrade.rs`).
//!
//! Owns the copy loop only: when it ends (both sides closed, an error, idle, shutdown) and what it
//! counts. It must not know what the bytes mean; a caller that wants to look at them passes an
//! observer.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::server::Life;

/// Size of each direction's copy buffer.
const RELAY_BUFFER: usize = 16 * 1024;

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// From the client to the server.
    Up,
    /// From the server to the client.
    Down,
}

/// Copies both ways until both sides closed, counting bytes (`counts.0` up, `counts.1` down) and
/// showing each chunk to `observe` after it was passed on. Ends on an error, after `idle` without a
/// byte either way, or when the proxy stops.
pub(super) async fn pump<C, U>(
    client: &mut C,
    upstream: &mut U,
    idle: Duration,
    life: &Life,
    counts: &mut (u64, u64),
    mut observe: impl FnMut(Direction, &[u8]),
) -> Result<(), String>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);
    let mut up_buf = vec![0u8; RELAY_BUFFER];
    let mut down_buf = vec![0u8; RELAY_BUFFER];
    let (mut up_open, mut down_open) = (true, true);
    let stopped = life.stopped();
    tokio::pin!(stopped);
    // A TLS peer that goes away without close_notify (UnexpectedEof) has still closed.
    let closed = |r: &std::io::Result<usize>| match r {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::UnexpectedEof,
        Ok(_) => false,
    };
    while up_open || down_open {
        tokio::select! {
            r = cr.read(&mut up_buf), if up_open => match r {
                ref r if closed(r) => { up_open = false; let _ = uw.shutdown().await; }
                Ok(n) => {
                    uw.write_all(&up_buf[..n]).await.map_err(|e| format!("writing to the server failed: {e}"))?;
                    counts.0 += n as u64;
                    observe(Direction::Up, &up_buf[..n]);
                }
                Err(e) => return Err(format!("reading from the client failed: {e}")),
            },
            r = ur.read(&mut down_buf), if down_open => match r {
                ref r if closed(r) => { down_open = false; let _ = cw.shutdown().await; }
                Ok(n) => {
                    cw.write_all(&down_buf[..n]).await.map_err(|e| format!("writing to the client failed: {e}"))?;
                    counts.1 += n as u64;
                    observe(Direction::Down, &down_buf[..n]);
                }
                Err(e) => return Err(format!("reading from the server failed: {e}")),
            },
            _ = tokio::time::sleep(idle) => {
                return Err(format!("closed after {} s without traffic", idle.as_secs()));
            }
            _ = &mut stopped => return Err("capscope shut down".into()),
        }
    }
    Ok(())
}
