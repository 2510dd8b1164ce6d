//! Metric names and [`describe`].

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Counter of finished requests, labels `route` and `outcome`.
pub const REQUESTS_TOTAL: &str = "palisade_requests_total";
/// Histogram of request durations in seconds, label `route`.
pub const REQUEST_DURATION_SECONDS: &str = "palisade_request_duration_seconds";
/// Gauge of requests in flight, label `route`.
pub const REQUESTS_IN_FLIGHT: &str = "palisade_requests_in_flight";
/// Counter of layer events, labels `layer`, `instance` and `event`.
pub const EVENTS_TOTAL: &str = "palisade_events_total";

/// Gauge of a circuit breaker's state, label `breaker`: 0 closed, 1 open, 2 half-open,
/// 3 disabled, 4 forced open, 5 metrics only.
pub const BREAKER_STATE: &str = "palisade_breaker_state";
/// Counter of circuit breaker state changes, labels `breaker`, `from` and `to` (state names).
pub const BREAKER_TRANSITIONS_TOTAL: &str = "palisade_breaker_transitions_total";
/// Counter of retries (attempts after the first), labels `retry` (the instance) and `reason`
/// (`error`, `status`, `grpc`).
pub const RETRY_ATTEMPTS_TOTAL: &str = "palisade_retry_attempts_total";
/// Counter of retries refused by the retry budget, label `retry` (the instance).
pub const RETRY_BUDGET_EXHAUSTED_TOTAL: &str = "palisade_retry_budget_exhausted_total";
/// Counter of requests a client-side adaptive throttle shed locally, label
/// `adaptive_throttle` (the instance).
pub const ADAPTIVE_THROTTLE_THROTTLED_TOTAL: &str = "palisade_adaptive_throttle_throttled_total";
/// Gauge of the calls inside a bulkhead now, label `bulkhead`; sampled by
/// [`watch_bulkhead`](crate::watch_bulkhead).
pub const BULKHEAD_IN_FLIGHT: &str = "palisade_bulkhead_in_flight";
/// Gauge of the requests waiting in a bulkhead's queue now, label `bulkhead`; sampled by
/// [`watch_bulkhead`](crate::watch_bulkhead).
pub const BULKHEAD_QUEUED: &str = "palisade_bulkhead_queued";
/// Histogram of the calls inside a bulkhead at each admission (the new one included),
/// label `bulkhead`.
pub const BULKHEAD_IN_FLIGHT_AT_ADMISSION: &str = "palisade_bulkhead_in_flight_at_admission";
/// Histogram of a bulkhead's queue length at each enqueue (the new one included), label
/// `bulkhead`.
pub const BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE: &str = "palisade_bulkhead_queue_depth_at_enqueue";
/// Counter of requests refused by a bulkhead, labels `bulkhead` and `reason` (`full`,
/// `queue_timeout`, `too_many_keys`).
pub const BULKHEAD_REJECTIONS_TOTAL: &str = "palisade_bulkhead_rejections_total";
/// Counter of rate-limit decisions, labels `ratelimit` (the instance) and `decision`
/// (`allowed`, `limited`, `would_limit`: a refusal that shadow mode let pass).
pub const RATELIMIT_DECISIONS_TOTAL: &str = "palisade_ratelimit_decisions_total";
/// Gauge of a canary's share of traffic in percent, labels `traffic` (the split) and `arm`.
pub const CANARY_WEIGHT_PERCENT: &str = "palisade_canary_weight_percent";
/// Counter of canary rollbacks, labels `traffic`, `arm` and `reason` (`error_rate`, `latency`).
pub const CANARY_ROLLBACKS_TOTAL: &str = "palisade_canary_rollbacks_total";
/// Counter of messages a stream processor settled, labels `processor`, `type` (the message
/// type, at most 64 names, then `other`) and `outcome` (`handled`, `retried`,
/// `dead_lettered`).
pub const MESSAGES_TOTAL: &str = "palisade_messages_total";

