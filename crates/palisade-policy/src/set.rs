//! [`PolicySet`]: a validated policy file, its routes' layers built.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use palisade_toggle::Provider;

use crate::build::{self, ClientLayers, Context, Effective, Reporter, ServerLayers};
use crate::error::{PolicyError, Problem};
use crate::matcher::Matcher;
use crate::merge::{self, Origin};
use crate::schema::{self, CLIENT_SECTIONS, RawFile, RawRoute, SERVER_SECTIONS};
use crate::source::Format;

/// One server route: its matcher, effective settings and built layers.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) at: String,
    pub(crate) name: String,
    pub(crate) matcher: Matcher,
    pub(crate) policy: Option<String>,
    pub(crate) effective: Effective,
    pub(crate) layers: Arc<ServerLayers>,
    /// The effective settings as canonical JSON: equal fingerprints, equal stacks.
    pub(crate) fingerprint: String,
}

/// One outbound client policy: its upstream, effective settings and built layers.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) at: String,
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) path_prefix: Option<String>,
    pub(crate) policy: Option<String>,
    pub(crate) effective: Effective,
    pub(crate) layers: Arc<ClientLayers>,
    pub(crate) fingerprint: String,
}

/// A validated policy file: routes in order (first match wins), the mandatory fallback, the
/// client policies, and the lint warnings.
///
/// ```
/// use palisade_policy::PolicySet;
/// let set = PolicySet::from_toml(r#"
///     [defaults]
///     timeout = { timeout = "5s" }
///     [[routes]]
///     match = { path = "/orders/{id}" }
///     timeout = { timeout = "1s" }
///     [fallback]
/// "#).unwrap();
/// assert_eq!(set.route_names(), ["path /orders/{id}", "fallback"]);
/// ```
#[derive(Debug)]
pub struct PolicySet {
    pub(crate) routes: Vec<Route>,
    pub(crate) clients: Vec<Client>,
    pub(crate) warnings: Vec<Problem>,
    /// The routes (fallback excluded) by first path segment.
    pub(crate) index: crate::index::Index,
}

/// Options for loading a [`PolicySet`]: what a file cannot say.
#[derive(Debug, Clone, Default)]
pub struct Loader {
    cx: Context,
}

impl Loader {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The flag provider that routes' `gate = "flag"` sections read.
    #[must_use]
    pub fn flags(mut self, provider: impl Provider) -> Self {
        self.cx.flags = Some(Arc::new(provider));
        self
    }

    /// Parses and validates `text`.
    pub fn load_str(&self, text: &str, format: Format) -> Result<PolicySet, PolicyError> {
        self.load_str_over(text, format, None)
    }

    /// Reads, parses and validates the file at `path` (format from its extension).
    pub fn load_path(&self, path: impl AsRef<Path>) -> Result<PolicySet, PolicyError> {
        self.load_path_over(path.as_ref(), None)
    }

    pub(crate) fn load_path_over(
        &self,
        path: &Path,
        previous: Option<&PolicySet>,
    ) -> Result<PolicySet, PolicyError> {
        let shown = path.display().to_string();
        let format = Format::from_path(path).ok_or_else(|| {
            PolicyError::one(
                shown.clone(),
                "unknown extension: use .toml, .json, .yaml or .yml",
            )
        })?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::one(shown, format!("cannot read: {e}")))?;
        self.load_str_over(&text, format, previous)
    }

    /// Builds the set; routes whose effective settings equal those of the route of the same
    /// name in `previous` take over its layers, and with them their state.
    pub(crate) fn load_str_over(
        &self,
        text: &str,
        format: Format,
        previous: Option<&PolicySet>,
    ) -> Result<PolicySet, PolicyError> {
        let root = format.parse(text)?;
        let mut problems = Vec::new();
        let file = schema::read(&root, &mut problems);
        let set = self.finish(&file, previous, problems);
        if previous.is_some() {
            // A reload: the parse tree and the file's shape are freed off its path.
            crate::reload::bury((root, file));
        }
        set
    }

    /// Builds the set a file's shape (or a [`PolicySetBuilder`](crate::PolicySetBuilder))
    /// describes.
    pub(crate) fn load_raw(
        &self,
        file: &RawFile,
        previous: Option<&PolicySet>,
    ) -> Result<PolicySet, PolicyError> {
        self.finish(file, previous, Vec::new())
    }

    fn finish(
        &self,
        file: &RawFile,
        previous: Option<&PolicySet>,
        mut problems: Vec<Problem>,
    ) -> Result<PolicySet, PolicyError> {
        let set = assemble(file, &self.cx, previous, &mut problems);
        if problems.is_empty() {
            let mut set = set;
            set.warnings = crate::lint::lint(&set);
            Ok(set)
        } else {
            Err(PolicyError::new(problems))
        }
    }
}

impl PolicySet {
    /// Parses and validates a TOML policy file.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        Loader::new().load_str(text, Format::Toml)
    }
    /// Parses and validates a JSON policy file.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        Loader::new().load_str(text, Format::Json)
    }
    /// Parses and validates a YAML policy file (feature `yaml`).
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        Loader::new().load_str(text, Format::Yaml)
    }
    /// Reads a policy file; the format comes from the extension (`.toml`, `.json`,
    /// `.yaml`/`.yml`).
    ///
    /// ```no_run
    /// let set = palisade_policy::PolicySet::from_path("palisade.toml")?;
    /// println!("{}", set.explain());
    /// # Ok::<(), palisade_policy::PolicyError>(())
    /// ```
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        Loader::new().load_path(path)
    }
    /// The routes' names in match order, the fallback last.
    pub fn route_names(&self) -> Vec<&str> {
        self.routes.iter().map(|r| r.name.as_str()).collect()
    }
    /// Legal but risky settings found by [`lint`](crate::lint) (retry without a budget, …).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }
    /// The index of the route that takes a request head (the fallback's if none).
    pub(crate) fn route_for(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> usize {
        let last = self.routes.len() - 1;
        self.index
            .find(uri.path(), |i| {
                self.routes[i].matcher.matches_head(method, uri, headers)
            })
            .unwrap_or(last)
    }
}

