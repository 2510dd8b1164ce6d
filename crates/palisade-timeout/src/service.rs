use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use palisade_core::deadline::grpc_timeout;
use palisade_core::grpc::GRPC_TIMEOUT_HEADER as GRPC_TIMEOUT_NAME;
use palisade_core::request::{AnyRequest, Http};
use palisade_core::{BoxError, Deadline, Elapsed, RequestParts};
use tokio::time::Instant;
use tower_service::Service;

use crate::events::{DeadlineSource, TimeoutEvent};
use crate::future::ResponseFuture;
use crate::layer::Settings;

/// Fails requests that take longer than a timeout, or than the caller's own deadline.
///
/// Differences from `tower::timeout::Timeout`:
/// - the effective timeout is the smallest of the configured one, an incoming
///   `grpc-timeout` (and optionally a milliseconds header), and a [`Deadline`] an outer
///   layer already put in the request;
/// - the effective [`Deadline`] is put in the request's extensions for inner layers;
/// - the error is [`Elapsed`], which `HandleRejections` renders as 504 /
///   DEADLINE_EXCEEDED;
/// - a request whose deadline has already passed is refused without calling the service.
///
/// Like tower's, it drops the inner future when the time is up, and is `Clone` (clones share
/// the configuration).
///
/// In mode [`AnyRequest`] (built by [`TimeoutLayer::any_request`](crate::TimeoutLayer::any_request)
/// or [`Timeout::any_request`]) it takes any request type and the deadline is the
/// configured timeout alone, as `tower::timeout::Timeout`'s, with the differences above
/// that do not need headers or extensions (the error is [`Elapsed`], a zero timeout fails
/// at once without calling the service, the timer is armed only if the inner future is not
/// ready at once).
#[derive(Debug)]
pub struct Timeout<S, M = Http> {
    inner: S,
    settings: Arc<Settings>,
    mode: PhantomData<fn() -> M>,
}

impl<S: Clone, M> Clone for Timeout<S, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: self.settings.clone(),
            mode: PhantomData,
        }
    }
}

impl<S> Timeout<S> {
    /// Wraps `inner` with a plain `timeout` and the default settings of
    /// [`TimeoutLayer`](crate::TimeoutLayer).
    pub fn new(inner: S, timeout: Duration) -> Self {
        use tower_layer::Layer;
        crate::TimeoutLayer::new(timeout).layer(inner)
    }
}

impl<S> Timeout<S, AnyRequest> {
    /// Wraps `inner`, a service of any request type, with a plain `timeout`; see
    /// [`TimeoutLayer::any_request`](crate::TimeoutLayer::any_request).
    pub fn any_request(inner: S, timeout: Duration) -> Self {
        use tower_layer::Layer;
        crate::TimeoutLayer::any_request(timeout).layer(inner)
    }
}

impl<S, M> Timeout<S, M> {
    pub(crate) fn from_settings(inner: S, settings: Arc<Settings>) -> Self {
        Self {
            inner,
            settings,
            mode: PhantomData,
        }
    }

    palisade_core::define_inner_service_accessors!();
}

/// About 30 years: "no deadline" without overflowing an `Instant`.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The one line of header `name`: `Ok(None)` when absent, `Err(())` when it is sent on
/// several lines (a deadline header has one value; which line a proxy keeps varies, so a
/// repeated one is treated like an invalid value and ignored).
#[inline]
fn single_line<'a>(
    headers: &'a http::HeaderMap,
    name: &http::HeaderName,
) -> Result<Option<&'a HeaderValue>, ()> {
    let mut lines = headers.get_all(name).iter();
    match (lines.next(), lines.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v)),
        (Some(_), Some(_)) => Err(()),
    }
}

/// Parses a whole number of milliseconds (ASCII digits only, at most 12 of them).
fn parse_millis(v: &HeaderValue) -> Option<Duration> {
    let b = v.as_bytes();
    if b.is_empty() || b.len() > 12 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b)
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_millis)
}

