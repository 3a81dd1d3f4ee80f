//! The state's per-message tables, kept small: messages in memory by ID,
//! interned names, and the log-ID index.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use super::Message;
use crate::model::Id;

/// Messages with a log in memory, by ID.
#[derive(Debug, Default)]
pub struct Messages {
    items: BTreeMap<u64, Message>,
}

impl Messages {
    pub fn get(&self, id: &u64) -> Option<&Message> {
        self.items.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &u64) -> Option<&mut Message> {
        self.items.get_mut(id)
    }

    pub(super) fn insert(&mut self, message: Message) {
        self.items.insert(message.id, message);
    }

    pub(super) fn remove(&mut self, id: &u64) {
        self.items.remove(id);
    }

    /// Messages in memory, by ID.
    pub fn iter(&self) -> impl Iterator<Item = &Message> {
        self.items.values()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A data model or event type name, interned: four bytes per message
/// instead of a pointer and a length each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name(pub(super) u32);

/// One shared copy of each data model and event type name. Names come from
/// the data-model registry, so there are few.
#[derive(Debug, Default)]
pub(super) struct Interner {
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl Interner {
    pub(super) fn intern(&mut self, name: &str) -> Name {
        if let Some(&known) = self.index.get(name) {
            return Name(known);
        }
        let number = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.index.insert(name, number);
        Name(number)
    }

    pub(super) fn get(&self, name: Name) -> &Arc<str> {
        static UNKNOWN: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
        usize::try_from(name.0).ok().and_then(|i| self.names.get(i)).unwrap_or(&UNKNOWN)
    }
}

/// Log numbers by log ID, in 16 bytes an entry rather than 32: keyed by
/// the ID's low 64 bits (random in every ID the engine makes), with the
/// rare IDs whose low bits are already taken kept whole on the side.
#[derive(Debug, Default)]
pub(super) struct LogIndex {
    by_low_bits: HashMap<u64, usize>,
    collided: HashMap<Id, usize>,
}

impl LogIndex {
    fn low(id: Id) -> u64 {
        id.0 as u64
    }

    pub(super) fn insert(&mut self, id: Id, number: usize) {
        match self.by_low_bits.entry(Self::low(id)) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(number);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(id, number);
            }
        }
    }

    /// The number of log `id`; `id_of` gives the ID of a log number.
    pub(super) fn get(&self, id: Id, id_of: impl Fn(usize) -> Option<Id>) -> Option<usize> {
        match self.by_low_bits.get(&Self::low(id)) {
            Some(&number) if id_of(number) == Some(id) => Some(number),
            _ => self.collided.get(&id).copied(),
        }
    }

    /// Forgets log `id`, whose number was `number`.
    pub(super) fn remove(&mut self, id: Id, number: usize) {
        if self.collided.remove(&id).is_none() && self.by_low_bits.get(&Self::low(id)) == Some(&number) {
            self.by_low_bits.remove(&Self::low(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_index_tells_ids_with_the_same_low_bits_apart() {
        let ids = [Id(7), Id(7 | 1 << 64), Id(7 | 2 << 64), Id(8)];
        let id_of = |n: usize| ids.get(n).copied();
        let mut index = LogIndex::default();
        for (n, id) in ids.iter().enumerate() {
            index.insert(*id, n);
        }
        assert_eq!(ids.map(|id| index.get(id, id_of)), [Some(0), Some(1), Some(2), Some(3)]);
        assert_eq!(index.get(Id(7 | 3 << 64), id_of), None, "an unknown ID sharing low bits");
        index.remove(ids[0], 0);
        let id_of = |n: usize| (n > 0).then(|| ids[n]);
        assert_eq!(ids.map(|id| index.get(id, id_of)), [None, Some(1), Some(2), Some(3)]);
        index.remove(ids[2], 2);
        assert_eq!(index.get(ids[1], id_of), Some(1));
        assert_eq!(index.get(ids[2], id_of), None);
    }
}
