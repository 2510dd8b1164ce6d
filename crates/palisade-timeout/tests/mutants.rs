//! Edge cases pinned for mutation testing (see the crate docs, "Mutation testing").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use palisade_core::{BoxError, Deadline, Elapsed};
use palisade_test::EventRecorder;
use palisade_timeout::{DeadlineSource, TimeoutEvent, TimeoutLayer};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

type Req = Request<&'static str>;

/// The "no deadline" horizon: about 30 years.
const THIRTY_YEARS: Duration = Duration::from_secs(86_400 * 365 * 30);

/// A timeout too large for an `Instant` is a deadline 30 years away, not an overflow
/// and not a shorter one.
#[tokio::test(start_paused = true)]
async fn an_unrepresentable_timeout_becomes_a_thirty_year_deadline() {
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let svc = TimeoutLayer::new(Duration::MAX).layer(service_fn(move |r: Req| {
        *s.lock().unwrap() = Deadline::from_request(&r);
        async { Ok::<_, BoxError>("ok") }
    }));
    let start = Instant::now();
    assert_eq!(svc.oneshot(Request::new("a")).await.unwrap(), "ok");
    assert_eq!(
        seen.lock().unwrap().expect("deadline inserted").instant(),
        start + THIRTY_YEARS
    );
}

/// A deadline header equal to the configured timeout does not replace it: the source
/// stays `Configured`.
#[tokio::test(start_paused = true)]
async fn a_header_equal_to_the_timeout_leaves_the_source_configured() {
    for (name, value) in [("grpc-timeout", "1S"), ("x-deadline-ms", "1000")] {
        let events = EventRecorder::new();
        let svc = TimeoutLayer::new(Duration::from_secs(1))
            .deadline_header(http::HeaderName::from_static("x-deadline-ms"))
            .on_event(events.on::<TimeoutEvent>())
            .layer(service_fn(|_r: Req| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, BoxError>("late")
            }));
        let r = Request::builder().header(name, value).body("a").unwrap();
        let start = Instant::now();
        assert!(svc.oneshot(r).await.unwrap_err().is::<Elapsed>(), "{name}");
        assert_eq!(start.elapsed(), Duration::from_secs(1), "{name}");
        assert_eq!(
            events.events::<TimeoutEvent>(),
            vec![TimeoutEvent::Elapsed {
                instance: "timeout".into(),
                timeout: Duration::from_secs(1),
                source: DeadlineSource::Configured
            }],
            "{name}"
        );
    }
}

/// An outer deadline equal to the layer's own leaves the source `Configured`.
#[tokio::test(start_paused = true)]
async fn an_outer_deadline_equal_to_the_timeout_leaves_the_source_configured() {
    let events = EventRecorder::new();
    let svc = TimeoutLayer::new(Duration::from_secs(1))
        .on_event(events.on::<TimeoutEvent>())
        .layer(service_fn(|_r: Req| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, BoxError>("late")
        }));
    let mut r = Request::new("a");
    r.extensions_mut()
        .insert(Deadline::after(Duration::from_secs(1)));
    assert!(svc.oneshot(r).await.unwrap_err().is::<Elapsed>());
    assert_eq!(
        events.events::<TimeoutEvent>(),
        vec![TimeoutEvent::Elapsed {
            instance: "timeout".into(),
            timeout: Duration::from_secs(1),
            source: DeadlineSource::Configured
        }]
    );
}

/// The milliseconds header accepts up to 12 digits.
#[tokio::test(start_paused = true)]
async fn a_twelve_digit_millisecond_header_is_accepted() {
    let events = EventRecorder::new();
    let svc = TimeoutLayer::new(Duration::from_secs(1))
        .deadline_header(http::HeaderName::from_static("x-deadline-ms"))
        .on_event(events.on::<TimeoutEvent>())
        .layer(service_fn(|_r: Req| async { Ok::<_, BoxError>("ok") }));
    for v in ["999999999999", "000000000500"] {
        let r = Request::builder()
            .header("x-deadline-ms", v)
            .body("a")
            .unwrap();
        assert_eq!(svc.clone().oneshot(r).await.unwrap(), "ok");
    }
    assert_eq!(events.events::<TimeoutEvent>(), vec![]);
}

/// `poll_ready` forwards the inner service's `Pending`.
#[tokio::test(start_paused = true)]
async fn poll_ready_forwards_pending() {
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Req, &'static str, _>(
        TimeoutLayer::new(Duration::from_secs(1)),
    );
    handle.allow(0);
    tokio_test::assert_pending!(svc.poll_ready());
    handle.allow(1);
    tokio_test::assert_ready_ok!(svc.poll_ready());
}

/// The service and its future have a short `Debug`.
#[tokio::test(start_paused = true)]
async fn debug_output() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let mut svc = TimeoutLayer::new(Duration::from_secs(1)).layer(service_fn(move |_r: Req| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>("ok") }
    }));
    let fut = svc.call(Request::new("a"));
    assert_eq!(format!("{fut:?}"), "ResponseFuture { .. }");
    assert_eq!(fut.await.unwrap(), "ok");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A longer deadline header never lengthens the configured timeout.
#[tokio::test(start_paused = true)]
async fn a_longer_header_never_lengthens_the_timeout() {
    for (name, value) in [("grpc-timeout", "5S"), ("x-deadline-ms", "5000")] {
        let events = EventRecorder::new();
        let svc = TimeoutLayer::new(Duration::from_secs(1))
            .deadline_header(http::HeaderName::from_static("x-deadline-ms"))
            .on_event(events.on::<TimeoutEvent>())
            .layer(service_fn(|_r: Req| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, BoxError>("late")
            }));
        let r = Request::builder().header(name, value).body("a").unwrap();
        let start = Instant::now();
        assert!(svc.oneshot(r).await.unwrap_err().is::<Elapsed>(), "{name}");
        assert_eq!(start.elapsed(), Duration::from_secs(1), "{name}");
        assert_eq!(
            events.events::<TimeoutEvent>(),
            vec![TimeoutEvent::Elapsed {
                instance: "timeout".into(),
                timeout: Duration::from_secs(1),
                source: DeadlineSource::Configured
            }],
            "{name}"
        );
    }
}
