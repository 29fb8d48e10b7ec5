//! Device and item ids, interned once per process.
//!
//! Every sample names a device and an item, and millions of samples a second are copied,
//! shared between dataflow workers and dropped. As `Arc<str>` each copy and drop was an atomic
//! operation on a counter that every core touched: dropping a batch on the worker that
//! finished it last cost two contended decrements per sample and kept two workers from
//! scaling (docs/benchmarks.md). An [`Id`] is a pointer to a string interned for the life of
//! the process: copying it is a copy, dropping it is nothing, and equal ids are the same
//! pointer, so comparing them is one comparison.
//!
//! Interned strings are never freed, so the table is bounded: [`Id::intern`] refuses new ids
//! beyond [`MAX_IDS`] (decoding dead-letters such messages as `overloaded`), while ids from
//! trusted places (the pipeline file, the simulator, the engine's own spool and log) use
//! [`Id::from`], which always succeeds. A plant of 10,000 machines with 1,000 item ids each
//! needs 11,000.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{LazyLock, Mutex};

use rustc_hash::FxHashSet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most distinct ids [`Id::intern`] accepts per process (about 60 bytes each).
pub const MAX_IDS: usize = 262_144;

static TABLE: LazyLock<Mutex<FxHashSet<&'static str>>> = LazyLock::new(Mutex::default);

/// A device or item id: one interned string, copied without reference counting.
#[derive(Clone)]
pub struct Id(&'static str);

/// [`Id::intern`] refused a new id: the table holds [`MAX_IDS`] already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyIds;

impl fmt::Display for TooManyIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {MAX_IDS} distinct device and item ids")
    }
}

impl Id {
    /// The id for `text`, interning it if new, unless the table is full.
    pub fn intern(text: &str) -> Result<Id, TooManyIds> {
        Self::interned(text, true)
    }

    /// The id for `text` if it was ever interned (a lookup from an HTTP request must not add
    /// to the table).
    pub fn get(text: &str) -> Option<Id> {
        let table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
        table.get(text).map(|s| Id(s))
    }

    /// Distinct ids interned so far.
    #[cfg(test)]
    fn count() -> usize {
        TABLE.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    fn interned(text: &str, bounded: bool) -> Result<Id, TooManyIds> {
        let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = table.get(text) {
            return Ok(Id(s));
        }
        if bounded && table.len() >= MAX_IDS {
            return Err(TooManyIds);
        }
        let s: &'static str = Box::leak(text.to_owned().into_boxed_str());
        table.insert(s);
        Ok(Id(s))
    }
}

impl From<&str> for Id {
    /// Interns without the bound: for ids from trusted places only (see the module's header).
    fn from(text: &str) -> Id {
        Id::interned(text, false).expect("unbounded")
    }
}

impl From<String> for Id {
    fn from(text: String) -> Id {
        Id::from(text.as_str())
    }
}

impl From<&String> for Id {
    fn from(text: &String) -> Id {
        Id::from(text.as_str())
    }
}

impl Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl Borrow<str> for Id {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        // Interned: equal text is the same pointer.
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Id {}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Id {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, so maps keyed by `Id` can be looked up with a `&str`.
        self.0.hash(state)
    }
}

impl PartialOrd for Id {
    fn partial_cmp(&self, other: &Id) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Id {
    fn cmp(&self, other: &Id) -> std::cmp::Ordering {
        if self == other {
            return std::cmp::Ordering::Equal;
        }
        self.0.cmp(other.0)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Id::intern(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_text_is_one_id_and_lookups_do_not_intern() {
        let a = Id::from("id-test-0103502202");
        let b = Id::intern(&String::from("id-test-0103502202")).unwrap();
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_eq!(&*a, "id-test-0103502202");
        assert!(Id::get("id-test-never-interned").is_none());
        assert!(Id::get("id-test-never-interned").is_none());
        let mut map = std::collections::HashMap::new();
        map.insert(a.clone(), 1);
        assert_eq!(map.get("id-test-0103502202"), Some(&1), "looked up by &str");
        let (x, y) = (Id::from("id-test-b"), Id::from("id-test-a"));
        assert!(y < x, "ordered by text");
        let json = serde_json::to_string(&x).unwrap();
        assert_eq!(json, "\"id-test-b\"");
        assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), x);
    }

    /// Fills the table (nextest runs each test in its own process, so others are unaffected).
    #[test]
    fn new_ids_beyond_the_bound_are_refused_and_known_ones_still_served() {
        let known = Id::intern("id-test-known").unwrap();
        let mut n = 0;
        while Id::intern(&format!("id-test-fill-{n}")).is_ok() {
            n += 1;
            assert!(n <= MAX_IDS, "the bound holds");
        }
        assert_eq!(Id::count(), MAX_IDS);
        assert_eq!(Id::intern("id-test-one-more"), Err(TooManyIds));
        assert_eq!(
            Id::intern("id-test-known").unwrap(),
            known,
            "known ids still served"
        );
        let refused = crate::nclink::intern::intern("id-test-from-the-wire").unwrap_err();
        assert_eq!(refused.reason, crate::nclink::error::Reason::Overloaded);
        assert!(
            refused.detail.contains("id-test-from-the-wire"),
            "{refused}"
        );
        // The engine's own files (spool, lake) are trusted and never refused.
        assert_eq!(&*Id::from("id-test-trusted"), "id-test-trusted");
    }
}
