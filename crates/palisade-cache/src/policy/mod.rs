//! The decisions of RFC 9111, one concern per module: may a stored response be reused
//! ([`reuse`], §4), how is it served ([`serve`], §4, §5.1 and range requests), may a
//! response be stored and how does a 304 update it ([`store`], §3, §3.2, §4.3.4). This
//! module holds what they share: the status label, the lookup result and the request facts.

mod reuse;
mod serve;
mod store;

pub(crate) use reuse::{lookup, lookup_with, stale_if_error};
pub(crate) use serve::serve;
pub(crate) use store::{merge_304, storable, stored_response, ttl, with_variant};

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Response, Uri};

use crate::body::CacheBody;
use crate::directives::{RequestDirectives, ResponseDirectives};
use crate::layer::Settings;
use crate::store::StoredResponse;

/// What the status header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Hit,
    Miss,
    Stale,
    Revalidated,
}

impl Label {
    const fn value(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Revalidated => "revalidated",
        }
    }
}

/// Result of looking a request up.
pub(crate) enum Lookup<B> {
    /// Answered from storage (or 504 for `only-if-cached`).
    Serve(Response<CacheBody<B>>),
    /// A stored response exists but must be validated first.
    Validate(Arc<StoredResponse>),
    /// Nothing usable stored.
    Miss,
    /// Served stale within `stale-while-revalidate`; the stored response is to be
    /// refreshed in the background (RFC 5861 §3).
    ServeAndRefresh(Response<CacheBody<B>>, Arc<StoredResponse>),
}

/// The request facts storing needs, kept while the request itself goes upstream.
#[derive(Debug)]
pub(crate) struct RequestInfo {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) directives: RequestDirectives,
}

/// The directives this cache obeys for a response: the targeted field (RFC 9213) when
/// present, else `Cache-Control`.
pub(crate) fn response_directives<St>(s: &Settings<St>, headers: &HeaderMap) -> ResponseDirectives {
    if let Some(name) = &s.targeted_field
        && headers.contains_key(name)
    {
        return ResponseDirectives::from_field(headers, name);
    }
    ResponseDirectives::from_headers(headers)
}

/// Which of the request fields read on the way to a stored answer are present, and the
/// first `Host`, found in one pass over the request's fields: an absent one then costs no
/// map lookup (the common request has none of them but `Host`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestFields<'a> {
    pub(crate) host: Option<&'a HeaderValue>,
    pub(crate) cache_control: bool,
    pub(crate) if_none_match: bool,
    pub(crate) if_modified_since: bool,
    pub(crate) range: bool,
}

impl<'a> RequestFields<'a> {
    pub(crate) fn of(headers: &'a HeaderMap) -> Self {
        use http::header::{CACHE_CONTROL, HOST, IF_MODIFIED_SINCE, IF_NONE_MATCH, RANGE};
        let mut f = Self::default();
        for (name, value) in headers {
            if name == HOST {
                // A name's values come together, first one first.
                if f.host.is_none() {
                    f.host = Some(value);
                }
            } else if name == CACHE_CONTROL {
                f.cache_control = true;
            } else if name == IF_NONE_MATCH {
                f.if_none_match = true;
            } else if name == IF_MODIFIED_SINCE {
                f.if_modified_since = true;
            } else if name == RANGE {
                f.range = true;
            }
        }
        f
    }

    /// The request's directives (no parsing when it has no `Cache-Control`).
    pub(crate) fn directives(self, headers: &HeaderMap) -> RequestDirectives {
        if self.cache_control {
            RequestDirectives::from_headers(headers)
        } else {
            RequestDirectives::default()
        }
    }
}

pub(crate) fn is_get_or_head(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}

/// Unsafe methods (RFC 9110 §9.2.1) invalidate (RFC 9111 §4.4).
pub(crate) fn is_unsafe(m: &Method) -> bool {
    !(is_get_or_head(m) || m == Method::OPTIONS || m == Method::TRACE)
}

pub(crate) fn label_response<St, B>(s: &Settings<St>, res: &mut Response<B>, label: Label) {
    if let Some(name) = &s.status_header {
        res.headers_mut()
            .insert(name.clone(), HeaderValue::from_static(label.value()));
    }
}
