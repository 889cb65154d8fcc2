//! A value that is read on every call and replaced, rarely, by a configuration change.
//!
//! Reads are lock-free: a chain of `OnceLock`s, one atomic load per link, where each
//! replacement appends a leaked node and the newest node wins. Replacements are rare (an
//! operator's change) and their nodes are small, so the leak is bounded by how often the
//! configuration changes, and nothing on the call path ever takes a lock or clones an `Arc`.
//! Writers are serialised by the caller (the configuration lock).

use std::fmt;
use std::sync::OnceLock;

/// A lock-free, replaceable value.
pub(crate) struct Live<T: 'static> {
    initial: T,
    next: OnceLock<&'static Node<T>>,
}

struct Node<T: 'static> {
    value: T,
    next: OnceLock<&'static Node<T>>,
}

impl<T: 'static> Live<T> {
    /// A value that has not been replaced.
    pub(crate) const fn new(value: T) -> Self {
        Live {
            initial: value,
            next: OnceLock::new(),
        }
    }

    /// The newest value.
    #[inline]
    pub(crate) fn get(&self) -> &T {
        let mut value = &self.initial;
        let mut next = &self.next;
        while let Some(node) = next.get() {
            value = &node.value;
            next = &node.next;
        }
        value
    }

    /// Replaces the value for every read that starts after this returns. Callers serialise
    /// replacements; a racing second writer would find the tail taken and append after it.
    pub(crate) fn set(&self, value: T) {
        let node: &'static Node<T> = Box::leak(Box::new(Node {
            value,
            next: OnceLock::new(),
        }));
        let mut next = &self.next;
        loop {
            match next.get() {
                Some(n) => next = &n.next,
                // If someone appended first, keep walking to the new tail.
                None => {
                    if next.set(node).is_ok() {
                        return;
                    }
                }
            }
        }
    }
}

impl<T: fmt::Debug + 'static> fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::Live;

    #[test]
    fn newest_value_wins() {
        let live = Live::new(1);
        assert_eq!(*live.get(), 1);
        live.set(2);
        live.set(3);
        assert_eq!(*live.get(), 3);
    }
}
