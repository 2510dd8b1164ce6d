//! Test support: the `palisade-ratelimit-service` binary as a child process with a
//! temporary config and a unique Redis key prefix, a tonic client speaking Envoy's protos,
//! and the Redis connection to check and delete the keys. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use tonic::transport::Channel;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_palisade-ratelimit-service");

/// The longest any single step may take.
pub(crate) const STEP: Duration = Duration::from_secs(10);

pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A connection to the test Redis, or `None` (skip) outside CI when there is none.
pub(crate) async fn redis() -> Option<redis::aio::MultiplexedConnection> {
    let url = redis_url();
    let conn = async {
        redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await
    };
    match tokio::time::timeout(Duration::from_secs(3), conn).await {
        Ok(Ok(c)) => Some(c),
        other => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "Redis at {url} is required under CI: {other:?}"
            );
            eprintln!("skipping: no Redis at {url}: {other:?}");
            None
        }
    }
}

/// A key prefix no other test or run uses.
pub(crate) fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("palisade-test:rls:{test}:{}:{nanos}:", std::process::id())
}

/// The keys under `prefix`, sorted.
pub(crate) async fn keys(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// Deletes the keys under `prefix` (only ever a test's own prefix).
pub(crate) async fn delete(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) {
    let keys = keys(conn, prefix).await;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(conn)
            .await
            .unwrap();
    }
}

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "palisade-rls-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The service, killed on drop.
pub(crate) struct Rls {
    child: Child,
    pub(crate) addr: SocketAddr,
    dir: TempDir,
}

impl Rls {
    /// Starts the service on an ephemeral port with `yaml` as its one config file.
    pub(crate) fn start(yaml: &str, args: &[&str]) -> Self {
        let dir = TempDir::new();
        let path = dir.0.join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .args(["--listen", "127.0.0.1:0", "--redis", &redis_url()])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("palisade-ratelimit-service listening on ") {
                    let _ = tx.send(a.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let Ok(addr) = rx.recv_timeout(STEP) else {
            let _ = child.kill();
            panic!("the service did not start on:\n{yaml}");
        };
        Self { child, addr, dir }
    }

    /// The config file the service was started with (rewrite it, then [`hangup`](Self::hangup)).
    pub(crate) fn config_path(&self) -> std::path::PathBuf {
        self.dir.0.join("config.yaml")
    }

    /// Sends SIGHUP (reload).
    pub(crate) fn hangup(&self) {
        let ok = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    pub(crate) async fn client(&self) -> RateLimitServiceClient<Channel> {
        tokio::time::timeout(
            STEP,
            RateLimitServiceClient::connect(format!("http://{}", self.addr)),
        )
        .await
        .expect("connect timed out")
        .unwrap()
    }
}

impl Drop for Rls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A descriptor of `(key, value)` entries.
pub(crate) fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect(),
        ..RateLimitDescriptor::default()
    }
}

/// A request for `domain` with `descriptors`.
pub(crate) fn request(domain: &str, descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.into(),
        descriptors,
        hits_addend: 0,
    }
}