/// Gauge of the bytes a bounded store holds now (a cache's), labels `layer` and `instance`;
/// sampled by [`watch_usage`](crate::watch_usage).
pub const STORE_BYTES: &str = "palisade_store_bytes";
/// Gauge of a bounded store's byte bound, labels `layer` and `instance`; sampled by
/// [`watch_usage`](crate::watch_usage).
pub const STORE_CAPACITY_BYTES: &str = "palisade_store_capacity_bytes";

/// The `outcome` of a response the classifier calls a success.
pub const SUCCESS: &str = "success";
/// The `outcome` of a failed call that is not a Palisade rejection.
pub const FAILURE: &str = "failure";
/// The `outcome` of a result the classifier ignores.
pub const IGNORED: &str = "ignored";
/// The `outcome` of a request dropped before it finished (client went away).
pub const CANCELLED: &str = "cancelled";
/// The `outcome` of a response replayed by the idempotency layer (it carries
/// `Idempotent-Replayed: true`), whatever its status.
pub const IDEMPOTENT_REPLAY: &str = "idempotent_replay";

/// Default histogram buckets (seconds) for [`REQUEST_DURATION_SECONDS`].
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Default histogram buckets for [`BULKHEAD_IN_FLIGHT_AT_ADMISSION`] and
/// [`BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE`].
pub const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Registers units and help texts of every Palisade metric with the installed recorder
/// (Prometheus shows them as `# HELP`). Call once after installing the recorder.
pub fn describe() {
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Finished requests by route and outcome (success, failure, or the rejection kind)."
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Request duration by route."
    );
    describe_gauge!(
        REQUESTS_IN_FLIGHT,
        Unit::Count,
        "Requests being processed by route."
    );
    describe_counter!(
        EVENTS_TOTAL,
        Unit::Count,
        "Events emitted by Palisade layers, by layer, instance and event name."
    );
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 disabled, 4 forced open, 5 metrics only."
    );
    describe_counter!(
        BREAKER_TRANSITIONS_TOTAL,
        Unit::Count,
        "Circuit breaker state changes by breaker, from and to."
    );
    describe_counter!(
        RETRY_ATTEMPTS_TOTAL,
        Unit::Count,
        "Retries (attempts after the first) by the reason the previous attempt failed."
    );
    describe_counter!(
        RETRY_BUDGET_EXHAUSTED_TOTAL,
        Unit::Count,
        "Retries refused by the retry budget."
    );
    describe_counter!(
        ADAPTIVE_THROTTLE_THROTTLED_TOTAL,
        Unit::Count,
        "Requests shed locally by a client-side adaptive throttle."
    );
    describe_gauge!(
        BULKHEAD_IN_FLIGHT,
        Unit::Count,
        "Calls inside a bulkhead, by bulkhead (sampled)."
    );
    describe_gauge!(
        BULKHEAD_QUEUED,
        Unit::Count,
        "Requests waiting in a bulkhead's queue, by bulkhead (sampled)."
    );
    describe_gauge!(
        STORE_BYTES,
        Unit::Bytes,
        "Bytes a bounded store (a cache's) holds, by layer and instance (sampled)."
    );
    describe_gauge!(
        STORE_CAPACITY_BYTES,
        Unit::Bytes,
        "The byte bound of a bounded store, by layer and instance (sampled)."
    );
    describe_histogram!(
        BULKHEAD_IN_FLIGHT_AT_ADMISSION,
        Unit::Count,
        "Calls inside a bulkhead at each admission."
    );
    describe_histogram!(
        BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE,
        Unit::Count,
        "Bulkhead queue length at each enqueue."
    );
    describe_counter!(
        BULKHEAD_REJECTIONS_TOTAL,
        Unit::Count,
        "Requests refused by a bulkhead, by reason."
    );
    describe_counter!(
        RATELIMIT_DECISIONS_TOTAL,
        Unit::Count,
        "Rate-limit decisions (allowed, limited)."
    );
    describe_gauge!(
        CANARY_WEIGHT_PERCENT,
        Unit::Percent,
        "Canary share of traffic in percent, by canary arm."
    );
    describe_counter!(
        CANARY_ROLLBACKS_TOTAL,
        Unit::Count,
        "Canary rollbacks by arm and reason."
    );
    describe_counter!(
        MESSAGES_TOTAL,
        Unit::Count,
        "Messages a stream processor settled, by message type and outcome."
    );
}
