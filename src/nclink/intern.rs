//! A decoder's cache of item ids for samples whose device model is not at hand (Query answers
//! before the probe, NC-Link 3.0 `paths`, indexed items), in front of the process-wide table
//! of [`Id`]s so that decoding rarely takes its lock. The cache is bounded; the table refuses
//! ids beyond its own bound, and the message is dead-lettered as `overloaded`.

use rustc_hash::FxHashSet;

use super::error::{DecodeError, Reason};
use crate::id::Id;

/// Most distinct ids kept.
pub const MAX_INTERNED: usize = 65_536;

/// Hands out one `Id` per distinct id.
#[derive(Debug, Default)]
pub struct Interner {
    ids: FxHashSet<Id>,
}

impl Interner {
    /// An id from the wire (bounded: see [`intern`]).
    pub fn intern(&mut self, id: &str) -> Result<Id, DecodeError> {
        self.cached(id, intern)
    }

    /// An id from the engine's own files (the lake): always accepted.
    pub fn intern_trusted(&mut self, id: &str) -> Id {
        let Ok(id) = self.cached(id, |id| Ok::<_, std::convert::Infallible>(Id::from(id)));
        id
    }

    fn cached<E>(&mut self, id: &str, make: impl Fn(&str) -> Result<Id, E>) -> Result<Id, E> {
        if let Some(shared) = self.ids.get(id) {
            return Ok(shared.clone());
        }
        let shared = make(id)?;
        if self.ids.len() < MAX_INTERNED {
            self.ids.insert(shared.clone());
        }
        Ok(shared)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// An id from the wire, refused (as `overloaded`) once the process holds too many.
pub fn intern(id: &str) -> Result<Id, DecodeError> {
    Id::intern(id).map_err(|e| DecodeError::new(Reason::Overloaded, format!("id {id:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_stays_bounded() {
        let mut interner = Interner::default();
        let a = interner.intern("0103502202");
        let b = interner.intern("0103502202");
        assert_eq!(a, b);
        for i in 0..MAX_INTERNED + 10 {
            interner.intern(&i.to_string()).unwrap();
        }
        assert_eq!(interner.len(), MAX_INTERNED);
        assert_eq!(
            &*interner.intern("new-after-bound").unwrap(),
            "new-after-bound"
        );
    }
}
