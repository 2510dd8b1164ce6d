//! HTTP/1.1 upgrades (WebSocket and any other `Upgrade` protocol) passed through: the
//! request keeps `Connection: upgrade` and its `Upgrade` field on the way up; when the
//! upstream answers 101 the answer keeps them on the way back, and once both sides have
//! switched protocols the two connections are spliced byte for byte until either closes.
//! An open tunnel keeps its client connection's `max_connections` slot and holds the
//! SIGTERM drain (up to `drain_timeout`), like a connection with a request in flight.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::server::ConnGuard;

/// A request's upgrade: the protocols it asks for and the client side of the connection.
pub(crate) struct Pending {
    protocols: HeaderValue,
    client: OnUpgrade,
    /// The client connection's slot and drain guard, kept while the tunnel is open.
    conn: Option<ConnGuard>,
}

/// Whether `headers` carry `Connection: upgrade` (among other tokens) and an `Upgrade` field.
fn upgrade_requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Takes the upgrade of an HTTP/1.1 request that asks for one (before its hop-by-hop fields
/// are removed).
pub(crate) fn take(parts: &mut http::request::Parts) -> Option<Pending> {
    if parts.version != Version::HTTP_11 {
        return None;
    }
    let protocols = upgrade_requested(&parts.headers)?;
    let client = parts.extensions.remove::<OnUpgrade>()?;
    let conn = parts.extensions.remove::<ConnGuard>();
    Some(Pending {
        protocols,
        client,
        conn,
    })
}

impl Pending {
    /// Puts the upgrade fields back on the request going upstream.
    pub(crate) fn restore(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, self.protocols.clone());
    }

    /// If the upstream switched protocols, keeps the upgrade fields on the answer and splices
    /// the two connections in a task; otherwise the client's upgrade is dropped (the answer
    /// is a plain one).
    pub(crate) fn finish(self, res: &mut Response<Incoming>) -> Option<HeaderValue> {
        if res.status() != StatusCode::SWITCHING_PROTOCOLS {
            return None;
        }
        let protocol = res.headers().get(header::UPGRADE).cloned()?;
        let upstream = hyper::upgrade::on(&mut *res);
        let client = self.client;
        let conn = self.conn;
        tokio::spawn(async move {
            let _conn = conn;
            let (Ok(up), Ok(down)) = tokio::join!(upstream, client) else {
                tracing::debug!(target: "palisade_gateway", "an upgrade did not complete");
                return;
            };
            let (mut up, mut down) = (TokioIo::new(up), TokioIo::new(down));
            if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                tracing::debug!(target: "palisade_gateway", error = %e, "upgraded connection ended");
            }
        });
        Some(protocol)
    }
}

/// Sets the upgrade fields on the answer sent to the client.
pub(crate) fn answer(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

#[cfg(test)]
mod tests {
    #[test]
    fn connection_tokens_are_searched() {
        let requested = |c: &str, upgrade: bool| {
            let mut h = http::HeaderMap::new();
            h.insert("connection", c.parse().unwrap());
            if upgrade {
                h.insert("upgrade", "websocket".parse().unwrap());
            }
            super::upgrade_requested(&h).is_some()
        };
        assert!(requested("Upgrade", true));
        assert!(requested("keep-alive, upgrade", true));
        assert!(!requested("keep-alive", true));
        assert!(!requested("upgrade", false));
    }
}
