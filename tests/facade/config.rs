//! The config example: the shipped policy file served through it, every route's behaviour
//! asserted, and bad files failing with every problem's field path.
#![cfg(all(feature = "policy", feature = "toggle", feature = "traffic"))]

#[allow(dead_code)]
#[path = "../../examples/config.rs"]
mod config_example;

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.toml")
}

/// The error of `text` as a policy file beside the shipped `flags.json`, loaded through the
/// example.
fn load_text(text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("palisade-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        shipped().with_file_name("flags.json"),
        dir.join("flags.json"),
    )
    .unwrap();
    let path = dir.join(format!("bad-{}.toml", text.len()));
    std::fs::write(&path, text).unwrap();
    let err = config_example::load(&path)
        .expect_err("a bad file")
        .to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    err.replace(&path.display().to_string(), "FILE")
}

#[test]
fn the_shipped_file_names_every_route_and_needs_the_flags() {
    let set = palisade::policy::PolicySet::from_path(shipped()).err();
    // Without the flag provider the gated route cannot be built: the example supplies it.
    assert_eq!(
        set.unwrap().problems()[0].to_string(),
        "routes[2].gate: a gated route needs a flag provider (`Loader::flags`)"
    );
    let (handle, _) = config_example::load(&shipped()).unwrap();
    assert_eq!(
        handle.current().route_names(),
        ["pay", "search", "beta", "fallback"]
    );
    // The one lint: kept on purpose, since a match that required the key would send keyless
    // payments to the fallback, which has no rate limit or idempotency.
    let warnings: Vec<String> = handle
        .current()
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        warnings,
        [
            "routes[0].rate_limit.key: keyed on header `x-api-key`, which the route's match does not require: requests without it are refused or share one bucket; add `header = \"x-api-key\"` to the match"
        ]
    );
}

/// Each case: a file and the exact error, whose field path runs from the file's root.
#[test]
fn invalid_files_name_the_field() {
    let cases = [
        (
            "[[routes]]\nmatch = { path = \"/pay\" }\ntimeout = { timeout = \"0s\" }\n[fallback]\n",
            "routes[0].timeout.timeout: must be between 1ms and 86400s (got 0ns)",
        ),
        (
            "[[routes]]\nmatch = { path = \"/pay\" }\ntimeout = { timout = \"2s\" }\n[fallback]\n",
            "routes[0].timeout.timout: unknown field `timout`, expected one of `name`, `timeout`, `honour_grpc_timeout`, `deadline_header`, `insert_deadline`, `outbound`",
        ),
        (
            "[[routes]]\nmatch = { path = \"/search\" }\nbreaker = { failure_rate_threshold = 0.0 }\n[fallback]\n",
            "routes[0].breaker.failure_rate_threshold: must be a percentage in (0, 100] (got 0)",
        ),
        (
            "[[routes]]\nmatch = { path = \"/search\" }\nbulkhead = { max_concurrent = 0 }\n[fallback]\n",
            "routes[0].bulkhead.max_concurrent: must be between 1 and 1000000 (got 0)",
        ),
        (
            "[[routes]]\nmatch = { path = \"/beta\" }\ngate = \"gamma\"\n[fallback]\n",
            "routes[0].gate: no flag `gamma` in the flag provider",
        ),
        (
            "[[routes]]\nmatch = { path = \"/pay\" }\n",
            "fallback: is required: the policy of every request no route matches (an empty table means no layers)",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, want) in cases {
        let got = load_text(text);
        let want = format!("invalid policy file (1 problem):\n  {want}");
        if got != want {
            wrong.push(format!("{text:?}:\n  got  {got}\n  want {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The shipped file, served and called through its client policy.
#[tokio::test]
async fn every_route_gets_its_own_stack() {
    let (handle, app) = config_example::load(&shipped()).unwrap();
    let base = support::serve(axum::Router::new().fallback_service(app)).await;
    let transport = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let client = handle.client_layer().layer(transport);
    let call = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        client.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    let text = |res: axum::http::Response<Body>| async move {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    };

    // /search: the server's 250 ms timeout answers 504; the client retries a 504 (3 attempts
    // in all) and returns the last one.
    let res = call("GET", "/search", &[]).await.unwrap();
    assert_eq!(res.status(), 504);

    // /pay: key required (400 without), one execution for two calls with one key.
    let res = call("POST", "/pay", &[("x-api-key", "k")]).await.unwrap();
    assert_eq!(res.status(), 400);
    let before = config_example::CHARGES.load(Ordering::SeqCst);
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let headers = [("x-api-key", "k"), ("idempotency-key", "\"t-1\"")];
        let res = call("POST", "/pay", &headers).await.unwrap();
        assert_eq!(res.status(), 201);
        assert!(res.headers().contains_key("ratelimit"), "{res:?}");
        bodies.push(text(res).await);
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(config_example::CHARGES.load(Ordering::SeqCst), before + 1);
    // 3 of the 5 per minute are spent; the 6th is refused with 429 and Retry-After.
    for _ in 0..2 {
        let res = call("POST", "/pay", &[("x-api-key", "k")]).await.unwrap();
        assert_eq!(res.status(), 400);
    }
    let res = call("POST", "/pay", &[("x-api-key", "k")]).await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));

    // /beta: flag off → 404.
    let res = call("GET", "/beta", &[]).await.unwrap();
    assert_eq!(res.status(), 404);

    // /checkout: the weights pick the arm, named in the response; the example enables no
    // override, so a client's `x-version` header picks nothing.
    let mut served = Vec::new();
    for _ in 0..20 {
        let res = call("GET", "/checkout", &[("x-version", "v2")])
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let arm = res.headers()["x-served-by"].to_str().unwrap().to_owned();
        assert_eq!(text(res).await, format!("checkout {arm}"));
        served.push(arm);
    }
    assert!(
        served.iter().filter(|a| *a == "v1").count() >= 10,
        "{served:?}"
    );
}
