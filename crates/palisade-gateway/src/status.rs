//! `/` on the admin listener: a server-rendered status page refreshing itself every five
//! seconds (routes, upstream endpoints with health and ejection state, splits with their
//! arms' weights and the canary's state).

use std::fmt::Write as _;

use axum_core::body::Body;
use http::{HeaderValue, Response, header};

use crate::gateway::Gateway;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page.
pub(crate) fn page(gw: &Gateway) -> Response<Body> {
    let table = gw.table();
    let mut html = String::with_capacity(4096);
    html.push_str("<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=5><title>palisade-gateway</title><style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.ok{color:#070}.bad{color:#b00}</style></head><body><h1>palisade-gateway</h1>");
    html.push_str("<h2>Routes</h2><table><tr><th>#</th><th>route</th><th>stack</th></tr>");
    let explain = table.set.explain();
    if let Some(routes) = explain["routes"].as_array() {
        for (i, r) in routes.iter().enumerate() {
            let stack: Vec<String> = r["stack"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .map(|l| {
                            l.as_str()
                                .or_else(|| l["layer"].as_str())
                                .unwrap_or("?")
                                .to_owned()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = write!(
                html,
                "<tr><td>{i}</td><td>{}</td><td>{}</td></tr>",
                esc(r["name"].as_str().unwrap_or("")),
                esc(&stack.join(" → "))
            );
        }
    }
    html.push_str("</table><h2>Upstreams</h2><table><tr><th>group</th><th>endpoint</th><th>health</th><th>breaker</th><th>in flight</th><th>requests</th><th>failures</th></tr>");
    for (name, g) in &table.groups {
        let s = g.status();
        for e in s["endpoints"].as_array().into_iter().flatten() {
            let healthy =
                e["healthy"].as_bool().unwrap_or(false) && !e["ejected"].as_bool().unwrap_or(false);
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td class={}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                esc(e["address"].as_str().unwrap_or("")),
                if healthy { "ok" } else { "bad" },
                if !e["healthy"].as_bool().unwrap_or(false) {
                    "unhealthy"
                } else if e["ejected"].as_bool().unwrap_or(false) {
                    "ejected"
                } else {
                    "healthy"
                },
                esc(e["breaker"]["state"].as_str().unwrap_or("-")),
                e["in_flight"],
                e["requests"],
                e["failures"],
            );
        }
    }
    html.push_str("</table>");
    if !table.releases.is_empty() {
        html.push_str("<h2>Splits and canaries</h2><table><tr><th>route</th><th>arm</th><th>group</th><th>weight</th><th>share</th><th>calls</th><th>failures</th><th>canary</th></tr>");
        for r in table.releases.values() {
            let s = r.status();
            let canary = &s["canary"];
            let canary_text = if canary.is_null() {
                "-".to_owned()
            } else {
                format!(
                    "{} at {}%{}{}",
                    canary["state"].as_str().unwrap_or("?"),
                    canary["percent"],
                    if canary["paused"] == true {
                        ", paused"
                    } else {
                        ""
                    },
                    canary["rollback_reason"]
                        .as_str()
                        .map(|x| format!(": {x}"))
                        .unwrap_or_default()
                )
            };
            for a in s["arms"].as_array().into_iter().flatten() {
                let drained = a["drained"] == true;
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class={}>{:.1}%{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&r.route),
                    esc(a["name"].as_str().unwrap_or("")),
                    esc(a["upstream"].as_str().unwrap_or("")),
                    a["weight"],
                    if drained { "bad" } else { "ok" },
                    a["share"].as_f64().unwrap_or(0.0),
                    if drained { " (drained)" } else { "" },
                    a["calls"],
                    a["failures"],
                    esc(&canary_text),
                );
            }
        }
        html.push_str("</table>");
    }
    html.push_str("<p>JSON: <a href=/health>/health</a> · <a href=/breakers>/breakers</a> · <a href=/canaries>/canaries</a> · <a href=/policies>/policies</a> · <a href=/metrics>/metrics</a></p></body></html>");
    let mut res = Response::new(Body::from(html));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}
