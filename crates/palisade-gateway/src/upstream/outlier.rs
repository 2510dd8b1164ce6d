//! Passive outlier ejection: a Palisade breaker per endpoint over its recent calls.

use http::Response;
use hyper::body::Incoming;
use palisade_breaker::{BreakerConfig, CircuitBreakerLayer, SlidingWindow};
use palisade_core::{Classifier, ConfigError, Outcome};

use super::UpstreamError;
use crate::config::Outlier;

/// Ejection counts 5xx answers and transport failures against an endpoint; a body over the
/// route's limit is the client's fault.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutlierClassifier;

impl Classifier<Response<Incoming>, UpstreamError> for OutlierClassifier {
    fn classify(&self, result: Result<&Response<Incoming>, &UpstreamError>) -> Outcome {
        match result {
            Ok(res) if res.status().is_server_error() => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(UpstreamError::BodyTooLarge | UpstreamError::Ejected) => Outcome::Ignored,
            Err(_) => Outcome::Failure,
        }
    }
}

/// The breaker settings of an `outlier` section.
pub(crate) fn breaker_config(o: &Outlier) -> Result<BreakerConfig, ConfigError> {
    let mut c = BreakerConfig::default();
    c.window = SlidingWindow::Count(o.window);
    c.minimum_calls = o.minimum_calls;
    c.failure_rate_threshold = o.failure_rate;
    c.wait_in_open = o.base_ejection_time;
    c.wait_multiplier = o.growth;
    c.max_wait_in_open = o.max_ejection_time;
    // A small batch of probes decides recovery, so that concurrent requests to a recovering
    // endpoint are not all refused.
    c.permitted_in_half_open = o.minimum_calls.clamp(1, 1_000);
    c.automatic_transition = true;
    CircuitBreakerLayer::try_from(c.clone())?;
    Ok(c)
}
