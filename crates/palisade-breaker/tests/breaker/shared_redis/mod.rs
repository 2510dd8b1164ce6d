//! Fleet mode against the machine's Redis (`REDIS_URL`, default 127.0.0.1:6379): three
//! instances in one process, each its own layer and connection, sharing one breaker. Real
//! time (Redis I/O cannot run under paused time) with short flush intervals, every wait
//! bounded; a unique key prefix per test, its keys deleted after. Outside CI a missing Redis
//! skips the tests with a printed reason.
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use palisade_breaker::{BreakerEvent, CircuitBreakerLayer, SlidingWindow, State, Totals};
use palisade_core::{BoxError, CircuitOpen};
use palisade_test::EventRecorder;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

use support::{
    PrivateRedis, all_connected, cleanup, config, connect, free_port, layer, redis_url,
    stallable_proxy, unique_prefix, until, upstream,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_on_one_instance_open_the_breaker_on_all_within_two_flushes() {
    let url = redis_url();
    let Some(mut admin) = connect(&url).await else {
        return;
    };
    let prefix = unique_prefix("open");
    let flush = Duration::from_millis(100);
    let config = config(&prefix, flush);
    let events = EventRecorder::new();
    let (failing, calls) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut layers = Vec::new();
    for _ in 0..3 {
        layers.push(layer(&config, connect(&url).await.unwrap(), &events));
    }
    let handles: Vec<_> = layers.iter().map(CircuitBreakerLayer::handle).collect();
    all_connected(&handles).await;

    // Five failures on instance 0 alone (minimum_calls 5, 100 % failed).
    let svc = layers[0].layer(upstream(failing.clone(), calls.clone()));
    for _ in 0..5 {
        let err = svc.clone().oneshot(()).await.unwrap_err();
        assert!(!err.is::<CircuitOpen>(), "{err}");
    }
    let took = until("all three open", 4 * flush, || {
        handles.iter().all(|h| h.state() == State::Open)
    })
    .await;
    eprintln!("fleet open on all 3 instances {took:?} after the 5th failure (flush {flush:?})");
    // One flush to send the counts, one for the others to read the state; the rest is the
    // round trips and scheduling of a loaded two-core machine.
    assert!(took <= 2 * flush + Duration::from_millis(60), "{took:?}");

    // Instances 1 and 2 saw no failure, and now reject without calling the upstream.
    failing.store(false, Ordering::SeqCst);
    for l in &layers[1..] {
        let svc = l.layer(upstream(failing.clone(), calls.clone()));
        let err = svc.oneshot(()).await.unwrap_err();
        let open = err.downcast_ref::<CircuitOpen>().expect("CircuitOpen");
        let left = open.retry_after.unwrap();
        assert!(
            left > Duration::from_secs(55) && left <= Duration::from_secs(60),
            "{left:?}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // Each instance saw CLOSED → OPEN once.
    let opened = events
        .events::<BreakerEvent>()
        .iter()
        .filter(|e| {
            matches!(
                e,
                BreakerEvent::StateChanged {
                    from: State::Closed,
                    to: State::Open,
                    ..
                }
            )
        })
        .count();
    assert_eq!(opened, 3);

    // The shared keys: one hash tag, TTLs set.
    let state_key = format!("{prefix}{{payments}}:state");
    let state: i64 = redis::cmd("HGET")
        .arg(&state_key)
        .arg("state")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(state, 1);
    for key in [state_key, format!("{prefix}{{payments}}:window")] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut admin)
            .await
            .unwrap();
        assert!(ttl > 0, "{key}: {ttl}");
    }
    drop((layers, handles));
    cleanup(&mut admin, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_configured_number_of_probes_run_fleet_wide() {
    let url = redis_url();
    let Some(mut admin) = connect(&url).await else {
        return;
    };
    let prefix = unique_prefix("probes");
    let flush = Duration::from_millis(20);
    let mut config = config(&prefix, flush);
    config.wait_in_open = Duration::from_millis(300);
    config.max_wait_in_open = Duration::from_millis(300);
    let events = EventRecorder::new();
    let mut layers = Vec::new();
    for _ in 0..3 {
        layers.push(layer(&config, connect(&url).await.unwrap(), &events));
    }
    let handles: Vec<_> = layers.iter().map(CircuitBreakerLayer::handle).collect();
    all_connected(&handles).await;

    // The upstream fails until `release` is set; after that, calls hang until it is true,
    // then succeed. `probes` counts the calls made once failing stopped.
    let failing = Arc::new(AtomicBool::new(true));
    let probes = Arc::new(AtomicUsize::new(0));
    let (release, released) = watch::channel(false);
    let svc = {
        let (failing, probes) = (failing.clone(), probes.clone());
        move || {
            let (failing, probes, released) = (failing.clone(), probes.clone(), released.clone());
            service_fn(move |()| {
                let fail = failing.load(Ordering::SeqCst);
                if !fail {
                    probes.fetch_add(1, Ordering::SeqCst);
                }
                let mut released = released.clone();
                async move {
                    if fail {
                        return Err::<(), BoxError>("upstream down".into());
                    }
                    released.wait_for(|r| *r).await.map_err(|e| e.to_string())?;
                    Ok(())
                }
            })
        }
    };
    let services: Vec<_> = layers.iter().map(|l| l.layer(svc())).collect();
    for _ in 0..5 {
        assert!(services[1].clone().oneshot(()).await.is_err());
    }
    until("all three open", 10 * flush, || {
        handles.iter().all(|h| h.state() == State::Open)
    })
    .await;
    failing.store(false, Ordering::SeqCst);

    // Every instance calls every 2 ms through the 300 ms wait and well past it.
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for s in &services {
        let (s, stop) = (s.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            let mut in_flight = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                in_flight.push(tokio::spawn(s.clone().oneshot(())));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            in_flight
        }));
    }
    until("the fleet half-opens", Duration::from_secs(3), || {
        handles.iter().any(|h| h.state() == State::HalfOpen)
    })
    .await;
    // Long enough for every instance to ask for probe leases many times over.
    tokio::time::sleep(25 * flush).await;
    assert_eq!(
        probes.load(Ordering::SeqCst),
        3,
        "probes admitted across the fleet"
    );
    assert!(handles.iter().all(|h| h.state() == State::HalfOpen));

    // The three probes succeed: the fleet closes, on every instance.
    release.send(true).unwrap();
    until("all three closed", 10 * flush, || {
        handles.iter().all(|h| h.state() == State::Closed)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for c in callers {
        for call in c.await.unwrap() {
            // Rejected while OPEN/HALF_OPEN, or let through.
            match call.await.unwrap() {
                Ok(()) => {}
                Err(e) => assert!(e.is::<CircuitOpen>(), "{e}"),
            }
        }
    }
    assert!(services[2].clone().oneshot(()).await.is_ok());
    drop((services, layers, handles));
    cleanup(&mut admin, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_is_the_fleets_sum_and_slides() {
    let url = redis_url();
    let Some(mut admin) = connect(&url).await else {
        return;
    };
    let prefix = unique_prefix("window");
    let flush = Duration::from_millis(20);
    let mut config = config(&prefix, flush);
    config.window = SlidingWindow::Time(2);
    let events = EventRecorder::new();
    let mut layers = Vec::new();
    for _ in 0..3 {
        layers.push(layer(&config, connect(&url).await.unwrap(), &events));
    }
    let handles: Vec<_> = layers.iter().map(CircuitBreakerLayer::handle).collect();
    all_connected(&handles).await;

    // One success on each instance and a failure on the first: 4 calls, 1 failed, on all.
    let (not_failing, calls) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    for l in &layers {
        l.layer(upstream(not_failing.clone(), calls.clone()))
            .oneshot(())
            .await
            .unwrap();
    }
    let failing = Arc::new(AtomicBool::new(true));
    let svc = layers[0].layer(upstream(failing, calls.clone()));
    assert!(svc.oneshot(()).await.is_err());
    let four = Totals {
        calls: 4,
        failed: 1,
        slow: 0,
    };
    until(
        "every instance reads the fleet's window",
        20 * flush,
        || handles.iter().all(|h| h.totals() == four),
    )
    .await;
    assert!(handles.iter().all(|h| h.state() == State::Closed));
    // The two-second window slides past them.
    until("the window empties", Duration::from_secs(4), || {
        handles.iter().all(|h| h.totals() == Totals::default())
    })
    .await;
    drop((layers, handles));
    cleanup(&mut admin, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_leases_of_an_instance_that_stops_flushing_are_freed() {
    let url = redis_url();
    let Some(mut admin) = connect(&url).await else {
        return;
    };
    let prefix = unique_prefix("lease");
    let flush = Duration::from_millis(20);
    let mut config = config(&prefix, flush);
    config.wait_in_open = Duration::from_millis(100);
    config.max_wait_in_open = Duration::from_millis(100);
    config.permitted_in_half_open = 2;
    let events = EventRecorder::new();
    // Instance a reaches Redis through a proxy the test stalls.
    let stalled = Arc::new(AtomicBool::new(false));
    let proxy = stallable_proxy(stalled.clone()).await;
    let a = layer(&config, connect(&proxy).await.unwrap(), &events);
    let b = layer(&config, connect(&url).await.unwrap(), &events);
    let handles = [a.handle(), b.handle()];
    all_connected(&handles).await;

    // a's upstream fails, then hangs: a's probes never finish.
    let failing = Arc::new(AtomicBool::new(true));
    let hung = Arc::new(AtomicUsize::new(0));
    let sa = {
        let (failing, hung) = (failing.clone(), hung.clone());
        a.layer(service_fn(move |()| {
            let fail = failing.load(Ordering::SeqCst);
            let hung = hung.clone();
            async move {
                if fail {
                    return Err::<(), BoxError>("upstream down".into());
                }
                hung.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
                Ok(())
            }
        }))
    };
    for _ in 0..5 {
        assert!(sa.clone().oneshot(()).await.is_err());
    }
    until("both open", 20 * flush, || {
        handles.iter().all(|h| h.state() == State::Open)
    })
    .await;
    failing.store(false, Ordering::SeqCst);
    // a alone calls until it holds both leases, with both probes hanging.
    let mut hanging = Vec::new();
    let start = Instant::now();
    while hung.load(Ordering::SeqCst) < 2 {
        assert!(start.elapsed() < Duration::from_secs(3), "a never probed");
        hanging.push(tokio::spawn(sa.clone().oneshot(())));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // b's calls are rejected: the fleet's two probes are a's.
    let (calls, never_failing) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let sb = b.layer(upstream(never_failing, calls.clone()));
    for _ in 0..10 {
        assert!(
            sb.clone()
                .oneshot(())
                .await
                .unwrap_err()
                .is::<CircuitOpen>()
        );
        tokio::time::sleep(flush).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // a stops reaching Redis: after five missed flushes (at least 500 ms) its leases are
    // free, b probes, its probes succeed and the fleet closes.
    stalled.store(true, Ordering::SeqCst);
    let t = Instant::now();
    let took = until("b closes", Duration::from_secs(3), || {
        drop(tokio::spawn(sb.clone().oneshot(())));
        handles[1].state() == State::Closed
    })
    .await;
    eprintln!("b closed {took:?} after a stopped flushing");
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(hung.load(Ordering::SeqCst), 2, "a's probes never finished");
    for h in hanging {
        h.abort();
    }
    stalled.store(false, Ordering::SeqCst);
    drop((sa, sb, a, b, handles));
    cleanup(&mut admin, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_means_local_mode_without_blocking_and_rejoins() {
    let port = free_port();
    let Some(server) = PrivateRedis::start(port).await else {
        return;
    };
    let flush = Duration::from_millis(20);
    let config = config("palisade-test:cb:down:", flush);
    let events = EventRecorder::new();
    let (a, b) = (
        layer(&config, connect(&server.url()).await.unwrap(), &events),
        layer(&config, connect(&server.url()).await.unwrap(), &events),
    );
    let handles = [a.handle(), b.handle()];
    all_connected(&handles).await;
    let (failing, calls) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (sa, sb) = (
        a.layer(upstream(failing.clone(), calls.clone())),
        b.layer(upstream(failing.clone(), calls.clone())),
    );

    drop(server);
    until("both degraded", Duration::from_secs(3), || {
        handles.iter().all(|h| h.fleet_connected() == Some(false))
    })
    .await;
    let degraded = events
        .events::<BreakerEvent>()
        .iter()
        .filter(|e| matches!(e, BreakerEvent::FleetDegraded { .. }))
        .count();
    assert_eq!(degraded, 2, "one event per instance and outage");

    // No call waits for Redis: 200 calls with Redis down.
    let mut slowest = Duration::ZERO;
    for _ in 0..100 {
        for s in [&sa, &sb] {
            let t = Instant::now();
            s.clone().oneshot(()).await.unwrap();
            slowest = slowest.max(t.elapsed());
        }
    }
    eprintln!("slowest call with Redis down: {slowest:?}");
    // A flush gives up after 200 ms and a Redis command after 500 ms: far below either.
    assert!(slowest < Duration::from_millis(100), "{slowest:?}");

    // Local mode: instance a's own window opens it (5 of 105 calls failed is below 50 %, so
    // fail 100 more); b, which saw none of them, stays closed.
    failing.store(true, Ordering::SeqCst);
    for _ in 0..110 {
        match sa.clone().oneshot(()).await {
            Err(e) if e.is::<CircuitOpen>() => break,
            _ => {}
        }
    }
    assert_eq!(handles[0].state(), State::Open);
    assert_eq!(handles[1].state(), State::Closed);
    failing.store(false, Ordering::SeqCst);

    // Outcomes counted for a flush that fails are dropped (they are in the local window):
    // wait for a flush attempt that starts after them and fails (each gives up within 200 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Redis comes back (empty): both rejoin and follow the fleet's CLOSED.
    let _server = PrivateRedis::start(port).await.unwrap();
    until("both rejoin", Duration::from_secs(5), || {
        handles.iter().all(|h| h.fleet_connected() == Some(true))
    })
    .await;
    assert_eq!(
        handles[0].state(),
        State::Closed,
        "{:?}",
        events.events::<BreakerEvent>()
    );
    let rejoined = events
        .events::<BreakerEvent>()
        .iter()
        .filter(|e| matches!(e, BreakerEvent::FleetRejoined { .. }))
        .count();
    assert_eq!(rejoined, 2);
    assert!(sa.clone().oneshot(()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flush_task_ends_with_the_breaker() {
    let url = redis_url();
    let Some(mut admin) = connect(&url).await else {
        return;
    };
    let prefix = unique_prefix("drop");
    let flush = Duration::from_millis(10);
    let events = EventRecorder::new();
    let l = layer(&config(&prefix, flush), admin.clone(), &events);
    all_connected(&[l.handle()]).await;
    drop(l);
    // With the breaker gone, its keys expire and nothing writes them again.
    tokio::time::sleep(5 * flush).await;
    cleanup(&mut admin, &prefix).await;
    tokio::time::sleep(10 * flush).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[test]
fn fleet_config_errors_name_their_field() {
    let mut c = config("p:", Duration::from_millis(5));
    assert_eq!(
        CircuitBreakerLayer::builder()
            .config(c.clone())
            .build()
            .unwrap_err()
            .field(),
        "fleet.flush_interval"
    );
    c.fleet.as_mut().unwrap().flush_interval = Duration::from_millis(100);
    // A fleet section without a connection.
    assert_eq!(c.build().unwrap_err().field(), "fleet");
    c.window = SlidingWindow::Count(100);
    assert_eq!(c.build().unwrap_err().field(), "window");
}
