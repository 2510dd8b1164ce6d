//! [`HandleRejections`]: turns errors from the layers inside it into responses.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;
use crate::response::{Protocol, error_response};

/// Layer that applies [`HandleRejections`]. Put it outermost, above every Palisade layer.
///
/// ```
/// use palisade_core::{HandleRejectionsLayer, Elapsed};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(HandleRejectionsLayer::new())
///     .service(service_fn(|_req: http::Request<()>| async {
///         Err::<http::Response<http_body_util::Full<bytes::Bytes>>, _>(
///             palisade_core::BoxError::from(Elapsed::new(Duration::from_secs(1))),
///         )
///     }));
/// let res = svc.oneshot(http::Request::new(())).await.unwrap(); // infallible
/// assert_eq!(res.status(), 504);
/// assert_eq!(res.headers()["content-type"], "application/problem+json");
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HandleRejectionsLayer {
    protocol: Protocol,
}

impl HandleRejectionsLayer {
    /// Renders gRPC for `application/grpc*` requests and HTTP problem details otherwise.
    pub const fn new() -> Self {
        Self {
            protocol: Protocol::Auto,
        }
    }
    /// Always renders gRPC trailers-only responses (for a tonic server).
    pub const fn grpc() -> Self {
        Self {
            protocol: Protocol::Grpc,
        }
    }
    /// Always renders HTTP problem details.
    pub const fn http() -> Self {
        Self {
            protocol: Protocol::Http,
        }
    }
    /// Sets the protocol explicitly.
    #[must_use]
    pub const fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }
}

impl<S> Layer<S> for HandleRejectionsLayer {
    type Service = HandleRejections<S>;
    fn layer(&self, inner: S) -> Self::Service {
        HandleRejections {
            inner,
            protocol: self.protocol,
            ready_error: None,
        }
    }
}

/// Middleware that answers every error of the inner service with a response, so the
/// service is infallible (`Error = Infallible`) as axum's `Router` and tonic require.
///
/// Palisade rejections become their own response (504, 503 + `Retry-After`, 429 + RateLimit
/// headers, …, or a gRPC trailers-only status); any other error becomes a 500 (gRPC
/// UNKNOWN) with a generic body, and its text goes to `tracing`. An error from the inner
/// service's `poll_ready` is kept and answered on the next `call`, without calling the inner
/// service.
///
/// Compared with axum's `HandleErrorLayer`, you write no error-handling function.
pub struct HandleRejections<S> {
    inner: S,
    protocol: Protocol,
    ready_error: Option<BoxError>,
}

impl<S: fmt::Debug> fmt::Debug for HandleRejections<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleRejections")
            .field("inner", &self.inner)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl<S: Clone> Clone for HandleRejections<S> {
    fn clone(&self) -> Self {
        // A pending readiness error belongs to this handle only.
        Self {
            inner: self.inner.clone(),
            protocol: self.protocol,
            ready_error: None,
        }
    }
}

impl<S> HandleRejections<S> {
    /// Wraps `inner`, detecting the protocol per request.
    pub const fn new(inner: S) -> Self {
        Self {
            inner,
            protocol: Protocol::Auto,
            ready_error: None,
        }
    }
    crate::define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HandleRejections<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<RejectionBody<ResBody>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.ready_error.is_some() {
            return Poll::Ready(Ok(()));
        }
        if let Err(e) = ready!(self.inner.poll_ready(cx)) {
            self.ready_error = Some(e.into());
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let grpc = self.protocol.is_grpc(req.headers());
        if let Some(err) = self.ready_error.take() {
            return ResponseFuture {
                state: State::Ready {
                    response: Some(error_response(&*err, grpc)),
                },
            };
        }
        ResponseFuture {
            state: State::Called {
                future: self.inner.call(req),
                grpc,
            },
        }
    }
}

pin_project! {
    /// Response future of [`HandleRejections`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F, grpc: bool },
        Ready { response: Option<Response<Full<Bytes>>> },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<RejectionBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match self.project().state.project() {
            StateProj::Called { future, grpc } => match ready!(future.poll(cx)) {
                Ok(res) => res.map(RejectionBody::inner),
                Err(e) => {
                    let e: BoxError = e.into();
                    error_response(&*e, *grpc).map(RejectionBody::rejection)
                }
            },
            StateProj::Ready { response } => response
                .take()
                .expect("ResponseFuture polled after completion")
                .map(RejectionBody::rejection),
        };
        Poll::Ready(Ok(response))
    }
}

pin_project! {
    /// Response body of [`HandleRejections`]: the inner service's body, or a rejection's
    /// problem+json (or empty gRPC) body. No boxing.
    pub struct RejectionBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[project = BodyKindProj]
    enum BodyKind<B> {
        Inner { #[pin] body: B },
        Rejection { body: Full<Bytes> },
    }
}

impl<B> RejectionBody<B> {
    fn inner(body: B) -> Self {
        Self {
            kind: BodyKind::Inner { body },
        }
    }
    fn rejection(body: Full<Bytes>) -> Self {
        Self {
            kind: BodyKind::Rejection { body },
        }
    }
    /// Whether this body is a rendered rejection rather than the inner service's body.
    pub fn is_rejection(&self) -> bool {
        matches!(self.kind, BodyKind::Rejection { .. })
    }
}

impl<B> fmt::Debug for RejectionBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionBody")
            .field("is_rejection", &self.is_rejection())
            .finish_non_exhaustive()
    }
}

impl<B> Body for RejectionBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            BodyKindProj::Inner { body } => body.poll_frame(cx),
            BodyKindProj::Rejection { body } => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(|never: Infallible| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Inner { body } => body.is_end_stream(),
            BodyKind::Rejection { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Inner { body } => body.size_hint(),
            BodyKind::Rejection { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rejection::BulkheadFull;
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tower::{ServiceExt, service_fn};

    #[tokio::test]
    async fn passes_responses_through() {
        let svc = HandleRejectionsLayer::new().layer(service_fn(|_r: Request<()>| async {
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::from_static(b"hello"))))
        }));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn grpc_requests_get_grpc_statuses() {
        let svc = HandleRejectionsLayer::new().layer(service_fn(|_r: Request<()>| async {
            Err::<Response<Full<Bytes>>, _>(BoxError::from(BulkheadFull::new(Some(
                Duration::from_millis(1500),
            ))))
        }));
        let req = Request::builder()
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["grpc-status"], "8");
        assert_eq!(res.headers()["grpc-retry-pushback-ms"], "1500");
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "2");
    }

    #[derive(Clone)]
    struct NeverReady;
    impl Service<Request<()>> for NeverReady {
        type Response = Response<Full<Bytes>>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Self::Response, BoxError>>;
        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Err(BulkheadFull::new(None).into()))
        }
        fn call(&mut self, _req: Request<()>) -> Self::Future {
            panic!("must not be called after a readiness error")
        }
    }

    #[tokio::test]
    async fn readiness_errors_become_responses() {
        let res = HandleRejections::new(NeverReady)
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
        assert!(res.headers().get("retry-after").is_none());
    }
}
