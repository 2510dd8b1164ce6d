//! Reload triggers: file changes (polled) and SIGHUP.

use crate::support;

use std::time::Duration;

use palisade_policy::{Loader, PolicyHandle};
use support::Server;

fn policy(limit: u32) -> String {
    format!(
        "[[routes]]\nmatch = {{ path = \"/x\" }}\nrate_limit = {{ quotas = [{{ limit = {limit}, window = \"1h\" }}] }}\n[fallback]\n"
    )
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "palisade-policy-watch-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(start_paused = true)]
async fn a_changed_file_is_reloaded_and_a_broken_one_is_rejected() {
    let path = temp_file("poll", &policy(1));
    let handle = PolicyHandle::from_path(Loader::new(), &path).unwrap();
    let s = Server::new(handle.clone());
    let watcher = handle.watch_file(Duration::from_secs(1));
    assert_eq!(s.status("/x").await, 200);
    assert_eq!(s.status("/x").await, 429);

    std::fs::write(&path, policy(100)).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(handle.reloads(), 1);
    assert_eq!(s.status("/x").await, 200, "the new quota is live");

    std::fs::write(&path, "[[routes]]\nmatch = { path = \"x\" }\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(handle.failed_reloads(), 1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        handle.failed_reloads(),
        1,
        "not retried until the file changes again"
    );
    assert_eq!(s.status("/x").await, 200, "the last good set still serves");
    watcher.abort();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[cfg(all(unix, feature = "sighup"))]
#[tokio::test]
async fn sighup_reloads() {
    let path = temp_file("hup", &policy(1));
    let handle = PolicyHandle::from_path(Loader::new(), &path).unwrap();
    let task = handle.reload_on_sighup().unwrap();
    std::fs::write(&path, policy(2)).unwrap();
    let pid = std::process::id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    for _ in 0..200 {
        if handle.reloads() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handle.reloads(), 1);
    task.abort();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// File-system notifications, debounced: real time, since the events come from the kernel.
#[cfg(feature = "watch")]
#[tokio::test]
async fn notifications_reload_once_per_burst_of_changes() {
    let path = temp_file("notify", &policy(1));
    let handle = PolicyHandle::from_path(Loader::new(), &path).unwrap();
    let task = handle
        .watch_file_events(Duration::from_millis(200))
        .unwrap();
    // A burst: three writes in a row, one reload.
    for limit in [2, 3, 4] {
        std::fs::write(&path, policy(limit)).unwrap();
    }
    let wait = |n: u64| {
        let handle = handle.clone();
        async move {
            for _ in 0..500 {
                if handle.reloads() >= n {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait(1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(handle.reloads(), 1, "debounced");
    let s = Server::new(handle.clone());
    for _ in 0..4 {
        assert_eq!(
            s.status("/x").await,
            200,
            "the last write's quota (4) is live"
        );
    }
    assert_eq!(s.status("/x").await, 429);
    // Replaced by rename, as editors and ConfigMaps do: still seen.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, policy(100)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    wait(2).await;
    assert_eq!(handle.reloads(), 2);
    assert_eq!(s.status("/x").await, 200);
    task.abort();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}
