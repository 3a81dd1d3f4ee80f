//! `FERROX_<KEY>` environment variables (SPEC §16): each sets one key of
//! the configuration, nested keys joined by `__`
//! (`FERROX_DELIVERY__TIMEOUT_MS` is `[delivery] timeout_ms`).
//!
//! The keys are not listed here: which ones exist, and whether a key takes
//! a string, is read from the configuration's own `Deserialize` structure
//! (`probe`), so a key added to `Config` can be set from the environment
//! with no code of its own, and a variable naming no key stops the start.

use std::ffi::OsString;

use serde::Deserialize;

use super::{Config, probe};

/// The prefix of the variables that set configuration keys.
pub const PREFIX: &str = "FERROX_";
/// What joins a table's name to its key in a variable's name.
const NESTING: &str = "__";

/// One `FERROX_` variable: its name, the key path it sets, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub variable: String,
    pub path: Vec<String>,
    pub value: toml::Value,
}

/// The names of this process's `FERROX_` variables, for a parent that
/// starts an engine with a configuration of its own and must not pass its
/// environment's keys on.
pub fn variables_set() -> Vec<OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.to_str().is_some_and(|n| n.starts_with(PREFIX)))
        .collect()
}

/// The `FERROX_` variables among `vars`, each checked against the
/// configuration's keys and its value parsed; the first that names no key,
/// or is not UTF-8, is an error naming it.
pub fn overrides(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Vec<Override>, String> {
    let mut found = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(key) = name.strip_prefix(PREFIX) else { continue };
        let value = value.into_string().map_err(|_| format!("{name}: the value is not UTF-8"))?;
        let path: Vec<String> = key.split(NESTING).map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "{name}: not a configuration key (keys are joined by '{NESTING}', e.g. FERROX_DELIVERY__TIMEOUT_MS)"
            ));
        }
        let leaf = probe::key::<Config>(&path).map_err(|e| format!("{name} sets no configuration key: {e}"))?;
        found.push(Override { variable: name.to_owned(), value: parse_value(&value, leaf.wants_string), path });
    }
    // Sorted, so the outcome does not depend on the environment's order.
    found.sort_by(|a, b| a.variable.cmp(&b.variable));
    Ok(found)
}

/// A variable's value as TOML: a number, a boolean, a quoted string, an
/// inline array or table. A key that takes a string takes the text as it
/// is unless it is a quoted TOML string, and text that is not a TOML value
/// is a string too (`FERROX_LISTEN=0.0.0.0:8080`).
fn parse_value(text: &str, wants_string: bool) -> toml::Value {
    let parsed =
        format!("v = {text}").parse::<toml::Table>().ok().filter(|t| t.len() == 1).and_then(|mut t| t.remove("v"));
    match parsed {
        Some(value @ toml::Value::String(_)) => value,
        Some(value) if !wants_string => value,
        _ => toml::Value::String(text.to_owned()),
    }
}

/// Sets each override's key in `table`, the file's parsed text, making
/// the tables on its path as needed.
pub fn apply(table: &mut toml::Table, overrides: &[Override]) -> Result<(), String> {
    for o in overrides {
        let (last, tables) = o.path.split_last().expect("a key path is never empty");
        let mut at = &mut *table;
        for (depth, name) in tables.iter().enumerate() {
            let entry = at.entry(name.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            at = entry.as_table_mut().ok_or_else(|| {
                format!("{}: '{}' in the file is not a table", o.variable, o.path[..=depth].join("."))
            })?;
        }
        at.insert(last.clone(), o.value.clone());
    }
    Ok(())
}

/// Checks each override on its own over the defaults, so that a value of
/// the wrong type is reported with the variable that gave it.
pub fn check_each(overrides: &[Override]) -> Result<(), String> {
    for o in overrides {
        let mut table = toml::Table::new();
        apply(&mut table, std::slice::from_ref(o))?;
        Config::deserialize(toml::Value::Table(table)).map_err(|e| format!("{}: {}", o.variable, e.message()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        list.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect()
    }

    #[test]
    fn values_parse_as_toml_and_strings_stay_strings() {
        let found = overrides(vars(&[
            ("FERROX_DELIVERY__TIMEOUT_MS", "2500"),
            ("FERROX_DELIVERY__DENY_PRIVATE_NETWORKS", "true"),
            ("FERROX_ADMIN_TOKEN", "12345678901234567890"),
            ("FERROX_LISTEN", "0.0.0.0:9000"),
            ("FERROX_ALERTS__EMAIL_TO", "[\"a@example.org\"]"),
            ("HOME", "/root"),
        ]))
        .unwrap();
        let value = |name: &str| found.iter().find(|o| o.variable == name).map(|o| o.value.clone()).unwrap();
        assert_eq!(value("FERROX_DELIVERY__TIMEOUT_MS"), toml::Value::Integer(2500));
        assert_eq!(value("FERROX_DELIVERY__DENY_PRIVATE_NETWORKS"), toml::Value::Boolean(true));
        assert_eq!(value("FERROX_ADMIN_TOKEN"), toml::Value::String("12345678901234567890".into()));
        assert_eq!(value("FERROX_LISTEN"), toml::Value::String("0.0.0.0:9000".into()));
        assert_eq!(found.len(), 5, "only FERROX_ variables: {found:?}");
    }

    #[test]
    fn a_variable_naming_no_key_is_named() {
        for name in
            ["FERROX_LISTEN_PORT", "FERROX_DELIVERY__TIMEOUT", "FERROX_LISTEN__HOST", "FERROX_", "FERROX_ORIGIN"]
        {
            let err = overrides(vars(&[(name, "1")])).unwrap_err();
            assert!(err.starts_with(name), "{err}");
        }
        let err = overrides(vars(&[("FERROX_STORAGE__SEGMENT_SIZE", "1")])).unwrap_err();
        assert!(err.contains("segment_size") && err.contains("segment_bytes"), "{err}");
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_variable() {
        let found = overrides(vars(&[("FERROX_DELIVERY__TIMEOUT_MS", "soon")])).unwrap();
        let err = check_each(&found).unwrap_err();
        assert!(err.starts_with("FERROX_DELIVERY__TIMEOUT_MS") && err.contains("soon"), "{err}");
    }
}
