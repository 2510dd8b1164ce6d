//! The config example: every layer's stack from TOML, and bad files failing with the field
//! path.
#![cfg(all(
    feature = "serde",
    feature = "timeout",
    feature = "breaker",
    feature = "bulkhead",
    feature = "ratelimit",
    feature = "retry",
    feature = "idempotency",
    feature = "toggle",
    feature = "traffic",
    feature = "reqwest"
))]

#[allow(dead_code)]
#[path = "../../examples/config.rs"]
mod config_example;

use crate::support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

fn shipped() -> String {
    std::fs::read_to_string(Path::new(DIR).join("config.toml")).unwrap()
}

#[test]
fn the_shipped_file_sets_every_layer() {
    let cfg = config_example::parse(&shipped()).unwrap();
    assert_eq!(cfg.routes.len(), 4);
    let pay = &cfg.routes["/pay"];
    assert_eq!(
        pay.timeout.as_ref().unwrap().timeout,
        Duration::from_secs(2)
    );
    assert_eq!(pay.rate_limit.as_ref().unwrap().quotas[0].limit, 5);
    assert!(pay.idempotency.as_ref().unwrap().require_key);
    let search = &cfg.routes["/search"];
    assert_eq!(search.breaker.as_ref().unwrap().minimum_calls, 4);
    assert_eq!(search.bulkhead.as_ref().unwrap().max_concurrent, 2);
    assert_eq!(cfg.routes["/beta"].gate.as_deref(), Some("beta"));
    assert_eq!(
        cfg.routes["/checkout"].split.as_ref().unwrap().weights,
        Some(vec![90, 10])
    );
    assert_eq!(cfg.client.retry.as_ref().unwrap().max_attempts, 3);
}

