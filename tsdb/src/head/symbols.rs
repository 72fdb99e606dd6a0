//! Interned label strings of one shard.
//!
//! GPU-fleet label values repeat massively (`modelName`, `job`, metric
//! names, a host name shared by ~4,000 series), so each distinct string is
//! stored once per shard and series refer to it by a `u32` id.

use std::collections::HashMap;
use std::sync::Arc;

#[derive(Default)]
pub(crate) struct Symbols {
    ids: HashMap<Arc<str>, u32>,
    strings: Vec<Arc<str>>,
}

impl Symbols {
    /// Returns the id of `s`, adding it on first sight.
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        let a: Arc<str> = Arc::from(s);
        self.strings.push(a.clone());
        self.ids.insert(a, id);
        id
    }

    pub(crate) fn get(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }

    pub(crate) fn get_arc(&self, id: u32) -> &Arc<str> {
        &self.strings[id as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.strings.len()
    }

    /// Approximate heap bytes held, for memory accounting.
    pub(crate) fn heap_bytes(&self) -> usize {
        let strings: usize = self.strings.iter().map(|s| s.len() + 16).sum();
        strings + self.strings.capacity() * 16 + self.ids.capacity() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_each_string_once() {
        let mut s = Symbols::default();
        let a = s.intern("gpu");
        let b = s.intern("UUID");
        assert_eq!(s.intern("gpu"), a);
        assert_ne!(a, b);
        assert_eq!(s.get(b), "UUID");
        assert_eq!(s.len(), 2);
    }
}
