//! Metric names and [`describe`].

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Counter of finished requests, labels `route` and `outcome`.
pub const REQUESTS_TOTAL: &str = "palisade_requests_total";
/// Histogram of request durations in seconds, label `route`.
pub const REQUEST_DURATION_SECONDS: &str = "palisade_request_duration_seconds";
/// Gauge of requests in flight, label `route`.
pub const REQUESTS_IN_FLIGHT: &str = "palisade_requests_in_flight";
/// Counter of layer events, labels `layer` and `event`.
pub const EVENTS_TOTAL: &str = "palisade_events_total";

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
        "Events emitted by Palisade layers, by layer and event name."
    );
}
