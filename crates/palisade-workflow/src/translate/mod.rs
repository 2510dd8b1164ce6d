//! The anti-corruption layer: typed translation between an external model and the domain.
//!
//! [`TranslateLayer`] puts a translator in front of a service written in the domain's
//! terms: each external request goes through [`ToDomain::to_domain`], the service's
//! response through [`FromDomain::from_domain`]. A value that does not translate is a
//! typed [`TranslationError`] naming the field, boxed as a rejection, so that
//! [`HandleRejections`](palisade_core::HandleRejections) answers **422** with a problem
//! body (`"field": "/amount"`) instead of a panic or a 500 (a response that does not
//! translate back is the upstream's fault: **502**). Unlike tower's `MapRequest` /
//! `MapResponse`, the mapping may fail, and its failure has a status of its own.
//!
//! Put it innermost, right around the service it adapts: the layers outside it (retry,
//! breaker, idempotency) see the external model and its refusals.
//!
//! # Example: a legacy API's field names and units
//!
//! ```
//! use palisade_workflow::translate::{TranslateLayer, TranslationError};
//! use serde_json::{Value, json};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! /// The domain's transfer: amounts in cents.
//! struct Transfer { account: String, cents: u64 }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // The legacy API says `acct_no` and `amt` (a decimal string in euros).
//! let to_domain = |v: Value| -> Result<Transfer, TranslationError> {
//!     let account = v["acct_no"].as_str()
//!         .ok_or_else(|| TranslationError::request("/acct_no", "must be a string"))?
//!         .to_owned();
//!     let amt = v["amt"].as_str()
//!         .ok_or_else(|| TranslationError::request("/amt", "must be a decimal string"))?;
//!     let (euros, cents) = amt.split_once('.').unwrap_or((amt, "0"));
//!     let cents = euros.parse::<u64>().ok()
//!         .zip(format!("{cents:0<2}").parse::<u64>().ok().filter(|_| cents.len() <= 2))
//!         .and_then(|(e, c)| e.checked_mul(100)?.checked_add(c))
//!         .ok_or_else(|| TranslationError::request("/amt", "must be euros with at most 2 decimals"))?;
//!     Ok(Transfer { account, cents })
//! };
//! let from_domain = |cents: u64| -> Result<Value, TranslationError> {
//!     Ok(json!({ "bal": format!("{}.{:02}", cents / 100, cents % 100) }))
//! };
//! let domain = service_fn(|t: Transfer| async move {
//!     assert_eq!(t.account, "FR76-1");
//!     Ok::<u64, palisade_core::BoxError>(10_000 - t.cents)
//! });
//! let svc = TranslateLayer::from_fns(to_domain, from_domain).layer(domain);
//!
//! let ok = svc.clone().oneshot(json!({ "acct_no": "FR76-1", "amt": "12.5" })).await.unwrap();
//! assert_eq!(ok, json!({ "bal": "87.50" }));
//!
//! let err = svc.oneshot(json!({ "acct_no": "FR76-1", "amt": "12.345" })).await.unwrap_err();
//! let rejection = palisade_core::rejection::find_rejection(&*err).unwrap();
//! assert_eq!(rejection.status(), 422);
//! let body = palisade_core::response::problem_json(rejection);
//! assert_eq!(body["field"], "/amt");
//! # }
//! ```

mod error;
pub mod future;
mod layer;
mod service;
mod translator;

pub use error::{Direction, TranslationError};
pub use layer::TranslateLayer;
pub use service::Translate;
pub use translator::{FnTranslator, FromDomain, ToDomain};
