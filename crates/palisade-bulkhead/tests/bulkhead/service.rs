//! Behaviour of the bulkhead through its Tower service.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use palisade_bulkhead::{BulkheadLayer, BulkheadMode, HeaderPriority, priority_fn};
use palisade_core::{BoxError, BulkheadFull, HandleRejectionsLayer};
use palisade_test::ScriptedService;
use palisade_test::scripted::{delay, ms};
use tokio::sync::Notify;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_more_than_n_inside_under_1000_callers() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(8)
        .max_queue(1000)
        .max_queue_wait(Duration::from_secs(60))
        .release_on_response()
        .build()
        .unwrap();
    let handle = layer.handle();
    let inner = ScriptedService::otherwise(delay(ms(1)).then_ok());
    let svc = layer.layer(inner.clone());
    let tasks: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(svc.clone().oneshot(Request::new(()))))
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(inner.calls(), 1000);
    assert_eq!(inner.max_in_flight(), 8);
    assert_eq!(inner.in_flight(), 0);
    assert_eq!((handle.in_flight(), handle.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn shed_mode_rejects_at_once_with_503_through_handle_rejections() {
    let release = Arc::new(Notify::new());
    let r = release.clone();
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(BulkheadLayer::builder().max_concurrent(1).build().unwrap())
        .service(service_fn(move |_: Request<()>| {
            let r = r.clone();
            async move {
                r.notified().await;
                Ok::<_, BoxError>(Response::new(http_body_util::Full::new(
                    Bytes::from_static(b"ok"),
                )))
            }
        }));
    let first = tokio::spawn(svc.clone().oneshot(Request::new(())));
    tokio::task::yield_now().await;
    let started = tokio::time::Instant::now();
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO, "rejected at once");
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let grpc = Request::builder()
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    assert_eq!(
        svc.oneshot(grpc).await.unwrap().headers()["grpc-status"],
        "8"
    );
    release.notify_waiters();
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn queue_wait_times_out_exactly() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_queue(1)
        .max_queue_wait(Duration::from_millis(250))
        .release_on_response()
        .build()
        .unwrap();
    let h = layer.handle();
    let svc = layer.layer(service_fn(|(): ()| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<_, BoxError>(())
    }));
    let _holder = tokio::spawn(svc.clone().oneshot(()));
    tokio::task::yield_now().await;
    let started = tokio::time::Instant::now();
    let queued = tokio::spawn(svc.clone().oneshot(()));
    tokio::task::yield_now().await;
    assert_eq!(h.queued(), 1);
    // The queue is full: a third is refused at once.
    assert!(
        svc.clone()
            .oneshot(())
            .await
            .unwrap_err()
            .is::<BulkheadFull>()
    );
    let err = queued.await.unwrap().unwrap_err();
    assert!(err.is::<BulkheadFull>());
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    assert_eq!((h.in_flight(), h.queued()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn highest_lane_first_fifo_within_a_lane_and_reserves_hold() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let layer = BulkheadLayer::builder()
        .max_concurrent(2)
        .max_queue(10)
        .max_queue_wait(Duration::from_secs(60))
        .priority(priority_fn(|r: &(usize, &'static str)| r.0), vec![1, 0])
        .release_on_response()
        .build()
        .unwrap();
    let h = layer.handle();
    let svc = layer.layer(service_fn(move |r: (usize, &'static str)| {
        let (o, g) = (o.clone(), g.clone());
        async move {
            o.lock().unwrap().push(r.1);
            if r.1 == "hold" {
                g.notified().await;
            }
            Ok::<_, BoxError>(())
        }
    }));
    // A low-priority holder takes one slot; the last slot is reserved for lane 1.
    let holder = tokio::spawn(svc.clone().oneshot((0, "hold")));
    tokio::task::yield_now().await;
    let low1 = tokio::spawn(svc.clone().oneshot((0, "low1")));
    tokio::task::yield_now().await;
    assert_eq!(h.queued(), 1, "low priority cannot take the reserved slot");
    let low2 = tokio::spawn(svc.clone().oneshot((0, "low2")));
    let high1 = tokio::spawn(svc.clone().oneshot((1, "high1")));
    let high2 = tokio::spawn(svc.clone().oneshot((1, "high2")));
    for t in [high1, high2] {
        t.await.unwrap().unwrap();
    }
    gate.notify_waiters();
    for t in [holder, low1, low2] {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        *order.lock().unwrap(),
        ["hold", "high1", "high2", "low1", "low2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_permit_leak_with_cancellations_and_panics() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(4)
        .max_queue(64)
        .max_queue_wait(Duration::from_millis(50))
        .release_on_response()
        .build()
        .unwrap();
    let h = layer.handle();
    let svc = layer.layer(service_fn(|i: u64| async move {
        tokio::time::sleep(Duration::from_micros(i % 300)).await;
        assert!(!i.is_multiple_of(97), "handler panics now and then");
        Ok::<_, std::io::Error>(())
    }));
    let mut tasks = Vec::new();
    for i in 0..10_000u64 {
        let fut = svc.clone().oneshot(i);
        tasks.push(tokio::spawn(async move {
            if i.is_multiple_of(3) {
                // Cancel some while running or queued.
                let _ = tokio::time::timeout(Duration::from_micros(i % 200), fut).await;
            } else {
                let _ = fut.await;
            }
        }));
    }
    let mut panicked = 0;
    for t in tasks {
        if t.await.is_err() {
            panicked += 1;
        }
    }
    assert!(panicked > 0, "some handlers panicked");
    assert_eq!((h.in_flight(), h.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn streaming_body_keeps_the_slot_until_its_last_frame() {
    let layer = BulkheadLayer::builder().max_concurrent(1).build().unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(service_fn(|_: Request<()>| async {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, BoxError>>(4);
        tokio::spawn(async move {
            for chunk in ["a", "b", "c"] {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = tx
                    .send(Ok(http_body::Frame::data(Bytes::from(chunk))))
                    .await;
            }
        });
        let mut rx = rx;
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok::<_, BoxError>(Response::new(StreamBody::new(stream)))
    }));
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(h.in_flight(), 1, "response arrived; body still streaming");
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    assert!(err.is::<BulkheadFull>());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "abc");
    assert_eq!(h.in_flight(), 0, "released at the last frame");
}

#[tokio::test(start_paused = true)]
async fn backpressure_waits_in_poll_ready() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_queue(4)
        .mode(BulkheadMode::Backpressure)
        .release_on_response()
        .build()
        .unwrap();
    let h = layer.handle();
    let mut a = layer.layer(service_fn(|(): ()| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, BoxError>(())
    }));
    let mut b = a.clone();
    a.ready().await.unwrap();
    let fut_a = a.call(());
    let mut ready_b = tokio_test::task::spawn(b.ready());
    tokio_test::assert_pending!(ready_b.poll());
    assert_eq!(h.queued(), 1);
    fut_a.await.unwrap();
    assert!(ready_b.is_woken());
    tokio_test::assert_ready_ok!(ready_b.poll());
    drop(ready_b);
    b.call(()).await.unwrap();
    assert_eq!((h.in_flight(), h.queued()), (0, 0));
    let _ = HeaderPriority::new(http::HeaderName::from_static("x-priority"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_reserves_and_cancellation_under_contention_leak_nothing() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(4)
        .max_queue(64)
        .max_queue_wait(Duration::from_millis(20))
        .priority(priority_fn(|i: &u64| (*i % 3) as usize), vec![2, 1, 0])
        .release_on_response()
        .build()
        .unwrap();
    let h = layer.handle();
    let inside = Arc::new(AtomicUsize::new(0));
    let high = Arc::new(AtomicUsize::new(0));
    let (i2, h2) = (inside.clone(), high.clone());
    let svc = layer.layer(service_fn(move |i: u64| {
        let (inside, high) = (i2.clone(), h2.clone());
        async move {
            // Counted out on drop too: a cancelled call leaves the handler mid-sleep.
            struct Out(Arc<AtomicUsize>);
            impl Drop for Out {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            let _out = Out(inside);
            high.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_micros(i % 200)).await;
            Ok::<_, std::io::Error>(())
        }
    }));
    let tasks: Vec<_> = (0..5_000u64)
        .map(|i| {
            let fut = svc.clone().oneshot(i);
            tokio::spawn(async move {
                if i % 5 == 0 {
                    let _ = tokio::time::timeout(Duration::from_micros(i % 150), fut).await;
                } else {
                    let _ = fut.await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!((1..=4).contains(&high.load(Ordering::SeqCst)));
    assert_eq!(inside.load(Ordering::SeqCst), 0);
    assert_eq!((h.in_flight(), h.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_clone_does_not_copy_the_reserved_slot() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_queue(1)
        .mode(BulkheadMode::Backpressure)
        .release_on_response()
        .build()
        .unwrap();
    let h = layer.handle();
    let mut a = layer.layer(service_fn(|(): ()| async { Ok::<_, BoxError>(()) }));
    a.ready().await.unwrap(); // a holds the only slot, reserved
    assert_eq!(h.in_flight(), 1);
    let mut b = a.clone();
    let mut ready_b = tokio_test::task::spawn(b.ready());
    tokio_test::assert_pending!(ready_b.poll());
    assert_eq!((h.in_flight(), h.queued()), (1, 1));
    drop(a); // dropping the ready service gives its reservation to the waiter
    assert!(ready_b.is_woken());
    tokio_test::assert_ready_ok!(ready_b.poll());
    drop(ready_b);
    assert_eq!((h.in_flight(), h.queued()), (1, 0));
    b.call(()).await.unwrap();
    assert_eq!((h.in_flight(), h.queued()), (0, 0));
}
