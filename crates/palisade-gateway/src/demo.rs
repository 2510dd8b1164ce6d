//! The built-in demo upstreams served by the gateway process itself when it starts with no
//! arguments: `healthy` answers at once, `flaky` fails two requests in three with 500, `slow`
//! takes two seconds. Each answers `GET /health` with 200.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum_core::body::Body;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;

/// The flaky upstream fails two requests in three.
static FLAKY: AtomicU64 = AtomicU64::new(0);

/// Which demo upstream.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Healthy,
    Flaky,
    Slow,
}

async fn answer(kind: Kind, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/health" {
        return Ok(Response::new(Body::from("ok\n")));
    }
    let (status, text) = match kind {
        Kind::Healthy => (
            StatusCode::OK,
            format!("hello from the healthy upstream ({path})\n"),
        ),
        Kind::Flaky if !FLAKY.fetch_add(1, Ordering::Relaxed).is_multiple_of(3) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the flaky upstream failed ({path})\n"),
        ),
        Kind::Flaky => (
            StatusCode::OK,
            format!("the flaky upstream answered ({path})\n"),
        ),
        Kind::Slow => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            (
                StatusCode::OK,
                format!("the slow upstream answered after 2s ({path})\n"),
            )
        }
    };
    let mut res = Response::new(Body::from(text));
    *res.status_mut() = status;
    Ok(res)
}

/// Starts one demo upstream on an ephemeral loopback port.
pub(crate) async fn start(kind: Kind) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(move |req| answer(kind, req));
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}
