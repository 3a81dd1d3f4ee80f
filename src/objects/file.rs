//! The configuration file's objects (`[[sources]]`, `[[destinations]]`,
//! `[[subscriptions]]`), taken as a whole.
//!
//! - **All or nothing.** Every object is validated, against the engine's
//!   state and the file's other objects, before anything is written. Every
//!   error is reported at once, each naming its object (its table and name,
//!   or its place in the file) and the field. Then the objects that are new
//!   or changed are journaled as one `ConfigurationApplied` record, so a
//!   crash leaves all of them or none.
//! - **The file owns its objects.** An object the file declares is matched
//!   to the engine's by `id`, else by name (a subscription: by source,
//!   destination and data model) and takes the file's values at every
//!   start. The operator API refuses to change or delete it (409, naming
//!   the file), since a change made there would be undone at the next start
//!   without a word. An object taken out of the file stays, and the API may
//!   change it from then on.
//! - **Names, not UUIDs.** A subscription may name its source and
//!   destination by name (`source`, `destination`), among the file's
//!   objects and the engine's.

use std::collections::BTreeMap;

use super::{DestinationRules, DestinationSpec, EndRef, SourceSpec, SubscriptionSpec, resolve_end};
use crate::{
    error::ApiError,
    ids::IdSource,
    journal::{ConfigBatch, Event},
    model::{Destination, Id, Source, Subscription},
    state::State,
};

/// Which objects the configuration file owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileObjects {
    /// The file, as messages name it.
    pub origin: String,
    /// Each object the file declares, with its label in the file.
    objects: BTreeMap<Id, String>,
}

impl FileObjects {
    /// Why the operator API may not change `id`, if the file owns it.
    pub fn refusal(&self, id: Id) -> Option<ApiError> {
        let label = self.objects.get(&id)?;
        Some(ApiError::conflict(format!(
            "{label} is defined in the configuration file {}: change it there and restart ferrox",
            self.origin
        )))
    }

    pub fn owns(&self, id: Id) -> bool {
        self.objects.contains_key(&id)
    }
}

/// What applying the file takes: the event to journal, if anything is new
/// or changed, and the objects the file owns.
#[derive(Debug)]
pub struct Plan {
    pub event: Option<Event>,
    pub owned: FileObjects,
}

/// What a configuration file declares, and the rules its destinations
/// follow.
#[derive(Debug, Clone, Copy)]
pub struct Declared<'a> {
    /// The file, as messages name it.
    pub origin: &'a str,
    pub sources: &'a [SourceSpec],
    pub destinations: &'a [DestinationSpec],
    pub subscriptions: &'a [SubscriptionSpec],
    pub rules: DestinationRules,
}

/// Validates the file's objects against `state` as a whole; returns the
/// plan, or every error found.
pub fn plan(declared: &Declared<'_>, state: &State, ids: &dyn IdSource) -> Result<Plan, Vec<String>> {
    let origin = declared.origin.to_owned();
    let mut planner = Planner {
        state,
        ids,
        errors: Vec::new(),
        batch: ConfigBatch { origin: origin.clone(), ..ConfigBatch::default() },
        owned: FileObjects { origin, objects: BTreeMap::new() },
        sources: Vec::new(),
        destinations: Vec::new(),
    };
    planner.sources(declared.sources);
    planner.destinations(declared.destinations, &declared.rules);
    planner.subscriptions(declared.subscriptions);
    if !planner.errors.is_empty() {
        return Err(planner.errors);
    }
    let batch = planner.batch;
    let changed = !(batch.sources.is_empty() && batch.destinations.is_empty() && batch.subscriptions.is_empty());
    Ok(Plan { event: changed.then_some(Event::ConfigurationApplied(batch)), owned: planner.owned })
}

struct Planner<'a> {
    state: &'a State,
    ids: &'a dyn IdSource,
    errors: Vec<String>,
    batch: ConfigBatch,
    owned: FileObjects,
    /// The file's sources and destinations as built so far.
    sources: Vec<Source>,
    destinations: Vec<Destination>,
}

/// How an object is named in messages: its table and name, or its place.
fn label(table: &str, index: usize, name: &str) -> String {
    match name.trim() {
        "" => format!("[[{table}]] #{}", index + 1),
        name => format!("[[{table}]] '{name}'"),
    }
}

/// The object among `items` that a declaration matches: by ID if it gives
/// one that exists, else by name.
fn matching<'a, T>(
    items: impl Iterator<Item = &'a T>,
    id: Option<&str>,
    name: &str,
    key: impl Fn(&T) -> (Id, &str),
) -> Option<&'a T> {
    let id = id.and_then(Id::parse);
    items.filter(|t| key(t).1 == name || Some(key(t).0) == id).min_by_key(|t| Some(key(t).0) != id)
}

