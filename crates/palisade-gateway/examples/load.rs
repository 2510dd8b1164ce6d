//! A small HTTP/1.1 load generator and hello-world upstream, for the gateway bench
//! (`benches/compare.sh`) where `wrk` is not installed.
//!
//! ```text
//! cargo run --release -p palisade-gateway --example load -- serve 127.0.0.1:3000
//! cargo run --release -p palisade-gateway --example load -- run http://127.0.0.1:8080/ 32 10
//! ```
//!
//! `run URL CONNECTIONS SECONDS` keeps CONNECTIONS keep-alive connections busy for SECONDS
//! (one request at a time on each, like `wrk`) and prints one line:
//! `requests=… rps=… p50_us=… p99_us=… errors=…`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

async fn serve(addr: &str) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    println!(
        "hello upstream on http://{}",
        listener.local_addr().expect("addr")
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                    b"hello, world\n",
                ))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn worker(uri: http::Uri, until: Instant) -> (Vec<u32>, u64) {
    let mut lat = Vec::with_capacity(100_000);
    let mut errors = 0u64;
    let authority = uri.authority().expect("URL with a host").clone();
    'conn: while Instant::now() < until {
        let Ok(stream) = TcpStream::connect(authority.as_str()).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut send, conn)) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
        else {
            errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while Instant::now() < until {
            if send.ready().await.is_err() {
                errors += 1;
                continue 'conn;
            }
            let req = Request::get(uri.path())
                .header("host", authority.as_str())
                .body(Empty::new())
                .expect("request");
            let start = Instant::now();
            let Ok(res) = send.send_request(req).await else {
                errors += 1;
                continue 'conn;
            };
            let ok = res.status().is_success();
            let _ = res.into_body().collect().await;
            if ok {
                lat.push(start.elapsed().as_micros() as u32);
            } else {
                errors += 1;
            }
        }
    }
    (lat, errors)
}

async fn run(url: &str, conns: usize, secs: u64) {
    let uri: http::Uri = url.parse().expect("URL");
    let until = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(worker(uri.clone(), until)))
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("worker");
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "requests={} rps={:.0} p50_us={} p99_us={} errors={errors}",
        all.len(),
        all.len() as f64 / secs as f64,
        pct(0.50),
        pct(0.99),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", addr] => rt.block_on(serve(addr)),
        ["run", url, conns, secs] => rt.block_on(run(
            url,
            conns.parse().expect("connections"),
            secs.parse().expect("seconds"),
        )),
        _ => eprintln!("usage: load serve ADDR | load run URL CONNECTIONS SECONDS"),
    }
}
