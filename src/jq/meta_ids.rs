//! Setting `Meta.Transmission.ID` and `Meta.Message.ID` in a Data Model
//! body without parsing the rest of it: every top-level member but `Meta`
//! is copied as it was stored, so the cost no longer grows with the tree
//! the body holds.

use std::{borrow::Cow, fmt};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value, json, value::RawValue};

/// The body with the IDs set in its `Meta` object. `None` if the body is
/// not a JSON object whose top-level names are all distinct: the caller
/// then takes the general path.
pub fn set_ids(payload: &[u8], message_id: u64, transmission_id: u64) -> Option<Vec<u8>> {
    let Members(members) = serde_json::from_slice(payload).ok()?;
    let mut names: Vec<&str> = members.iter().map(|(name, _)| &**name).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    let mut out = Vec::with_capacity(payload.len() + 64);
    out.push(b'{');
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, name).ok()?;
        out.push(b':');
        let meta = (name == "Meta").then(|| serde_json::from_str::<Value>(value.get()).ok()).flatten();
        match meta {
            Some(Value::Object(mut meta)) => {
                set_meta_ids(&mut meta, message_id, transmission_id);
                serde_json::to_writer(&mut out, &meta).ok()?;
            }
            _ => out.extend_from_slice(value.get().as_bytes()),
        }
    }
    out.push(b'}');
    Some(out)
}

/// Sets `Transmission.ID` and `Message.ID` in a body's `Meta` object.
pub fn set_meta_ids(meta: &mut Map<String, Value>, message_id: u64, transmission_id: u64) {
    meta.insert("Transmission".into(), json!({ "ID": transmission_id }));
    meta.insert("Message".into(), json!({ "ID": message_id }));
}

/// A JSON object's members in order, values left as raw text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some((name, value)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
            members.push((name, value));
        }
        Ok(Members(members))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What the general path makes of the same body.
    fn by_value(payload: &[u8], message_id: u64, transmission_id: u64) -> Value {
        let mut value: Value = serde_json::from_slice(payload).unwrap();
        if let Some(meta) = value.get_mut("Meta").and_then(Value::as_object_mut) {
            set_meta_ids(meta, message_id, transmission_id);
        }
        value
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z\\\"\u{e9}\n ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-zM\"\\\\]{1,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_same_body_as_parsing_it_whole(
            mut members in prop::collection::btree_map("[a-zM\"]{1,5}", json_value(), 0..6),
            meta in prop::option::of(json_value()),
            pretty in any::<bool>(),
            ids in (any::<u64>(), any::<u64>()),
        ) {
            if let Some(meta) = meta {
                members.insert("Meta".to_owned(), meta);
            }
            let body = Value::Object(members.into_iter().collect());
            let payload = if pretty { serde_json::to_vec_pretty(&body) } else { serde_json::to_vec(&body) }.unwrap();
            let out = set_ids(&payload, ids.0, ids.1).expect("an object with distinct names");
            let got: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(got, by_value(&payload, ids.0, ids.1));
        }
    }

    #[test]
    fn members_keep_their_order_and_text() {
        let payload = br#"{"Patient": {"Name" : "Ana"}, "Meta":{"DataModel":"PatientAdmin"}, "z\u0041":[1, 2.50]}"#;
        let out = set_ids(payload, 7, 9).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"Patient":{"Name" : "Ana"},"Meta":{"DataModel":"PatientAdmin","Message":{"ID":7},"Transmission":{"ID":9}},"zA":[1, 2.50]}"#
        );
    }

    #[test]
    fn what_it_does_not_take_is_left_to_the_general_path() {
        assert_eq!(set_ids(br#"{"Meta":{},"Meta":{}}"#, 1, 1), None, "repeated names");
        assert_eq!(set_ids(br#"[1]"#, 1, 1), None);
        assert_eq!(set_ids(br#"{"Meta":"#, 1, 1), None);
        let no_meta = set_ids(br#"{"Meta":[1]}"#, 1, 1).unwrap();
        assert_eq!(no_meta, br#"{"Meta":[1]}"#, "a Meta that is not an object is left alone");
    }
}
