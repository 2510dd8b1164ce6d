//! The typed per-layer metrics [`EventMetrics`](crate::EventMetrics) derives from events,
//! read through core's event vocabulary only ([`Event::layer`], [`Event::instance`],
//! [`Event::name`] and the typed fields): this crate knows no pattern crate's types.

use std::sync::{Arc, Mutex, PoisonError};

use metrics::{Counter, Gauge, Histogram, Key, Label, SharedString};
use palisade_core::event::{Event, state};

use crate::events::instance;
use crate::names::{
    ADAPTIVE_THROTTLE_THROTTLED_TOTAL, BREAKER_STATE, BREAKER_TRANSITIONS_TOTAL,
    BULKHEAD_IN_FLIGHT_AT_ADMISSION, BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE, BULKHEAD_REJECTIONS_TOTAL,
    CANARY_ROLLBACKS_TOTAL, CANARY_WEIGHT_PERCENT, MESSAGES_TOTAL, RATELIMIT_DECISIONS_TOTAL,
    RETRY_ATTEMPTS_TOTAL, RETRY_BUDGET_EXHAUSTED_TOTAL,
};
use crate::series::{OTHER, Series};

static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new("palisade", metrics::Level::INFO, Some(module_path!()));

/// Most distinct canary arm names labelled; further arms are labelled `other`.
pub(crate) const MAX_ARMS: usize = 32;
/// Most distinct message types labelled; further types are labelled `other`.
pub(crate) const MAX_MESSAGE_TYPES: usize = 64;

const RETRY_REASONS: [&str; 3] = ["error", "status", "grpc"];
const BULKHEAD_REASONS: [&str; 3] = ["full", "queue_timeout", "too_many_keys"];
const TRANSITIONS: usize = state::ALL.len() * state::ALL.len();

pub(crate) fn counter(name: &'static str, labels: Vec<Label>) -> Counter {
    let key = Key::from_parts(name, labels);
    metrics::with_recorder(|r| r.register_counter(&key, &METADATA))
}

fn gauge(name: &'static str, labels: Vec<Label>) -> Gauge {
    let key = Key::from_parts(name, labels);
    metrics::with_recorder(|r| r.register_gauge(&key, &METADATA))
}

fn histogram(name: &'static str, labels: Vec<Label>) -> Histogram {
    let key = Key::from_parts(name, labels);
    metrics::with_recorder(|r| r.register_histogram(&key, &METADATA))
}

