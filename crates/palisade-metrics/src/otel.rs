//! OpenTelemetry export: [`OtelRecorder`], a [`metrics::Recorder`] feeding an
//! [`opentelemetry::metrics::Meter`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SetRecorderError, SharedString, Unit,
};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use crate::names::{
    BULKHEAD_IN_FLIGHT_AT_ADMISSION, BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE, COUNT_BUCKETS,
    DURATION_BUCKETS, REQUEST_DURATION_SECONDS,
};

/// A [`metrics::Recorder`] that exports through an OpenTelemetry [`Meter`]: every
/// Palisade metric (and any other `metrics` call) becomes an OpenTelemetry instrument,
/// each label an attribute.
///
/// | `metrics` | OpenTelemetry instrument |
/// |---|---|
/// | counter | `u64` observable counter (cumulative) |
/// | gauge | `f64` observable gauge |
/// | histogram | `f64` histogram; [`DURATION_BUCKETS`] for the request duration, [`COUNT_BUCKETS`] for the bulkhead histograms, the SDK's default otherwise ([`histogram_boundaries`](Self::histogram_boundaries)) |
///
/// Counters and gauges are atomics read by the instrument's callback at each collection, so
/// recording one costs an atomic operation; histograms are recorded into the SDK as they
/// come. Descriptions and units ([`describe`](crate::describe)) are applied when an
/// instrument is created, so describe before the first request ([`install_otel`] does).
///
/// The [`Meter`] comes from any meter provider of `opentelemetry` 0.33 (the OTLP exporter,
/// the Prometheus one, or the SDK's in-memory exporter in tests).
///
/// ```
/// use opentelemetry::metrics::MeterProvider;
/// use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};
/// use palisade_metrics::{MetricsLayer, OtelRecorder};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let exporter = InMemoryMetricExporter::default(); // in production: the OTLP exporter
/// let provider = SdkMeterProvider::builder().with_periodic_exporter(exporter.clone()).build();
/// let recorder = OtelRecorder::new(provider.meter("palisade"));
/// // Or process-wide: palisade_metrics::install_otel(provider.meter("palisade"))
/// let _guard = metrics::set_default_local_recorder(&recorder);
/// palisade_metrics::describe();
///
/// let svc = MetricsLayer::with_route("checkout").layer(service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// }));
/// svc.oneshot(http::Request::new(())).await.unwrap();
///
/// provider.force_flush().unwrap();
/// let exported = exporter.get_finished_metrics().unwrap();
/// let names: Vec<String> = exported.iter()
///     .flat_map(|r| r.scope_metrics())
///     .flat_map(|s| s.metrics())
///     .map(|m| m.name().to_owned())
///     .collect();
/// assert!(names.iter().any(|n| n == "palisade_requests_total"));
/// # }
/// ```
#[derive(Clone)]
pub struct OtelRecorder {
    inner: Arc<Inner>,
}

struct Inner {
    meter: Meter,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    descriptions: HashMap<String, (Option<Unit>, SharedString)>,
    boundaries: HashMap<String, Vec<f64>>,
    counter_families: HashMap<String, Arc<Family>>,
    gauge_families: HashMap<String, Arc<Family>>,
    histogram_instruments: HashMap<String, opentelemetry::metrics::Histogram<f64>>,
    counters: HashMap<Key, Arc<Series>>,
    gauges: HashMap<Key, Arc<Series>>,
    histograms: HashMap<Key, Arc<HistogramSeries>>,
}

/// The series of one counter or gauge name, read by its instrument's callback.
#[derive(Default)]
struct Family {
    series: RwLock<Vec<Arc<Series>>>,
}

/// One counter (`u64`) or gauge (`f64` bits) with its attributes.
struct Series {
    attributes: Box<[KeyValue]>,
    value: AtomicU64,
}

struct HistogramSeries {
    histogram: opentelemetry::metrics::Histogram<f64>,
    attributes: Box<[KeyValue]>,
}

impl fmt::Debug for OtelRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("OtelRecorder")
            .field("meter", &self.inner.meter)
            .field("counters", &state.counters.len())
            .field("gauges", &state.gauges.len())
            .field("histograms", &state.histograms.len())
            .finish()
    }
}

impl OtelRecorder {
    /// A recorder creating its instruments on `meter`.
    pub fn new(meter: Meter) -> Self {
        let mut state = State::default();
        state.boundaries.insert(
            REQUEST_DURATION_SECONDS.to_owned(),
            DURATION_BUCKETS.to_vec(),
        );
        for name in [
            BULKHEAD_IN_FLIGHT_AT_ADMISSION,
            BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE,
        ] {
            state
                .boundaries
                .insert(name.to_owned(), COUNT_BUCKETS.to_vec());
        }
        Self {
            inner: Arc::new(Inner {
                meter,
                state: Mutex::new(state),
            }),
        }
    }

    /// Bucket boundaries for the histogram `name` (replacing the default), applied when
    /// its instrument is created.
    #[must_use]
    pub fn histogram_boundaries(self, name: impl Into<String>, boundaries: Vec<f64>) -> Self {
        self.inner.lock().boundaries.insert(name.into(), boundaries);
        self
    }

    /// The meter instruments are created on.
    pub fn meter(&self) -> &Meter {
        &self.inner.meter
    }
}

/// Installs an [`OtelRecorder`] on `meter` as the global `metrics` recorder and describes
/// the Palisade metrics; fails if a global recorder is already set.
pub fn install_otel(meter: Meter) -> Result<(), SetRecorderError<OtelRecorder>> {
    metrics::set_global_recorder(OtelRecorder::new(meter))?;
    crate::describe();
    Ok(())
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn attributes(key: &Key) -> Box<[KeyValue]> {
    key.labels()
        .map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned()))
        .collect()
}

