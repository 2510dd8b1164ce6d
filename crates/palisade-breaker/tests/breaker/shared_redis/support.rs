//! Helpers of the fleet tests: connections that skip outside CI, unique prefixes and their
//! cleanup, the three-instance config, bounded waits, a stallable TCP proxy and a private
//! `redis-server`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use palisade_breaker::{
    BreakerConfig, BreakerHandle, CircuitBreakerLayer, FleetConfig, SlidingWindow,
};
use palisade_core::{BoxError, ErrorsAsFailures};
use palisade_test::EventRecorder;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower::{Service, service_fn};

pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub(crate) fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("palisade-test:cb:{test}:{}:{nanos}:", std::process::id())
}

/// Quick reconnects, so a test sees Redis come back within a second.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100))
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)))
}

pub(crate) async fn connect(url: &str) -> Option<ConnectionManager> {
    let attempt = async {
        let client = redis::Client::open(url)?;
        ConnectionManager::new_with_config(client, manager_config()).await
    };
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
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

/// Deletes every key under `prefix` (only this test's keys: the prefix is unique), once
/// the flush tasks of the test's dropped breakers have ended (each at its next tick, or when
/// a flush in flight gives up, within 200 ms).
pub(crate) async fn cleanup(conn: &mut ConnectionManager, prefix: &str) {
    tokio::time::sleep(Duration::from_millis(400)).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(conn)
            .await
            .unwrap();
    }
}

pub(crate) fn config(prefix: &str, flush: Duration) -> BreakerConfig {
    let mut fleet = FleetConfig::default();
    fleet.name = Some("payments".into());
    prefix.clone_into(&mut fleet.key_prefix);
    fleet.flush_interval = flush;
    let mut c = BreakerConfig::default();
    c.window = SlidingWindow::Time(10);
    c.minimum_calls = 5;
    c.failure_rate_threshold = 50.0;
    c.wait_in_open = Duration::from_secs(60);
    c.max_wait_in_open = Duration::from_secs(60);
    c.permitted_in_half_open = 3;
    c.fleet = Some(fleet);
    c
}

pub(crate) fn layer(
    config: &BreakerConfig,
    conn: ConnectionManager,
    events: &EventRecorder,
) -> CircuitBreakerLayer<ErrorsAsFailures> {
    CircuitBreakerLayer::builder()
        .config(config.clone())
        .redis(conn)
        .classifier(ErrorsAsFailures)
        .on_event(events.on())
        .build()
        .unwrap()
}

/// Waits (bounded) until `cond` holds, polling every millisecond; returns how long it took.
pub(crate) async fn until(what: &str, bound: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

pub(crate) async fn all_connected(handles: &[BreakerHandle]) {
    until(
        "every instance joins the fleet",
        Duration::from_secs(5),
        || handles.iter().all(|h| h.fleet_connected() == Some(true)),
    )
    .await;
}

/// A service that fails while `failing` is set, else succeeds; counts its calls.
pub(crate) fn upstream(
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
) -> impl Service<(), Response = (), Error = BoxError, Future: Send> + Clone + Send {
    service_fn(move |()| {
        calls.fetch_add(1, Ordering::SeqCst);
        let fail = failing.load(Ordering::SeqCst);
        async move {
            if fail {
                Err::<(), BoxError>("upstream down".into())
            } else {
                Ok(())
            }
        }
    })
}

async fn pump(mut r: OwnedReadHalf, mut w: OwnedWriteHalf, stalled: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A TCP proxy to Redis that stops forwarding while `stalled` is set.
pub(crate) async fn stallable_proxy(stalled: Arc<AtomicBool>) -> String {
    let url = redis_url();
    let hostport = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(&hostport).await else {
                return;
            };
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::spawn(pump(ri, wo, stalled.clone()));
            tokio::spawn(pump(ro, wi, stalled.clone()));
        }
    });
    format!("redis://{addr}")
}

/// A private `redis-server` on a free port, killed on drop.
pub(crate) struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    pub(crate) async fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "redis-server is required under CI: {e}"
                );
                eprintln!("skipping: cannot start redis-server: {e}");
                return None;
            }
        };
        let this = Self { child, port };
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Some(this)
    }
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
