//! CONNECT: answer 200, peek at the first bytes the client sends, then intercept TLS with a minted leaf,
//! serve plain HTTP, or pass anything else through as a raw tunnel (as for `--passthrough` hosts).
//!
//! This module owns what happens inside a CONNECT tunnel up to the point where HTTP is served (that is
//! `server`/`exchange`). It must not look at requests.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;

use super::exchange::{Ctx, Origin};
use super::relay;
use super::server::{serve_http1, serve_http2, Life, Shared};
use super::tap::ProxyBody;
use super::wire::{split_authority, text_response};
use crate::record::{Kind, Record, State, TunnelInfo};
use crate::util::glob;

/// How long to wait for a tunnelled client's first bytes before treating the tunnel as raw (a
/// protocol where the server speaks first).
const PEEK_TIMEOUT: Duration = Duration::from_secs(2);
/// Enough bytes to tell an HTTP method from anything else.
const PEEK_MAX: usize = 16;
/// The TLS record type of a handshake message: a ClientHello starts with it.
const TLS_HANDSHAKE: u8 = 0x16;
/// Methods that make a tunnel's first bytes HTTP.
const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// Answers a CONNECT and serves the tunnel once hyper hands the connection over.
pub(crate) fn accept(ctx: &Ctx, req: Request<Incoming>) -> Response<ProxyBody> {
    let Some(authority) = req.uri().authority().map(|a| a.as_str().to_owned()) else {
        ctx.shared.error_record(
            ctx.client,
            format!("CONNECT without a host:port target ({})", req.uri()),
        );
        let resp = text_response(
            StatusCode::BAD_REQUEST,
            "capscope: CONNECT needs a host:port target\n".into(),
        );
        return resp.map(ProxyBody::full);
    };
    let on_upgrade = hyper::upgrade::on(req);
    let (shared, life, client) = (ctx.shared.clone(), ctx.life.clone(), ctx.client);
    // The tunnel keeps the client connection's place under the connection limit.
    let slot = ctx.slot.clone();
    tokio::spawn(async move {
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => tunnel(shared, life, client, authority, TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!("CONNECT from {client} to {authority} not upgraded: {e}"),
        }
    });
    Response::new(ProxyBody::empty())
}

/// What a tunnel's first bytes are.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    Tls,
    Http,
    Other,
    /// Not enough bytes yet.
    Unsure,
}

fn sniff(first: &[u8]) -> Sniffed {
    match first.first() {
        None => Sniffed::Unsure,
        Some(&TLS_HANDSHAKE) => Sniffed::Tls,
        Some(_) => {
            if HTTP_METHODS.iter().any(|m| first.starts_with(m)) {
                Sniffed::Http
            } else if HTTP_METHODS
                .iter()
                .any(|m| first.len() < m.len() && m.starts_with(first))
            {
                Sniffed::Unsure
            } else {
                Sniffed::Other
            }
        }
    }
}

/// Reads the client's first bytes (without losing them) and says what they are.
async fn peek<I: AsyncRead + Unpin>(io: &mut I) -> (Sniffed, Vec<u8>) {
    let mut buf = Vec::with_capacity(PEEK_MAX);
    let deadline = tokio::time::Instant::now() + PEEK_TIMEOUT;
    loop {
        let mut chunk = [0u8; PEEK_MAX];
        let want = PEEK_MAX - buf.len();
        match tokio::time::timeout_at(deadline, io.read(&mut chunk[..want])).await {
            Ok(Ok(n)) if n > 0 => {
                buf.extend_from_slice(&chunk[..n]);
                match sniff(&buf) {
                    Sniffed::Unsure if buf.len() < PEEK_MAX => continue,
                    Sniffed::Unsure => return (Sniffed::Other, buf),
                    s => return (s, buf),
                }
            }
            // EOF, an error or silence: whatever it is, it is not TLS or HTTP.
            _ => return (Sniffed::Other, buf),
        }
    }
}

async fn tunnel<I>(
    shared: Arc<Shared>,
    life: Life,
    client: SocketAddr,
    authority: String,
    mut io: I,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (host, _) = split_authority(&authority, 443);
    if shared
        .config
        .passthrough
        .iter()
        .any(|g| glob::matches(g, &host))
    {
        raw(
            &shared,
            &life,
            client,
            &authority,
            io,
            Bytes::new(),
            "passthrough host",
        )
        .await;
        return;
    }
    let (kind, first) = peek(&mut io).await;
    let io = Rewind::new(Bytes::from(first), io);
    match kind {
        Sniffed::Tls => intercept_tls(shared, life, client, authority, host, io).await,
        Sniffed::Http => {
            let origin = Origin::Tunnel {
                authority: authority.into(),
                tls: false,
            };
            serve_http1(shared, life, io, client, origin, None).await
        }
        Sniffed::Other | Sniffed::Unsure => {
            let (prefix, io) = io.into_parts();
            raw(
                &shared,
                &life,
                client,
                &authority,
                io,
                prefix,
                "not TLS or HTTP",
            )
            .await
        }
    }
}

