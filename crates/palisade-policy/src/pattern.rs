//! Path templates (`/orders/{id}`) and globs (`/static/**/*.js`), compiled once, matched
//! without allocating.

use std::fmt;

/// A path template in axum's syntax: literal segments, `{name}` (one non-empty segment) and a
/// final `{*name}` (the non-empty rest). `/orders/{id}` matches `/orders/7`, not `/orders`,
/// `/orders/` or `/orders/7/items`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segments: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param,
    Rest,
}

impl PathTemplate {
    /// Compiles `template`; the error says what is wrong.
    pub fn new(template: &str) -> Result<Self, String> {
        let Some(body) = template.strip_prefix('/') else {
            return Err(format!("`{template}` must start with `/`"));
        };
        let parts: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let seg = if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
            {
                if let Some(name) = inner.strip_prefix('*') {
                    if i + 1 != parts.len() {
                        return Err(format!(
                            "`{template}`: `{{*{name}}}` must be the last segment"
                        ));
                    }
                    check_name(template, name)?;
                    Seg::Rest
                } else {
                    check_name(template, inner)?;
                    Seg::Param
                }
            } else if part.contains(['{', '}']) {
                return Err(format!(
                    "`{template}`: a parameter must be a whole segment, like `/orders/{{id}}`"
                ));
            } else {
                Seg::Lit((*part).to_owned())
            };
            segments.push(seg);
        }
        Ok(Self {
            source: template.to_owned(),
            segments,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The first segment, if it is a literal.
    pub(crate) fn first_literal(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Seg::Lit(l)) => Some(l),
            _ => None,
        }
    }

    /// Whether `path` (a URI path, without the query) matches.
    pub fn matches(&self, path: &str) -> bool {
        let Some(mut rest) = path.strip_prefix('/') else {
            return false;
        };
        let last = self.segments.len() - 1;
        for (i, seg) in self.segments.iter().enumerate() {
            if *seg == Seg::Rest {
                return !rest.is_empty();
            }
            let j = crate::index::slash(rest);
            let (head, tail) = if j < rest.len() {
                (&rest[..j], Some(&rest[j + 1..]))
            } else {
                (rest, None)
            };
            let ok = match seg {
                Seg::Lit(l) => head == l,
                Seg::Param => !head.is_empty(),
                Seg::Rest => unreachable!("handled above"),
            };
            if !ok {
                return false;
            }
            match tail {
                Some(t) if i < last => rest = t,
                Some(_) => return false,
                None => return i == last,
            }
        }
        false
    }
}

fn check_name(template: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!(
            "`{template}`: parameter names are letters, digits and `_` (got `{name}`)"
        ));
    }
    Ok(())
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A path glob: segments separated by `/`; in a segment `*` matches any run of characters
/// and `?` one character (never `/`); a whole segment `**` matches zero or more segments.
/// `/static/**/*.js` matches `/static/app.js` and `/static/a/b/app.js`. Matching is linear
/// in practice (greedy with one backtrack point per level), so a hostile path cannot make it
/// explode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    segments: Vec<GlobSeg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobSeg {
    Any,
    Pat(String),
}

impl Glob {
    /// Compiles `glob`; the error says what is wrong.
    pub fn new(glob: &str) -> Result<Self, String> {
        let Some(body) = glob.strip_prefix('/') else {
            return Err(format!("`{glob}` must start with `/`"));
        };
        let mut segments = Vec::new();
        for part in body.split('/') {
            if part == "**" {
                if segments.last() != Some(&GlobSeg::Any) {
                    segments.push(GlobSeg::Any);
                }
            } else if part.contains("**") {
                return Err(format!(
                    "`{glob}`: `**` must be a whole segment, like `/a/**/b`"
                ));
            } else {
                segments.push(GlobSeg::Pat(part.to_owned()));
            }
        }
        Ok(Self {
            source: glob.to_owned(),
            segments,
        })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The first segment, if it is a literal (no `*`, `?` or `**`).
    pub(crate) fn first_literal(&self) -> Option<&str> {
        match self.segments.first() {
            Some(GlobSeg::Pat(p)) if !p.contains(['*', '?']) => Some(p),
            _ => None,
        }
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let Some(path) = path.strip_prefix('/') else {
            return false;
        };
        let n = path.len();
        let (mut gi, mut pi) = (0usize, 0usize); // pi > n: no segment left
        let mut star: Option<(usize, usize)> = None;
        loop {
            let at_end = pi > n;
            if gi < self.segments.len() {
                match &self.segments[gi] {
                    GlobSeg::Any => {
                        star = Some((gi + 1, pi));
                        gi += 1;
                        continue;
                    }
                    GlobSeg::Pat(p) if !at_end => {
                        let end = path[pi..].find('/').map_or(n, |j| pi + j);
                        if segment_matches(p.as_bytes(), &path.as_bytes()[pi..end]) {
                            gi += 1;
                            pi = end + 1;
                            continue;
                        }
                    }
                    GlobSeg::Pat(_) => {}
                }
            } else if at_end {
                return true;
            }
            match star {
                Some((sg, sp)) if sp <= n => {
                    let end = path[sp..].find('/').map_or(n, |j| sp + j);
                    star = Some((sg, end + 1));
                    gi = sg;
                    pi = end + 1;
                }
                _ => return false,
            }
        }
    }
}

/// `*` and `?` within one segment: the classic greedy match with one backtrack point.
fn segment_matches(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p + 1, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = PathTemplate::new("/orders/{id}").unwrap();
        assert!(t.matches("/orders/7"));
        for p in [
            "/orders",
            "/orders/",
            "/orders/7/items",
            "/order/7",
            "orders/7",
            "",
        ] {
            assert!(!t.matches(p), "{p}");
        }
        let root = PathTemplate::new("/").unwrap();
        assert!(root.matches("/"));
        assert!(!root.matches("/a"));
        let rest = PathTemplate::new("/files/{*path}").unwrap();
        assert!(rest.matches("/files/a/b.txt"));
        assert!(!rest.matches("/files/"));
        assert!(!rest.matches("/files"));
        assert!(PathTemplate::new("orders").is_err());
        assert!(PathTemplate::new("/f/{*p}/x").is_err());
        assert!(PathTemplate::new("/f/{id}.json").is_err());
        assert!(PathTemplate::new("/f/{}").is_err());
    }

    #[test]
    fn globs() {
        let g = Glob::new("/static/**/*.js").unwrap();
        assert!(g.matches("/static/app.js"));
        assert!(g.matches("/static/a/b/app.js"));
        assert!(!g.matches("/static/a/b/app.css"));
        assert!(!g.matches("/other/app.js"));
        let g = Glob::new("/v?/*").unwrap();
        assert!(g.matches("/v1/users"));
        assert!(!g.matches("/v10/users"));
        assert!(!g.matches("/v1/users/7"));
        assert!(Glob::new("/**").unwrap().matches("/any/thing/at/all"));
        assert!(Glob::new("/a**").is_err());
        // Pathological input stays fast (greedy matching, no exponential backtracking).
        let g = Glob::new("/**/*a*a*a*a*a*b").unwrap();
        let long = format!("/{}", "a/".repeat(200) + &"a".repeat(200));
        assert!(!g.matches(&long));
    }
}
