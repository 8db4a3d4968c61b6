//! Serving a router on a bound socket, plain or TLS (HTTP/2 by ALPN), with a send timeout: a
//! connection whose writes make no progress for that long is closed, as nginx's `send_timeout`
//! does. Without it a client that stops reading would hold its connection (and what is queued
//! for it) forever, since the server stops producing a response body while the socket is full.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Connections the kernel queues before they are accepted: a page of many SSE clients that
/// reconnect together (after a restart) must not meet the standard library's 128.
pub const BACKLOG: i32 = 4096;

/// Binds a non-blocking listening socket with [`BACKLOG`].
pub fn bind(addr: std::net::SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// An IO stream whose writes fail once they have been stalled for `limit`.
pub struct StallGuard<T> {
    inner: T,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> StallGuard<T> {
    fn new(inner: T, limit: Duration) -> Self {
        StallGuard {
            inner,
            limit,
            stalled: None,
        }
    }

    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client took nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future;

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.pending(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.pending(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A flush that completes says nothing about the peer taking data (TCP's is a no-op):
        // only written bytes end a stall.
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.pending(cx),
            done => done,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Plain {
    listener: tokio::net::TcpListener,
    limit: Duration,
}

impl axum::serve::Listener for Plain {
    type Io = StallGuard<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((s, a)) => return (StallGuard::new(s, self.limit), a),
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

#[derive(Clone, Copy)]
struct Guarded(Duration);

impl<S> axum_server::accept::Accept<TcpStream, S> for Guarded {
    type Stream = StallGuard<TcpStream>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(Ok((StallGuard::new(stream, self.0), service)))
    }
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The certificate or key cannot be used.
    #[error("{0}")]
    Tls(#[source] io::Error),
    /// The server failed.
    #[error("{0}")]
    Io(#[source] io::Error),
}

/// Serves `app` on `std` (non-blocking, bound) until `shutdown`, then finishes the requests in
/// progress (TLS: for at most 10 s).
pub async fn serve(
    std: std::net::TcpListener,
    tls: Option<&(PathBuf, PathBuf)>,
    app: axum::Router,
    shutdown: CancellationToken,
    send_timeout: Duration,
) -> Result<(), ServeError> {
    match tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(std).map_err(ServeError::Io)?;
            let plain = Plain {
                listener,
                limit: send_timeout,
            };
            axum::serve(plain, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .map_err(ServeError::Io)
        }
        Some((cert, key)) => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(ServeError::Tls)?;
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                h.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
                .acceptor(Guarded(send_timeout));
            axum_server::from_tcp(std)
                .acceptor(acceptor)
                .handle(handle)
                .serve(app.into_make_service())
                .await
                .map_err(ServeError::Io)
        }
    }
}
