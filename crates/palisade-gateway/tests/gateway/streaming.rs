//! Streaming through the proxy: an HTTP/1.1 upgrade passed through to an echo protocol.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Gateway, bounded, config, get};

/// An upstream speaking a toy `echo` protocol after `Upgrade: echo`: every byte comes back.
/// Plain requests get 200 and the `upgrade` header they saw.
async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|mut req: Request<Incoming>| async move {
                    if req.headers().get("upgrade").is_none_or(|v| v != "echo") {
                        return Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            b"plain",
                        ))));
                    }
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        let Ok(up) = on.await else { return };
                        let mut io = TokioIo::new(up);
                        let mut buf = [0u8; 1024];
                        loop {
                            match io.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if io.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                    let mut res = Response::new(Full::default());
                    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                    res.headers_mut()
                        .insert("connection", "upgrade".parse().unwrap());
                    res.headers_mut().insert("upgrade", "echo".parse().unwrap());
                    Ok(res)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// Reads until the end of a response head.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).await.unwrap(), 1, "closed in the head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_passes_through_and_bytes_flow_both_ways() {
    let up = echo_upstream().await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.ws]
endpoints = ["{up}"]
[fallback]
forward = {{ upstream = "ws" }}
"#
        ),
    ));
    bounded("the upgraded exchange", async {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(
            b"GET /chat HTTP/1.1\r\nHost: example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("upgrade: echo"), "{head}");
        assert!(lower.contains("connection: upgrade"), "{head}");
        for msg in [&b"hello"[..], b"through the gateway", &[0u8, 255, 13, 10]] {
            s.write_all(msg).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg);
        }
        // Closing our side closes the tunnel: the read ends.
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    })
    .await;
    // A plain request on the same route is still a plain request.
    let res = get(&gw.url("/plain")).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "plain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_tunnel_keeps_its_connection_slot() {
    let up = echo_upstream().await;
    let gw = Gateway::start(&config(
        "max_connections = 1",
        &format!(
            r#"
[upstreams.ws]
endpoints = ["{up}"]
[fallback]
forward = {{ upstream = "ws" }}
"#
        ),
    ));
    let mut s = bounded("connect", TcpStream::connect(gw.addr))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let head = bounded("101", read_head(&mut s)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    bounded("echo", s.read_exact(&mut back)).await.unwrap();
    // The only connection slot is the tunnel's: another client waits in the accept queue.
    let url = gw.url("/plain");
    let waiting = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "served while the tunnel held the slot"
    );
    // Closing the tunnel frees it.
    drop(s);
    let res = bounded("the waiting request", waiting).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "plain");
}