/// The UCUM unit OpenTelemetry expects; `None` for plain counts.
fn ucum(unit: Unit) -> Option<&'static str> {
    Some(match unit {
        Unit::Count => return None,
        Unit::Percent => "%",
        Unit::Seconds => "s",
        Unit::Milliseconds => "ms",
        Unit::Microseconds => "us",
        Unit::Nanoseconds => "ns",
        Unit::Tebibytes => "TiBy",
        Unit::Gibibytes => "GiBy",
        Unit::Mebibytes => "MiBy",
        Unit::Kibibytes => "KiBy",
        Unit::Bytes => "By",
        Unit::TerabitsPerSecond => "Tbit/s",
        Unit::GigabitsPerSecond => "Gbit/s",
        Unit::MegabitsPerSecond => "Mbit/s",
        Unit::KilobitsPerSecond => "kbit/s",
        Unit::BitsPerSecond => "bit/s",
        Unit::CountPerSecond => "{count}/s",
    })
}

impl State {
    /// The instrument unit and description recorded by `describe_*` for `name`.
    fn description(&self, name: &str) -> (Option<&'static str>, Option<Cow<'static, str>>) {
        self.descriptions
            .get(name)
            .map_or((None, None), |(unit, text)| {
                (unit.and_then(ucum), Some(Cow::Owned(text.to_string())))
            })
    }
}

impl Family {
    /// A new series for `key`, starting at `bits`.
    fn add(&self, key: &Key, bits: u64) -> Arc<Series> {
        let series = Arc::new(Series {
            attributes: attributes(key),
            value: AtomicU64::new(bits),
        });
        self.series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(series.clone());
        series
    }

    fn each(&self, mut f: impl FnMut(&Series)) {
        for s in self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            f(s);
        }
    }
}

impl Recorder for OtelRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.series(Kind::Counter, key))
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.series(Kind::Gauge, key))
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        let mut state = self.inner.lock();
        if let Some(series) = state.histograms.get(key) {
            return Histogram::from_arc(series.clone());
        }
        let series = Arc::new(HistogramSeries {
            histogram: self.histogram_instrument(&mut state, key.name()),
            attributes: attributes(key),
        });
        state.histograms.insert(key.clone(), series.clone());
        Histogram::from_arc(series)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

impl State {
    fn families_of(&mut self, kind: Kind) -> &mut HashMap<String, Arc<Family>> {
        match kind {
            Kind::Counter => &mut self.counter_families,
            Kind::Gauge => &mut self.gauge_families,
        }
    }

    fn series_of(&mut self, kind: Kind) -> &mut HashMap<Key, Arc<Series>> {
        match kind {
            Kind::Counter => &mut self.counters,
            Kind::Gauge => &mut self.gauges,
        }
    }
}

impl OtelRecorder {
    /// The series of counter or gauge `key`, created (at 0: `0u64` and `0f64` share their
    /// bits) the first time.
    fn series(&self, kind: Kind, key: &Key) -> Arc<Series> {
        let mut state = self.inner.lock();
        if let Some(series) = state.series_of(kind).get(key) {
            return series.clone();
        }
        let series = self.family(&mut state, kind, key.name()).add(key, 0);
        state.series_of(kind).insert(key.clone(), series.clone());
        series
    }

    fn describe(&self, key: &KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .lock()
            .descriptions
            .insert(key.as_str().to_owned(), (unit, description));
    }

    /// The series list of counter or gauge `name`, creating its observable instrument
    /// the first time.
    fn family(&self, state: &mut State, kind: Kind, name: &str) -> Arc<Family> {
        if let Some(family) = state.families_of(kind).get(name) {
            return family.clone();
        }
        let family = Arc::new(Family::default());
        let observed = family.clone();
        let (unit, description) = state.description(name);
        let meter = &self.inner.meter;
        match kind {
            Kind::Counter => {
                let mut builder =
                    meter
                        .u64_observable_counter(name.to_owned())
                        .with_callback(move |observer| {
                            observed.each(|s| {
                                observer.observe(s.value.load(Ordering::Relaxed), &s.attributes);
                            });
                        });
                builder.unit = unit.map(Into::into);
                builder.description = description;
                builder.build();
            }
            Kind::Gauge => {
                let mut builder =
                    meter
                        .f64_observable_gauge(name.to_owned())
                        .with_callback(move |observer| {
                            observed.each(|s| {
                                let value = f64::from_bits(s.value.load(Ordering::Relaxed));
                                observer.observe(value, &s.attributes);
                            });
                        });
                builder.unit = unit.map(Into::into);
                builder.description = description;
                builder.build();
            }
        }
        state
            .families_of(kind)
            .insert(name.to_owned(), family.clone());
        family
    }

    /// The histogram instrument `name`, created the first time.
    fn histogram_instrument(
        &self,
        state: &mut State,
        name: &str,
    ) -> opentelemetry::metrics::Histogram<f64> {
        if let Some(h) = state.histogram_instruments.get(name) {
            return h.clone();
        }
        let (unit, description) = state.description(name);
        let mut builder = self.inner.meter.f64_histogram(name.to_owned());
        builder.unit = unit.map(Into::into);
        builder.description = description;
        builder.boundaries = state.boundaries.get(name).cloned();
        let h = builder.build();
        state
            .histogram_instruments
            .insert(name.to_owned(), h.clone());
        h
    }
}

impl CounterFn for Series {
    fn increment(&self, value: u64) {
        self.value.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.value.fetch_max(value, Ordering::Relaxed);
    }
}

impl Series {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
    }
}

impl GaugeFn for Series {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.value.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl HistogramFn for HistogramSeries {
    fn record(&self, value: f64) {
        self.histogram.record(value, &self.attributes);
    }
}
