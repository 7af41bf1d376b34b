//! Large reads from an upstream TLS connection's socket while a body is streaming.
//!
//! rustls asks its transport for at most what completes one TLS record (16 KiB and a little, often
//! 4 KiB), so a 1 MiB body over TLS cost about 60 `recvfrom` calls, each a few microseconds of the
//! proxy's core (docs/performance.md, "Fourth round"). [`ReadAhead`] sits between the TCP socket
//! and rustls: while the socket keeps more waiting than rustls asked for, it reads up to
//! [`READ_AHEAD`] bytes in one call and hands them to rustls from memory. A socket that came back
//! short is read directly again (no copy), and the buffer is let go as soon as the socket has
//! nothing to give, so an idle or slow connection (a held event-queue poll, a pooled keep-alive
//! connection) holds no buffer.
//!
//! This module owns that buffering. It must not look at the bytes: they are TLS records.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The most read from the socket in one call while a body streams: 16 calls per MiB instead of
/// about 60.
pub(super) const READ_AHEAD: usize = 64 * 1024;

/// A TCP connection read in large gulps while it has plenty to give ([the module](self)).
#[derive(Debug)]
pub(crate) struct ReadAhead {
    io: TcpStream,
    /// Bytes read and not handed on yet: `buf[start..end]`. Empty (no allocation) unless the
    /// connection is busy.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The last read from the socket filled all it was given: more is probably waiting.
    busy: bool,
}

impl ReadAhead {
    pub(crate) fn new(io: TcpStream) -> Self {
        ReadAhead {
            io,
            buf: Vec::new(),
            start: 0,
            end: 0,
            busy: false,
        }
    }

    /// Whether a read-ahead buffer is allocated.
    #[cfg(test)]
    fn holds_buffer(&self) -> bool {
        self.buf.capacity() > 0
    }

    /// Bytes read from the socket and not handed on yet.
    pub(crate) fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Waits until a read would find something.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        if self.buffered() > 0 {
            return Ok(());
        }
        self.io.readable().await
    }

    /// Hands buffered bytes on; the buffer is kept for the next gulp.
    fn drain_into(&mut self, out: &mut ReadBuf<'_>) {
        let n = self.buffered().min(out.remaining());
        out.put_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

impl AsyncRead for ReadAhead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buffered() > 0 {
            this.drain_into(out);
            return Poll::Ready(Ok(()));
        }
        if !this.busy || out.remaining() >= READ_AHEAD {
            // Quiet so far, or the caller asks for as much: read straight into its buffer.
            let asked = out.remaining();
            let before = out.filled().len();
            let polled = Pin::new(&mut this.io).poll_read(cx, out);
            match &polled {
                Poll::Ready(Ok(())) => {
                    this.busy = asked > 0 && out.filled().len() - before == asked
                }
                Poll::Ready(Err(_)) => this.busy = false,
                Poll::Pending => this.release(),
            }
            return polled;
        }
        if this.buf.is_empty() {
            this.buf = vec![0; READ_AHEAD];
        }
        let mut gulp = ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.io).poll_read(cx, &mut gulp) {
            Poll::Pending => {
                this.release();
                return Poll::Pending;
            }
            Poll::Ready(Err(e)) => {
                this.release();
                return Poll::Ready(Err(e));
            }
            Poll::Ready(Ok(())) => {}
        }
        let n = gulp.filled().len();
        this.busy = n == READ_AHEAD;
        this.start = 0;
        this.end = n;
        this.drain_into(out);
        Poll::Ready(Ok(()))
    }
}

impl ReadAhead {
    /// The socket has nothing to give: let the buffer go (it is empty whenever this is called).
    fn release(&mut self) {
        self.busy = false;
        if self.buffered() == 0 {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }
}

impl AsyncWrite for ReadAhead {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests;
