//! Finds a key path in a type's `Deserialize` structure without a value:
//! a deserializer that walks down the path, asking each struct for the
//! names of its fields (which derived `Deserialize` impls hand over), and
//! stops at the key to see what it takes.

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, MapAccess, Visitor, value::StrDeserializer},
    forward_to_deserialize_any,
};

/// What the key at the end of a path takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// A string (or a path, an address): its value is taken as text.
    pub wants_string: bool,
}

/// Why the walk stopped: at the key (`Found`), or before it.
#[derive(Debug)]
enum Stop {
    Found(Leaf),
    Unknown { key: String, table: String, expected: &'static [&'static str] },
    NotTable { table: String },
    Other(String),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Found(_) => write!(f, "found"),
            Self::Unknown { key, table, expected } => {
                let place = if table.is_empty() { "the configuration".to_owned() } else { format!("[{table}]") };
                write!(f, "{place} has no key '{key}'; its keys are {}", expected.join(", "))
            }
            Self::NotTable { table } => write!(f, "'{table}' takes a value (as inline TOML), not keys under it"),
            Self::Other(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::Other(msg.to_string())
    }
}

/// The key `path` of `T`, or why `T` has no such key.
pub fn key<'de, T: Deserialize<'de>>(path: &[String]) -> Result<Leaf, String> {
    match T::deserialize(Probe { path, walked: 0 }) {
        Err(Stop::Found(leaf)) => Ok(leaf),
        // A type that takes nothing at all (unit) is a key all the same.
        Ok(_) => Ok(Leaf { wants_string: false }),
        Err(stop) => Err(stop.to_string()),
    }
}

/// The walk at depth `walked` of `path`.
struct Probe<'p> {
    path: &'p [String],
    walked: usize,
}

impl Probe<'_> {
    fn at_key(&self) -> bool {
        self.walked == self.path.len()
    }

    fn table(&self) -> String {
        self.path[..self.walked].join(".")
    }

    /// A value that is neither a table nor a string: the key, if the path
    /// ends here.
    fn leaf(&self, wants_string: bool) -> Stop {
        if self.at_key() { Stop::Found(Leaf { wants_string }) } else { Stop::NotTable { table: self.table() } }
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(self.leaf(false))
    }

    fn deserialize_str<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(self.leaf(true))
    }

    fn deserialize_string<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(self.leaf(true))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if self.at_key() {
            // A whole table, set as an inline table.
            return Err(Stop::Found(Leaf { wants_string: false }));
        }
        let key = &self.path[self.walked];
        if !fields.contains(&key.as_str()) {
            return Err(Stop::Unknown { key: key.clone(), table: self.table(), expected: fields });
        }
        visitor.visit_map(OneKey { probe: Some(self) })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        // A map takes any key.
        if self.at_key() {
            return Err(Stop::Found(Leaf { wants_string: false }));
        }
        visitor.visit_map(OneKey { probe: Some(self) })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct seq tuple
        tuple_struct enum identifier ignored_any
    }
}

/// A table holding just the path's next key, whose value is the rest of
/// the walk.
struct OneKey<'p> {
    probe: Option<Probe<'p>>,
}

impl<'de> MapAccess<'de> for OneKey<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Stop> {
        match &self.probe {
            Some(probe) => seed.deserialize(StrDeserializer::new(&probe.path[probe.walked])).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let probe = self.probe.take().ok_or_else(|| Stop::Other("a value without its key".into()))?;
        seed.deserialize(Probe { path: probe.path, walked: probe.walked + 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn path(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    #[test]
    fn keys_are_found_with_what_they_take() {
        assert_eq!(key::<Config>(&path(&["delivery", "timeout_ms"])), Ok(Leaf { wants_string: false }));
        assert_eq!(key::<Config>(&path(&["admin_token"])), Ok(Leaf { wants_string: true }));
        assert_eq!(key::<Config>(&path(&["data_dir"])), Ok(Leaf { wants_string: true }));
        assert_eq!(key::<Config>(&path(&["listen"])), Ok(Leaf { wants_string: true }));
        assert_eq!(key::<Config>(&path(&["storage"])), Ok(Leaf { wants_string: false }));
        assert_eq!(key::<Config>(&path(&["sources"])), Ok(Leaf { wants_string: false }));
    }

    #[test]
    fn missing_keys_say_where() {
        let err = key::<Config>(&path(&["delivery", "timeout"])).unwrap_err();
        assert!(err.contains("[delivery] has no key 'timeout'") && err.contains("timeout_ms"), "{err}");
        let err = key::<Config>(&path(&["listen", "port"])).unwrap_err();
        assert!(err.contains("'listen' takes a value"), "{err}");
        let err = key::<Config>(&path(&["sources", "name"])).unwrap_err();
        assert!(err.contains("'sources' takes a value"), "{err}");
    }
}
