//! Reload on file-system notifications (feature `watch`, the `notify` crate: inotify on
//! Linux, FSEvents on macOS, ReadDirectoryChangesW on Windows), debounced.

use std::path::PathBuf;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::reload::PolicyHandle;

impl PolicyHandle {
    /// Reloads when the policy file changes, as the operating system reports it, once the
    /// changes have been quiet for `debounce` (clamped to 10 ms–1 min): an editor's
    /// write-rename-chmod, or a Kubernetes ConfigMap's symlink swap, is one reload. The
    /// file's directory is watched, not the file, so a file replaced by rename is still
    /// seen. A change that fails to load is reported like any failed
    /// [`reload`](Self::reload).
    ///
    /// Where notifications are unreliable (network file systems, some containers), use
    /// [`watch_file`](Self::watch_file), which polls; both may run at once. Abort the
    /// returned task to stop watching. A handle without a file, or a directory that cannot
    /// be watched, is an error.
    pub fn watch_file_events(&self, debounce: Duration) -> Result<JoinHandle<()>, notify::Error> {
        let debounce = debounce.clamp(Duration::from_millis(10), Duration::from_secs(60));
        let Some(path) = self.path().map(PathBuf::from) else {
            return Err(notify::Error::generic("this policy handle has no file"));
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                // Reading the file (our own reload included) is not a change.
                if let Ok(e) = res
                    && !matches!(e.kind, EventKind::Access(_))
                {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        let handle = self.clone();
        Ok(tokio::spawn(async move {
            // The watcher lives as long as the task.
            let _watcher = watcher;
            while rx.recv().await.is_some() {
                // Debounce: wait until no event came for `debounce`.
                while let Ok(Some(())) = tokio::time::timeout(debounce, rx.recv()).await {}
                if std::fs::metadata(&path).is_ok() {
                    let _ = handle.reload();
                }
            }
        }))
    }
}
