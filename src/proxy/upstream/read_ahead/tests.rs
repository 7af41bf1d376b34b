//! The read-ahead layer over real sockets on 127.0.0.1.

use std::future::{poll_fn, Future};
use std::task::Waker;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A connected pair: (the read-ahead side, the peer).
async fn pair() -> (ReadAhead, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let ours = ours.expect("connect");
    let (theirs, _) = theirs.expect("accept");
    (ReadAhead::new(ours), theirs)
}

/// Deterministic bytes that differ from offset to offset (so a skipped or repeated span shows).
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

/// One read of at most `ask` bytes.
async fn read_some(r: &mut ReadAhead, ask: usize) -> Vec<u8> {
    let mut buf = vec![0u8; ask];
    let n = r.read(&mut buf).await.expect("read");
    buf.truncate(n);
    buf
}

/// Polls a read once without waiting: `None` when it would wait.
fn poll_once(r: &mut ReadAhead, ask: usize) -> Option<Vec<u8>> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut space = vec![0u8; ask];
    let mut buf = ReadBuf::new(&mut space);
    match Pin::new(r).poll_read(&mut cx, &mut buf) {
        Poll::Ready(r) => {
            r.expect("read");
            Some(buf.filled().to_vec())
        }
        Poll::Pending => None,
    }
}

/// Everything the peer sends comes out in order, whatever the reader asks for at a time (as rustls
/// asks: a few KiB, one TLS record, or more than a gulp).
#[tokio::test]
async fn a_long_stream_comes_through_byte_for_byte_whatever_the_read_sizes() {
    let (mut ours, mut theirs) = pair().await;
    let sent = pattern(3 * 1024 * 1024 + 17);
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        theirs.write_all(&to_send).await.expect("write");
        theirs.shutdown().await.expect("shutdown");
        theirs
    });
    let asks = [4096, 16_709, 1, READ_AHEAD + 5, 300, 8192];
    let mut got = Vec::with_capacity(sent.len());
    let mut gulped = false;
    for i in 0.. {
        let chunk = read_some(&mut ours, asks[i % asks.len()]).await;
        if chunk.is_empty() {
            break;
        }
        gulped |= ours.buffered() > 0;
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len(), sent.len(), "every byte, once");
    assert!(got == sent, "the bytes in the order they were sent");
    assert!(
        gulped,
        "some reads took more from the socket than was asked"
    );
    drop(writer.await.expect("writer"));
}

/// While the socket holds plenty, a small read after one that came back full takes a gulp from it, and the next small reads are served from memory.
#[tokio::test]
async fn a_busy_socket_is_read_a_gulp_at_a_time() {
    let (mut ours, mut theirs) = pair().await;
    let sent = pattern(4 * READ_AHEAD);
    theirs.write_all(&sent).await.expect("write");
    // Wait until all of it can be read without waiting (loopback: it is in our receive buffer).
    let mut first = Vec::new();
    while first.is_empty() {
        ours.readable().await.expect("readable");
        first = poll_once(&mut ours, 4096).unwrap_or_default();
    }
    assert_eq!(first.len(), 4096, "the first read fills what it asked for");
    assert_eq!(
        ours.buffered(),
        0,
        "a quiet connection's first read is direct"
    );
    let second = read_some(&mut ours, 4096).await;
    assert_eq!(second.len(), 4096);
    assert!(
        ours.buffered() > 0,
        "the second read took more than it asked from the socket"
    );
    let mut got = [first, second].concat();
    while got.len() < sent.len() {
        got.extend(read_some(&mut ours, 4096).await);
    }
    assert!(got == sent);
}

/// A connection whose socket runs dry lets its buffer go: idle pooled connections and held polls
/// cost no read-ahead memory.
#[tokio::test]
async fn a_connection_with_nothing_to_read_holds_no_buffer() {
    let (mut ours, mut theirs) = pair().await;
    let sent = pattern(2 * READ_AHEAD);
    theirs.write_all(&sent).await.expect("write");
    let mut got = Vec::new();
    let mut held = false;
    while got.len() < sent.len() {
        got.extend(read_some(&mut ours, 4096).await);
        held |= ours.holds_buffer();
    }
    assert!(held, "the buffer was used while the bytes streamed");
    assert!(got == sent);
    assert_eq!(poll_once(&mut ours, 4096), None, "nothing more to read");
    assert!(
        !ours.holds_buffer(),
        "the buffer was let go when the socket ran dry"
    );
    // And what comes later still arrives.
    theirs.write_all(b"later").await.expect("write");
    assert_eq!(read_some(&mut ours, 4096).await, b"later");
}

/// `readable` answers at once while bytes wait in the buffer (the socket itself may be empty).
#[tokio::test]
async fn buffered_bytes_make_the_connection_readable() {
    let (mut ours, mut theirs) = pair().await;
    theirs
        .write_all(&pattern(3 * READ_AHEAD))
        .await
        .expect("write");
    let gulp = async {
        while ours.buffered() == 0 {
            read_some(&mut ours, 4096).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), gulp)
        .await
        .expect("a read took more from the socket than it asked");
    poll_fn(|cx| {
        let ready = std::pin::pin!(ours.readable()).poll(cx);
        assert!(matches!(ready, Poll::Ready(Ok(()))), "readable at once");
        Poll::Ready(())
    })
    .await;
}

/// Writes go straight to the socket, plain and vectored.
#[tokio::test]
async fn writes_pass_through() {
    let (mut ours, mut theirs) = pair().await;
    ours.write_all(b"one ").await.expect("write");
    let bufs = [io::IoSlice::new(b"two "), io::IoSlice::new(b"three")];
    let n = ours.write_vectored(&bufs).await.expect("write_vectored");
    assert_eq!(n, 9, "loopback takes both slices at once");
    ours.flush().await.expect("flush");
    ours.shutdown().await.expect("shutdown");
    let mut got = String::new();
    theirs.read_to_string(&mut got).await.expect("read");
    assert_eq!(got, "one two three");
}
