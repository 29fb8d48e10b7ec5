//! Shared item ids for samples whose device model is not at hand (Query answers before the
//! probe, NC-Link 3.0 `paths`, indexed items). Bounded, so a stream of made-up ids cannot grow
//! it without limit: past the bound ids are simply allocated per use.

use std::sync::Arc;

use rustc_hash::FxHashSet;

/// Most distinct ids kept.
pub const MAX_INTERNED: usize = 65_536;

/// Hands out one `Arc<str>` per distinct id.
#[derive(Debug, Default)]
pub struct Interner {
    ids: FxHashSet<Arc<str>>,
}

impl Interner {
    pub fn intern(&mut self, id: &str) -> Arc<str> {
        if let Some(shared) = self.ids.get(id) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(id);
        if self.ids.len() < MAX_INTERNED {
            self.ids.insert(shared.clone());
        }
        shared
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_stays_bounded() {
        let mut interner = Interner::default();
        let a = interner.intern("0103502202");
        let b = interner.intern("0103502202");
        assert!(Arc::ptr_eq(&a, &b));
        for i in 0..MAX_INTERNED + 10 {
            interner.intern(&i.to_string());
        }
        assert_eq!(interner.len(), MAX_INTERNED);
        assert_eq!(&*interner.intern("new-after-bound"), "new-after-bound");
    }
}
