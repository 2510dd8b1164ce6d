//! Routing, rewrites, header handling and a policy rejection through the proxy.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::{Gateway, Upstream, config, get, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_rewrite_paths_hosts_and_headers() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.a]
endpoints = ["{a}"]
[upstreams.b]
endpoints = ["{b}"]

[[routes]]
match = {{ prefix = "/api" }}
forward = {{ upstream = "a", strip_prefix = "/api", host = "a.internal", request_headers = {{ add = {{ "x-added" = "1" }}, remove = ["cookie"] }}, response_headers = {{ add = {{ "x-served-by" = "gw" }}, remove = ["x-internal"] }} }}

[[routes]]
match = {{ path = "/orders/{{id}}" }}
forward = {{ upstream = "b", rewrite = "/v2/orders/{{id}}/details" }}

[fallback]
forward = {{ upstream = "b" }}
"#,
            a = a.addr,
            b = b.addr
        ),
    ));

    let res = send(
        Request::get(gw.url("/api/items/7?x=1"))
            .header("cookie", "session=1")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.headers["x-upstream"], "a");
    assert_eq!(res.headers["x-served-by"], "gw");
    assert!(!res.headers.contains_key("x-internal"));
    assert!(
        !res.headers.contains_key("keep-alive"),
        "hop-by-hop from the upstream removed"
    );
    let seen = a.last();
    assert_eq!(seen.path_and_query, "/items/7?x=1");
    assert_eq!(seen.headers["host"], "a.internal");
    assert_eq!(seen.headers["x-added"], "1");
    assert!(!seen.headers.contains_key("cookie"));

    let res = get(&gw.url("/orders/42?full=1")).await;
    assert_eq!(res.headers["x-upstream"], "b");
    let seen = b.last();
    assert_eq!(seen.path_and_query, "/v2/orders/42/details?full=1");
    // Without a host rewrite the client's Host is kept.
    assert_eq!(seen.headers["host"], gw.addr.to_string());

    let res = get(&gw.url("/anything/else")).await;
    assert_eq!(res.headers["x-upstream"], "b");
    assert_eq!(b.last().path_and_query, "/anything/else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_fields_request_ids_and_hop_by_hop() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            "[upstreams.a]\nendpoints = [\"{}\"]\n[fallback]\nforward = {{ upstream = \"a\" }}\n",
            a.addr
        ),
    ));
    let res = send(
        Request::get(gw.url("/x"))
            .header("x-forwarded-for", "203.0.113.9")
            .header("forwarded", "for=203.0.113.9;proto=https")
            .header("connection", "x-secret")
            .header("x-secret", "1")
            .header("proxy-authorization", "Basic Zm9vOmJhcg==")
            .header("te", "trailers")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, 200);
    let seen = a.last();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(
        seen.headers["forwarded"],
        "for=203.0.113.9;proto=https, for=127.0.0.1;proto=http"
    );
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    for gone in ["x-secret", "proxy-authorization", "te"] {
        assert!(!seen.headers.contains_key(gone), "{gone} was forwarded");
    }
    // A generated request id goes both ways.
    let id = res.headers["x-request-id"].clone();
    assert_eq!(id.len(), 32);
    assert_eq!(seen.headers["x-request-id"], id);
    // A client's request id is kept.
    let res = send(
        Request::get(gw.url("/x"))
            .header("x-request-id", "abc-123")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(res.headers["x-request-id"], "abc-123");
    assert_eq!(a.last().headers["x-request-id"], "abc-123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_rate_limit_answers_429_through_the_proxy() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.a]
endpoints = ["{}"]
[[routes]]
match = {{ prefix = "/limited" }}
rate_limit = {{ quotas = [{{ limit = 2, window = "1m" }}] }}
forward = {{ upstream = "a" }}
[fallback]
forward = {{ upstream = "a" }}
"#,
            a.addr
        ),
    ));
    assert_eq!(get(&gw.url("/limited")).await.status, 200);
    assert_eq!(get(&gw.url("/limited")).await.status, 200);
    let res = get(&gw.url("/limited")).await;
    assert_eq!(res.status, 429);
    assert!(res.headers.contains_key("retry-after"));
    assert_eq!(a.hits(), 2, "a refused request never reaches the upstream");
    // Another route is not limited.
    assert_eq!(get(&gw.url("/other")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_the_client_address_see_the_peer() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.a]
endpoints = ["{}"]
[[routes]]
match = {{ prefix = "/per-ip" }}
rate_limit = {{ key = {{ type = "peer_ip" }}, quotas = [{{ limit = 1, window = "1m" }}] }}
forward = {{ upstream = "a" }}
[fallback]
forward = {{ upstream = "a" }}
"#,
            a.addr
        ),
    ));
    // Keyed on 127.0.0.1: the first passes, the second is limited (not a 400 for a missing
    // peer address).
    assert_eq!(get(&gw.url("/per-ip")).await.status, 200);
    let res = get(&gw.url("/per-ip")).await;
    assert_eq!(res.status, 429, "{}", res.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_and_bodies_stream_through() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            "[upstreams.a]\nendpoints = [\"{}\"]\n[fallback]\nforward = {{ upstream = \"a\", max_request_body = 1000 }}\n",
            a.addr
        ),
    ));
    // h2c with prior knowledge on the same port.
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let res = crate::support::bounded(
        "h2c request",
        h2.request(
            Request::post(gw.url("/up"))
                .body(Full::new(Bytes::from(vec![b'x'; 600])))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    assert_eq!(a.last().version, http::Version::HTTP_11);
    assert_eq!(a.last().headers["host"], gw.addr.to_string());
    // Over the route's body limit: 413, and the upstream sees nothing.
    let before = a.hits();
    let res = send(
        Request::post(gw.url("/up"))
            .body(Full::new(Bytes::from(vec![b'x'; 1001])))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, 413);
    assert_eq!(a.hits(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_upstream_gets_http2_and_te_trailers() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            "[upstreams.a]\nendpoints = [\"{}\"]\nprotocol = \"h2\"\n[fallback]\nforward = {{ upstream = \"a\" }}\n",
            a.addr
        ),
    ));
    let res = send(
        Request::post(gw.url("/pkg.Service/Method"))
            .header("te", "trailers")
            .header("content-type", "application/grpc")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, 200);
    let seen = a.last();
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(seen.headers["te"], "trailers");
    assert_eq!(seen.path_and_query, "/pkg.Service/Method");
}