/// `label = instance`, plus `key = value` for each of `values`.
fn each(
    name: &'static str,
    label: &'static str,
    instance: &SharedString,
    key: &'static str,
    values: [&'static str; 3],
) -> [Counter; 3] {
    values.map(|v| {
        counter(
            name,
            vec![
                Label::new(label, instance.clone()),
                Label::from_static_parts(key, v),
            ],
        )
    })
}

fn index(values: &[&str], value: Option<&str>) -> usize {
    value
        .and_then(|v| values.iter().position(|x| *x == v))
        .unwrap_or(0)
}

#[derive(Clone)]
struct RetryHandles {
    attempts: [Counter; 3],
    budget_exhausted: Counter,
}

#[derive(Clone)]
struct BulkheadHandles {
    in_flight: Histogram,
    queue_depth: Histogram,
    rejections: [Counter; 3],
}

#[derive(Clone)]
struct RateLimitHandles {
    allowed: Counter,
    limited: Counter,
    would_limit: Counter,
}

/// Breaker state gauge and the transition counters, indexed `from * 6 + to`, registered
/// on first use.
#[derive(Clone)]
struct BreakerHandles {
    label: SharedString,
    state: Gauge,
    transitions: Arc<[std::sync::OnceLock<Counter>; TRANSITIONS]>,
}

/// Handle caches of the typed metrics, one [`Series`] per layer.
#[derive(Default)]
pub(crate) struct LayerMetrics {
    retry: Series<RetryHandles>,
    throttle: Series<Counter>,
    bulkhead: Series<BulkheadHandles>,
    ratelimit: Series<RateLimitHandles>,
    breaker: Series<BreakerHandles>,
    /// Canary arm names given their own label value so far.
    arms: Mutex<Vec<Arc<str>>>,
    /// Message types given their own label value so far.
    message_types: Mutex<Vec<Arc<str>>>,
}

impl LayerMetrics {
    /// Records the typed metrics of the layers this crate knows by name.
    pub(crate) fn record(&self, event: &dyn Event) {
        match event.layer() {
            "ratelimit" => self.ratelimit(event),
            "bulkhead" => self.bulkhead(event),
            "retry" => self.retry(event),
            "adaptive_throttle" => self.throttle(event),
            "breaker" => self.breaker(event),
            "traffic" => self.traffic(event),
            "stream_processor" => self.messages(event),
            _ => {}
        }
    }

    fn ratelimit(&self, event: &dyn Event) {
        let decision = match event.name() {
            "allowed" => 0,
            "limited" => 1,
            "would_limit" => 2,
            _ => return,
        };
        let make = |instance: SharedString| {
            let [allowed, limited, would_limit] = ["allowed", "limited", "would_limit"].map(|d| {
                counter(
                    RATELIMIT_DECISIONS_TOTAL,
                    vec![
                        Label::new("ratelimit", instance.clone()),
                        Label::from_static_parts("decision", d),
                    ],
                )
            });
            RateLimitHandles {
                allowed,
                limited,
                would_limit,
            }
        };
        // One series entry for both decisions: keyed by layer only.
        self.ratelimit
            .with("ratelimit", "", instance(event), make, |h| match decision {
                0 => h.allowed.increment(1),
                1 => h.limited.increment(1),
                _ => h.would_limit.increment(1),
            });
    }

    fn bulkhead(&self, event: &dyn Event) {
        let make = |instance: SharedString| BulkheadHandles {
            in_flight: histogram(
                BULKHEAD_IN_FLIGHT_AT_ADMISSION,
                vec![Label::new("bulkhead", instance.clone())],
            ),
            queue_depth: histogram(
                BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE,
                vec![Label::new("bulkhead", instance.clone())],
            ),
            rejections: each(
                BULKHEAD_REJECTIONS_TOTAL,
                "bulkhead",
                &instance,
                "reason",
                BULKHEAD_REASONS,
            ),
        };
        let kind = event.name();
        if !matches!(kind, "admitted" | "queued" | "rejected") {
            return;
        }
        self.bulkhead
            .with("bulkhead", "", instance(event), make, |h| match kind {
                "admitted" => h.in_flight.record(count(event)),
                "queued" => h.queue_depth.record(count(event)),
                _ => h.rejections[index(&BULKHEAD_REASONS, event.reason())].increment(1),
            });
    }

    fn retry(&self, event: &dyn Event) {
        let kind = event.name();
        if !matches!(kind, "attempt" | "budget_exhausted") {
            return;
        }
        let make = |instance: SharedString| RetryHandles {
            attempts: each(
                RETRY_ATTEMPTS_TOTAL,
                "retry",
                &instance,
                "reason",
                RETRY_REASONS,
            ),
            budget_exhausted: counter(
                RETRY_BUDGET_EXHAUSTED_TOTAL,
                vec![Label::new("retry", instance)],
            ),
        };
        self.retry.with("retry", "", instance(event), make, |h| {
            if kind == "attempt" {
                h.attempts[index(&RETRY_REASONS, event.reason())].increment(1);
            } else {
                h.budget_exhausted.increment(1);
            }
        });
    }

    fn throttle(&self, event: &dyn Event) {
        if event.name() != "throttled" {
            return;
        }
        let make = |instance: SharedString| {
            counter(
                ADAPTIVE_THROTTLE_THROTTLED_TOTAL,
                vec![Label::new("adaptive_throttle", instance)],
            )
        };
        self.throttle
            .with("adaptive_throttle", "", instance(event), make, |c| {
                c.increment(1);
            });
    }

    fn breaker(&self, event: &dyn Event) {
        if event.name() != "state_changed" {
            return;
        }
        let (Some(from), Some(to)) = (
            event.previous_state().and_then(state::code),
            event.state().and_then(state::code),
        ) else {
            return;
        };
        let make = |instance: SharedString| BreakerHandles {
            state: gauge(BREAKER_STATE, vec![Label::new("breaker", instance.clone())]),
            label: instance,
            transitions: Arc::new(std::array::from_fn(|_| std::sync::OnceLock::new())),
        };
        self.breaker
            .with("breaker", "", instance(event), make, |h| {
                h.state.set(f64::from(to));
                let i = usize::from(from) * state::ALL.len() + usize::from(to);
                h.transitions[i]
                    .get_or_init(|| {
                        counter(
                            BREAKER_TRANSITIONS_TOTAL,
                            vec![
                                Label::new("breaker", h.label.clone()),
                                Label::from_static_parts("from", state::ALL[usize::from(from)]),
                                Label::from_static_parts("to", state::ALL[usize::from(to)]),
                            ],
                        )
                    })
                    .increment(1);
            });
    }

    /// Canary weight and rollbacks: rare events (a few per rollout), registered through
    /// the macros.
    fn traffic(&self, event: &dyn Event) {
        if !matches!(event.name(), "advanced" | "promoted" | "rolled_back") {
            return;
        }
        let (Some(arm), Some(percent)) = (event.target(), event.percent()) else {
            return;
        };
        let split = SharedString::from(instance(event).to_owned());
        let arm = self.arm_label(arm);
        metrics::gauge!(CANARY_WEIGHT_PERCENT, "traffic" => split.clone(), "arm" => arm.clone())
            .set(f64::from(percent));
        if event.name() == "rolled_back" {
            let reason = match event.reason() {
                Some("latency") => "latency",
                _ => "error_rate",
            };
            metrics::counter!(
                CANARY_ROLLBACKS_TOTAL,
                "traffic" => split,
                "arm" => arm,
                "reason" => reason
            )
            .increment(1);
        }
    }

    /// Messages settled by a stream processor, by type and outcome (registered through the
    /// macro: one recorder lookup per message, next to a broker round trip).
    fn messages(&self, event: &dyn Event) {
        let outcome = match event.name() {
            "handled" => "handled",
            "retried" => "retried",
            "dead_lettered" => "dead_lettered",
            _ => return,
        };
        let kind = bounded_label(
            &self.message_types,
            event.target().unwrap_or(""),
            MAX_MESSAGE_TYPES,
        );
        metrics::counter!(
            MESSAGES_TOTAL,
            "processor" => SharedString::from(instance(event).to_owned()),
            "type" => kind,
            "outcome" => outcome
        )
        .increment(1);
    }

    /// The `arm` label: the arm's name for the first [`MAX_ARMS`] names seen, then `other`.
    fn arm_label(&self, arm: &str) -> SharedString {
        bounded_label(&self.arms, arm, MAX_ARMS)
    }

    /// Typed series cached so far.
    pub(crate) fn len(&self) -> usize {
        self.retry.len() + self.bulkhead.len() + self.ratelimit.len() + self.breaker.len()
    }
}

/// `value` as a label for the first `max` distinct values seen, then `other`.
fn bounded_label(seen: &Mutex<Vec<Arc<str>>>, value: &str, max: usize) -> SharedString {
    let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    if !seen.iter().any(|a| **a == *value) {
        if seen.len() >= max {
            return SharedString::const_str(OTHER);
        }
        seen.push(value.into());
    }
    SharedString::from(value.to_owned())
}

fn count(event: &dyn Event) -> f64 {
    event.count().unwrap_or(0) as f64
}
