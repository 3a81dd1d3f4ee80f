//! Ordered lanes (SPEC §18): a destination with a `fifo_key` keeps order
//! per key rather than for the whole queue. The key is a jq path into the
//! message as it was sent (`.Patient.Identifiers[0].ID`); this module
//! parses it and reads it out of a message.
//!
//! Only paths are accepted, not whole jq programs: a key must be a plain
//! function of the message, cheap to read for every log and the same on
//! every read, so that a queue rebuilt after a crash falls into the same
//! lanes. Paths need no sandbox, so they are read in the engine itself.

use std::{fmt, sync::Arc};

use serde_json::Value;

use crate::limits;

/// One step of a path: a field of an object or an element of an array
/// (negative indices count from the end, as in jq).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    Field(String),
    Index(i64),
}

/// A parsed `fifo_key`: its text, as written, and its steps.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FifoKey {
    text: String,
    steps: Arc<[Step]>,
}

impl fmt::Debug for FifoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FifoKey({:?})", self.text)
    }
}

impl FifoKey {
    /// Parses a jq path: `.` followed by fields (`.a`, `."a b"`, `["a"]`)
    /// and indices (`[0]`, `[-1]`). Errors say what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let fail = |at: usize, what: &str| {
            Err(format!("fifo_key {text:?} is not a jq path such as .Patient.Identifiers[0].ID: {what} at byte {at}"))
        };
        if text.len() > limits::FIFO_KEY_BYTES {
            return Err(format!("fifo_key is longer than {} bytes", limits::FIFO_KEY_BYTES));
        }
        let bytes = text.as_bytes();
        if bytes.first() != Some(&b'.') {
            return fail(0, "it must start with '.'");
        }
        let mut steps = Vec::new();
        let mut i = 0;
        // `.` alone is the whole message.
        if bytes.len() == 1 {
            return Ok(Self { text: text.to_owned(), steps: Arc::from(steps) });
        }
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    i += 1;
                    match bytes.get(i) {
                        Some(b'"') => {
                            let (field, next) = match quoted(text, i) {
                                Ok(found) => found,
                                Err(what) => return fail(i, &what),
                            };
                            steps.push(Step::Field(field));
                            i = next;
                        }
                        Some(b'[') => {}
                        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                            let start = i;
                            while bytes.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                                i += 1;
                            }
                            steps.push(Step::Field(text[start..i].to_owned()));
                        }
                        _ => return fail(i, "a field name must follow '.'"),
                    }
                }
                b'[' => {
                    i += 1;
                    if bytes.get(i) == Some(&b'"') {
                        let (field, next) = match quoted(text, i) {
                            Ok(found) => found,
                            Err(what) => return fail(i, &what),
                        };
                        steps.push(Step::Field(field));
                        i = next;
                    } else {
                        let start = i;
                        if bytes.get(i) == Some(&b'-') {
                            i += 1;
                        }
                        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                            i += 1;
                        }
                        match text[start..i].parse::<i64>() {
                            Ok(index) => steps.push(Step::Index(index)),
                            Err(_) => return fail(start, "'[' must hold an index or a quoted field"),
                        }
                    }
                    if bytes.get(i) != Some(&b']') {
                        return fail(i, "expected ']'");
                    }
                    i += 1;
                }
                _ => return fail(i, "expected '.' or '['"),
            }
        }
        if steps.len() > limits::FIFO_KEY_STEPS {
            return Err(format!("fifo_key has more than {} steps", limits::FIFO_KEY_STEPS));
        }
        Ok(Self { text: text.to_owned(), steps: Arc::from(steps) })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The lane of `message`: the value at the path, a string as it is and
    /// any other value as its JSON text; the empty key when the path leads
    /// nowhere or to `null`.
    pub fn lane_of(&self, message: &Value) -> String {
        let mut at = message;
        for step in self.steps.iter() {
            let next = match (step, at) {
                (Step::Field(name), Value::Object(fields)) => fields.get(name),
                (Step::Index(index), Value::Array(items)) => {
                    let index = if *index < 0 { items.len() as i64 + index } else { *index };
                    usize::try_from(index).ok().and_then(|i| items.get(i))
                }
                _ => None,
            };
            match next {
                Some(value) => at = value,
                None => return String::new(),
            }
        }
        match at {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// The lane of a message's bytes as it was accepted (JSON); the empty
    /// key if they are not JSON.
    pub fn lane_of_bytes(&self, payload: &[u8]) -> String {
        serde_json::from_slice(payload).map(|message: Value| self.lane_of(&message)).unwrap_or_default()
    }
}

/// The field in double quotes starting at `at` (a JSON string, escapes
/// included) and the position after it.
fn quoted(text: &str, at: usize) -> Result<(String, usize), String> {
    let mut escaped = false;
    for (offset, c) in text[at + 1..].char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => {
                let end = at + 1 + offset + 1;
                let field: String =
                    serde_json::from_str(&text[at..end]).map_err(|e| format!("a bad quoted field ({e})"))?;
                return Ok((field, end));
            }
            _ => escaped = false,
        }
    }
    Err("an unterminated quoted field".to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lane(path: &str, message: &Value) -> String {
        FifoKey::parse(path).unwrap_or_else(|e| panic!("{path}: {e}")).lane_of(message)
    }

    #[test]
    fn paths_read_fields_indices_and_quoted_names() {
        let m = json!({
            "Patient": {"Identifiers": [{"ID": "0000012345", "IDType": "MR"}, {"ID": 77}]},
            "odd key": {"x": true},
            "Meta": {"EventType": "NewPatient"}
        });
        assert_eq!(lane(".Patient.Identifiers[0].ID", &m), "0000012345");
        assert_eq!(lane(".Patient.Identifiers[1].ID", &m), "77");
        assert_eq!(lane(".Patient.Identifiers[-1].ID", &m), "77");
        assert_eq!(lane(".Patient.Identifiers[-3].ID", &m), "");
        assert_eq!(lane(".\"odd key\".x", &m), "true");
        assert_eq!(lane(".[\"odd key\"][\"x\"]", &m), "true");
        assert_eq!(lane(".Patient.Identifiers.[0].IDType", &m), "MR");
        assert_eq!(lane(".Meta.EventType", &m), "NewPatient");
        assert_eq!(lane(".Patient.Missing[0]", &m), "", "a missing key is the empty lane");
        assert_eq!(lane(".Meta.EventType.deeper", &m), "", "a step into a string leads nowhere");
        assert_eq!(lane(".Patient.Identifiers[0]", &m), r#"{"ID":"0000012345","IDType":"MR"}"#);
        assert_eq!(FifoKey::parse(".").unwrap().lane_of_bytes(b"{\"a\":1}"), r#"{"a":1}"#);
        assert_eq!(FifoKey::parse(".a").unwrap().lane_of_bytes(b"not json"), "");
    }

    #[test]
    fn anything_but_a_path_is_refused_with_where() {
        for bad in ["", "Patient", ".Patient |.x", ".a[", ".a[x]", ".a.\"b", "..a", ".a[0", ".a b", ".1a", "map(.x)"] {
            let err = FifoKey::parse(bad).expect_err(bad);
            assert!(err.contains("fifo_key") && (err.contains("at byte") || err.contains("longer")), "{bad}: {err}");
        }
        assert!(FifoKey::parse(&format!(".{}", "a".repeat(limits::FIFO_KEY_BYTES))).is_err());
        assert!(FifoKey::parse(&".a".repeat(limits::FIFO_KEY_STEPS + 1)).is_err());
    }
}
