//! [`PolicyHandle`]: the live policy set, swapped atomically on reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak, mpsc};

use arc_swap::ArcSwap;

use crate::error::PolicyError;
use crate::layer::PolicyLayer;
use crate::set::{Loader, PolicySet};
use crate::source::Format;

/// Something built from a policy set that must follow reloads (a [`PolicyService`]'s
/// per-route stacks).
///
/// [`PolicyService`]: crate::PolicyService
pub(crate) trait Rebuild: Send + Sync {
    fn rebuild(&self, set: &Arc<PolicySet>);
}

/// Drops `garbage` on a background thread (`palisade-policy-drop`), off the reload's path:
/// freeing a replaced set of 1,000 routes, its parse tree and its stacks takes a fifth of
/// the reload's time. Inline if that thread cannot be started.
pub(crate) fn bury<T: Send + 'static>(garbage: T) {
    static GRAVE: OnceLock<Option<mpsc::Sender<Box<dyn Send>>>> = OnceLock::new();
    let grave = GRAVE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Box<dyn Send>>();
        std::thread::Builder::new()
            .name("palisade-policy-drop".into())
            .spawn(move || rx.into_iter().for_each(drop))
            .ok()
            .map(|_| tx)
    });
    if let Some(tx) = grave {
        // A send fails only if the thread is gone; the garbage then drops here.
        let _ = tx.send(Box::new(garbage));
    }
}

/// The live [`PolicySet`] and the services built from it. Cheap to clone (an `Arc`).
///
/// [`reload`](Self::reload) builds a new set from the file and swaps it in atomically: a
/// route whose effective settings did not change keeps its layers, hence its breaker window
/// and state, limiter buckets and bulkhead slots; a changed route gets new layers, and
/// requests already in flight finish on the old stack. A file that fails to parse or validate
/// is rejected with every problem, the last good set stays active, and the failure is
/// counted ([`failed_reloads`](Self::failed_reloads)) and logged at `warn` (target
/// `palisade_policy`).
#[derive(Clone)]
pub struct PolicyHandle {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<PolicySet>,
    services: Mutex<Vec<Weak<dyn Rebuild>>>,
    loader: Loader,
    path: Option<PathBuf>,
    reloads: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for PolicyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyHandle")
            .field("path", &self.inner.path)
            .field("reloads", &self.reloads())
            .field("failed_reloads", &self.failed_reloads())
            .finish_non_exhaustive()
    }
}

impl PolicyHandle {
    /// A handle on `set`, without a file (reload with [`reload_str`](Self::reload_str)).
    pub fn new(set: PolicySet) -> Self {
        Self::with(set, Loader::new(), None)
    }

    /// Loads the file at `path` with `loader`'s options; [`reload`](Self::reload) reads it again.
    pub fn from_path(loader: Loader, path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref().to_owned();
        let set = loader.load_path(&path)?;
        Ok(Self::with(set, loader, Some(path)))
    }

    fn with(set: PolicySet, loader: Loader, path: Option<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(set),
                services: Mutex::new(Vec::new()),
                loader,
                path,
                reloads: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        }
    }

    /// The active set.
    pub fn current(&self) -> Arc<PolicySet> {
        self.inner.current.load_full()
    }

    /// A layer applying the live set's per-route stacks (see [`PolicyLayer`]).
    pub fn layer(&self) -> PolicyLayer {
        PolicyLayer::new(self.clone())
    }

    /// Reads the file again and swaps the new set in (see the type's docs).
    pub fn reload(&self) -> Result<(), PolicyError> {
        let Some(path) = &self.inner.path else {
            return Err(PolicyError::one(
                "<file>",
                "this handle has no file; use reload_str",
            ));
        };
        let prev = self.current();
        let next = self.inner.loader.load_path_over(path, Some(&prev));
        bury(prev);
        self.install(next)
    }

    /// Swaps in the set `text` describes (see the type's docs).
    pub fn reload_str(&self, text: &str, format: Format) -> Result<(), PolicyError> {
        let prev = self.current();
        let next = self.inner.loader.load_str_over(text, format, Some(&prev));
        bury(prev);
        self.install(next)
    }

    fn install(&self, next: Result<PolicySet, PolicyError>) -> Result<(), PolicyError> {
        match next {
            Ok(set) => {
                let set = Arc::new(set);
                bury(self.inner.current.swap(Arc::clone(&set)));
                let services: Vec<_> = {
                    let mut list = self
                        .inner
                        .services
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    list.retain(|w| w.strong_count() > 0);
                    list.iter().filter_map(Weak::upgrade).collect()
                };
                for s in services {
                    s.rebuild(&set);
                }
                self.inner.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(target: "palisade_policy", routes = set.routes.len(), "policy set reloaded");
                Ok(())
            }
            Err(e) => {
                self.inner.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "palisade_policy", problems = e.problems().len(), error = %e, "policy reload rejected; the last good set stays active");
                Err(e)
            }
        }
    }

    /// The file this handle reloads from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Successful reloads so far.
    pub fn reloads(&self) -> u64 {
        self.inner.reloads.load(Ordering::Relaxed)
    }

    /// Rejected reloads so far.
    pub fn failed_reloads(&self) -> u64 {
        self.inner.failed.load(Ordering::Relaxed)
    }

    pub(crate) fn register(&self, s: Weak<dyn Rebuild>) {
        self.inner
            .services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(s);
    }
}
