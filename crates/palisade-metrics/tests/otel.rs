//! OpenTelemetry export: the RED layer and the event listener through `OtelRecorder`, read
//! back from the SDK's in-memory exporter.
#![cfg(feature = "otel")]

mod common;

use std::time::Duration;

use http::Request;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, GaugeDataPoint, Metric, MetricData, ResourceMetrics, ScopeMetrics,
    SumDataPoint,
};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};
use palisade_breaker::{BreakerEvent, State};
use palisade_core::event::AnyListener;
use palisade_metrics::{DURATION_BUCKETS, EventMetrics, MetricsLayer, OtelRecorder};
use tower::{Layer, ServiceExt};

fn metric<'a>(exported: &'a ResourceMetrics, name: &str) -> &'a Metric {
    exported
        .scope_metrics()
        .flat_map(ScopeMetrics::metrics)
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("{name} not exported"))
}

/// Sorted `(key, value)` pairs of a data point's attributes.
fn attrs<'a>(kvs: impl Iterator<Item = &'a KeyValue>) -> Vec<(String, String)> {
    let mut v: Vec<_> = kvs
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    v.sort();
    v
}

/// The `(attributes, value)` points of the `u64` sum `name`.
fn sum_points(exported: &ResourceMetrics, name: &str) -> Vec<(Vec<(String, String)>, u64)> {
    let m = metric(exported, name);
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data() else {
        panic!("{name}: {:?}", m.data());
    };
    assert!(sum.is_monotonic());
    sum.data_points()
        .map(|p| (attrs(p.attributes()), p.value()))
        .collect()
}

/// The `(attributes, value)` points of the `f64` gauge `name`.
fn gauge_points(exported: &ResourceMetrics, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
    let m = metric(exported, name);
    let AggregatedMetrics::F64(MetricData::Gauge(g)) = m.data() else {
        panic!("{name}: {:?}", m.data());
    };
    g.data_points()
        .map(|p| (attrs(p.attributes()), p.value()))
        .collect()
}

fn pairs(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

#[tokio::test(start_paused = true)]
async fn red_metrics_and_events_reach_the_meter() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter.clone())
        .build();
    let recorder = OtelRecorder::new(provider.meter("palisade"));
    let _guard = metrics::set_default_local_recorder(&recorder);
    palisade_metrics::describe();

    let svc = MetricsLayer::with_route("api").layer(common::scripted(Duration::from_millis(20)));
    for (path, n) in [("/ok", 10), ("/limited", 3), ("/slow", 2), ("/replayed", 1)] {
        for _ in 0..n {
            let _ = svc
                .clone()
                .oneshot(Request::get(path).body(()).unwrap())
                .await;
        }
    }
    let events = EventMetrics::new();
    events.on_event(&BreakerEvent::StateChanged {
        instance: "payments".into(),
        from: State::Closed,
        to: State::Open,
    });

    provider.force_flush().unwrap();
    let exported = exporter.get_finished_metrics().unwrap();
    let exported = exported.last().expect("one export");

    // Counters: cumulative monotonic sums, one data point per label set.
    let mut points = sum_points(exported, "palisade_requests_total");
    points.sort();
    let mut want = vec![
        (pairs(&[("route", "api"), ("outcome", "success")]), 10),
        (pairs(&[("route", "api"), ("outcome", "failure")]), 0),
        (pairs(&[("route", "api"), ("outcome", "rate_limited")]), 3),
        (pairs(&[("route", "api"), ("outcome", "timeout")]), 2),
        (
            pairs(&[("route", "api"), ("outcome", "idempotent_replay")]),
            1,
        ),
    ];
    want.sort();
    assert_eq!(points, want);
    assert_eq!(
        metric(exported, "palisade_requests_total").description(),
        "Finished requests by route and outcome (success, failure, or the rejection kind)."
    );

    // Histogram: seconds, Palisade's buckets, one observation per request.
    let duration = metric(exported, "palisade_request_duration_seconds");
    assert_eq!(duration.unit(), "s");
    let AggregatedMetrics::F64(MetricData::Histogram(h)) = duration.data() else {
        panic!("{:?}", duration.data());
    };
    let points: Vec<_> = h.data_points().collect();
    assert_eq!(points.len(), 1);
    assert_eq!(attrs(points[0].attributes()), pairs(&[("route", "api")]));
    assert_eq!(points[0].count(), 16);
    assert_eq!(points[0].bounds().collect::<Vec<_>>(), DURATION_BUCKETS);
    assert!((points[0].sum() - 16.0 * 0.02).abs() < 1e-9);

    // Gauges: in flight back to 0; the breaker's state from the event.
    assert_eq!(
        gauge_points(exported, "palisade_requests_in_flight"),
        vec![(pairs(&[("route", "api")]), 0.0)]
    );
    assert_eq!(
        gauge_points(exported, "palisade_breaker_state"),
        vec![(pairs(&[("breaker", "payments")]), 1.0)]
    );
    assert_eq!(
        sum_points(exported, "palisade_breaker_transitions_total"),
        vec![(
            pairs(&[("breaker", "payments"), ("from", "closed"), ("to", "open")]),
            1
        )]
    );
}

#[test]
fn gauges_track_increments_and_counters_absolute_values() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter.clone())
        .build();
    let recorder =
        OtelRecorder::new(provider.meter("test")).histogram_boundaries("sizes", vec![10.0, 100.0]);
    let _guard = metrics::set_default_local_recorder(&recorder);

    let gauge = metrics::gauge!("depth", "queue" => "a");
    gauge.increment(3.0);
    gauge.decrement(1.0);
    // A second registration of the same key shares the value.
    metrics::gauge!("depth", "queue" => "a").increment(0.5);
    metrics::counter!("total").absolute(7);
    metrics::counter!("total").increment(2);
    metrics::histogram!("sizes").record(50.0);

    provider.force_flush().unwrap();
    let exported = exporter.get_finished_metrics().unwrap();
    let exported = exported.last().unwrap();
    let AggregatedMetrics::F64(MetricData::Gauge(g)) = metric(exported, "depth").data() else {
        panic!()
    };
    let values: Vec<f64> = g.data_points().map(GaugeDataPoint::value).collect();
    assert_eq!(values, vec![2.5]);
    let AggregatedMetrics::U64(MetricData::Sum(s)) = metric(exported, "total").data() else {
        panic!()
    };
    let totals: Vec<u64> = s.data_points().map(SumDataPoint::value).collect();
    assert_eq!(totals, [9]);
    let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric(exported, "sizes").data() else {
        panic!()
    };
    let p = h.data_points().next().unwrap();
    assert_eq!(p.bounds().collect::<Vec<_>>(), [10.0, 100.0]);
    assert_eq!(p.bucket_counts().collect::<Vec<_>>(), [0, 1, 0]);
}
