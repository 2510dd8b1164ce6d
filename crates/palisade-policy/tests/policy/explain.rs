//! `explain()` and the lint warnings.

use palisade_policy::PolicySet;
use serde_json::json;

#[test]
fn explain_lists_the_stack_in_order_with_every_origin() {
    let set = PolicySet::from_toml(
        r#"
        [defaults]
        timeout = { timeout = "5s", deadline_header = "x-budget-ms" }
        bulkhead = { max_concurrent = 64 }
        [policies.payments]
        timeout = { timeout = "3s" }
        rate_limit = { quotas = [{ name = "pay", limit = 5, window = "1m" }] }
        [[routes]]
        name = "pay"
        match = { method = "POST", path = "/pay/{id}" }
        policy = "payments"
        bulkhead = { max_concurrent = 4 }
        [fallback]
        bulkhead = false
        "#,
    )
    .unwrap();
    let e = set.explain();
    let pay = &e["routes"][0];
    assert_eq!(pay["name"], "pay");
    assert_eq!(pay["match"], "all(method POST, path /pay/{id})");
    assert_eq!(pay["policy"], "payments");
    let stack = pay["stack"].as_array().unwrap();
    let names: Vec<&str> = stack
        .iter()
        .map(|l| l.as_str().unwrap_or_else(|| l["layer"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        ["rejections", "rate_limit", "timeout", "bulkhead", "handler"]
    );
    assert_eq!(
        stack[2]["settings"]["timeout"],
        json!({"value": "3s", "from": "policy payments"})
    );
    assert_eq!(
        stack[2]["settings"]["deadline_header"],
        json!({"value": "x-budget-ms", "from": "default"})
    );
    assert_eq!(
        stack[3]["settings"]["max_concurrent"],
        json!({"value": 4, "from": "route"})
    );
    let fallback = &e["routes"][1];
    assert_eq!(fallback["name"], "fallback");
    assert_eq!(
        fallback["stack"],
        json!(["rejections", {"layer": "timeout", "settings": {
        "timeout": {"value": "5s", "from": "default"},
        "deadline_header": {"value": "x-budget-ms", "from": "default"}}}, "handler"])
    );
}

#[test]
fn lint_warns_about_legal_but_risky_settings() {
    let set = PolicySet::from_toml(
        r#"
        [[routes]]
        match = { path = "/keyed" }
        rate_limit = { key = { type = "header", name = "x-api-key" }, quotas = [{ limit = 10, window = "1s" }] }
        [[routes]]
        match = { path = "/keyed-ok", header = "x-api-key" }
        rate_limit = { key = { type = "header", name = "x-api-key" }, quotas = [{ limit = 10, window = "1s" }] }
        [[routes]]
        match = { path = "/pay" }
        idempotency = { require_key = true }
        [[routes]]
        match = { path = "/never-opens" }
        rate_limit = { quotas = [{ limit = 1, window = "1s" }] }
        breaker = { window = { time = 10 }, minimum_calls = 20 }
        [fallback]
        [[clients]]
        host = "billing.internal"
        timeout = { timeout = "1s" }
        attempt_timeout = { timeout = "2s" }
        retry = { budget = "none" }
        "#,
    )
    .unwrap();
    let got: Vec<String> = set.warnings().iter().map(|w| w.path.clone()).collect();
    assert_eq!(
        got,
        [
            "routes[0].rate_limit.key",
            "routes[2].idempotency",
            "routes[3].breaker.minimum_calls",
            "clients[0].retry.budget",
            "clients[0].attempt_timeout.timeout",
        ]
    );
    assert_eq!(
        set.warnings()[2].message,
        "20 calls are needed in a 10 s window but the rate limit lets at most 10 through: the breaker can never open"
    );
    assert_eq!(set.explain()["clients"][0]["stack"][3], "transport");
}

#[tokio::test]
async fn the_admin_service_serves_the_live_explanation() {
    use tower::ServiceExt;
    let handle = palisade_policy::PolicyHandle::new(
        PolicySet::from_toml("[[routes]]\nname = \"a\"\nmatch = { path = \"/a\" }\n[fallback]\n")
            .unwrap(),
    );
    let res = handle
        .explain_service()
        .oneshot(http::Request::get("/palisade/policies").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/json");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["routes"][0]["name"], "a");
    handle
        .reload_str(
            "[[routes]]\nname = \"b\"\nmatch = { path = \"/b\" }\n[fallback]\n",
            palisade_policy::Format::Toml,
        )
        .unwrap();
    let res = handle
        .explain_service()
        .oneshot(http::Request::get("/").body(()).unwrap())
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["routes"][0]["name"], "b", "the set after the reload");
}
