use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use palisade_core::Listeners;
use palisade_core::request::{AnyRequest, Http};
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
///
/// The mode `M` says what the layer reads from requests: [`Http`] (the default, built by
/// [`new`](TimeoutLayer::new): headers and extensions, through
/// [`RequestParts`](palisade_core::RequestParts)) or [`AnyRequest`] (built by
/// [`any_request`](TimeoutLayer::any_request): the configured timeout alone, for any
/// request type).
#[derive(Debug)]
pub struct TimeoutLayer<M = Http> {
    settings: Settings,
    mode: PhantomData<fn() -> M>,
}

impl<M> Clone for TimeoutLayer<M> {
    fn clone(&self) -> Self {
        Self {
            settings: self.settings.clone(),
            mode: PhantomData,
        }
    }
}

fn defaults(timeout: Duration) -> Settings {
    Settings {
        timeout,
        honour_grpc_timeout: true,
        deadline_header: None,
        insert_deadline: true,
        outbound: false,
        listeners: Listeners::new().named("timeout"),
    }
}

impl TimeoutLayer<AnyRequest> {
    /// A layer for services of any request type (a broker producer, a database call, a
    /// `Service<u64>`): it fails requests taking longer than `timeout` with
    /// [`Elapsed`](crate::error::Elapsed). The deadline is the configured timeout alone: no
    /// header is read, and no [`Deadline`](palisade_core::Deadline) is put in the request
    /// (it has no extensions), so inner layers are not told about it; dropping the inner
    /// future when the time is up still stops them.
    pub fn any_request(timeout: Duration) -> Self {
        Self {
            settings: defaults(timeout),
            mode: PhantomData,
        }
    }
}

impl TimeoutLayer {
    /// A layer that fails requests taking longer than `timeout` with
    /// [`Elapsed`](crate::error::Elapsed). A zero timeout fails every request at once
    /// without calling the inner service; [`TimeoutConfig`](crate::TimeoutConfig) refuses it.
    pub fn new(timeout: Duration) -> Self {
        Self {
            settings: defaults(timeout),
            mode: PhantomData,
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
}

impl<M> TimeoutLayer<M> {
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

impl<S, M> Layer<S> for TimeoutLayer<M> {
    type Service = Timeout<S, M>;
    fn layer(&self, inner: S) -> Self::Service {
        Timeout::from_settings(inner, Arc::new(self.settings.clone()))
    }
}
