//! Overhead of the metrics layer per request: bare service vs the layer with no recorder
//! (the `metrics` no-op) vs the layer with the Prometheus recorder.
//!
//! Also: one bulkhead-like event through `EventMetrics` (events total and the typed
//! histogram, labelled by instance), allocations per event and ns per event.
//!
//! Run: `cargo bench -p palisade-metrics --features prometheus -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use palisade_core::event::{Event, InstanceName, Listeners};
use palisade_metrics::{EventMetrics, MetricsLayer, prometheus_builder};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn ok(_req: Request<()>) -> Ready<Result<Response<()>, Infallible>> {
    ready(Ok(Response::new(())))
}

/// One request through `svc`, polled to completion with a no-op waker (every future here
/// is ready at once).
fn once<S>(svc: &mut S)
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let fut = pin!(svc.call(Request::new(())));
    match fut.poll(&mut cx) {
        Poll::Ready(res) => {
            black_box(res.unwrap());
        }
        Poll::Pending => unreachable!("ready service"),
    }
}

fn allocs_per_op<S>(name: &str, svc: &mut S)
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    const N: usize = 10_000;
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        once(svc);
    }
    let change = region.change();
    println!(
        "{name}: allocs/op {:.3}",
        change.allocations as f64 / N as f64
    );
}

/// A bulkhead admission as core's vocabulary sees it (this crate knows no pattern type).
#[derive(Debug)]
struct Admitted {
    instance: InstanceName,
    in_flight: usize,
}

impl Event for Admitted {
    fn layer(&self) -> &'static str {
        "bulkhead"
    }
    fn name(&self) -> &'static str {
        "admitted"
    }
    fn instance(&self) -> &str {
        &self.instance
    }
    fn count(&self) -> Option<u64> {
        Some(self.in_flight as u64)
    }
}

fn emit(listeners: &Listeners<Admitted>) {
    listeners.emit_named(|instance| Admitted {
        instance,
        in_flight: black_box(3),
    });
}

fn bench_events(c: &mut Criterion, recorder: &palisade_metrics::PrometheusRecorder) {
    let _guard = metrics::set_default_local_recorder(recorder);
    // Two named instances, a name from config (Arc) and one from code (static).
    let db = Listeners::new()
        .named(String::from("db"))
        .on_any(EventMetrics::new().into_listener());
    let cache = Listeners::new()
        .named("cache")
        .on_any(EventMetrics::new().into_listener());
    emit(&db);
    emit(&cache);
    const N: usize = 10_000;
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        emit(&db);
        emit(&cache);
    }
    println!(
        "event_metrics (prometheus, 2 instances): allocs/event {:.3}",
        region.change().allocations as f64 / (2 * N) as f64
    );
    let mut group = c.benchmark_group("event_metrics");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bulkhead_admitted_config_name", |b| b.iter(|| emit(&db)));
    group.bench_function("bulkhead_admitted_static_name", |b| b.iter(|| emit(&cache)));
    group.finish();
}

fn bench(c: &mut Criterion) {
    let mut bare = service_fn(ok);

    // No recorder installed: handles are the facade's no-op.
    let mut noop = MetricsLayer::with_route("bench").layer(service_fn(ok));
    once(&mut noop);

    // Prometheus recorder: the route's handles are registered on the first call, under
    // the thread's default recorder, and cached.
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let mut prom = {
        let _guard = metrics::set_default_local_recorder(&recorder);
        let mut svc = MetricsLayer::with_route("bench").layer(service_fn(ok));
        once(&mut svc);
        svc
    };

    allocs_per_op("bare", &mut bare);
    allocs_per_op("metrics (no-op recorder)", &mut noop);
    allocs_per_op("metrics (prometheus)", &mut prom);

    let mut group = c.benchmark_group("metrics_layer");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare", |b| b.iter(|| once(&mut bare)));
    group.bench_function("metrics_noop_recorder", |b| b.iter(|| once(&mut noop)));
    group.bench_function("metrics_prometheus", |b| b.iter(|| once(&mut prom)));
    group.finish();

    // Where the time goes: the two clock reads, the classifier, the recorder's handles.
    let mut parts = c.benchmark_group("metrics_breakdown");
    parts.bench_function("instant_now", |b| {
        b.iter(|| black_box(tokio::time::Instant::now()));
    });
    let res = Response::new(());
    let classifier = palisade_core::DefaultClassifier::new();
    parts.bench_function("default_classifier", |b| {
        b.iter(|| black_box(classifier.classify_response(black_box(&res))));
    });
    {
        let _guard = metrics::set_default_local_recorder(&recorder);
        let gauge = metrics::gauge!("bench_gauge");
        let counter = metrics::counter!("bench_counter");
        let histogram = metrics::histogram!("bench_histogram");
        parts.bench_function("prometheus_gauge_inc_dec", |b| {
            b.iter(|| {
                gauge.increment(1.0);
                gauge.decrement(1.0);
            });
        });
        parts.bench_function("prometheus_counter_inc", |b| {
            b.iter(|| counter.increment(1));
        });
        parts.bench_function("prometheus_histogram_record", |b| {
            b.iter(|| histogram.record(black_box(0.001)));
        });
    }
    parts.finish();

    bench_events(c, &recorder);

    let text = handle.render();
    assert!(text.contains(r#"palisade_bulkhead_in_flight_at_admission_count{bulkhead="db"}"#));
    assert!(text.contains(r#"palisade_bulkhead_in_flight_at_admission_count{bulkhead="cache"}"#));
    assert!(text.contains(r#"palisade_requests_total{route="bench",outcome="success"}"#));
}

criterion_group!(benches, bench);
criterion_main!(benches);
