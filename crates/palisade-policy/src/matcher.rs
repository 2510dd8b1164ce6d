//! [`Matcher`]: which requests a route takes — composable predicates on method, path
//! template, prefix, glob, host and headers, combined with `all`/`any`/`not`.
//!
//! In a file a route's `match` is a table whose keys must all hold:
//!
//! ```toml
//! match = { method = ["POST", "PUT"], path = "/orders/{id}", header = { name = "x-tenant" } }
//! match = { any = [{ prefix = "/api" }, { host = "*.example.com" }], not = { glob = "/api/internal/**" } }
//! ```
//!
//! The same in code, as the Specification pattern:
//!
//! ```
//! use palisade_policy::Matcher;
//! use http::Method;
//! let m = Matcher::method(Method::POST).and(Matcher::path("/orders/{id}").unwrap());
//! let req = http::Request::post("/orders/7").body(()).unwrap();
//! assert!(m.matches(&req));
//! assert!(!(!m.clone()).matches(&req));
//! ```

use std::fmt;
use std::ops::Not;

use http::{HeaderName, HeaderValue, Method, Request};
use serde_json::Value;

use crate::error::{Problem, join};
use crate::pattern::{Glob, PathTemplate};

/// A predicate on a request's head.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Matcher {
    /// Every request.
    Always,
    /// One of these methods.
    Method(Vec<Method>),
    /// A path template (`/orders/{id}`).
    Path(PathTemplate),
    /// A path prefix on segment boundaries: `/api` matches `/api` and `/api/x`, not `/apix`.
    Prefix(String),
    /// A path glob (`/static/**/*.js`).
    Glob(Glob),
    /// The host (URI authority or `Host` header, port ignored, case-insensitive); a leading
    /// `*.` matches any subdomain (`*.example.com` matches `a.example.com`, not `example.com`).
    Host(String),
    /// A header is present (`value: None`) or has exactly this value.
    Header {
        /// The header name.
        name: HeaderName,
        /// The exact value, or `None` for presence.
        value: Option<HeaderValue>,
    },
    /// Every matcher holds (an empty list holds).
    All(Vec<Matcher>),
    /// At least one matcher holds (an empty list does not).
    Any(Vec<Matcher>),
    /// The matcher does not hold.
    Not(Box<Matcher>),
}

impl Matcher {
    /// One method.
    pub fn method(method: Method) -> Self {
        Self::Method(vec![method])
    }
    /// A path template (`/orders/{id}`, `/files/{*rest}`).
    pub fn path(template: &str) -> Result<Self, String> {
        PathTemplate::new(template).map(Self::Path)
    }
    /// A path prefix on segment boundaries.
    pub fn prefix(prefix: &str) -> Result<Self, String> {
        if !prefix.starts_with('/') {
            return Err(format!("`{prefix}` must start with `/`"));
        }
        Ok(Self::Prefix(prefix.trim_end_matches('/').to_owned()))
    }
    /// A path glob (`/static/**/*.js`).
    pub fn glob(glob: &str) -> Result<Self, String> {
        Glob::new(glob).map(Self::Glob)
    }
    /// A host, or `*.domain` for its subdomains.
    pub fn host(host: &str) -> Self {
        Self::Host(host.to_ascii_lowercase())
    }
    /// A header is present.
    pub fn header(name: HeaderName) -> Self {
        Self::Header { name, value: None }
    }
    /// A header has exactly `value`.
    pub fn header_value(name: HeaderName, value: HeaderValue) -> Self {
        Self::Header {
            name,
            value: Some(value),
        }
    }
    /// Both hold.
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        match self {
            Self::All(mut v) => {
                v.push(other);
                Self::All(v)
            }
            m => Self::All(vec![m, other]),
        }
    }
    /// Either holds.
    #[must_use]
    pub fn or(self, other: Self) -> Self {
        match self {
            Self::Any(mut v) => {
                v.push(other);
                Self::Any(v)
            }
            m => Self::Any(vec![m, other]),
        }
    }

    /// Whether `req` matches. Allocates nothing.
    pub fn matches<B>(&self, req: &Request<B>) -> bool {
        self.matches_head(req.method(), req.uri(), req.headers())
    }

    /// Whether a request head matches.
    pub fn matches_head(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> bool {
        match self {
            Self::Always => true,
            Self::Method(ms) => ms.contains(method),
            Self::Path(t) => t.matches(uri.path()),
            Self::Prefix(p) => {
                let path = uri.path();
                path.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || p.is_empty())
            }
            Self::Glob(g) => g.matches(uri.path()),
            Self::Host(h) => host_of(uri, headers).is_some_and(|got| host_matches(h, got)),
            Self::Header { name, value } => match value {
                None => headers.contains_key(name),
                Some(v) => headers.get_all(name).iter().any(|got| got == v),
            },
            Self::All(ms) => ms.iter().all(|m| m.matches_head(method, uri, headers)),
            Self::Any(ms) => ms.iter().any(|m| m.matches_head(method, uri, headers)),
            Self::Not(m) => !m.matches_head(method, uri, headers),
        }
    }
}

