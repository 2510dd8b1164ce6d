//! A private Redis Cluster for tests: [`RedisCluster::start`] runs `redis-server` nodes
//! on free 127.0.0.1 ports, each in its own directory under a fresh temporary directory,
//! with `--cluster-enabled yes`, joins them with `redis-cli --cluster create
//! … --cluster-replicas 0 --cluster-yes`, and waits for `cluster_state:ok`. Dropping the
//! guard kills the nodes (by their process handles) and removes the directory. Never
//! touches any other Redis.
//!
//! ```no_run
//! # fn main() -> Result<(), String> {
//! let cluster = palisade_test::redis_cluster::RedisCluster::start(3)?;
//! let urls = cluster.urls(); // ["redis://127.0.0.1:21xxx", …], one per primary
//! # drop(urls); Ok(()) }
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running private Redis Cluster; dropping it stops every node.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    dir: PathBuf,
}

/// Whether `port` and its cluster bus port (`port + 10000`) are both free now.
fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
        && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
}

/// Sends one inline command and returns the first bytes of the reply.
fn ask(port: u16, command: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > timeout {
            return Err(format!("{what}: not ready within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

impl RedisCluster {
    /// Starts a cluster of `primaries` nodes (at least 3, as Redis requires), or says why
    /// it could not (`redis-server` or `redis-cli` missing, a node not starting).
    pub fn start(primaries: usize) -> Result<Self, String> {
        let primaries = primaries.max(3);
        for tool in ["redis-server", "redis-cli"] {
            Command::new(tool)
                .arg("--version")
                .output()
                .map_err(|e| format!("`{tool}` is not available: {e}"))?;
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "palisade-redis-cluster-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cluster = Self {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        // Ports in 20000..30000 so that the bus ports (+10000) stay valid; spread by pid.
        let mut port =
            20_000 + ((u64::from(std::process::id()) * 7 + u64::from(nanos)) % 9_000) as u16;
        while cluster.ports.len() < primaries {
            port = if port >= 29_990 { 20_000 } else { port + 1 };
            if !free(port) {
                continue;
            }
            let node_dir = cluster.dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                .args(["--cluster-node-timeout", "5000"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("redis-server: {e}"))?;
            cluster.nodes.push(child);
            cluster.ports.push(port);
        }
        for &p in &cluster.ports {
            wait_for(&format!("node {p}"), Duration::from_secs(10), || {
                ask(p, "PING").is_some_and(|r| r.starts_with("+PONG"))
            })?;
        }
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        for &p in &cluster.ports {
            wait_for(
                &format!("cluster state on {p}"),
                Duration::from_secs(20),
                || ask(p, "CLUSTER INFO").is_some_and(|r| r.contains("cluster_state:ok")),
            )?;
        }
        Ok(cluster)
    }

    /// `redis://127.0.0.1:<port>` of every primary.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The primaries' ports.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// `KEYS *` on the primary at `port` (every key of that node; tests use it to see which
    /// node a key landed on).
    pub fn keys_on(&self, port: u16) -> Vec<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "--raw", "KEYS", "*"])
            .output();
        out.map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
