//! [`Series`]: metric handles cached per `(layer, event, instance)`, found without a lock
//! or an allocation once registered.

use std::sync::{Mutex, PoisonError};

use arc_swap::ArcSwap;
use metrics::SharedString;

/// Most distinct instance names labelled per cache; further instances share the label
/// value [`OTHER`]. Instance names come from code and config, so this only bounds a
/// misconfiguration.
pub(crate) const MAX_INSTANCES: usize = 256;

/// The label value of instances past [`MAX_INSTANCES`] (and of canary arms past the cap).
pub(crate) const OTHER: &str = "other";

struct Entry<H> {
    layer: &'static str,
    name: &'static str,
    instance: Box<str>,
    handles: H,
}

/// Handles of type `H`, one per `(layer, event name, instance)` seen; copy-on-write, so a
/// lookup is one atomic load and a short scan comparing two pointers and a short string.
pub(crate) struct Series<H> {
    entries: ArcSwap<Vec<Entry<H>>>,
    insert: Mutex<()>,
}

impl<H> Default for Series<H> {
    fn default() -> Self {
        Self {
            entries: ArcSwap::default(),
            insert: Mutex::new(()),
        }
    }
}

impl<H: Clone> Series<H> {
    /// Series cached so far.
    pub(crate) fn len(&self) -> usize {
        self.entries.load().len()
    }

    /// Runs `f` on the handles of `(layer, name, instance)`, registering them first with
    /// `make(instance label)` if new.
    pub(crate) fn with<R>(
        &self,
        layer: &'static str,
        name: &'static str,
        instance: &str,
        make: impl FnOnce(SharedString) -> H,
        f: impl FnOnce(&H) -> R,
    ) -> R {
        let entries = self.entries.load();
        if let Some(e) = find(&entries, layer, name, instance) {
            return f(&e.handles);
        }
        drop(entries);
        f(&self.insert_slow(layer, name, instance, make))
    }

    #[cold]
    fn insert_slow(
        &self,
        layer: &'static str,
        name: &'static str,
        instance: &str,
        make: impl FnOnce(SharedString) -> H,
    ) -> H {
        let _guard = self.insert.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.entries.load_full();
        if let Some(e) = find(&current, layer, name, instance) {
            return e.handles.clone();
        }
        let distinct = |e: &&Entry<H>| e.layer == layer && e.name == name;
        let label = if current.iter().filter(distinct).count() >= MAX_INSTANCES {
            // Registered once under "other", then cached under the real name like any other.
            SharedString::const_str(OTHER)
        } else {
            SharedString::from(instance.to_owned())
        };
        let handles = make(label);
        let mut next: Vec<Entry<H>> = current
            .iter()
            .map(|e| Entry {
                layer: e.layer,
                name: e.name,
                instance: e.instance.clone(),
                handles: e.handles.clone(),
            })
            .collect();
        next.push(Entry {
            layer,
            name,
            instance: instance.into(),
            handles: handles.clone(),
        });
        self.entries.store(next.into());
        handles
    }
}

fn find<'a, H>(
    entries: &'a [Entry<H>],
    layer: &'static str,
    name: &'static str,
    instance: &str,
) -> Option<&'a Entry<H>> {
    entries
        .iter()
        .find(|e| e.layer == layer && e.name == name && *e.instance == *instance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_key_and_instances_past_the_cap_are_other() {
        let series = Series::<String>::default();
        let label = |i: &str| series.with("l", "e", i, |l| l.to_string(), Clone::clone);
        assert_eq!(label("a"), "a");
        assert_eq!(label("a"), "a");
        assert_eq!(series.len(), 1);
        for i in 1..MAX_INSTANCES {
            label(&format!("i{i}"));
        }
        assert_eq!(label("late"), OTHER);
        assert_eq!(label("a"), "a");
        assert_eq!(series.len(), MAX_INSTANCES + 1);
    }
}