fn effective(file: &RawFile, r: &RawRoute, names: &[&'static str]) -> Effective {
    let policy = r
        .policy
        .as_ref()
        .and_then(|p| file.policies.get(p).map(|s| (p, s)));
    let mut out = Effective::new();
    for &section in names {
        let layers = [
            (Origin::Default, file.defaults.get(section)),
            (
                Origin::Policy(policy.map(|(n, _)| n.clone()).unwrap_or_default()),
                policy.and_then(|(_, s)| s.get(section)),
            ),
            (Origin::Route, r.sections.get(section)),
        ];
        if let Some(m) = merge::merge(layers) {
            out.insert(section, m);
        }
    }
    out
}

fn fingerprint(eff: &Effective) -> String {
    let map: serde_json::Map<String, serde_json::Value> = eff
        .iter()
        .map(|(k, m)| ((*k).to_owned(), m.value.clone()))
        .collect();
    serde_json::Value::Object(map).to_string()
}

fn assemble(
    file: &RawFile,
    cx: &Context,
    previous: Option<&PolicySet>,
    problems: &mut Vec<Problem>,
) -> PolicySet {
    let old: HashMap<(&str, &str), &Arc<ServerLayers>> = previous
        .map(|p| {
            p.routes
                .iter()
                .map(|r| ((r.name.as_str(), r.fingerprint.as_str()), &r.layers))
                .collect()
        })
        .unwrap_or_default();
    let mut routes = Vec::with_capacity(file.routes.len() + 1);
    for r in file.routes.iter().chain(file.fallback.as_ref()) {
        let eff = effective(file, r, &SERVER_SECTIONS);
        let fp = fingerprint(&eff);
        let layers = if let Some(l) = old.get(&(r.name.as_str(), fp.as_str())) {
            Some(Arc::clone(l))
        } else {
            let mut rep = Reporter {
                at: &r.at,
                instance: &r.name,
                problems,
            };
            build::server(&eff, cx, &mut rep).map(Arc::new)
        };
        if let Some(layers) = layers {
            routes.push(Route {
                at: r.at.clone(),
                name: r.name.clone(),
                matcher: r.matcher.clone(),
                policy: r.policy.clone(),
                effective: eff,
                layers,
                fingerprint: fp,
            });
        }
    }
    let old_clients: HashMap<(&str, &str), &Arc<ClientLayers>> = previous
        .map(|p| {
            p.clients
                .iter()
                .map(|c| ((c.name.as_str(), c.fingerprint.as_str()), &c.layers))
                .collect()
        })
        .unwrap_or_default();
    let mut clients = Vec::with_capacity(file.clients.len());
    for c in &file.clients {
        if c.sections
            .get("cache")
            .is_some_and(serde_json::Value::is_object)
        {
            problems.push(Problem::new(
                crate::error::join(&c.at, "cache"),
                "a client has no cache layer (servers only)",
            ));
        }
        let eff = effective(file, c, &CLIENT_SECTIONS);
        let fp = fingerprint(&eff);
        let layers = if let Some(l) = old_clients.get(&(c.name.as_str(), fp.as_str())) {
            Some(Arc::clone(l))
        } else {
            let mut rep = Reporter {
                at: &c.at,
                instance: &c.name,
                problems,
            };
            build::client(&eff, &mut rep).map(Arc::new)
        };
        let (host, path_prefix) = c.upstream.clone().unwrap_or_default();
        if let Some(layers) = layers {
            clients.push(Client {
                at: c.at.clone(),
                name: c.name.clone(),
                host,
                path_prefix,
                policy: c.policy.clone(),
                effective: eff,
                layers,
                fingerprint: fp,
            });
        }
    }
    // Policies no route uses are checked on their own, so a typo never waits for its first user.
    for (name, sections) in &file.policies {
        let used = file
            .routes
            .iter()
            .chain(file.fallback.as_ref())
            .chain(&file.clients)
            .any(|r| r.policy.as_ref() == Some(name));
        if !used {
            let lone = RawRoute {
                at: format!("policies.{name}"),
                name: name.clone(),
                matcher: Matcher::Always,
                policy: None,
                sections: sections.clone(),
                upstream: None,
            };
            let eff = effective(&RawFile::default(), &lone, &SERVER_SECTIONS);
            let mut rep = Reporter {
                at: &lone.at,
                instance: &lone.name,
                problems,
            };
            build::server(&eff, cx, &mut rep);
            let client_eff = effective(&RawFile::default(), &lone, &["retry", "attempt_timeout"]);
            build::client(&client_eff, &mut rep);
        }
    }
    let index = crate::index::Index::new(
        routes[..routes.len().saturating_sub(1)]
            .iter()
            .map(|r| &r.matcher),
    );
    PolicySet {
        routes,
        clients,
        warnings: Vec::new(),
        index,
    }
}
