//! The Redis connection (one node or a cluster) and the scripts run on it.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Cmd, ErrorKind, RedisResult, ServerErrorKind, Value};
/// The connection: one multiplexed connection (reconnecting), or a Redis Cluster.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Conn {
    pub(super) async fn query(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

/// A script's SHA-1 and text.
pub(super) struct Script {
    pub(super) sha: String,
    text: &'static str,
}

impl Script {
    pub(super) fn new(text: &'static str) -> Self {
        Self {
            sha: redis::Script::new(text).get_hash().to_owned(),
            text,
        }
    }
}

/// The scripts, shared by every clone.
pub(super) struct Scripts {
    pub(super) gcra: Script,
    pub(super) lease: Script,
}

/// Runs a script command, loading the script once if the server lacks it, within `timeout`.
pub(super) async fn run(
    conn: &mut Conn,
    cmd: &Cmd,
    script: &Script,
    timeout: Duration,
) -> Result<Value, String> {
    let run = async {
        match conn.query(cmd).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                // Routed to every primary of a cluster.
                let mut load = redis::cmd("SCRIPT");
                load.arg("LOAD").arg(script.text);
                conn.query(&load).await?;
                conn.query(cmd).await
            }
            other => other,
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| format!("redis did not answer within {timeout:?}"))?
        .map_err(|e| e.to_string())
}
