//! Flag providers: where snapshots of flags come from.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use palisade_core::{ConfigError, Listeners};

use crate::events::ToggleEvent;
use crate::flag::FlagSet;

/// The state of a provider (OpenFeature provider status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderStatus {
    /// Serving flags.
    Ready,
    /// Not ready yet: evaluation returns the default with `PROVIDER_NOT_READY`.
    NotReady,
    /// Serving possibly outdated flags (e.g. the last good file after a failed reload).
    Stale,
    /// Failed for good: evaluation returns the default with `PROVIDER_FATAL`.
    Fatal,
}

/// A source of flag snapshots. Implement it for remote providers (keep an [`ArcSwap`] or a
/// [`DynamicProvider`] and swap in new snapshots from a background task).
pub trait Provider: Send + Sync + 'static {
    /// The current snapshot (an `Arc` clone: no allocation).
    fn snapshot(&self) -> Arc<FlagSet>;
    /// The provider status.
    fn status(&self) -> ProviderStatus {
        ProviderStatus::Ready
    }
}

impl<P: Provider + ?Sized> Provider for Arc<P> {
    fn snapshot(&self) -> Arc<FlagSet> {
        (**self).snapshot()
    }
    fn status(&self) -> ProviderStatus {
        (**self).status()
    }
}

/// Flags fixed in code.
#[derive(Debug, Clone)]
pub struct StaticProvider {
    flags: Arc<FlagSet>,
}

impl StaticProvider {
    /// Serves `flags` forever.
    pub fn new(flags: FlagSet) -> Self {
        Self {
            flags: Arc::new(flags),
        }
    }
}

impl Provider for StaticProvider {
    fn snapshot(&self) -> Arc<FlagSet> {
        self.flags.clone()
    }
}

/// Flags replaced at runtime with [`DynamicProvider::set`] (the building block of remote
/// providers). Clones share the flags.
#[derive(Debug, Clone, Default)]
pub struct DynamicProvider {
    flags: Arc<ArcSwap<FlagSet>>,
}

impl DynamicProvider {
    /// Starts with `flags`.
    pub fn new(flags: FlagSet) -> Self {
        Self {
            flags: Arc::new(ArcSwap::from_pointee(flags)),
        }
    }
    /// Replaces the flags atomically; evaluations in progress finish on the old snapshot.
    pub fn set(&self, flags: FlagSet) {
        self.flags.store(Arc::new(flags));
    }
}

impl Provider for DynamicProvider {
    fn snapshot(&self) -> Arc<FlagSet> {
        self.flags.load_full()
    }
}

struct FileInner {
    path: PathBuf,
    flags: ArcSwap<FlagSet>,
    modified: Mutex<Option<SystemTime>>,
    stale: std::sync::atomic::AtomicBool,
    listeners: Listeners<ToggleEvent>,
}

/// Flags from a JSON file (`{"flags": {..}}`, see [`FlagSet::from_json`]; `*.toml` with
/// feature `toml`), hot-reloaded:
/// call [`FileProvider::reload`] or let [`FileProvider::watch`] poll the modification time.
/// A bad file keeps the last good flags (status [`ProviderStatus::Stale`]) and emits
/// [`ToggleEvent::ReloadFailed`]. Clones share the flags.
#[derive(Clone)]
pub struct FileProvider {
    inner: Arc<FileInner>,
}

impl fmt::Debug for FileProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileProvider")
            .field("path", &self.inner.path)
            .field("flags", &self.inner.flags.load().len())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<(FlagSet, Option<SystemTime>), ConfigError> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("path", format!("cannot read {}: {e}", path.display())))?;
    #[cfg(feature = "toml")]
    if path.extension().is_some_and(|e| e == "toml") {
        return Ok((FlagSet::from_toml(&text)?, modified));
    }
    Ok((FlagSet::from_json(&text)?, modified))
}

impl FileProvider {
    /// Loads `path`; the first load must succeed.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        Self::open_with(path, Listeners::new().named("toggle"))
    }

    /// Loads `path`, reporting reloads to `listeners`.
    pub fn open_with(
        path: impl Into<PathBuf>,
        listeners: Listeners<ToggleEvent>,
    ) -> Result<Self, ConfigError> {
        let path = path.into();
        let (flags, modified) = read(&path)?;
        Ok(Self {
            inner: Arc::new(FileInner {
                path,
                flags: ArcSwap::from_pointee(flags),
                modified: Mutex::new(modified),
                stale: std::sync::atomic::AtomicBool::new(false),
                listeners,
            }),
        })
    }

    /// Re-reads the file now. On error the last good flags stay and the error is returned
    /// and emitted as [`ToggleEvent::ReloadFailed`].
    pub fn reload(&self) -> Result<(), ConfigError> {
        let inner = &*self.inner;
        match read(&inner.path) {
            Ok((flags, modified)) => {
                let n = flags.len();
                inner.flags.store(Arc::new(flags));
                *inner
                    .modified
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = modified;
                inner
                    .stale
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                inner
                    .listeners
                    .emit_named(|instance| ToggleEvent::Reloaded {
                        instance,
                        source: inner.path.display().to_string(),
                        flags: n,
                    });
                Ok(())
            }
            Err(e) => {
                // Remember the bad file's mtime so the watcher does not retry it in a loop.
                let modified = std::fs::metadata(&inner.path)
                    .and_then(|m| m.modified())
                    .ok();
                *inner
                    .modified
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = modified;
                inner
                    .stale
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                inner
                    .listeners
                    .emit_named(|instance| ToggleEvent::ReloadFailed {
                        instance,
                        source: inner.path.display().to_string(),
                        error: e.to_string(),
                    });
                Err(e)
            }
        }
    }

    /// Reloads when the file's modification time changed; `Ok(true)` when it reloaded.
    pub fn reload_if_changed(&self) -> Result<bool, ConfigError> {
        let now = std::fs::metadata(&self.inner.path)
            .and_then(|m| m.modified())
            .ok();
        let before = *self
            .inner
            .modified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now == before {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// Spawns a task polling the modification time every `every` (on the current tokio
    /// runtime). Abort the handle to stop it.
    ///
    /// # Errors
    /// `every` outside [`POLL_INTERVAL_RANGE`] (100 ms to 1 h), naming `poll_interval`:
    /// zero would panic in `tokio::time::interval`, and anything below 100 ms is a busy loop
    /// of `stat` calls. Nothing is spawned then.
    pub fn watch(&self, every: Duration) -> Result<tokio::task::JoinHandle<()>, ConfigError> {
        palisade_core::config::check_duration(
            "poll_interval",
            every,
            POLL_INTERVAL_RANGE.0,
            POLL_INTERVAL_RANGE.1,
        )?;
        let this = self.clone();
        Ok(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let _ = this.reload_if_changed();
            }
        }))
    }
}

/// Bounds of [`FileProvider::watch`]'s interval (and of `ToggleConfig::poll_interval`).
pub const POLL_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(3600));

impl Provider for FileProvider {
    fn snapshot(&self) -> Arc<FlagSet> {
        self.inner.flags.load_full()
    }
    fn status(&self) -> ProviderStatus {
        if self.inner.stale.load(std::sync::atomic::Ordering::Relaxed) {
            ProviderStatus::Stale
        } else {
            ProviderStatus::Ready
        }
    }
}
