//! Shared by the integration tests: a debugging recorder installed on the test's thread,
//! lookups in its snapshots, and a handler scripted by path.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use http::Response;
use http_body_util::Full;
use metrics::{Key, LocalRecorderGuard, SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use palisade_core::{CircuitOpen, Elapsed, RateLimited};
use palisade_test::ScriptedService;
use palisade_test::scripted::respond;

/// A fresh [`DebuggingRecorder`], this thread's recorder until the `Recording` is dropped.
pub struct Recording {
    snapshotter: Snapshotter,
    _guard: LocalRecorderGuard<'static>,
}

impl Recording {
    pub fn start() -> Self {
        // Leaked so the guard can live next to its snapshotter; one small recorder per test.
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        Self {
            snapshotter: recorder.snapshotter(),
            _guard: metrics::set_default_local_recorder(recorder),
        }
    }

    /// What was recorded since the previous snapshot: the debugging recorder swaps every
    /// counter and gauge to 0 when snapshotted, so counters and `increment`ed gauges read as
    /// deltas, and a gauge nobody `set` since reads 0.
    pub fn snap(&self) -> Snap {
        Snap(self.snapshotter.snapshot().into_vec())
    }
}

/// One snapshot.
pub struct Snap(Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>);

impl Snap {
    /// The series `name` with exactly these labels, in any order.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        let mut want = labels.to_vec();
        want.sort_unstable();
        self.keys().find_map(|(key, v)| {
            let mut got: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
            got.sort_unstable();
            (key.name() == name && got == want).then_some(v)
        })
    }

    /// A counter's value; 0 if it was never registered.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            Some(DebugValue::Counter(c)) => *c,
            None => 0,
            Some(other) => panic!("{name}{labels:?} is not a counter: {other:?}"),
        }
    }

    /// A gauge's value; panics if it was never registered.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.get(name, labels) {
            Some(DebugValue::Gauge(g)) => g.into_inner(),
            other => panic!("{name}{labels:?} is not a gauge: {other:?}"),
        }
    }

    /// A histogram's observations; panics if it was never registered.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.get(name, labels) {
            Some(DebugValue::Histogram(h)) => h.iter().map(|v| v.into_inner()).collect(),
            other => panic!("{name}{labels:?} is not a histogram: {other:?}"),
        }
    }

    /// `palisade_requests_total{route, outcome}`.
    pub fn requests(&self, route: &str, outcome: &str) -> u64 {
        self.counter(
            "palisade_requests_total",
            &[("route", route), ("outcome", outcome)],
        )
    }

    /// `palisade_requests_in_flight{route}`.
    pub fn in_flight(&self, route: &str) -> f64 {
        self.gauge("palisade_requests_in_flight", &[("route", route)])
    }

    /// `palisade_request_duration_seconds{route}`.
    pub fn durations(&self, route: &str) -> Vec<f64> {
        self.histogram("palisade_request_duration_seconds", &[("route", route)])
    }

    /// `palisade_events_total{layer, event}`, summed over every `instance`.
    pub fn events(&self, layer: &str, event: &str) -> u64 {
        self.instances("palisade_events_total", "instance")
            .filter(|(key, _)| {
                key.labels()
                    .any(|l| l.key() == "layer" && l.value() == layer)
                    && key
                        .labels()
                        .any(|l| l.key() == "event" && l.value() == event)
            })
            .map(|(_, v)| match v {
                DebugValue::Counter(c) => *c,
                other => panic!("not a counter: {other:?}"),
            })
            .sum()
    }

    /// `palisade_events_total{layer, instance, event}`.
    pub fn instance_events(&self, layer: &str, instance: &str, event: &str) -> u64 {
        self.counter(
            "palisade_events_total",
            &[("layer", layer), ("instance", instance), ("event", event)],
        )
    }

    /// The series `name` carrying label `label`.
    fn instances<'a>(
        &'a self,
        name: &'a str,
        label: &'a str,
    ) -> impl Iterator<Item = (&'a Key, &'a DebugValue)> + 'a {
        self.keys()
            .filter(move |(k, _)| k.name() == name && k.labels().any(|l| l.key() == label))
    }

    /// Every series name recorded.
    pub fn names(&self) -> Vec<&str> {
        self.keys().map(|(k, _)| k.name()).collect()
    }

    /// The values of label `label` over every series `name`.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<&str> {
        self.keys()
            .filter(|(k, _)| k.name() == name)
            .flat_map(|(k, _)| k.labels().filter(|l| l.key() == label))
            .map(metrics::Label::value)
            .collect()
    }

    fn keys(&self) -> impl Iterator<Item = (&Key, &DebugValue)> {
        self.0.iter().map(|(k, _, _, v)| (k.key(), v))
    }
}

/// A handler scripted by path (palisade-test's `ScriptedService`): waits `delay`, then
/// answers or fails as the path says.
pub fn scripted(delay: Duration) -> ScriptedService {
    let answer = respond(move |seen| match seen.uri.path() {
        "/limited" => {
            Err(RateLimited::new(Duration::from_secs(1), http::HeaderMap::new(), vec![]).into())
        }
        "/slow" => Err(Elapsed::new(delay).into()),
        "/open" => Err(CircuitOpen::new(None).into()),
        "/boom" => Err("boom".into()),
        "/500" => Ok(Response::builder()
            .status(500)
            .body(Full::default())
            .unwrap()),
        "/replayed" => Ok(Response::builder()
            .header("idempotent-replayed", "true")
            .body(Full::default())
            .unwrap()),
        _ => Ok(Response::new(Full::default())),
    });
    ScriptedService::otherwise(palisade_test::scripted::delay(delay).then(answer))
}
