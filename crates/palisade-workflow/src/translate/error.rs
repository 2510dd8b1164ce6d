//! The typed translation failure.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

use palisade_core::grpc::GrpcCode;
use palisade_core::{AnyRejection, BoxError, Rejection};
use serde_json::{Map, Value};

/// Which way a translation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The external request could not become a domain request: the client's fault, 422.
    Request,
    /// The domain response could not become an external one: our side's fault, 502.
    Response,
}

/// A value could not be translated between the external model and the domain model.
///
/// A [`Rejection`]: a request that does not translate is answered **422 Unprocessable
/// Content** (gRPC `INVALID_ARGUMENT`) and a response that does not translate **502 Bad
/// Gateway** (gRPC `INTERNAL`), with an RFC 9457 problem body whose `field` member names the
/// offending field (a JSON-pointer-like path such as `/amount`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TranslationError {
    /// The offending field's path, e.g. `/customer/id`.
    pub field: Cow<'static, str>,
    /// What is wrong with it, e.g. `"must be a decimal amount with at most 2 decimals"`.
    pub reason: Cow<'static, str>,
    /// Which way the translation went.
    pub direction: Direction,
}

impl TranslationError {
    /// A request-side failure on `field` (→ 422).
    pub fn request(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
            direction: Direction::Request,
        }
    }

    /// A response-side failure on `field` (→ 502).
    pub fn response(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
            direction: Direction::Response,
        }
    }

    /// Boxes it as an [`AnyRejection`], the form
    /// [`HandleRejections`](palisade_core::HandleRejections) renders.
    pub fn into_box_error(self) -> BoxError {
        Box::new(AnyRejection::new(self))
    }

    /// Finds a translation failure in an error returned by [`Translate`](super::Translate).
    pub fn find<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a Self> {
        let any = err.downcast_ref::<AnyRejection>()?;
        let inner: &dyn Error = any.get();
        inner.downcast_ref::<Self>()
    }
}

impl fmt::Display for TranslationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}` {}", self.field, self.reason)
    }
}

impl Error for TranslationError {}

impl Rejection for TranslationError {
    fn kind(&self) -> &'static str {
        match self.direction {
            Direction::Request => "translation_failed",
            Direction::Response => "response_translation_failed",
        }
    }
    fn status(&self) -> http::StatusCode {
        match self.direction {
            Direction::Request => http::StatusCode::UNPROCESSABLE_ENTITY,
            Direction::Response => http::StatusCode::BAD_GATEWAY,
        }
    }
    fn grpc_code(&self) -> GrpcCode {
        match self.direction {
            Direction::Request => GrpcCode::InvalidArgument,
            Direction::Response => GrpcCode::Internal,
        }
    }
    fn problem_extensions(&self, members: &mut Map<String, Value>) {
        members.insert("field".to_owned(), Value::String(self.field.to_string()));
    }
}
