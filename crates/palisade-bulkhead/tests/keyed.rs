//! Per-key bulkheads.

use std::time::Duration;

use http::{HeaderName, Request};
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
    let a_handle = layer.handle_for(&"a".to_owned()).unwrap();
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
    assert!(layer.handle_for(&"a".to_owned()).is_none());
    assert_eq!(layer.handle_for(&"b".to_owned()).unwrap().in_flight(), 1);
    assert_eq!(b.await.unwrap().unwrap(), "b");
    assert_eq!(layer.handle_for(&"b".to_owned()).unwrap().in_flight(), 0);
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