/// Each case: a file and the exact error, whose field path runs from the file's root.
#[test]
fn invalid_files_name_the_field() {
    let dir = Path::new(DIR);
    let cases = [
        (
            "[routes.\"/pay\"]\ntimeout = { timeout = \"0s\" }\n",
            "invalid configuration `routes./pay.timeout.timeout`: must be between 1ms and 86400s (got 0ns)",
        ),
        (
            "[routes.\"/pay\"]\ntimeout = { timeout = \"2 parsecs\" }\n",
            "invalid configuration `routes./pay.timeout.timeout`: invalid value: string \"2 parsecs\", expected a duration",
        ),
        (
            "[routes.\"/pay\"]\ntimeout = { timout = \"2s\" }\n",
            "invalid configuration `routes./pay.timeout.timout`: unknown field `timout`, expected one of `name`, `timeout`, `honour_grpc_timeout`, `deadline_header`, `insert_deadline`, `outbound`",
        ),
        (
            "[routes.\"/pay\"]\ntimeout = { timeout = \"2s\", deadline_header = \"bad header\" }\n",
            "invalid configuration `routes./pay.timeout.deadline_header`: must be an HTTP header name: letters, digits and !#$%&'*+-.^_`|~, e.g. \"x-request-id\" (got \"bad header\")",
        ),
        (
            "[routes.\"/search\"]\nbreaker = { failure_rate_threshold = 0.0 }\n",
            "invalid configuration `routes./search.breaker.failure_rate_threshold`: must be a percentage in (0, 100] (got 0)",
        ),
        (
            "[routes.\"/search\"]\nbulkhead = { max_concurrent = 0 }\n",
            "invalid configuration `routes./search.bulkhead.max_concurrent`: must be between 1 and 1000000 (got 0)",
        ),
        (
            "[routes.\"/pay\"]\nrate_limit = { quotas = [{ name = \"pay\", limit = 0, window = \"1m\" }] }\n",
            "invalid configuration `routes./pay.rate_limit.quotas.0.limit`: must be at least 1",
        ),
        (
            "[routes.\"/pay\"]\nrate_limit = { key = { type = \"cookie\" } }\n",
            "invalid configuration `routes./pay.rate_limit.key.type`: unknown variant `cookie`, expected one of `global`, `peer_ip`, `forwarded_ip`, `header`, `path`",
        ),
        (
            "[routes.\"/pay\"]\nidempotency = { ttl = \"1s\", lease = \"1m\" }\n",
            "invalid configuration `routes./pay.idempotency.lease`: must be between 1ms and 1s (got 60s)",
        ),
        (
            "[routes.\"/beta\"]\ngate = \"beta\"\n",
            "invalid configuration `routes./beta.gate`: a gated route needs a [flags] section",
        ),
        (
            "[flags]\nfile = \"flags.json\"\n[routes.\"/beta\"]\ngate = \"gamma\"\n",
            "invalid configuration `routes./beta.gate`: no flag `gamma` in the [flags] file",
        ),
        (
            "[routes.\"/checkout\"]\nsplit = { weights = [90, 10, 5] }\n",
            "invalid configuration `routes./checkout.split.weights`: expected 2 weights (one per arm), got 3",
        ),
        (
            "[routes]\n[client]\nretry = { max_attempts = 0 }\n",
            "invalid configuration `client.retry.max_attempts`: must be between 1 and 100 (got 0)",
        ),
        (
            "[routes.\"/nope\"]\n",
            "invalid configuration `routes./nope`: no handler for this route in the example (known: /pay, /search, /beta, /checkout)",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, want) in cases {
        match config_example::load(text, dir) {
            Ok(_) => wrong.push(format!("{text:?} loaded")),
            Err(err) if err.to_string() != want => wrong.push(format!("{text:?}: {err}")),
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The shipped file, served and called through the configured client.
#[tokio::test]
async fn every_route_gets_its_own_stack() {
    let loaded = config_example::load(&shipped(), Path::new(DIR)).unwrap();
    let base = support::serve(loaded.router).await;
    let client = loaded.client;
    let call = |method, path: &str, headers: &[(&'static str, &str)]| {
        let req = config_example::request(method, &format!("{base}{path}"), headers);
        config_example::send(&client, req)
    };

    // /search: the server's 250 ms timeout answers 504; the client retries a 504 (3 attempts
    // in all) and returns the last one.
    let res = call(reqwest::Method::GET, "/search", &[]).await.unwrap();
    assert_eq!(res.status(), 504);

    // /pay: key required (400 without), one execution for two calls with one key.
    let res = call(reqwest::Method::POST, "/pay", &[("x-api-key", "k")])
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let before = config_example::CHARGES.load(Ordering::SeqCst);
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let res = call(
            reqwest::Method::POST,
            "/pay",
            &[("x-api-key", "k"), ("idempotency-key", "\"t-1\"")],
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 201);
        assert!(res.headers().contains_key("ratelimit"), "{res:?}");
        bodies.push(res.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(config_example::CHARGES.load(Ordering::SeqCst), before + 1);
    // 3 of the 5 per minute are spent; the 6th is refused with 429 and Retry-After.
    for _ in 0..2 {
        let res = call(reqwest::Method::POST, "/pay", &[("x-api-key", "k")])
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
    }
    let res = call(reqwest::Method::POST, "/pay", &[("x-api-key", "k")])
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));

    // /beta: flag off → 404.
    let res = call(reqwest::Method::GET, "/beta", &[]).await.unwrap();
    assert_eq!(res.status(), 404);

    // /checkout: the weights pick the arm, named in the response; the example enables no
    // override, so a client's `x-version` header picks nothing.
    let mut served = Vec::new();
    for _ in 0..20 {
        let res = call(reqwest::Method::GET, "/checkout", &[("x-version", "v2")])
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let arm = res.headers()["x-served-by"].to_str().unwrap().to_owned();
        assert_eq!(res.text().await.unwrap(), format!("checkout {arm}"));
        served.push(arm);
    }
    assert!(
        served.iter().filter(|a| *a == "v1").count() >= 10,
        "{served:?}"
    );
}
