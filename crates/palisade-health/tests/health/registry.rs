//! Registry, aggregation, caching, timeouts and the HTTP endpoints.

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use palisade_health::{
    CheckOutcome, HealthCheck, HealthRegistry, Status, TIMED_OUT, check_fn, check_sync,
};
use serde_json::Value;
use tower::ServiceExt;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Pass,
    Fail,
    Timeout,
}

fn check_of(kind: Kind) -> palisade_health::FnCheck<impl Fn() -> futures::Fut + Send + Sync> {
    check_fn(move || futures::fut(kind))
}

mod futures {
    use super::*;
    pub(crate) type Fut = std::pin::Pin<Box<dyn std::future::Future<Output = CheckOutcome> + Send>>;
    pub(crate) fn fut(kind: Kind) -> Fut {
        Box::pin(async move {
            match kind {
                Kind::Pass => CheckOutcome::pass(),
                Kind::Fail => CheckOutcome::fail("connection refused"),
                Kind::Timeout => pending().await,
            }
        })
    }
}

async fn get(registry: &HealthRegistry, path: &str) -> (u16, Option<String>, Value) {
    let res = registry
        .service()
        .oneshot(Request::get(path).body(()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    (status, ct, json)
}

#[tokio::test(start_paused = true)]
async fn aggregation_table() {
    use Kind::{Fail, Pass, Timeout};
    // (critical?, kind) of the one checked dependency → (root status, HTTP status, check status)
    let table = [
        (true, Pass, "pass", 200, "pass"),
        (false, Pass, "pass", 200, "pass"),
        (true, Fail, "fail", 503, "fail"),
        (false, Fail, "warn", 200, "fail"),
        (true, Timeout, "fail", 503, "fail"),
        (false, Timeout, "warn", 200, "fail"),
    ];
    for (critical, kind, root, http, check) in table {
        let registry = HealthRegistry::new();
        registry
            .register(
                HealthCheck::new("ok:responseTime", check_fn(|| async { true })).critical(true),
            )
            .unwrap()
            .register(
                HealthCheck::new("dep:responseTime", check_of(kind))
                    .critical(critical)
                    .timeout(Duration::from_millis(200)),
            )
            .unwrap();
        let (status, ct, json) = get(&registry, "/readyz").await;
        let case = format!("critical={critical} {kind:?}");
        assert_eq!(status, http, "{case}");
        assert_eq!(ct.as_deref(), Some("application/health+json"), "{case}");
        assert_eq!(json["status"], root, "{case}");
        assert_eq!(
            json["checks"]["dep:responseTime"][0]["status"], check,
            "{case}"
        );
        assert_eq!(
            json["checks"]["ok:responseTime"][0]["status"], "pass",
            "{case}"
        );
        let output = &json["checks"]["dep:responseTime"][0]["output"];
        match kind {
            Pass => assert!(output.is_null(), "{case}"),
            Fail => assert_eq!(output, "connection refused", "{case}"),
            Timeout => assert_eq!(output, TIMED_OUT, "{case}"),
        }
        // Liveness never looks at dependencies.
        let (status, _, json) = get(&registry, "/livez").await;
        assert_eq!((status, json), (200, serde_json::json!({"status": "pass"})));
    }
}

#[tokio::test(start_paused = true)]
async fn warn_from_a_critical_check_is_warn() {
    let registry = HealthRegistry::new();
    registry
        .register(
            HealthCheck::new(
                "pool:utilization",
                check_sync(|| CheckOutcome::warn("93% used")),
            )
            .critical(true),
        )
        .unwrap();
    let (status, _, json) = get(&registry, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(json["status"], "warn");
}

#[tokio::test(start_paused = true)]
async fn hanging_check_times_out_and_is_reported() {
    let registry = HealthRegistry::new();
    registry
        .register(
            HealthCheck::new("slow:responseTime", check_fn(pending::<Status>))
                .critical(true)
                .timeout(Duration::from_secs(2)),
        )
        .unwrap();
    let start = tokio::time::Instant::now();
    let report = registry.report().await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(report.status, Status::Fail);
    assert_eq!(report.checks[0].outcome.output.as_deref(), Some(TIMED_OUT));
    assert_eq!(report.checks[0].duration, Duration::from_secs(2));
}

fn counting(calls: &Arc<AtomicUsize>) -> impl palisade_health::Check {
    let calls = calls.clone();
    check_fn(move || {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Status::Pass }
    })
}

#[tokio::test(start_paused = true)]
async fn results_are_cached_within_the_interval() {
    let calls = Arc::new(AtomicUsize::new(0));
    let registry = HealthRegistry::new();
    registry
        .register(HealthCheck::new("db", counting(&calls)).interval(Duration::from_secs(10)))
        .unwrap();
    for _ in 0..3 {
        assert_eq!(registry.report().await.status, Status::Pass);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_millis(9_999)).await;
    registry.report().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    // Concurrent probes share one run.
    let (a, b) = tokio::join!(registry.report(), get(&registry, "/readyz"));
    assert_eq!(a.status, Status::Pass);
    assert_eq!(b.0, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn background_runner_refreshes_and_probes_only_read_the_cache() {
    let calls = Arc::new(AtomicUsize::new(0));
    let registry = HealthRegistry::new();
    registry
        .register(HealthCheck::new("db", counting(&calls)).interval(Duration::from_secs(5)))
        .unwrap()
        .register(
            HealthCheck::new("hangs", check_fn(pending::<Status>))
                .timeout(Duration::from_secs(1))
                .interval(Duration::from_secs(5)),
        )
        .unwrap();
    let task = registry.spawn_background();
    tokio::task::yield_now().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The hanging check has not finished its first run: reported pending, without waiting.
    let start = tokio::time::Instant::now();
    let report = registry.report().await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        report.checks[1].outcome.output.as_deref(),
        Some(palisade_health::PENDING)
    );
    assert_eq!(report.status, Status::Warn);

    tokio::time::advance(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    let report = registry.report().await;
    assert_eq!(report.checks[1].outcome.output.as_deref(), Some(TIMED_OUT));
    for _ in 0..10 {
        registry.report().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::task::yield_now().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    drop(task);
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::task::yield_now().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn json_shape_follows_the_draft() {
    let registry = HealthRegistry::new();
    registry
        .set_version("1")
        .set_service_id("orders")
        .set_description("order service");
    registry
        .register(
            HealthCheck::new(
                "redis:responseTime",
                check_fn(|| async {
                    tokio::time::sleep(Duration::from_millis(12)).await;
                    Status::Pass
                }),
            )
            .component_type("datastore"),
        )
        .unwrap()
        .register(HealthCheck::new(
            "pool:utilization",
            check_sync(|| CheckOutcome::warn("almost full").with_observed(93.5, "percent")),
        ))
        .unwrap();
    let (status, ct, json) = get(&registry, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(ct.as_deref(), Some("application/health+json"));
    let root = json.as_object().unwrap();
    let mut keys: Vec<&str> = root.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["checks", "description", "serviceId", "status", "version"]
    );
    assert_eq!(json["status"], "warn");
    assert_eq!(json["version"], "1");

    let redis = &json["checks"]["redis:responseTime"];
    assert!(redis.is_array());
    let redis = redis[0].as_object().unwrap();
    let mut keys: Vec<&str> = redis.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "componentType",
            "observedUnit",
            "observedValue",
            "status",
            "time"
        ]
    );
    assert_eq!(redis["componentType"], "datastore");
    assert_eq!(redis["observedValue"], 12.0);
    assert_eq!(redis["observedUnit"], "ms");
    let time = redis["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.contains('T'), "{time}");
    humantime::parse_rfc3339(time).unwrap();

    let pool = &json["checks"]["pool:utilization"][0];
    assert_eq!(pool["status"], "warn");
    assert_eq!(pool["observedValue"], 93.5);
    assert_eq!(pool["observedUnit"], "percent");
    assert_eq!(pool["output"], "almost full");
}

#[tokio::test(start_paused = true)]
async fn draining_fails_readiness_only() {
    let registry = HealthRegistry::new();
    registry
        .register(HealthCheck::new("db", check_fn(|| async { true })))
        .unwrap();
    let mut changes = registry.subscribe();
    changes.borrow_and_update();
    registry.set_draining(true);
    assert!(changes.has_changed().unwrap());
    let (status, _, json) = get(&registry, "/readyz").await;
    assert_eq!(
        (status, &json["status"], &json["output"]),
        (503, &"fail".into(), &"draining".into())
    );
    assert_eq!(get(&registry, "/livez").await.0, 200);
    registry.set_draining(false);
    assert_eq!(get(&registry, "/readyz").await.0, 200);
}

#[tokio::test]
async fn routing_methods_and_head() {
    let registry = HealthRegistry::new();
    assert_eq!(get(&registry, "/nope").await.0, 404);
    let res = registry
        .service()
        .oneshot(Request::post("/readyz").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    let res = registry
        .service()
        .oneshot(Request::head("/readyz").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );
    assert_eq!(
        get(&registry, "/readyz").await.2,
        serde_json::json!({"status": "pass"})
    );
}

#[test]
fn registration_is_validated() {
    let registry = HealthRegistry::new();
    let ok = || check_fn(|| async { true });
    for bad in ["", ":x", "a:", "a:b:c"] {
        let err = registry.register(HealthCheck::new(bad, ok())).unwrap_err();
        assert_eq!(err.field(), format!("{bad}.name"));
    }
    registry.register(HealthCheck::new("a:b", ok())).unwrap();
    assert!(registry.register(HealthCheck::new("a:b", ok())).is_err());
    let err = registry
        .register(HealthCheck::new("t", ok()).timeout(Duration::ZERO))
        .unwrap_err();
    assert_eq!(err.field(), "t.timeout");
    let err = registry
        .register(HealthCheck::new("i", ok()).interval(Duration::ZERO))
        .unwrap_err();
    assert_eq!(err.field(), "i.interval");
    // Upper bounds: an hour at most.
    let err = registry
        .register(HealthCheck::new("t2", ok()).timeout(Duration::from_secs(3601)))
        .unwrap_err();
    assert_eq!(err.field(), "t2.timeout");
    let err = registry
        .register(HealthCheck::new("i2", ok()).interval(Duration::MAX))
        .unwrap_err();
    assert_eq!(err.field(), "i2.interval");
    let err = registry
        .register(HealthCheck::new("c", ok()).component_type("database"))
        .unwrap_err();
    assert_eq!(err.field(), "c.component_type");
}

async fn boom() -> Status {
    tokio::task::yield_now().await;
    panic!("async boom")
}

#[tokio::test(start_paused = true)]
async fn a_panicking_check_fails() {
    let registry = HealthRegistry::new();
    registry
        .register(
            HealthCheck::new("boom", check_sync(|| -> Status { panic!("boom") })).critical(true),
        )
        .unwrap();
    let report = registry.report().await;
    assert_eq!(report.status, Status::Fail);
    assert_eq!(
        report.checks[0].outcome.output.as_deref(),
        Some(palisade_health::PANICKED)
    );
    let registry = HealthRegistry::new();
    registry
        .register(HealthCheck::new("boom", check_fn(boom)))
        .unwrap();
    let report: palisade_health::HealthReport = registry.report().await;
    assert_eq!(report.status, Status::Warn);
    assert_eq!(
        report.checks[0].outcome.output.as_deref(),
        Some(palisade_health::PANICKED)
    );
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_router() {
    let registry = HealthRegistry::new();
    registry
        .register(HealthCheck::new("db", check_fn(|| async { false })).critical(true))
        .unwrap();
    let app: axum::Router = axum::Router::new()
        .route("/", axum::routing::get(|| async { "hi" }))
        .merge(registry.router());
    let call = |path: &'static str| {
        app.clone()
            .oneshot(Request::get(path).body(axum::body::Body::empty()).unwrap())
    };
    assert_eq!(call("/livez").await.unwrap().status(), 200);
    let res = call("/readyz").await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/health+json");
    assert_eq!(call("/health").await.unwrap().status(), 503);
    assert_eq!(call("/").await.unwrap().status(), 200);
}
