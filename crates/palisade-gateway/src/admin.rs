//! The admin listener (loopback by default): `/health`, `/metrics`, `/policies`,
//! `/breakers`, `POST /reload`, and `/` (a status page).

use axum_core::body::Body;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::problem::problem;

fn json_response(status: StatusCode, content_type: &'static str, v: &Value) -> Response<Body> {
    let mut res = Response::new(Body::from(
        serde_json::to_string_pretty(v).unwrap_or_default(),
    ));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// `application/health+json`: the gateway passes while every upstream group has an endpoint
/// that can take requests; a group with none fails and the whole answers 503.
pub(crate) fn health(gw: &Gateway) -> (StatusCode, Value) {
    let table = gw.table();
    let mut checks = serde_json::Map::new();
    let mut all_pass = true;
    for (name, g) in &table.groups {
        let available = g.available();
        let pass = available > 0;
        all_pass &= pass;
        checks.insert(
            format!("upstream:{name}"),
            json!([{
                "componentType": "upstream",
                "status": if pass { "pass" } else { "fail" },
                "observedValue": available,
                "observedUnit": "available endpoints",
                "output": g.status(),
            }]),
        );
    }
    let status = if all_pass { "pass" } else { "fail" };
    let code = if all_pass {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        json!({
            "status": status,
            "serviceId": "palisade-gateway",
            "description": "palisade-gateway and its upstream groups",
            "output": format!("up {}s, {} reloads ({} rejected)", gw.started.elapsed().as_secs(), gw.handle.reloads(), gw.handle.failed_reloads()),
            "checks": checks,
        }),
    )
}

/// Serves one admin request.
pub(crate) fn handle(gw: &Gateway, req: &Request<Incoming>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => {
            let (code, v) = health(gw);
            json_response(code, "application/health+json", &v)
        }
        (&Method::GET, "/metrics") => match &gw.prometheus {
            Some(h) => {
                let mut res = Response::new(Body::from(h.render()));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(palisade_metrics::TEXT_FORMAT),
                );
                res
            }
            None => problem(StatusCode::NOT_FOUND, "no metrics recorder is installed"),
        },
        (&Method::GET, "/policies") => json_response(
            StatusCode::OK,
            "application/json",
            &gw.handle.current().explain(),
        ),
        (&Method::GET, "/breakers") => {
            let table = gw.table();
            let groups: Vec<Value> = table.groups.values().map(|g| g.status()).collect();
            json_response(
                StatusCode::OK,
                "application/json",
                &json!({ "upstreams": groups }),
            )
        }
        (&Method::POST, "/reload") => match gw.reload() {
            Ok(()) => json_response(
                StatusCode::OK,
                "application/json",
                &json!({ "reloaded": true, "reloads": gw.handle.reloads() }),
            ),
            Err(problems) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "application/json",
                &json!({
                    "reloaded": false,
                    "problems": problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            ),
        },
        (&Method::GET, "/canaries") => {
            let table = gw.table();
            let splits: Vec<Value> = table.releases.values().map(|r| r.status()).collect();
            json_response(
                StatusCode::OK,
                "application/json",
                &json!({ "splits": splits }),
            )
        }
        (&Method::POST, path) if path.starts_with("/canaries/") || path.starts_with("/splits/") => {
            release_action(gw, path)
        }
        (&Method::GET, "/") => crate::status::page(gw),
        (_, "/health" | "/metrics" | "/policies" | "/breakers" | "/canaries" | "/reload" | "/") => {
            problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        }
        _ => problem(
            StatusCode::NOT_FOUND,
            "admin endpoints: /, /health, /metrics, /policies, /breakers, /canaries, \
             POST /reload, POST /canaries/ROUTE/(pause|resume), \
             POST /splits/ROUTE/(switch|drain|undrain)/ARM",
        ),
    }
}

/// Decodes `%XX` escapes (route names such as `prefix /users` arrive as `prefix%20/users`);
/// `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `POST /canaries/ROUTE/pause|resume` and `POST /splits/ROUTE/switch|drain|undrain/ARM`
/// (ROUTE may contain `/`: the action and arm are taken from the end; both are
/// percent-decoded).
fn release_action(gw: &Gateway, path: &str) -> Response<Body> {
    let Some(decoded) = percent_decode(path) else {
        return problem(StatusCode::BAD_REQUEST, "bad percent-encoding in the path");
    };
    let path = decoded.as_str();
    let table = gw.table();
    let not_found = |what: &str| problem(StatusCode::NOT_FOUND, what);
    let bad = |e: palisade_core::ConfigError| {
        let status = if e.field() == "arm" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::CONFLICT
        };
        problem(status, &format!("{}: {}", e.field(), e.problem()))
    };
    let done = |r: &crate::release::Release| {
        tracing::info!(target: "palisade_gateway", path, "release action");
        json_response(StatusCode::OK, "application/json", &r.status())
    };
    if let Some(rest) = path.strip_prefix("/canaries/") {
        let Some((route, action)) = rest.rsplit_once('/') else {
            return not_found("use POST /canaries/ROUTE/pause or /resume");
        };
        let Some(r) = table.releases.get(route) else {
            return not_found("no route of that name forwards to a split");
        };
        let paused = match action {
            "pause" => true,
            "resume" => false,
            _ => return not_found("use POST /canaries/ROUTE/pause or /resume"),
        };
        if !r.set_paused(paused) {
            return not_found("this route's split has no canary");
        }
        return done(r);
    }
    let rest = path.strip_prefix("/splits/").unwrap_or_default();
    let mut it = rest.rsplitn(3, '/');
    let (Some(arm), Some(action), Some(route)) = (it.next(), it.next(), it.next()) else {
        return not_found("use POST /splits/ROUTE/switch/ARM, /drain/ARM or /undrain/ARM");
    };
    let Some(r) = table.releases.get(route) else {
        return not_found("no route of that name forwards to a split");
    };
    let result = match action {
        "switch" => r.handle.switch_to(arm),
        "drain" => r.handle.drain(arm),
        "undrain" => r.handle.undrain(arm),
        _ => return not_found("use POST /splits/ROUTE/switch/ARM, /drain/ARM or /undrain/ARM"),
    };
    match result {
        Ok(()) => done(r),
        Err(e) => bad(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding() {
        assert_eq!(
            super::percent_decode("/splits/prefix%20/users/switch/b").as_deref(),
            Some("/splits/prefix /users/switch/b")
        );
        assert_eq!(super::percent_decode("%e2%9c%93").as_deref(), Some("✓"));
        assert_eq!(super::percent_decode("%2"), None);
        assert_eq!(super::percent_decode("%zz"), None);
        assert_eq!(super::percent_decode("%ff"), None);
    }
}
