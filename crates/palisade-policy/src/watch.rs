//! Reload triggers: the policy file changing on disk, and SIGHUP.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use crate::reload::PolicyHandle;

/// What identifies a version of the file: modification time and length.
fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl PolicyHandle {
    /// Reloads whenever the policy file changes, checking its modification time and length
    /// every `every` (clamped to 100 ms–1 h) on the current Tokio runtime. Polling rather
    /// than inotify: it sees a Kubernetes ConfigMap's symlink swap and an editor's
    /// rename-over alike, and runs the same on every platform. A change that fails to load
    /// is reported like any failed [`reload`](Self::reload) and tried again only when the
    /// file changes again. Abort the returned task to stop watching; a handle without a
    /// file returns a task that ends at once.
    pub fn watch_file(&self, every: Duration) -> JoinHandle<()> {
        let every = every.clamp(Duration::from_millis(100), Duration::from_secs(3600));
        let handle = self.clone();
        let path = self.path().map(PathBuf::from);
        // The version being served is stamped now, not when the task first runs, so a change
        // made right after this call is not mistaken for the baseline.
        let mut last = path.as_ref().and_then(stamp);
        tokio::spawn(async move {
            let Some(path) = path else { return };
            loop {
                tokio::time::sleep(every).await;
                let now = stamp(&path);
                if now.is_some() && now != last {
                    last = now;
                    let _ = handle.reload();
                }
            }
        })
    }

    /// Reloads on every SIGHUP (Unix; feature `sighup`). Abort the returned task to stop.
    #[cfg(all(unix, feature = "sighup"))]
    pub fn reload_on_sighup(&self) -> std::io::Result<JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        let handle = self.clone();
        Ok(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = handle.reload();
            }
        }))
    }
}