impl<S, R> Service<R> for Timeout<S, AnyRequest>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: R) -> Self::Future {
        let s = &*self.settings;
        let timeout = s.timeout;
        let source = DeadlineSource::Configured;
        if timeout.is_zero() {
            s.listeners.emit_named(|instance| TimeoutEvent::Elapsed {
                instance,
                timeout,
                source,
            });
            return ResponseFuture::expired(Elapsed::new(timeout));
        }
        let now = Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or(now + FAR);
        ResponseFuture::new(
            self.inner.call(req),
            deadline,
            timeout,
            source,
            s.listeners.clone(),
        )
    }
}

impl<S, R> Service<R> for Timeout<S, Http>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    R: RequestParts,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut req: R) -> Self::Future {
        let s = &*self.settings;
        let mut timeout = s.timeout;
        let mut source = DeadlineSource::Configured;

        // Most requests carry no deadline header: skip the lookups (and their hashing).
        if !req.headers().is_empty() {
            if s.honour_grpc_timeout
                && let Some(v) = single_line(req.headers(), &GRPC_TIMEOUT_NAME).transpose()
            {
                match v.ok().and_then(|v| grpc_timeout::parse(v.as_bytes()).ok()) {
                    Some(d) if d < timeout => {
                        timeout = d;
                        source = DeadlineSource::GrpcTimeout;
                    }
                    Some(_) => {}
                    None => {
                        s.listeners
                            .emit_named(|instance| TimeoutEvent::InvalidDeadlineHeader {
                                instance,
                                header: GRPC_TIMEOUT_NAME,
                            });
                    }
                }
            }
            if let Some(name) = &s.deadline_header
                && let Some(v) = single_line(req.headers(), name).transpose()
            {
                match v.ok().and_then(parse_millis) {
                    Some(d) if d < timeout => {
                        timeout = d;
                        source = DeadlineSource::Header;
                    }
                    Some(_) => {}
                    None => {
                        s.listeners
                            .emit_named(|instance| TimeoutEvent::InvalidDeadlineHeader {
                                instance,
                                header: name.clone(),
                            });
                    }
                }
            }
        }

        let now = Instant::now();
        let mut deadline = Deadline::at(now.checked_add(timeout).unwrap_or(now + FAR));
        let outer = Deadline::from_request(&req);
        if let Some(o) = outer
            && o < deadline
        {
            deadline = o;
            source = DeadlineSource::Outer;
            timeout = o.instant().saturating_duration_since(now);
        }
        if s.insert_deadline
            && outer != Some(deadline)
            && let Some(ext) = req.extensions_mut()
        {
            ext.insert(deadline);
        }
        if s.outbound {
            let remaining = deadline.instant().saturating_duration_since(now);
            req.headers_mut()
                .insert(GRPC_TIMEOUT_NAME, grpc_timeout::encode(remaining));
            if let Some(name) = &s.deadline_header {
                // Whole milliseconds, rounded down so the next hop never gets more time.
                let ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
                req.headers_mut()
                    .insert(name.clone(), HeaderValue::from(ms));
            }
        }

        if deadline.instant() <= now {
            s.listeners.emit_named(|instance| TimeoutEvent::Elapsed {
                instance,
                timeout,
                source,
            });
            return ResponseFuture::expired(Elapsed::new(timeout));
        }
        ResponseFuture::new(
            self.inner.call(req),
            deadline.instant(),
            timeout,
            source,
            s.listeners.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_header_parsing() {
        assert_eq!(
            parse_millis(&HeaderValue::from_static("250")),
            Some(Duration::from_millis(250))
        );
        for bad in ["", "-1", "1.5", "12ms", "9999999999999"] {
            assert_eq!(parse_millis(&HeaderValue::from_static(bad)), None, "{bad}");
        }
    }
}
