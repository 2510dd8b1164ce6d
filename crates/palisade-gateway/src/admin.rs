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
        (&Method::GET, "/") => crate::status::page(gw),
        (_, "/health" | "/metrics" | "/policies" | "/breakers" | "/reload" | "/") => {
            problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        }
        _ => problem(
            StatusCode::NOT_FOUND,
            "admin endpoints: /, /health, /metrics, /policies, /breakers, POST /reload",
        ),
    }
}
