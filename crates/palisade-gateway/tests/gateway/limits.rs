//! Listener limits and shutdown: oversized heads, slowloris, SIGTERM drain.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Gateway, Upstream, bounded, config, get};

fn one_upstream(addr: std::net::SocketAddr) -> String {
    format!(
        "[upstreams.a]\nendpoints = [\"{addr}\"]\n[fallback]\nforward = {{ upstream = \"a\" }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_head_gets_431() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(&config("max_header_bytes = 8192", &one_upstream(a.addr)));
    let mut s = bounded("connect", TcpStream::connect(gw.addr))
        .await
        .unwrap();
    let big = "x".repeat(12 * 1024);
    let req = format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    // The gateway may answer before reading everything: ignore a write error.
    let _ = s.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = bounded("read the answer", s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 431"), "got: {text}");
    assert_eq!(a.hits(), 0);
    // The gateway still serves others.
    assert_eq!(get(&gw.url("/")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_connection_is_closed_by_the_header_timeout() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(&config(
        "header_read_timeout = \"300ms\"",
        &one_upstream(a.addr),
    ));
    let mut s = bounded("connect", TcpStream::connect(gw.addr))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    // The head never ends: the gateway must close the connection on its own.
    let n = bounded(
        "the gateway closing the connection",
        s.read_to_end(&mut buf),
    )
    .await;
    assert!(n.is_ok() || n.is_err());
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "closed too late: {waited:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "got: {text}"
    );
    // Other connections are served meanwhile and after.
    assert_eq!(get(&gw.url("/")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_request() {
    let a = Upstream::start("a").await;
    a.delay_ms.store(800, std::sync::atomic::Ordering::Relaxed);
    let mut gw = Gateway::start(&config("drain_timeout = \"5s\"", &one_upstream(a.addr)));
    let url = gw.url("/slow");
    let in_flight = tokio::spawn(async move { get(&url).await });
    // Wait until the upstream has the request, then ask the gateway to stop.
    bounded("the request reaching the upstream", async {
        while a.hits() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    gw.terminate();
    let res = bounded("the in-flight request", in_flight).await.unwrap();
    assert_eq!(
        res.status, 200,
        "the in-flight request finished: {}",
        res.body
    );
    let status = gw.wait_exit().await;
    assert!(status.success(), "exit status {status:?}");
    // Nothing listens any more.
    assert!(TcpStream::connect(gw.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    let a = Upstream::start("a").await;
    let gw = Gateway::start(&config(
        "idle_timeout = \"300ms\", header_read_timeout = \"30s\"",
        &one_upstream(a.addr),
    ));
    let stream = bounded("connect", TcpStream::connect(gw.addr))
        .await
        .unwrap();
    let (mut send, conn) = bounded(
        "handshake",
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(
            stream,
        )),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", "gw")
        .body(Full::default())
        .unwrap();
    let res = bounded("request", send.send_request(req)).await.unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.into_body().collect().await;
    let start = Instant::now();
    // Nothing more is sent: the gateway closes the connection after the idle timeout.
    let _ = bounded("the idle connection closing", conn).await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "closed too late: {waited:?}"
    );
}
