//! RFC 9111 §4 and RFC 5861: may a stored response be reused for this request, as is,
//! stale, or only after validation?

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri};
use tokio::time::Instant;

use crate::body::CacheBody;
use crate::directives::{MaxStale, RequestDirectives};
use crate::events::CacheEvent;
use crate::key;
use crate::layer::Settings;
use crate::store::{Entry, StoredResponse};

use super::serve::serve_with;
use super::{Label, Lookup, RequestFields};

/// Picks the most recent variant of `entry` matching the request's key and `Vary` values.
fn select(
    entry: &Entry,
    uri: &Uri,
    host: Option<&HeaderValue>,
    headers: &HeaderMap,
    key_headers: &[HeaderName],
) -> Option<Arc<StoredResponse>> {
    if !key::matches_with_host(&entry.key, uri, host, headers, key_headers) {
        return None;
    }
    entry
        .variants
        .iter()
        .rev()
        .find(|v| {
            v.vary
                .iter()
                .all(|(name, value)| key::vary_matches(headers, name, value.as_deref()))
        })
        .cloned()
}

/// RFC 9111 §4: may the stored response be reused for this request, as is, stale, or only
/// after validation?
pub(crate) fn lookup<St, B>(
    s: &Settings<St>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    entry: Option<&Entry>,
    now: Instant,
) -> Lookup<B> {
    lookup_with(
        s,
        RequestFields::of(headers),
        method,
        uri,
        headers,
        entry,
        now,
    )
}

/// [`lookup`] with the request's fields already surveyed (the hit path has them).
pub(crate) fn lookup_with<St, B>(
    s: &Settings<St>,
    fields: RequestFields<'_>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    entry: Option<&Entry>,
    now: Instant,
) -> Lookup<B> {
    let rd = fields.directives(headers);
    let Some(v) = entry.and_then(|e| select(e, uri, fields.host, headers, &s.key_headers)) else {
        if rd.only_if_cached {
            return only_if_cached_miss(s);
        }
        return Lookup::Miss;
    };
    let age = v.current_age(now);
    let fresh = v.lifetime > age;
    let must_validate = v.directives.no_cache
        || rd.no_cache
        || rd.max_age.seconds().is_some_and(|m| age.as_secs() > m)
        || rd
            .min_fresh
            .seconds()
            .is_some_and(|m| v.lifetime.saturating_sub(age) < Duration::from_secs(m));
    if !must_validate {
        if fresh {
            s.listeners
                .emit_named(|instance| CacheEvent::Hit { instance });
            return Lookup::Serve(serve_with(s, fields, method, headers, &v, age, Label::Hit));
        }
        let staleness = age.saturating_sub(v.lifetime);
        let allowed = match rd.max_stale {
            MaxStale::Absent => false,
            MaxStale::Any => true,
            MaxStale::Seconds(n) => staleness <= Duration::from_secs(n),
        };
        if allowed && !v.directives.forbids_stale() {
            s.listeners
                .emit_named(|instance| CacheEvent::Stale { instance });
            return Lookup::Serve(serve_with(
                s,
                fields,
                method,
                headers,
                &v,
                age,
                Label::Stale,
            ));
        }
        let swr = v
            .directives
            .stale_while_revalidate
            .is_some_and(|w| staleness <= Duration::from_secs(w));
        if swr && !v.directives.forbids_stale() && !rd.only_if_cached {
            s.listeners
                .emit_named(|instance| CacheEvent::Stale { instance });
            let res = serve_with(s, fields, method, headers, &v, age, Label::Stale);
            return Lookup::ServeAndRefresh(res, v);
        }
    }
    if rd.only_if_cached {
        return only_if_cached_miss(s);
    }
    Lookup::Validate(v)
}

fn only_if_cached_miss<St, B>(s: &Settings<St>) -> Lookup<B> {
    s.listeners
        .emit_named(|instance| CacheEvent::OnlyIfCachedMiss { instance });
    let mut res = Response::new(CacheBody::empty());
    *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    Lookup::Serve(res)
}

/// Whether a stale response may answer an upstream failure (RFC 5861 §4): a
/// `stale-if-error` window from the request or the response covers its staleness, and
/// nothing forbids serving it stale.
pub(crate) fn stale_if_error(
    v: &StoredResponse,
    request: &RequestDirectives,
    now: Instant,
) -> bool {
    if v.directives.forbids_stale() || v.directives.no_cache {
        return false;
    }
    let Some(window) = request.stale_if_error.or(v.directives.stale_if_error) else {
        return false;
    };
    let staleness = v.current_age(now).saturating_sub(v.lifetime);
    staleness <= Duration::from_secs(window)
}
