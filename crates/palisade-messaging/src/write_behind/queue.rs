//! The coalescing queue shared by the service and the worker.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Keys in arrival order of their first queued write, with their latest value.
#[derive(Debug)]
pub(crate) struct Queue<K, V> {
    values: HashMap<K, V>,
    order: VecDeque<K>,
}

/// What [`Queue::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed<K, V> {
    /// A new key was queued.
    Added,
    /// The key was queued already; its value was replaced.
    Coalesced,
    /// The queue is full; the write comes back.
    Full(K, V),
}

impl<K: Hash + Eq + Clone, V> Queue<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            values: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn push(&mut self, key: K, value: V, capacity: usize) -> Pushed<K, V> {
        let len = self.order.len();
        match self.values.entry(key) {
            Entry::Occupied(mut e) => {
                e.insert(value);
                Pushed::Coalesced
            }
            Entry::Vacant(e) if len >= capacity => Pushed::Full(e.into_key(), value),
            Entry::Vacant(e) => {
                self.order.push_back(e.key().clone());
                e.insert(value);
                Pushed::Added
            }
        }
    }

    /// Puts a failed write back unless a newer value for its key is queued; ignores the
    /// capacity (the write was acknowledged already).
    pub(crate) fn requeue(&mut self, key: K, value: V) {
        if let Entry::Vacant(e) = self.values.entry(key) {
            self.order.push_back(e.key().clone());
            e.insert(value);
        }
    }

    /// Takes up to `n` writes, oldest key first.
    pub(crate) fn take(&mut self, n: usize) -> Vec<(K, V)> {
        let n = n.min(self.order.len());
        let mut batch = Vec::with_capacity(n);
        for key in self.order.drain(..n) {
            if let Some(value) = self.values.remove(&key) {
                batch.push((key, value));
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_bounds_and_keeps_order() {
        let mut q = Queue::new();
        assert_eq!(q.push("a", 1, 2), Pushed::Added);
        assert_eq!(q.push("b", 2, 2), Pushed::Added);
        assert_eq!(q.push("a", 3, 2), Pushed::Coalesced);
        assert_eq!(q.push("c", 4, 2), Pushed::Full("c", 4));
        assert_eq!(q.len(), 2);
        assert_eq!(q.take(1), vec![("a", 3)]);
        q.requeue("a", 1);
        q.requeue("b", 9); // b is queued with a newer value: kept
        assert_eq!(q.take(10), vec![("b", 2), ("a", 1)]);
        assert_eq!(q.len(), 0);
        assert!(q.take(5).is_empty());
    }
}
