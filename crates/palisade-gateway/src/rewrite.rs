//! Path rewriting: strip a prefix, or fill a template (`/v2/items/{id}`) with the parameters
//! the route's `match.path` captured (`/items/{id}`). The query string is kept as it is.

use http::uri::PathAndQuery;

/// A path template in the policy file's syntax: literal segments, `{name}` (one segment) and
/// a final `{*name}` (the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    source: String,
    segments: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param(String),
    Rest(String),
}

impl Template {
    pub(crate) fn new(template: &str) -> Result<Self, String> {
        let Some(body) = template.strip_prefix('/') else {
            return Err(format!("`{template}` must start with `/`"));
        };
        let parts: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if let Some(name) = inner.strip_prefix('*') {
                    if i + 1 != parts.len() {
                        return Err(format!("`{template}`: `{{*{name}}}` must be last"));
                    }
                    segments.push(Seg::Rest(name.to_owned()));
                } else if inner.is_empty() || inner.contains(['{', '}', '*']) {
                    return Err(format!("`{template}`: bad parameter `{part}`"));
                } else {
                    segments.push(Seg::Param(inner.to_owned()));
                }
            } else if part.contains(['{', '}']) {
                return Err(format!(
                    "`{template}`: a parameter must be a whole segment, like `/items/{{id}}`"
                ));
            } else {
                segments.push(Seg::Lit((*part).to_owned()));
            }
        }
        Ok(Self {
            source: template.to_owned(),
            segments,
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The parameter names, in order.
    pub(crate) fn params(&self) -> Vec<&str> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Seg::Param(n) | Seg::Rest(n) => Some(n.as_str()),
                Seg::Lit(_) => None,
            })
            .collect()
    }

    /// The parameters of `path`, if it matches.
    fn capture<'p>(&self, path: &'p str) -> Option<Vec<(&str, &'p str)>> {
        let mut rest = path.strip_prefix('/')?;
        let mut out = Vec::new();
        let last = self.segments.len() - 1;
        for (i, seg) in self.segments.iter().enumerate() {
            if let Seg::Rest(n) = seg {
                if rest.is_empty() {
                    return None;
                }
                out.push((n.as_str(), rest));
                return Some(out);
            }
            let (part, tail) = match rest.find('/') {
                Some(j) => (&rest[..j], Some(&rest[j + 1..])),
                None => (rest, None),
            };
            match seg {
                Seg::Lit(l) if l == part => {}
                Seg::Param(n) if !part.is_empty() => out.push((n.as_str(), part)),
                _ => return None,
            }
            match tail {
                Some(t) if i < last => rest = t,
                None if i == last => return Some(out),
                _ => return None,
            }
        }
        None
    }

    /// This template filled with `params`.
    fn fill(&self, params: &[(&str, &str)], out: &mut String) {
        for seg in &self.segments {
            out.push('/');
            match seg {
                Seg::Lit(l) => out.push_str(l),
                Seg::Param(n) | Seg::Rest(n) => {
                    if let Some((_, v)) = params.iter().find(|(k, _)| k == n) {
                        out.push_str(v);
                    }
                }
            }
        }
    }
}

/// `path` without `prefix` (`/api/x` → `/x`, `/api` → `/`); `None` when it does not start
/// with the prefix at a segment boundary.
pub(crate) fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

/// The upstream path and query for `pq` under these rules; `None` keeps it.
pub(crate) fn rewrite(
    pq: &PathAndQuery,
    strip: Option<&str>,
    template: Option<&Template>,
    captures: Option<&Template>,
) -> Option<PathAndQuery> {
    let path = pq.path();
    let mut out = String::with_capacity(pq.as_str().len() + 16);
    if let Some(t) = template {
        let params = captures.and_then(|c| c.capture(path)).unwrap_or_default();
        t.fill(&params, &mut out);
    } else if let Some(p) = strip {
        out.push_str(strip_prefix(path, p)?);
    } else {
        return None;
    }
    if let Some(q) = pq.query() {
        out.push('?');
        out.push_str(q);
    }
    PathAndQuery::try_from(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pq(s: &str) -> PathAndQuery {
        PathAndQuery::try_from(s).unwrap()
    }

    #[test]
    fn strips_at_segment_boundaries() {
        assert_eq!(strip_prefix("/api/x", "/api"), Some("/x"));
        assert_eq!(strip_prefix("/api", "/api"), Some("/"));
        assert_eq!(strip_prefix("/api/", "/api/"), Some("/"));
        assert_eq!(strip_prefix("/apix", "/api"), None);
        let r = rewrite(&pq("/api/a/b?x=1"), Some("/api"), None, None).unwrap();
        assert_eq!(r.as_str(), "/a/b?x=1");
    }

    #[test]
    fn templates_fill_captured_parameters() {
        let from = Template::new("/orders/{id}/items/{*rest}").unwrap();
        let to = Template::new("/v2/{id}/{rest}").unwrap();
        assert_eq!(to.params(), ["id", "rest"]);
        let r = rewrite(&pq("/orders/7/items/a/b?q"), None, Some(&to), Some(&from)).unwrap();
        assert_eq!(r.as_str(), "/v2/7/a/b?q");
        assert!(Template::new("/a{b}").is_err());
        assert!(Template::new("/{*a}/b").is_err());
        assert!(from.capture("/orders/7").is_none());
        assert!(from.capture("/orders//items/x").is_none());
    }
}
