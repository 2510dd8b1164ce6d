//! Per-key bulkheads.

use std::future::Future;
use std::time::Duration;

use http::{HeaderName, Request};
use palisade_bulkhead::error::KeyTypeMismatch;
use palisade_bulkhead::{BulkheadLayer, Mode};
use palisade_core::key::HeaderKey;
use palisade_core::{BoxError, BulkheadFull, KeyError};
use tower::{Layer, ServiceExt, service_fn};

fn req(tenant: Option<&str>, ms: u64) -> Request<()> {
    let mut b = Request::get("/").header("x-ms", ms.to_string());
    if let Some(t) = tenant {
        b = b.header("x-tenant", t);
    }
    b.body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn one_bulkhead_per_key_with_a_bounded_key_count() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .release_on_response()
        .build_keyed(HeaderKey::new(HeaderName::from_static("x-tenant")), 2)
        .unwrap();
    let svc = layer.clone().layer(service_fn(|r: Request<()>| async move {
        let ms: u64 = r.headers()["x-ms"].to_str().unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, BoxError>(r.headers()["x-tenant"].to_str().unwrap().to_owned())
    }));

    let a = tokio::spawn(svc.clone().oneshot(req(Some("a"), 1_000)));
    let b = tokio::spawn(svc.clone().oneshot(req(Some("b"), 2_000)));
    tokio::task::yield_now().await;
    let a_handle = layer.handle_for(&"a".to_owned()).unwrap().unwrap();
    assert_eq!(a_handle.in_flight(), 1);

    // Tenant a is full; tenant b has its own slot (taken too); a third key finds both busy.
    let err = svc.clone().oneshot(req(Some("a"), 1)).await.unwrap_err();
    assert!(err.is::<BulkheadFull>());
    let err = svc.clone().oneshot(req(Some("c"), 1)).await.unwrap_err();
    assert!(err.is::<BulkheadFull>(), "max_keys reached, none idle");
    let err = svc.clone().oneshot(req(None, 1)).await.unwrap_err();
    assert!(err.is::<KeyError>());

    assert_eq!(a.await.unwrap().unwrap(), "a");
    assert_eq!(a_handle.in_flight(), 0);
    drop(a_handle);
    // a is idle now: c evicts it.
    assert_eq!(svc.clone().oneshot(req(Some("c"), 1)).await.unwrap(), "c");
    assert!(layer.handle_for(&"a".to_owned()).unwrap().is_none());
    assert_eq!(
        layer
            .handle_for(&"b".to_owned())
            .unwrap()
            .unwrap()
            .in_flight(),
        1
    );
    assert_eq!(b.await.unwrap().unwrap(), "b");
    assert_eq!(
        layer
            .handle_for(&"b".to_owned())
            .unwrap()
            .unwrap()
            .in_flight(),
        0
    );
}

#[test]
fn keyed_needs_shed_mode_and_a_key_bound() {
    let k = HeaderKey::new(HeaderName::from_static("x-tenant"));
    let e = BulkheadLayer::builder()
        .mode(Mode::Backpressure)
        .build_keyed(k.clone(), 10)
        .unwrap_err();
    assert_eq!(e.field(), "mode");
    let e = BulkheadLayer::builder().build_keyed(k, 0).unwrap_err();
    assert_eq!(e.field(), "max_keys");
}

fn tenant_layer(
    max_keys: usize,
) -> palisade_bulkhead::KeyedBulkheadLayer<
    HeaderKey,
    palisade_bulkhead::NoPriority,
    palisade_bulkhead::OnResponse,
> {
    BulkheadLayer::builder()
        .max_concurrent(1)
        .release_on_response()
        .key_idle_timeout(Duration::from_secs(10))
        .build_keyed(
            HeaderKey::new(HeaderName::from_static("x-tenant")),
            max_keys,
        )
        .unwrap()
}

fn sleeper() -> impl tower::Service<
    Request<()>,
    Response = String,
    Error = BoxError,
    Future = impl Future<Output = Result<String, BoxError>> + Send,
> + Clone {
    service_fn(|r: Request<()>| async move {
        let ms: u64 = r.headers()["x-ms"].to_str().unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, BoxError>(r.headers()["x-tenant"].to_str().unwrap().to_owned())
    })
}

#[tokio::test(start_paused = true)]
async fn handle_for_with_another_key_type_is_an_error_not_a_panic() {
    let layer = tenant_layer(10);
    let svc = layer.clone().layer(sleeper());
    // Before any request the layer cannot tell the key type: no bulkhead yet.
    assert!(matches!(layer.handle_for(&7_u32), Ok(None)));
    assert_eq!(svc.clone().oneshot(req(Some("a"), 1)).await.unwrap(), "a");
    let e = layer.handle_for(&7_u32).unwrap_err();
    assert_eq!(
        e,
        KeyTypeMismatch {
            expected: "alloc::string::String",
            given: "u32"
        }
    );
    // Later requests are served as before.
    assert_eq!(svc.clone().oneshot(req(Some("a"), 1)).await.unwrap(), "a");
    assert_eq!(
        layer
            .handle_for(&"a".to_owned())
            .unwrap()
            .unwrap()
            .in_flight(),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn idle_keys_expire_but_busy_ones_do_not() {
    let layer = tenant_layer(100);
    let svc = layer.clone().layer(sleeper());
    let long = tokio::spawn(svc.clone().oneshot(req(Some("busy"), 60_000)));
    tokio::task::yield_now().await;
    svc.clone().oneshot(req(Some("idle"), 1)).await.unwrap();
    assert_eq!(layer.tracked_keys(), 2);
    tokio::time::advance(Duration::from_secs(20)).await;
    // Requests expire a few idle keys as they go: "idle" goes, "busy" (1 in flight) stays.
    svc.clone().oneshot(req(Some("new"), 1)).await.unwrap();
    assert_eq!(layer.tracked_keys(), 2);
    assert!(layer.handle_for(&"idle".to_owned()).unwrap().is_none());
    let busy = layer.handle_for(&"busy".to_owned()).unwrap().unwrap();
    assert_eq!(busy.in_flight(), 1);
    // Still one slot for "busy": its count was not lost.
    let e = svc.clone().oneshot(req(Some("busy"), 1)).await.unwrap_err();
    assert!(e.is::<BulkheadFull>());
    drop(busy);
    long.await.unwrap().unwrap();
}

#[test]
fn key_idle_timeout_is_bounded() {
    let k = HeaderKey::new(HeaderName::from_static("x-tenant"));
    for bad in [Duration::ZERO, Duration::from_secs(8 * 86_400)] {
        let e = BulkheadLayer::builder()
            .key_idle_timeout(bad)
            .build_keyed(k.clone(), 10)
            .unwrap_err();
        assert_eq!(e.field(), "key_idle_timeout");
    }
}
