//! The config example: per-route stacks from TOML, and bad files failing with the field path.
#![cfg(all(feature = "timeout", feature = "serde"))]

#[allow(dead_code)]
#[path = "../examples/config.rs"]
mod config_example;

mod support;

#[test]
fn the_shipped_file_loads() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.toml"))
            .unwrap();
    let cfg = config_example::load(&text).unwrap();
    assert_eq!(cfg.routes.len(), 2);
    let pay = cfg.routes["/pay"].timeout.as_ref().unwrap();
    assert_eq!(pay.timeout, std::time::Duration::from_secs(2));
}

#[test]
fn invalid_files_name_the_field() {
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
            "invalid configuration `routes./pay.timeout.timout`: unknown field `timout`, expected one of `timeout`, `honour_grpc_timeout`, `deadline_header`, `insert_deadline`, `outbound`",
        ),
        (
            "[routes.\"/pay\"]\ntimeout = { timeout = \"2s\", deadline_header = \"bad header\" }\n",
            "invalid configuration `routes./pay.timeout.deadline_header`: `bad header` is not a valid HTTP header name (letters, digits and `-`, e.g. \"x-request-timeout-ms\")",
        ),
    ];
    for (text, want) in cases {
        let err = config_example::load(text).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

#[tokio::test]
async fn routes_get_their_own_stack() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.toml"))
            .unwrap();
    let cfg = config_example::load(&text).unwrap();
    let base = support::serve(config_example::router(&cfg).unwrap()).await;
    let client = reqwest::Client::new();
    let res = client.get(format!("{base}/search")).send().await.unwrap();
    assert_eq!(res.status(), 504, "250 ms budget < 400 ms handler");
    let res = client.post(format!("{base}/pay")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "paid");
}
