use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use palisade_core::Listeners;
use tower_layer::Layer;

use crate::events::TimeoutEvent;
use crate::service::Timeout;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) timeout: Duration,
    pub(crate) honour_grpc_timeout: bool,
    pub(crate) deadline_header: Option<HeaderName>,
    pub(crate) insert_deadline: bool,
    pub(crate) outbound: bool,
    pub(crate) listeners: Listeners<TimeoutEvent>,
}

/// Applies [`Timeout`] to a service.
///
/// Defaults: honour an incoming `grpc-timeout` when it is shorter, no millisecond header,
/// put the [`Deadline`](palisade_core::Deadline) in request extensions, do not write
/// outgoing deadline headers.
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    settings: Settings,
}

impl TimeoutLayer {
    /// A layer that fails requests taking longer than `timeout` with
    /// [`Elapsed`](crate::error::Elapsed). A zero timeout fails every request at once
    /// without calling the inner service; [`TimeoutConfig`](crate::TimeoutConfig) refuses it.
    pub fn new(timeout: Duration) -> Self {
        Self {
            settings: Settings {
                timeout,
                honour_grpc_timeout: true,
                deadline_header: None,
                insert_deadline: true,
                outbound: false,
                listeners: Listeners::new().named("timeout"),
            },
        }
    }

    /// Whether a shorter incoming `grpc-timeout` shortens the timeout (default `true`).
    #[must_use]
    pub fn honour_grpc_timeout(mut self, yes: bool) -> Self {
        self.settings.honour_grpc_timeout = yes;
        self
    }

    /// Also honour a header carrying the caller's remaining budget in whole milliseconds
    /// (e.g. `x-request-timeout-ms`, or Envoy's `x-envoy-expected-rq-timeout-ms`).
    #[must_use]
    pub fn deadline_header(mut self, name: HeaderName) -> Self {
        self.settings.deadline_header = Some(name);
        self
    }

    /// Whether to put the effective [`Deadline`](palisade_core::Deadline) in the request's
    /// extensions for inner layers (retry) and clients (default `true`). Costs one small
    /// allocation per request (the extension); turn it off when nothing inside reads it.
    #[must_use]
    pub fn insert_deadline(mut self, yes: bool) -> Self {
        self.settings.insert_deadline = yes;
        self
    }

    /// Outbound (client) mode: write the remaining time on the outgoing request as
    /// `grpc-timeout` and, if set, as the [`deadline_header`](Self::deadline_header) in
    /// milliseconds, so the next hop stops working when we stop waiting.
    #[must_use]
    pub fn outbound(mut self, yes: bool) -> Self {
        self.settings.outbound = yes;
        self
    }

    /// The layer's instance name, carried by its events so metrics label it. Default
    /// `"timeout"`.
    #[must_use]
    pub fn name(mut self, name: impl Into<palisade_core::InstanceName>) -> Self {
        self.settings.listeners = self.settings.listeners.named(name);
        self
    }

    /// Adds a listener for this layer's [`TimeoutEvent`]s.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&TimeoutEvent) + Send + Sync + 'static) -> Self {
        self.settings.listeners = self.settings.listeners.on(f);
        self
    }

    /// The configured timeout.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }
}

impl From<Duration> for TimeoutLayer {
    fn from(timeout: Duration) -> Self {
        Self::new(timeout)
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Timeout::from_settings(inner, Arc::new(self.settings.clone()))
    }
}
