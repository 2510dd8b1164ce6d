//! Active health checks: every `interval`, a `GET path` to each endpoint of a group; an
//! endpoint turns unhealthy after `unhealthy_threshold` failed checks in a row (no answer in
//! `timeout`, or a status other than 2xx) and healthy again after `healthy_threshold` good
//! ones. Unhealthy endpoints get no requests.

use std::sync::Weak;

use axum_core::body::Body;
use http::Request;

use crate::upstream::Group;

/// Runs until the group is dropped (a reload that changes it, or shutdown).
pub(crate) async fn run(group: Weak<Group>) {
    let Some(hc) = group.upgrade().and_then(|g| g.config.health_check.clone()) else {
        return;
    };
    let mut tick = tokio::time::interval(hc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(g) = group.upgrade() else { return };
        let checks = g.endpoints.iter().enumerate().map(|(i, e)| {
            let uri = format!("http://{}{}", e.address, hc.path);
            let client = g.client().clone();
            async move {
                let req = Request::get(uri)
                    .header("user-agent", "palisade-gateway-health")
                    .body(Body::empty());
                let ok = match req {
                    Ok(req) => matches!(
                        tokio::time::timeout(hc.timeout, client.request(req)).await,
                        Ok(Ok(res)) if res.status().is_success()
                    ),
                    Err(_) => false,
                };
                (i, ok)
            }
        });
        let results = futures_join_all(checks).await;
        for (i, ok) in results {
            g.record_check(i, ok, hc.healthy_threshold, hc.unhealthy_threshold);
        }
    }
}

/// Joins the checks of one round (a group has at most 64 endpoints).
async fn futures_join_all<F: Future<Output = (usize, bool)> + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<(usize, bool)> {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(r) = h.await {
            out.push(r);
        }
    }
    out
}