impl Planner<'_> {
    fn refuse(&mut self, label: &str, error: ApiError) {
        self.errors.push(format!("{label}: {}", error.text));
    }

    /// Checks that no two declarations of one table share a name or an ID.
    fn distinct(&mut self, label: &str, table: &str, taken: &[(Id, String)], id: Id, name: &str) -> bool {
        if let Some((_, other)) = taken.iter().find(|(i, n)| *i == id || n == name) {
            let what = if other == name { "name" } else { "id" };
            self.errors.push(format!("{label}: {what} is declared twice in [[{table}]]"));
            return false;
        }
        true
    }

    fn sources(&mut self, specs: &[SourceSpec]) {
        for (index, spec) in specs.iter().enumerate() {
            let label = label("sources", index, &spec.name);
            let state = self.state;
            let existing = matching(state.sources.values(), spec.id.as_deref(), &spec.name, |s| (s.id, &s.name));
            let declared = &self.sources;
            let key_owner = |key: &str| {
                let in_file = declared.iter().find(|s| s.api_key == key).map(|s| s.id);
                in_file.or_else(|| state.source_by_api_key(key).map(|s| s.id))
            };
            let built = spec.build(None, existing, &key_owner, self.ids);
            match built {
                Ok((source, _)) => {
                    let taken: Vec<(Id, String)> = self.sources.iter().map(|s| (s.id, s.name.clone())).collect();
                    if self.distinct(&label, "sources", &taken, source.id, &source.name) {
                        if existing != Some(&source) {
                            self.batch.sources.push(source.clone());
                        }
                        self.owned.objects.insert(source.id, format!("source '{}'", source.name));
                        self.sources.push(source);
                    }
                }
                Err(e) => self.refuse(&label, e),
            }
        }
    }

    fn destinations(&mut self, specs: &[DestinationSpec], rules: &DestinationRules) {
        for (index, spec) in specs.iter().enumerate() {
            let label = label("destinations", index, &spec.name);
            let existing =
                matching(self.state.destinations.values(), spec.id.as_deref(), &spec.name, |d| (d.id, &d.name));
            match spec.build(None, existing, rules, self.ids) {
                Ok(destination) => {
                    let taken: Vec<(Id, String)> = self.destinations.iter().map(|d| (d.id, d.name.clone())).collect();
                    if self.distinct(&label, "destinations", &taken, destination.id, &destination.name) {
                        if existing != Some(&destination) {
                            self.batch.destinations.push(destination.clone());
                        }
                        self.owned.objects.insert(destination.id, format!("destination '{}'", destination.name));
                        self.destinations.push(destination);
                    }
                }
                Err(e) => self.refuse(&label, e),
            }
        }
    }

    /// The file's objects and the engine's, the file's taking precedence:
    /// (ID, name) pairs to resolve a subscription's end among.
    fn known<'s>(declared: &'s [(Id, &'s str)], engine: impl Iterator<Item = (Id, &'s str)>) -> Vec<(Id, &'s str)> {
        let mut known: Vec<(Id, &str)> = engine.filter(|(id, _)| !declared.iter().any(|(d, _)| d == id)).collect();
        known.extend(declared.iter().copied());
        known
    }

    fn end(&self, kind: &str, wanted: Result<EndRef<'_>, ApiError>) -> Result<Id, ApiError> {
        let wanted = wanted?;
        let state = self.state;
        match kind {
            "source" => {
                let declared: Vec<(Id, &str)> = self.sources.iter().map(|s| (s.id, s.name.as_str())).collect();
                let known = Self::known(&declared, state.sources.values().map(|s| (s.id, s.name.as_str())));
                resolve_end(kind, wanted, known.into_iter())
            }
            _ => {
                let declared: Vec<(Id, &str)> = self.destinations.iter().map(|d| (d.id, d.name.as_str())).collect();
                let known = Self::known(&declared, state.destinations.values().map(|d| (d.id, d.name.as_str())));
                resolve_end(kind, wanted, known.into_iter())
            }
        }
    }

    fn subscriptions(&mut self, specs: &[SubscriptionSpec]) {
        let mut declared: Vec<Subscription> = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let label = format!("[[subscriptions]] #{}", index + 1);
            let ends = self
                .end("source", spec.source_ref())
                .and_then(|source| Ok((source, self.end("destination", spec.destination_ref())?)));
            let (source, destination) = match ends {
                Ok(ends) => ends,
                Err(e) => {
                    self.refuse(&label, e);
                    continue;
                }
            };
            let state = self.state;
            let existing = match spec.id.as_deref().and_then(Id::parse) {
                Some(id) => state.subscriptions.get(&id),
                None => state.subscriptions.values().find(|s| {
                    (s.source_id, s.destination_id) == (source, destination) && s.data_model == spec.data_model
                }),
            };
            let subscription = match spec.build(None, existing, (source, destination), self.ids) {
                Ok(subscription) => subscription,
                Err(e) => {
                    self.refuse(&label, e);
                    continue;
                }
            };
            let twin = declared.iter().find(|s| {
                s.id == subscription.id
                    || (spec.id.is_none()
                        && (s.source_id, s.destination_id) == (source, destination)
                        && s.data_model == subscription.data_model)
            });
            if twin.is_some() {
                self.errors.push(format!(
                    "{label}: the same subscription (id, or source, destination and data_model) is declared twice"
                ));
                continue;
            }
            if existing != Some(&subscription) {
                self.batch.subscriptions.push(subscription.clone());
            }
            self.owned.objects.insert(subscription.id, format!("subscription {}", subscription.id));
            declared.push(subscription);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Config, ids::SeededIds};

    fn parse(text: &str) -> Config {
        let mut config = Config::parse(text).unwrap_or_else(|e| panic!("{e}"));
        config.origin = Some("/etc/ferrox.toml".into());
        config
    }

    fn plan(config: &Config, state: &State, ids: &dyn IdSource) -> Result<Plan, Vec<String>> {
        super::plan(&config.declared(), state, ids)
    }

    const GOOD: &str = r#"
        [[sources]]
        name = "EHR"
        api_key = "ehr-key"
        secret = "ehr-secret-0123456789"
        [[destinations]]
        name = "Lab"
        url = "http://127.0.0.1:9/lab"
        environment = "production"
        [[subscriptions]]
        source = "EHR"
        destination = "Lab"
        data_model = "PatientAdmin"
    "#;

    #[test]
    fn objects_named_by_name_are_applied_as_one_event_once() {
        let config = parse(GOOD);
        let ids = SeededIds::new(1);
        let mut state = State::default();
        let first = plan(&config, &state, &ids).expect("a valid file");
        let Some(Event::ConfigurationApplied(batch)) = &first.event else { panic!("{:?}", first.event) };
        assert_eq!((batch.sources.len(), batch.destinations.len(), batch.subscriptions.len()), (1, 1, 1));
        let (source, destination) = (batch.sources[0].id, batch.destinations[0].id);
        assert_eq!((batch.subscriptions[0].source_id, batch.subscriptions[0].destination_id), (source, destination));
        state.apply(1, first.event.as_ref().expect("an event"));
        assert!(
            first.owned.owns(source) && first.owned.owns(destination) && first.owned.owns(batch.subscriptions[0].id)
        );
        let again = plan(&config, &state, &ids).expect("still valid");
        assert_eq!(again.event, None, "an unchanged file writes nothing");
        assert_eq!(again.owned, first.owned, "the same objects are matched again");
        let refusal = again.owned.refusal(destination).expect("the file owns the lab");
        assert!(refusal.text.contains("destination 'Lab'") && refusal.text.contains("/etc/ferrox.toml"), "{refusal}");
    }

    #[test]
    fn every_error_is_reported_with_its_object_and_field_and_nothing_applies() {
        let text = r#"
            [[sources]]
            name = "EHR"
            [[sources]]
            name = "EHR"
            [[destinations]]
            name = "Lab"
            url = "ftp://lab.example/in"
            environment = "production"
            [[destinations]]
            name = "Analytics"
            url = "http://127.0.0.1:9/a"
            environment = "qa"
            [[subscriptions]]
            source = "EHR"
            destination = "Billing"
            data_model = "PatientAdmin"
            [[subscriptions]]
            source = "EHR"
            destination_id = "not-a-uuid"
            data_model = "PatientAdmin"
            [[subscriptions]]
            source = "EHR"
            destination = "Analytics"
            data_model = "NoSuchModel"
        "#;
        let errors = plan(&parse(text), &State::default(), &SeededIds::new(1)).expect_err("an invalid file");
        let expected = [
            "[[sources]] 'EHR': name is declared twice in [[sources]]",
            "[[destinations]] 'Lab': url 'ftp://lab.example/in' must be an http or https URL",
            "[[destinations]] 'Analytics': environment 'qa'",
            "[[subscriptions]] #1: destination: destination 'Billing' does not exist",
            "[[subscriptions]] #2: destination_id 'not-a-uuid' is not a UUID",
            "[[subscriptions]] #3: destination: destination 'Analytics' does not exist",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, expected) in errors.iter().zip(expected) {
            assert!(error.starts_with(expected), "{error:?} does not start with {expected:?}");
        }
    }

    #[test]
    fn the_example_configuration_is_valid_as_a_whole() {
        let config = parse(include_str!("../../examples/ferrox.toml"));
        let plan = plan(&config, &State::default(), &SeededIds::new(1)).expect("the example is valid");
        let Some(Event::ConfigurationApplied(batch)) = plan.event else { panic!("nothing to apply") };
        assert_eq!((batch.sources.len(), batch.destinations.len(), batch.subscriptions.len()), (1, 4, 4));
    }

    #[test]
    fn a_data_model_error_names_the_field() {
        let text = GOOD.replace("data_model = \"PatientAdmin\"", "data_model = \"NoSuchModel\"");
        let errors = plan(&parse(&text), &State::default(), &SeededIds::new(1)).expect_err("invalid");
        assert_eq!(errors, ["[[subscriptions]] #1: data_model 'NoSuchModel' is not a known data model"]);
    }
}
