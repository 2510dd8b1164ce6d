//! One call to one endpoint: the group's pooled client with its response-head timeout, and
//! what a failed call becomes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_core::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

/// Why an upstream call failed.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// No response head within the group's `timeout`.
    Timeout,
    /// The request body went over the route's `max_request_body`.
    BodyTooLarge,
    /// The endpoint's breaker refused the call (it was ejected, or its recovery probes were
    /// all taken, between the pick and the call).
    Ejected,
    /// Connecting failed.
    Connect(String),
    /// Anything else (reset, protocol error).
    Other(String),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("the upstream did not answer in time"),
            Self::BodyTooLarge => f.write_str("the request body is over the route's limit"),
            Self::Ejected => f.write_str("the upstream endpoint is ejected; try again"),
            Self::Connect(e) => write!(f, "cannot connect to the upstream: {e}"),
            Self::Other(e) => write!(f, "upstream error: {e}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// The client of one group.
pub(crate) type HttpClient = Client<HttpConnector, Body>;

/// One call to one endpoint: the pooled client with the group's response-head timeout.
#[derive(Clone)]
pub(crate) struct Send {
    pub(super) client: HttpClient,
    pub(super) timeout: Duration,
}

impl Service<Request<Body>> for Send {
    type Response = Response<Incoming>;
    type Error = UpstreamError;
    type Future = Pin<
        Box<dyn Future<Output = Result<Response<Incoming>, UpstreamError>> + std::marker::Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let fut = self.client.request(req);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, fut).await {
                Err(_) => Err(UpstreamError::Timeout),
                Ok(Ok(res)) => Ok(res),
                Ok(Err(e)) => Err(classify_client_error(&e)),
            }
        })
    }
}

fn classify_client_error(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return UpstreamError::BodyTooLarge;
        }
        source = s.source();
    }
    let chain = error_chain(e);
    if e.is_connect() {
        UpstreamError::Connect(chain)
    } else {
        UpstreamError::Other(chain)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}
