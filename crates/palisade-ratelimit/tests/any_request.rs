//! The rate limit around a service of any request type: keys from a closure or a
//! `KeyExtractor` of the user's, reject and wait modes, the response untouched.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_core::RateLimited;
use palisade_core::key::{KeyError, KeyExtractor, key_fn};
use palisade_ratelimit::{Quota, RateLimitEvent, RateLimitLayer, RateLimitMode};
use tokio::time::{Instant, advance};
use tower::{Layer, ServiceExt, service_fn};

/// A broker message: no headers, no extensions.
#[derive(Debug, Clone)]
struct Publish {
    tenant: u32,
    subject: &'static str,
}

/// A key extractor of the user's own, for the user's own request type.
#[derive(Debug, Clone, Copy)]
struct Tenant;

impl KeyExtractor<Publish> for Tenant {
    type Key = u32;
    fn extract(&self, req: &Publish) -> Result<u32, KeyError> {
        if req.tenant == 0 {
            return Err(KeyError::Missing { what: "tenant" });
        }
        Ok(req.tenant)
    }
}

/// A response that is not HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Receipt(u32);

fn producer(
    calls: Arc<AtomicU32>,
) -> impl tower::Service<Publish, Response = Receipt, Error = std::io::Error, Future = impl Send> + Clone
{
    service_fn(move |req: Publish| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let _ = req.subject;
            Ok::<_, std::io::Error>(Receipt(n))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn rejects_per_key_from_a_user_extractor() {
    let calls = Arc::new(AtomicU32::new(0));
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = events.clone();
    let layer = RateLimitLayer::any_request(Tenant, Quota::per_minute("publish", 2).unwrap())
        .on_event(move |e| log.lock().unwrap().push(e.clone()));
    let svc = layer.layer(producer(calls.clone()));
    let msg = |tenant| Publish {
        tenant,
        subject: "orders",
    };

    assert_eq!(svc.clone().oneshot(msg(1)).await.unwrap(), Receipt(0));
    assert_eq!(svc.clone().oneshot(msg(1)).await.unwrap(), Receipt(1));
    let err = svc.clone().oneshot(msg(1)).await.unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().expect("RateLimited");
    assert_eq!(limited.retry_after, Duration::from_secs(30));
    assert_eq!(limited.violated_policies, vec!["publish".to_owned()]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Tenant 2 has its own bucket; a missing key is a KeyError, and the producer is not called.
    assert_eq!(svc.clone().oneshot(msg(2)).await.unwrap(), Receipt(2));
    let err = svc.clone().oneshot(msg(0)).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<KeyError>(),
        Some(&KeyError::Missing { what: "tenant" })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // 30 s later tenant 1 has a unit again.
    advance(Duration::from_secs(30)).await;
    assert_eq!(svc.oneshot(msg(1)).await.unwrap(), Receipt(3));

    let events = events.lock().unwrap();
    let limited = events
        .iter()
        .filter(|e| matches!(e, RateLimitEvent::Limited { .. }))
        .count();
    let allowed = events
        .iter()
        .filter(|e| matches!(e, RateLimitEvent::Allowed { .. }))
        .count();
    assert_eq!((allowed, limited), (4, 1));
}

#[tokio::test(start_paused = true)]
async fn waits_with_a_closure_key_bounded_by_max_wait() {
    let calls = Arc::new(AtomicU32::new(0));
    let by_subject = key_fn(|req: &Publish| Ok::<_, KeyError>(req.subject));
    let layer = RateLimitLayer::any_request(by_subject, Quota::per_second("publish", 1).unwrap())
        .mode(RateLimitMode::Wait)
        .max_wait(Duration::from_millis(1500));
    let svc = layer.layer(producer(calls.clone()));
    let msg = Publish {
        tenant: 1,
        subject: "orders",
    };

    let started = Instant::now();
    svc.clone().oneshot(msg.clone()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    // The second waits for its slot, a full second.
    svc.clone().oneshot(msg.clone()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    // Two more reserved at once: the first waits 1 s, the next would wait 2 s > max_wait.
    let a = svc.clone().oneshot(msg.clone());
    let b = svc.clone().oneshot(msg.clone());
    let (a, b) = tokio::join!(a, b);
    a.unwrap();
    assert!(b.unwrap_err().is::<RateLimited>());
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
