//! A deque in fixed-size chunks, for the state's per-message tables.
//!
//! A `Vec` or `VecDeque` doubles as it grows: it copies everything and
//! frees the old buffer, which the allocator may keep resident, so a table
//! of N entries can hold memory for 1.5 N or more. Chunks never move: the
//! table grows one chunk at a time, and dropping from the front frees whole
//! chunks. Entries dropped from the front stay in place until their chunk
//! is wholly dropped (at most one chunk of them).

use std::collections::VecDeque;

/// Entries per chunk.
const CHUNK: usize = 4096;

#[derive(Debug)]
pub struct Chunked<T> {
    chunks: VecDeque<Vec<T>>,
    /// Entries dropped from the front of the first chunk.
    skip: usize,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Self { chunks: VecDeque::new(), skip: 0, len: 0 }
    }
}

impl<T> Chunked<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        if index >= self.len {
            return None;
        }
        let at = index + self.skip;
        self.chunks.get(at / CHUNK)?.get(at % CHUNK)
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        if index >= self.len {
            return None;
        }
        let at = index + self.skip;
        self.chunks.get_mut(at / CHUNK)?.get_mut(at % CHUNK)
    }

    pub fn front(&self) -> Option<&T> {
        self.get(0)
    }

    pub fn push_back(&mut self, value: T) {
        match self.chunks.back_mut() {
            Some(last) if last.len() < CHUNK => last.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    /// Drops the first entry, if any.
    pub fn drop_front(&mut self) {
        if self.len == 0 {
            return;
        }
        self.len -= 1;
        self.skip += 1;
        if self.skip == CHUNK || self.len == 0 {
            self.chunks.pop_front();
            self.skip = 0;
            if self.len == 0 {
                self.chunks.clear();
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten().skip(self.skip)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Behaves as a `VecDeque` under pushes, front drops and reads.
        #[test]
        fn matches_a_vecdeque(ops in proptest::collection::vec((0u8..4, 0usize..20_000), 0..300)) {
            let (mut chunked, mut model) = (Chunked::default(), VecDeque::new());
            let mut next = 0u64;
            for (op, n) in ops {
                match op {
                    0 | 1 => for _ in 0..n % 5000 {
                        chunked.push_back(next);
                        model.push_back(next);
                        next += 1;
                    },
                    2 => for _ in 0..n % 5000 {
                        chunked.drop_front();
                        model.pop_front();
                    },
                    _ => {
                        prop_assert_eq!(chunked.get(n), model.get(n));
                        if let Some(v) = chunked.get_mut(n) {
                            *v += 1_000_000;
                            model[n] += 1_000_000;
                        }
                    }
                }
                prop_assert_eq!(chunked.len(), model.len());
                prop_assert_eq!(chunked.front(), model.front());
                prop_assert!(chunked.chunks.len() <= model.len().div_ceil(CHUNK) + 1);
            }
            prop_assert!(chunked.iter().eq(model.iter()));
        }
    }
}
