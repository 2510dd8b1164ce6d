//! The proof, as far as it goes: Palisade's own layers under injected latency and
//! errors keep their invariants. Timeout: no request outlives the total timeout by more than
//! 10 ms. Bulkhead: the upstream never sees more than the limit in flight.

use std::time::Duration;

use palisade_bulkhead::BulkheadLayer;
use palisade_chaos::{FaultLayer, Latency};
use palisade_core::{BulkheadFull, Elapsed};
use palisade_test::scripted::{ScriptedService, delay, ms};
use palisade_timeout::TimeoutLayer;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test(start_paused = true)]
async fn timeout_and_bulkhead_hold_under_injected_latency_and_errors() {
    const LIMIT: usize = 4;
    let total = ms(500);
    let upstream = ScriptedService::otherwise(delay(ms(50)).then_ok());
    let faults = FaultLayer::new()
        .seed(9)
        .delay(Latency::uniform(ms(0), Duration::from_secs(2)), 0.5)
        .error(0.1);
    let handle = faults.handle();
    let stack = ServiceBuilder::new()
        .layer(TimeoutLayer::new(total))
        .layer(
            BulkheadLayer::builder()
                .max_concurrent(LIMIT)
                .release_on_response()
                .build()
                .unwrap(),
        )
        .layer(faults)
        .service(upstream.clone());

    let mut tasks = Vec::new();
    for _ in 0..200 {
        let svc = stack.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let res = svc.oneshot(http::Request::new(())).await;
            (started.elapsed(), res)
        }));
        tokio::time::sleep(ms(10)).await;
    }
    let (mut ok, mut elapsed, mut full, mut failed) = (0, 0, 0, 0);
    for t in tasks {
        let (took, res) = t.await.unwrap();
        assert!(took <= total + ms(10), "a request took {took:?}");
        match res {
            Ok(res) => {
                assert_eq!(res.status(), 200);
                ok += 1;
            }
            Err(e) if e.is::<Elapsed>() => elapsed += 1,
            Err(e) if e.is::<BulkheadFull>() => full += 1,
            Err(_) => failed += 1,
        }
    }
    assert!(
        upstream.max_in_flight() <= LIMIT,
        "{}",
        upstream.max_in_flight()
    );
    // The run exercised every path: the faults fired, the timeout fired, the bulkhead shed.
    let stats = handle.stats();
    assert!(stats.delayed > 0 && stats.failed > 0, "{stats:?}");
    assert!(
        ok > 0 && elapsed > 0 && full > 0 && failed > 0,
        "{ok} {elapsed} {full} {failed}"
    );
    assert_eq!(ok + elapsed + full + failed, 200);
}
