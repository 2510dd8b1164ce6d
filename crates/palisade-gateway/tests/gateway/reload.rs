//! `POST /reload` on the admin listener: the file is read again, connections are kept, policy
//! state that did not change is kept, and a bad file is refused with its problems.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};

use hyper_util::rt::TokioIo;

use crate::support::{Gateway, Upstream, bounded, config, get, send};

fn file(a: std::net::SocketAddr, b: std::net::SocketAddr, second_route: &str) -> String {
    config(
        "",
        &format!(
            r#"
[upstreams.a]
endpoints = ["{a}"]
[upstreams.b]
endpoints = ["{b}"]
[[routes]]
name = "limited"
match = {{ prefix = "/limited" }}
rate_limit = {{ quotas = [{{ limit = 2, window = "1m" }}] }}
forward = {{ upstream = "a" }}
{second_route}
[fallback]
forward = {{ upstream = "a" }}
"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_connections_and_unchanged_state() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&file(a.addr, b.addr, ""));
    let path = gw.config_path();
    // One HTTP/1.1 connection used across the reload: a request on it fails if it closed.
    let stream = bounded("connect", tokio::net::TcpStream::connect(gw.addr))
        .await
        .unwrap();
    let (send_on, conn) = bounded(
        "handshake",
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let send_on = std::sync::Arc::new(tokio::sync::Mutex::new(send_on));
    let call = |path: &'static str| {
        let send_on = send_on.clone();
        async move {
            let mut s = send_on.lock().await;
            bounded("the connection ready", s.ready())
                .await
                .expect("the connection was closed");
            let req = Request::get(path)
                .header("host", "gw")
                .body(Full::default())
                .unwrap();
            let res = bounded("request on the kept connection", s.send_request(req))
                .await
                .expect("the connection was closed");
            let status = res.status();
            let upstream = res.headers().get("x-upstream").cloned();
            let _ = res.into_body().collect().await;
            (status, upstream)
        }
    };
    assert_eq!(call("/limited").await.0, 200);
    assert_eq!(call("/new").await.1.unwrap(), "a");

    // A new route to b; the rate-limited route is unchanged and keeps its bucket.
    std::fs::write(
        &path,
        file(
            a.addr,
            b.addr,
            "[[routes]]\nmatch = { prefix = \"/new\" }\nforward = { upstream = \"b\" }\n",
        ),
    )
    .unwrap();
    let res = send(
        Request::post(gw.admin_url("/reload"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(call("/new").await.1.unwrap(), "b", "the new route is live");
    assert_eq!(call("/limited").await.0, 200);
    assert_eq!(
        call("/limited").await.0,
        429,
        "the bucket survived the reload"
    );

    // A bad file is refused with its paths; the last good configuration stays.
    std::fs::write(
        &path,
        file(
            a.addr,
            b.addr,
            "[[routes]]\nmatch = { prefix = \"/new\" }\nforward = { upstream = \"missing\" }\n",
        ),
    )
    .unwrap();
    let res = send(
        Request::post(gw.admin_url("/reload"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, 422);
    assert!(
        res.body.contains("routes[1].forward.upstream"),
        "{}",
        res.body
    );
    assert_eq!(call("/new").await.1.unwrap(), "b");
    assert_eq!(get(&gw.url("/new")).await.status, 200);
}
