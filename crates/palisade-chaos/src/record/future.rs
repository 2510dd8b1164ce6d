//! The response future of [`Record`](crate::record::Record).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use crate::record::body::{RecordBody, Side, Tap};
use crate::record::draft::Shared;
use crate::record::layer::Settings;

pin_project! {
    /// Response future of [`Record`](crate::record::Record).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        recording: Option<(Arc<Shared>, Arc<Settings>)>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, recording: Option<(Arc<Shared>, Arc<Settings>)>) -> Self {
        Self { inner, recording }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
{
    type Output = Result<Response<RecordBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        let Some((shared, settings)) = this.recording.take() else {
            return Poll::Ready(res.map(|r| r.map(|b| RecordBody::new(b, None))));
        };
        Poll::Ready(match res {
            Ok(res) => {
                let (parts, body) = res.into_parts();
                let headers = settings.rules.capture(&parts.headers);
                shared.with(|d| {
                    d.status = Some(parts.status);
                    d.response_headers = headers;
                });
                let tap = Tap::new(shared, Side::Response, settings.limit);
                Ok(Response::from_parts(
                    parts,
                    RecordBody::new(body, Some(tap)),
                ))
            }
            Err(e) => {
                shared.with(|d| {
                    d.error = Some(e.to_string());
                    d.ended = Some(tokio::time::Instant::now());
                });
                Err(e)
            }
        })
    }
}