impl Matcher {
    /// Whether the request's host (URI authority, else `Host`) matches `pattern`.
    pub(crate) fn host_matches_head(
        pattern: &str,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> bool {
        host_of(uri, headers).is_some_and(|got| host_matches(pattern, got))
    }
}

impl Not for Matcher {
    type Output = Self;
    fn not(self) -> Self {
        match self {
            Self::Not(m) => *m,
            m => Self::Not(Box::new(m)),
        }
    }
}

fn host_of<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    if let Some(h) = uri.host() {
        return Some(h);
    }
    let h = headers.get(http::header::HOST)?.to_str().ok()?;
    Some(match h.rfind(':') {
        Some(i) if !h.ends_with(']') => &h[..i],
        _ => h,
    })
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(domain) => {
            host.len() > domain.len() + 1
                && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
                && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
        }
        None => host.eq_ignore_ascii_case(pattern),
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, name: &str, ms: &[Matcher]| {
            write!(f, "{name}(")?;
            for (i, m) in ms.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{m}")?;
            }
            f.write_str(")")
        };
        match self {
            Self::Always => f.write_str("always"),
            Self::Method(ms) => {
                f.write_str("method ")?;
                for (i, m) in ms.iter().enumerate() {
                    if i > 0 {
                        f.write_str("|")?;
                    }
                    f.write_str(m.as_str())?;
                }
                Ok(())
            }
            Self::Path(t) => write!(f, "path {t}"),
            Self::Prefix(p) => write!(f, "prefix {}", if p.is_empty() { "/" } else { p }),
            Self::Glob(g) => write!(f, "glob {g}"),
            Self::Host(h) => write!(f, "host {h}"),
            Self::Header { name, value: None } => write!(f, "header {name}"),
            Self::Header {
                name,
                value: Some(v),
            } => write!(f, "header {name}={}", String::from_utf8_lossy(v.as_bytes())),
            Self::All(ms) => list(f, "all", ms),
            Self::Any(ms) => list(f, "any", ms),
            Self::Not(m) => write!(f, "not({m})"),
        }
    }
}

/// Reads a `match` table at `path`, pushing every problem found.
pub(crate) fn parse(value: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<Matcher> {
    let Value::Object(fields) = value else {
        problems.push(Problem::new(
            path,
            "must be a table of conditions, e.g. { path = \"/orders/{id}\" }",
        ));
        return None;
    };
    if fields.is_empty() {
        problems.push(Problem::new(
            path,
            "needs at least one condition (the `fallback` takes everything else)",
        ));
        return None;
    }
    let before = problems.len();
    let mut all = Vec::with_capacity(fields.len());
    for (key, v) in fields {
        let at = join(path, key);
        let mut bad = |msg: String| problems.push(Problem::new(at.clone(), msg));
        let m = match key.as_str() {
            "method" => parse_methods(v).map_err(&mut bad).ok(),
            "path" => string(v).and_then(Matcher::path).map_err(&mut bad).ok(),
            "prefix" => string(v).and_then(Matcher::prefix).map_err(&mut bad).ok(),
            "glob" => string(v).and_then(Matcher::glob).map_err(&mut bad).ok(),
            "host" => string(v).map(Matcher::host).map_err(&mut bad).ok(),
            "header" => parse_header(v).map_err(&mut bad).ok(),
            "all" | "any" => {
                let Value::Array(items) = v else {
                    bad("must be a list of condition tables".into());
                    continue;
                };
                let ms: Vec<_> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| parse(item, &format!("{at}[{i}]"), problems))
                    .collect();
                Some(if key == "all" {
                    Matcher::All(ms)
                } else {
                    Matcher::Any(ms)
                })
            }
            "not" => parse(v, &at, problems).map(|m| Matcher::Not(Box::new(m))),
            other => {
                bad(format!(
                    "unknown condition `{other}` (known: method, path, prefix, glob, host, header, all, any, not)"
                ));
                None
            }
        };
        all.extend(m);
    }
    if problems.len() > before {
        return None;
    }
    Some(if all.len() == 1 {
        all.pop().expect("one")
    } else {
        Matcher::All(all)
    })
}

fn string(v: &Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("must be a string (got {v})"))
}

fn parse_methods(v: &Value) -> Result<Matcher, String> {
    let one = |v: &Value| -> Result<Method, String> {
        let s = string(v)?;
        Method::from_bytes(s.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("`{s}` is not an HTTP method"))
    };
    match v {
        Value::Array(items) if !items.is_empty() => Ok(Matcher::Method(
            items.iter().map(one).collect::<Result<_, _>>()?,
        )),
        Value::Array(_) => Err("must name at least one method".into()),
        v => Ok(Matcher::Method(vec![one(v)?])),
    }
}

fn parse_header(v: &Value) -> Result<Matcher, String> {
    let (name, value) = match v {
        Value::String(name) => (name.as_str(), None),
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| *k != "name" && *k != "value") {
                return Err(format!("unknown key `{k}` (known: name, value)"));
            }
            let name = o.get("name").ok_or("needs a `name`")?;
            (string(name)?, o.get("value").map(string).transpose()?)
        }
        _ => return Err("must be a header name or { name, value }".into()),
    };
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a header name"))?;
    let value = value
        .map(|v| HeaderValue::from_str(v).map_err(|_| format!("`{v}` is not a header value")))
        .transpose()?;
    Ok(Matcher::Header { name, value })
}