/// Terminates the client's TLS with a leaf for the host it asked for (SNI, else the CONNECT host), then
/// serves HTTP/2 or HTTP/1.1 as the client chose by ALPN. The SNI comes first because it is the name
/// the client checks the leaf against (libcurl, by SAN, case-insensitively; the viewer's own CN check
/// is off, see docs/certificates.md); there is none for an IP address, hence the CONNECT host.
async fn intercept_tls<I>(
    shared: Arc<Shared>,
    life: Life,
    client: SocketAddr,
    authority: String,
    connect_host: String,
    io: I,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = match tokio::time::timeout(shared.config.header_timeout, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            return shared.error_record(
                client,
                format!("TLS from the client for {authority} is not valid: {e}"),
            )
        }
        Err(_) => {
            return shared.error_record(
                client,
                format!("the client sent no complete TLS ClientHello for {authority}"),
            )
        }
    };
    let host = start
        .client_hello()
        .server_name()
        .map_or(connect_host, str::to_owned);
    let config = match shared.ca.server_config(&host) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot intercept TLS for {authority}: {e}");
            return shared.error_record(client, e.to_string());
        }
    };
    let tls =
        match tokio::time::timeout(shared.config.header_timeout, start.into_stream(config)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                return shared.error_record(
                    client,
                    format!(
                    "TLS handshake with the client for {host} failed: {e} (does the client trust \
                     capscope's CA? see `capscope ca`)"
                ),
                )
            }
            Err(_) => {
                return shared.error_record(
                    client,
                    format!("TLS handshake with the client for {host} did not finish"),
                )
            }
        };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let origin = Origin::Tunnel {
        authority: authority.into(),
        tls: true,
    };
    if h2 {
        serve_http2(shared, life, tls, client, origin).await
    } else {
        serve_http1(shared, life, tls, client, origin, None).await
    }
}

/// Passes a tunnel through byte for byte, and records it.
async fn raw<I>(
    shared: &Shared,
    life: &Life,
    client: SocketAddr,
    authority: &str,
    mut io: I,
    first: Bytes,
    why: &str,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut record = Record::new(shared.bus.next_id(), Kind::Tunnel);
    record.client = Some(client.to_string().into());
    record.tunnel = Some(TunnelInfo {
        target: authority.to_owned(),
        bytes_up: 0,
        bytes_down: 0,
    });
    record.notes.push(why.to_owned());
    shared.bus.publish(record.clone());

    let (host, port) = split_authority(authority, 443);
    let connect = TcpStream::connect((host.as_str(), port));
    let result = match tokio::time::timeout(shared.config.connect_timeout, connect).await {
        Err(_) => Err(format!(
            "could not connect to {authority}: no answer within {} s",
            shared.config.connect_timeout.as_secs()
        )),
        Ok(Err(e)) => Err(format!("could not connect to {authority}: {e}")),
        Ok(Ok(mut upstream)) => {
            let _ = upstream.set_nodelay(true);
            let mut counts = (first.len() as u64, 0u64);
            let r = match upstream.write_all(&first).await {
                Err(e) => Err(format!("writing to the server failed: {e}")),
                Ok(()) => {
                    relay::pump(
                        &mut io,
                        &mut upstream,
                        shared.config.idle_timeout,
                        life,
                        &mut counts,
                        |_, _| {},
                    )
                    .await
                }
            };
            if let Some(t) = record.tunnel.as_mut() {
                (t.bytes_up, t.bytes_down) = counts;
            }
            r
        }
    };
    record.timings.done_us = Some(record.elapsed_us());
    match result {
        Ok(()) => record.state = State::Done,
        Err(e) => {
            record.state = State::Failed;
            record.error = Some(e);
        }
    }
    shared.bus.publish(record);
}

/// A stream that first gives back bytes already read from it.
pub(super) struct Rewind<I> {
    first: Bytes,
    inner: I,
}

impl<I> Rewind<I> {
    pub(super) fn new(first: Bytes, inner: I) -> Self {
        Rewind { first, inner }
    }

    fn into_parts(self) -> (Bytes, I) {
        (self.first, self.inner)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.first.is_empty() {
            let n = this.first.len().min(buf.remaining());
            buf.put_slice(&this.first[..n]);
            this.first.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_are_told_apart() {
        assert_eq!(sniff(&[0x16, 3, 1]), Sniffed::Tls);
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniffed::Http);
        assert_eq!(sniff(b"POS"), Sniffed::Unsure);
        assert_eq!(sniff(b"SSH-2.0-OpenSSH"), Sniffed::Other);
        assert_eq!(sniff(b"GETX"), Sniffed::Other);
        assert_eq!(sniff(&[0, 1, 2]), Sniffed::Other);
    }

    #[tokio::test]
    async fn rewind_gives_back_the_peeked_bytes_first() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"hello world").await.unwrap();
        drop(a);
        let mut b = b;
        let (kind, first) = peek(&mut b).await;
        assert_eq!(kind, Sniffed::Other);
        let mut r = Rewind::new(Bytes::from(first), b);
        let mut all = Vec::new();
        r.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"hello world");
    }
}
