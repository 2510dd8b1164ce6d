//! Listeners: HTTP/1.1 and h2c on one port (hyper-util's `auto` builder), with the limits of
//! [`Limits`]: header read timeout, max header size, max connections, idle timeout; and a
//! graceful drain on shutdown.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum_core::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::config::Limits;

/// Counts live connections; `wait` returns once all are gone.
#[derive(Clone)]
pub(crate) struct Drain {
    /// Held, never sent on: the receiver sees the channel close when every clone is gone.
    _tx: mpsc::Sender<()>,
}

impl Drain {
    pub(crate) fn new() -> (Self, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel(1);
        (Self { _tx: tx }, rx)
    }
}

/// Held for as long as a connection lives: its `max_connections` slot and its part of the
/// drain. Each request carries a clone in its extensions, so that a connection upgraded
/// (WebSocket) keeps both while its tunnel is open, after hyper has let go of it.
#[derive(Clone)]
pub(crate) struct ConnGuard(#[allow(dead_code)] Arc<(tokio::sync::OwnedSemaphorePermit, Drain)>);

/// Whether a connection moved bytes since the idle check last looked, and how many of its
/// requests are being served. The I/O path only sets a flag (no clock read, no shared write
/// when already set); the connection's idle ticker reads the clock once per tick.
struct Activity {
    moved: AtomicBool,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        if !self.moved.load(Ordering::Relaxed) {
            self.moved.store(true, Ordering::Relaxed);
        }
    }
    /// Clears the flag, returning whether bytes moved since the last call.
    fn take_moved(&self) -> bool {
        self.moved.swap(false, Ordering::Relaxed)
    }
}

/// A TCP stream that records activity.
struct Tracked {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if r.is_ready() {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if r.is_ready() {
            self.activity.touch();
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if r.is_ready() {
            self.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The connection builder for a listener's limits.
fn builder(limits: &Limits) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(20)));
    b
}

/// Accepts connections until `shutdown` turns true, serving each request with `handle`.
pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    limits: Limits,
    handle: H,
    mut shutdown: watch::Receiver<bool>,
    drain: Drain,
) where
    H: Fn(Request<Incoming>, std::net::SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send + 'static,
{
    let builder = Arc::new(builder(&limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let idle = limits.idle_timeout;
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(target: "palisade_gateway", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity {
            moved: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        });
        let io = TokioIo::new(Tracked {
            io: stream,
            activity: Arc::clone(&activity),
        });
        let handle = handle.clone();
        let act = Arc::clone(&activity);
        let guard = ConnGuard(Arc::new((permit, drain.clone())));
        let conn_guard = guard.clone();
        let svc = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(conn_guard.clone());
            let fut = handle(req, peer);
            let act = Arc::clone(&act);
            act.in_flight.fetch_add(1, Ordering::Relaxed);
            async move {
                let r = fut.await;
                act.in_flight.fetch_sub(1, Ordering::Relaxed);
                act.touch();
                r
            }
        });
        let builder = Arc::clone(&builder);
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let conn = builder.serve_connection_with_upgrades(io, svc);
            tokio::pin!(conn);
            let mut closing = false;
            let tick = (idle / 4).max(Duration::from_millis(5));
            // When the connection last moved bytes, to within one tick.
            let mut last_moved = Instant::now();
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    _ = stop.changed(), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    () = tokio::time::sleep(tick), if !closing => {
                        if activity.take_moved() {
                            last_moved = Instant::now();
                        }
                        if activity.in_flight.load(Ordering::Relaxed) == 0 && last_moved.elapsed() >= idle {
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
}
