//! Hedging: a slow first attempt loses to the hedge and is dropped.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use palisade_core::BoxError;
use palisade_retry::{HedgeLayer, RetryEvent, TpsBudget};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

struct DropFlag(Arc<Mutex<Vec<u32>>>, u32);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(self.1);
    }
}

/// Attempt `n` waits `waits[n]` ms then answers `statuses[n]`; records drops.
fn upstream(
    waits: &'static [u64],
    statuses: &'static [u16],
) -> (
    Arc<AtomicU32>,
    Arc<Mutex<Vec<u32>>>,
    impl tower::Service<
        Request<()>,
        Response = Response<u32>,
        Error = BoxError,
        Future = impl Future<Output = Result<Response<u32>, BoxError>> + Send,
    > + Clone,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let (c, d) = (calls.clone(), dropped.clone());
    let svc = service_fn(move |_req: Request<()>| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        let guard = DropFlag(d.clone(), n);
        async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_millis(waits[n as usize])).await;
            Ok::<_, BoxError>(
                Response::builder()
                    .status(statuses[n as usize])
                    .body(n)
                    .unwrap(),
            )
        }
    });
    (calls, dropped, svc)
}

#[tokio::test(start_paused = true)]
async fn slow_first_attempt_loses_and_is_dropped() {
    let (calls, dropped, svc) = upstream(&[60_000, 10], &[200, 200]);
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = events.clone();
    let svc = HedgeLayer::new(Duration::from_millis(50))
        .on_event(move |ev: &RetryEvent| e.lock().unwrap().push(ev.clone()))
        .layer(svc);
    let start = Instant::now();
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(*res.body(), 1);
    assert_eq!(start.elapsed(), Duration::from_millis(60));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // the hedge finished first (dropped after answering), then the stuck loser was dropped
    assert_eq!(*dropped.lock().unwrap(), [1, 0]);
    assert_eq!(*events.lock().unwrap(), [RetryEvent::Hedged { n: 2 }]);
}

#[tokio::test(start_paused = true)]
async fn fast_first_attempt_sends_no_hedge() {
    let (calls, _dropped, svc) = upstream(&[10, 10], &[200, 200]);
    let svc = HedgeLayer::new(Duration::from_millis(50)).layer(svc);
    assert_eq!(*svc.oneshot(Request::new(())).await.unwrap().body(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn retryable_failure_hedges_at_once() {
    let (calls, _dropped, svc) = upstream(&[5, 5, 5], &[503, 503, 200]);
    let svc = HedgeLayer::new(Duration::from_secs(10))
        .max_hedged(2)
        .layer(svc);
    let start = Instant::now();
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!((res.status().as_u16(), *res.body()), (200, 2));
    assert_eq!(start.elapsed(), Duration::from_millis(15));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // All copies fail: the last failure is returned.
    let (calls, _dropped, svc) = upstream(&[5, 5], &[503, 502]);
    let svc = HedgeLayer::new(Duration::from_secs(10)).layer(svc);
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn budget_and_method_gate_hedges() {
    // A withdrawal costs 2, one request deposits 1: no hedge.
    let (calls, _d, svc) = upstream(&[1000, 10], &[200, 200]);
    let svc = HedgeLayer::new(Duration::from_millis(50))
        .budget(TpsBudget::new(Duration::from_secs(1), 0, 0.5))
        .layer(svc);
    let start = Instant::now();
    assert_eq!(*svc.oneshot(Request::new(())).await.unwrap().body(), 0);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // POST is not hedged.
    let (calls, _d, svc) = upstream(&[1000, 10], &[200, 200]);
    let svc = HedgeLayer::new(Duration::from_millis(50)).layer(svc);
    let req = Request::post("/pay").body(()).unwrap();
    assert_eq!(*svc.oneshot(req).await.unwrap().body(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
