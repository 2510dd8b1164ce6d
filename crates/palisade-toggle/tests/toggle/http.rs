//! FlagsLayer (context from the request), FlagGate (404 / fallback), axum extractor.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_core::key::HeaderKey;
use palisade_test::scripted::{ScriptedService, body};
use palisade_toggle::{
    AttrSource, Condition, DynamicProvider, Flag, FlagGateLayer, FlagSet, Flags, FlagsLayer,
    Fractional, StaticProvider, TargetingRule,
};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

fn flags() -> FlagSet {
    FlagSet::new()
        .with("dark", Flag::boolean(true))
        .with("hidden", Flag::boolean(false))
        .with(
            "staff",
            Flag::boolean(false).rule(TargetingRule::variant(
                Condition::EndsWith("email".into(), "@acme.io".into()),
                "on",
            )),
        )
        .with(
            "beta",
            Flag::boolean(false).rule(TargetingRule::variant(
                Condition::And(vec![
                    Condition::Equals("tier".into(), "gold".into()),
                    Condition::Equals("ab".into(), "b".into()),
                    Condition::StartsWith("path".into(), "/v2/".into()),
                    Condition::Equals("method".into(), "POST".into()),
                ]),
                "on",
            )),
        )
        .with(
            "headerColor",
            Flag::new(
                [
                    ("red", palisade_toggle::FlagValue::String("red".into())),
                    ("blue", palisade_toggle::FlagValue::String("blue".into())),
                    ("green", palisade_toggle::FlagValue::String("green".into())),
                ],
                "red",
            )
            .rule(TargetingRule::fractional(
                Condition::Always,
                Fractional::new([("red", 50), ("blue", 20), ("green", 30)]),
            )),
        )
}

#[allow(clippy::needless_pass_by_value)] // service_fn takes the request by value
fn echo_flags(req: Request<()>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let f = req.extensions().get::<Flags>().expect("Flags handle");
    let body = format!(
        "staff={} beta={} color={} key={:?}",
        f.is_enabled("staff"),
        f.is_enabled("beta"),
        f.string("headerColor", "none"),
        f.context().targeting_key(),
    );
    std::future::ready(Ok(Response::new(Full::new(Bytes::from(body)))))
}

async fn text(res: Response<Full<Bytes>>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn flags_layer_builds_context_from_key_headers_cookies_query_path() {
    let layer = FlagsLayer::new(StaticProvider::new(flags()))
        .targeting_key(HeaderKey::new(HeaderName::from_static("x-user")))
        .attribute(
            "email",
            AttrSource::Header(HeaderName::from_static("x-email")),
        )
        .attribute("tier", AttrSource::Cookie("tier".into()))
        .attribute("ab", AttrSource::Query("ab".into()))
        .attribute("path", AttrSource::Path)
        .attribute("method", AttrSource::Method);
    let svc = layer.layer(service_fn(echo_flags));

    let req = Request::post("/v2/items?x=1&ab=b")
        .header("x-user", "user-1")
        .header("x-email", "ann@acme.io")
        .header("cookie", "session=abc; tier=gold")
        .body(())
        .unwrap();
    let body = text(svc.clone().oneshot(req).await.unwrap()).await;
    // flagd reference vector (murmur3 x86_32, seed 0): headerColor + user-1 → blue.
    assert_eq!(
        body,
        r#"staff=true beta=true color=blue key=Some("user-1")"#
    );

    let req = Request::get("/v2/items?ab=a")
        .header("x-user", "user-2")
        .header("x-email", "bob@example.com")
        .header("cookie", "tier=gold")
        .body(())
        .unwrap();
    let body = text(svc.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(
        body,
        r#"staff=false beta=false color=green key=Some("user-2")"#
    );

    // No targeting key: the split has no bucketing value → default variant.
    let body = text(svc.oneshot(Request::new(())).await.unwrap()).await;
    assert_eq!(body, "staff=false beta=false color=red key=None");
}

#[tokio::test]
async fn gate_answers_404_problem_json_when_off() {
    let provider = DynamicProvider::new(flags());
    let inner = ScriptedService::otherwise(body("new"));
    let calls = inner.clone();
    let svc = FlagGateLayer::new(provider.clone(), "hidden").layer(inner);
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = serde_json::from_str(&text(res).await).unwrap();
    assert_eq!(body["status"], 404);
    assert_eq!(body["detail"], "feature `hidden` is not enabled");
    assert_eq!(calls.calls(), 0);

    // Turning the flag on at runtime opens the route.
    provider.set(FlagSet::new().with("hidden", Flag::boolean(true)));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "new");
    assert_eq!(calls.calls(), 1);
}

#[tokio::test]
async fn gate_routes_to_fallback_and_uses_request_flags_for_targeting() {
    let provider = StaticProvider::new(flags());
    let inner = ScriptedService::otherwise(body("new"));
    let new_calls = inner.clone();
    let legacy = ScriptedService::otherwise(body("legacy"));
    let svc = ServiceBuilder::new()
        .layer(FlagsLayer::new(provider.clone()).attribute(
            "email",
            AttrSource::Header(HeaderName::from_static("x-email")),
        ))
        .layer(FlagGateLayer::new(provider, "staff").or_else(legacy))
        .service(inner);

    let staff = Request::get("/")
        .header("x-email", "ann@acme.io")
        .body(())
        .unwrap();
    assert_eq!(text(svc.clone().oneshot(staff).await.unwrap()).await, "new");
    let guest = Request::get("/")
        .header("x-email", "bob@x.org")
        .body(())
        .unwrap();
    assert_eq!(
        text(svc.clone().oneshot(guest).await.unwrap()).await,
        "legacy"
    );
    assert_eq!(
        text(svc.oneshot(Request::new(())).await.unwrap()).await,
        "legacy"
    );
    assert_eq!(new_calls.calls(), 1);
}

#[tokio::test]
async fn gate_without_flags_layer_and_missing_flag_is_off() {
    let inner = ScriptedService::otherwise(body("new"));
    let calls = inner.clone();
    let svc = FlagGateLayer::new(StaticProvider::new(flags()), "no-such-flag").layer(inner);
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(calls.calls(), 0);
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_extractor_reads_flags() {
    use axum::{Router, body::Body, routing::get};
    async fn handler(flags: Flags) -> String {
        format!("dark={}", flags.is_enabled("dark"))
    }
    let app = Router::new()
        .route("/", get(handler))
        .layer(FlagsLayer::new(StaticProvider::new(flags())));
    let res = app.oneshot(Request::new(Body::empty())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"dark=true");

    // Without the layer the extractor refuses with 500.
    let app = Router::new().route("/", get(handler));
    let res = app.oneshot(Request::new(Body::empty())).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
