//! A `Cache` in spawned tasks, with a boxed inner service erroring `BoxError` (as users
//! write it): `tokio::spawn(svc.oneshot(req))`, and an `async move` block calling
//! `ready().await?.call(req).await`, both compile and run.
//!
//! Known limit: `svc.oneshot(req).await` *inside* an `async move` block fails to compile
//! ("higher-ranked lifetime error") when the inner service's error holds a trait object
//! (`BoxError`). The cache boxes its miss path into a `'static` future, so its `Service`
//! impl asks `S: 'static`; inside an async block rustc erases the trait object's `'static`
//! and cannot prove that bound again for the `Oneshot` it holds. The two forms here avoid it.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use palisade_cache::CacheLayer;
use palisade_core::BoxError;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt, service_fn};

type Inner = BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, BoxError>;

fn origin(calls: Arc<AtomicUsize>) -> Inner {
    BoxCloneSyncService::new(service_fn(move |_req: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async {
            let mut res = Response::new(Full::new(Bytes::from_static(b"hello")));
            res.headers_mut()
                .insert("cache-control", "max-age=60".parse().unwrap());
            Ok::<_, BoxError>(res)
        }
    }))
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://example.com/a")
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn spawned_calls_compile_and_are_served_from_the_cache() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CacheLayer::memory(1 << 20).layer(origin(calls.clone()));
    // A spawned `oneshot`.
    let res = tokio::spawn(svc.clone().oneshot(get()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");
    // An async block: ready, then call.
    let mut svc2 = svc.clone();
    let body = tokio::spawn(async move {
        let res = svc2.ready().await?.call(get()).await?;
        Ok::<_, BoxError>(res.into_body().collect().await?.to_bytes())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(body, "hello");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the second was a hit");
}
