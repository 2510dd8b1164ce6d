//! The timeout layer around a service of any request type (no headers, no extensions).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_core::Elapsed;
use palisade_timeout::{DeadlineSource, Timeout, TimeoutEvent, TimeoutLayer};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::{ServiceExt, service_fn};
use tower_test::mock;

/// A request type with no headers and no extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Publish {
    subject: &'static str,
}

#[tokio::test(start_paused = true)]
async fn fires_exactly_at_the_configured_timeout() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = events.clone();
    let layer = TimeoutLayer::any_request(Duration::from_secs(1))
        .name("publish")
        .on_event(move |e| log.lock().unwrap().push(e.clone()));
    let (mut svc, mut handle) = mock::spawn_layer::<Publish, &'static str, _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(Publish { subject: "a" }));
    let (got, _send) = handle.next_request().await.unwrap();
    assert_eq!(got, Publish { subject: "a" });

    advance(Duration::from_millis(999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = fut.await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<Elapsed>().expect("Elapsed").timeout,
        Duration::from_secs(1)
    );
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0],
        TimeoutEvent::Elapsed {
            instance: "publish".into(),
            timeout: Duration::from_secs(1),
            source: DeadlineSource::Configured,
        }
    );
}

#[tokio::test(start_paused = true)]
async fn answers_and_errors_pass_through() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<u64, u64, _>(TimeoutLayer::any_request(Duration::from_secs(1)));
    assert_ready_ok!(svc.poll_ready());
    let fut = svc.call(41);
    let (n, send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(999)).await;
    send.send_response(n + 1);
    assert_eq!(fut.await.unwrap(), 42);

    assert_ready_ok!(svc.poll_ready());
    let fut = svc.call(1);
    let (_n, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::other("broker down"));
    let err = fut.await.unwrap_err();
    assert_eq!(err.to_string(), "broker down");
    assert!(!err.is::<Elapsed>());
}

#[tokio::test(start_paused = true)]
async fn zero_timeout_fails_without_calling() {
    let calls = Arc::new(Mutex::new(0_u32));
    let c = calls.clone();
    let inner = service_fn(move |_req: Publish| {
        *c.lock().unwrap() += 1;
        async { Ok::<_, std::io::Error>(()) }
    });
    let svc = Timeout::any_request(inner, Duration::ZERO);
    let err = svc.oneshot(Publish { subject: "a" }).await.unwrap_err();
    assert!(err.is::<Elapsed>());
    assert_eq!(*calls.lock().unwrap(), 0);
}
