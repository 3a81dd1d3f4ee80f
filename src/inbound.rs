//! Parsing and validating the body of an inbound request: a Redox message
//! (`POST /endpoint`, `POST /query`) or a FHIR message `Bundle`
//! (`POST /fhir/R4/$process-message`).
//!
//! Everything here is a pure function of the body bytes, so a rejected
//! request has touched nothing. The checks stop at presence and shape: the
//! engine routes by `Meta` and the message header, and leaves the clinical
//! content to the receivers.

use serde_json::{Map, Value};

use crate::{
    datamodels::{self, EventSpec, Kind},
    error::ApiError,
};

/// A JSON object.
type Object = Map<String, Value>;

/// The path a Redox request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /endpoint`: asynchronous SEND.
    Send,
    /// `POST /query`: synchronous REQUEST.
    Query,
}

impl Endpoint {
    /// The method and path, as error texts name it.
    pub fn path(self) -> &'static str {
        match self {
            Self::Send => "POST /endpoint",
            Self::Query => "POST /query",
        }
    }
}

/// The path that FHIR messages are posted to.
const FHIR_PATH: &str = "POST /fhir/R4/$process-message";

/// A destination named by the sender; the router resolves it.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationRef {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// A request body that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub data_model: String,
    pub event_type: String,
    /// Meta.Destinations (Redox) or MessageHeader.destination (FHIR); empty = route by subscriptions.
    pub destinations: Vec<DestinationRef>,
    /// The request's Meta object (Redox), echoed in the 200 response; Value::Null for FHIR.
    pub meta: Value,
}

/// An error with what was known of the request, so the error body can name the DataModel/EventType.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundError {
    pub error: ApiError,
    pub data_model: Option<String>,
    pub event_type: Option<String>,
}

/// What has been read of a request so far, for the error body.
#[derive(Debug, Default)]
struct Seen {
    data_model: Option<String>,
    event_type: Option<String>,
}

impl Seen {
    fn into_error(self, error: ApiError) -> InboundError {
        InboundError { error, data_model: self.data_model, event_type: self.event_type }
    }
}

/// Parses and validates a Redox Data Model message.
pub fn parse_redox(body: &[u8], endpoint: Endpoint) -> Result<Inbound, InboundError> {
    let mut seen = Seen::default();
    redox(body, endpoint, &mut seen).map_err(|error| seen.into_error(error))
}

/// Parses and validates a FHIR R4 message `Bundle`.
pub fn parse_fhir(body: &[u8]) -> Result<Inbound, InboundError> {
    let mut seen = Seen { data_model: Some(datamodels::FHIR.to_owned()), event_type: None };
    fhir(body, &mut seen).map_err(|error| seen.into_error(error))
}

fn redox(bytes: &[u8], endpoint: Endpoint, seen: &mut Seen) -> Result<Inbound, ApiError> {
    let body = parse_json(bytes)?;
    let object = as_object(&body, "Body")?;
    let meta = redox_meta(object)?;
    let data_model = meta_name(meta, "DataModel")?;
    seen.data_model = Some(data_model.clone());
    if data_model == datamodels::FHIR {
        let text = format!("DataModel 'FHIR' is not sent here: post FHIR message Bundles to {FHIR_PATH}");
        return Err(ApiError::invalid(text));
    }
    let event_type = meta_name(meta, "EventType")?;
    seen.event_type = Some(event_type.clone());
    let spec = datamodels::lookup(&data_model, &event_type)?;
    check_endpoint(spec, endpoint)?;
    let destinations = redox_destinations(meta)?;
    check_test_flag(meta)?;
    check_required_fields(spec, object)?;
    let meta = Value::Object(meta.clone());
    Ok(Inbound { data_model, event_type, destinations, meta })
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    // serde_json's message ends with "at line L column C"; its recursion limit
    // turns a deeply nested body into an error rather than a stack overflow.
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("Body is not valid JSON: {e}")))
}

/// The text for a value of the wrong type: "`path` must be `what`, found a number".
fn must_be(path: &str, what: &str, found: &Value) -> String {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("{path} must be {what}, found {found}")
}

/// `value` must be an object; `path` names it in the error.
fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Object, ApiError> {
    value.as_object().ok_or_else(|| ApiError::invalid(must_be(path, "a JSON object", value)))
}

/// The field `key` of `object`, where `null` counts as absent.
fn field<'a>(object: &'a Object, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

fn redox_meta(body: &Object) -> Result<&Object, ApiError> {
    match field(body, "Meta") {
        Some(Value::Object(meta)) => Ok(meta),
        Some(other) => Err(ApiError::required(must_be("Meta", "an object", other))),
        None if body.contains_key("resourceType") => {
            Err(ApiError::required(format!("Required field missing - Meta (FHIR resources go to {FHIR_PATH})")))
        }
        None => Err(ApiError::required("Required field missing - Meta")),
    }
}

/// `Meta.DataModel` or `Meta.EventType`: a non-empty string.
fn meta_name(meta: &Object, key: &str) -> Result<String, ApiError> {
    let path = format!("Meta.{key}");
    match field(meta, key) {
        Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
        Some(Value::String(_)) | None => Err(ApiError::required(format!("Required field missing - {path}"))),
        Some(other) => Err(ApiError::required(must_be(&path, "a string", other))),
    }
}

fn check_endpoint(spec: &EventSpec, endpoint: Endpoint) -> Result<(), ApiError> {
    let (adjective, right) = match (spec.kind, endpoint) {
        (Kind::Async, Endpoint::Send) | (Kind::Sync, Endpoint::Query) => return Ok(()),
        (Kind::Sync, Endpoint::Send) => ("a synchronous", Endpoint::Query),
        (Kind::Async, Endpoint::Query) => ("an asynchronous", Endpoint::Send),
    };
    let (model, event) = (spec.data_model, spec.event_type);
    let (right, wrong) = (right.path(), endpoint.path());
    let text = format!("{model}:{event} is {adjective} event type: use {right}, not {wrong}");
    Err(ApiError::invalid(text))
}

/// A list field that may be absent or `null`; `path` names it in the error.
fn optional_array<'a>(object: &'a Object, key: &str, path: &str) -> Result<&'a [Value], ApiError> {
    match field(object, key) {
        None => Ok(&[]),
        Some(Value::Array(list)) => Ok(list),
        Some(other) => Err(ApiError::invalid(must_be(path, "an array", other))),
    }
}

/// A string field that may be absent; `null` and `""` count as absent.
fn optional_string(object: &Object, key: &str, path: &str) -> Result<Option<String>, ApiError> {
    match field(object, key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone()).filter(|text| !text.is_empty())),
        Some(other) => {
            let path = format!("{path}.{key}");
            Err(ApiError::invalid(must_be(&path, "a string", other)))
        }
    }
}

/// `Meta.Destinations`: absent, `null` or an array of `{ID, Name}` objects.
fn redox_destinations(meta: &Object) -> Result<Vec<DestinationRef>, ApiError> {
    let list = optional_array(meta, "Destinations", "Meta.Destinations")?;
    let mut destinations = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let path = format!("Meta.Destinations[{i}]");
        let item = as_object(item, &path)?;
        let id = optional_string(item, "ID", &path)?;
        let name = optional_string(item, "Name", &path)?;
        if id.is_none() && name.is_none() {
            let text = format!("{path} must have an ID or a Name");
            return Err(ApiError::invalid(text));
        }
        destinations.push(DestinationRef { id, name });
    }
    Ok(destinations)
}

fn check_test_flag(meta: &Object) -> Result<(), ApiError> {
    match field(meta, "Test") {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(other) => Err(ApiError::invalid(must_be("Meta.Test", "a boolean", other))),
    }
}

fn check_required_fields(spec: &EventSpec, body: &Object) -> Result<(), ApiError> {
    let Some(key) = spec.required.iter().find(|key| field(body, key).is_none()) else {
        return Ok(());
    };
    let (model, event) = (spec.data_model, spec.event_type);
    let text = format!("Required field missing - {key} in {model}:{event}");
    Err(ApiError::required(text))
}

fn fhir(bytes: &[u8], seen: &mut Seen) -> Result<Inbound, ApiError> {
    let body = parse_json(bytes)?;
    let bundle = as_object(&body, "Body")?;
    expect_code(bundle, "resourceType", "Bundle", "Bundle.resourceType")?;
    expect_code(bundle, "type", "message", "Bundle.type")?;
    let header = message_header(bundle)?;
    let event_type = fhir_event(header)?;
    seen.event_type = Some(event_type.clone());
    datamodels::lookup(datamodels::FHIR, &event_type)?;
    let destinations = fhir_destinations(header)?;
    let data_model = datamodels::FHIR.to_owned();
    Ok(Inbound { data_model, event_type, destinations, meta: Value::Null })
}

/// `object[key]` must be the string `expected`; `path` names it in errors.
fn expect_code(object: &Object, key: &str, expected: &str, path: &str) -> Result<(), ApiError> {
    let what = format!("'{expected}'");
    match field(object, key) {
        Some(Value::String(code)) if code == expected => Ok(()),
        Some(Value::String(code)) => Err(ApiError::invalid(format!("{path} must be {what}, found '{code}'"))),
        Some(other) => Err(ApiError::invalid(must_be(path, &what, other))),
        None => Err(ApiError::required(format!("Required element missing - {path} (must be {what})"))),
    }
}

/// The resource of the first entry, which must be a `MessageHeader`.
fn message_header(bundle: &Object) -> Result<&Object, ApiError> {
    if field(bundle, "entry").is_none() {
        let text = "Required element missing - Bundle.entry (its first entry is the MessageHeader)";
        return Err(ApiError::required(text));
    }
    let Some(first) = optional_array(bundle, "entry", "Bundle.entry")?.first() else {
        let text = "Bundle.entry is empty: a message Bundle's first entry must be a MessageHeader";
        return Err(ApiError::required(text));
    };
    let first = as_object(first, "Bundle.entry[0]")?;
    let Some(resource) = field(first, "resource") else {
        let text = "Required element missing - Bundle.entry[0].resource (the MessageHeader)";
        return Err(ApiError::required(text));
    };
    let resource = as_object(resource, "Bundle.entry[0].resource")?;
    let path = "Bundle.entry[0].resource.resourceType";
    expect_code(resource, "resourceType", "MessageHeader", path)?;
    Ok(resource)
}

/// The event type: the last segment of `eventUri`, else `eventCoding.code`.
fn fhir_event(header: &Object) -> Result<String, ApiError> {
    if let Some(uri) = optional_string(header, "eventUri", "MessageHeader")? {
        let event = uri_event(&uri).map(str::to_owned);
        let text = || format!("MessageHeader.eventUri '{uri}' does not end in an event name");
        return event.ok_or_else(|| ApiError::invalid(text()));
    }
    let Some(coding) = field(header, "eventCoding") else {
        let text = "Required element missing - MessageHeader.eventUri or MessageHeader.eventCoding";
        return Err(ApiError::required(text));
    };
    let coding = as_object(coding, "MessageHeader.eventCoding")?;
    optional_string(coding, "code", "MessageHeader.eventCoding")?
        .ok_or_else(|| ApiError::required("Required element missing - MessageHeader.eventCoding.code"))
}

/// The event name an event URI ends in: its fragment if it has one (as in
/// `http://example.org/events#admit`), else its last path segment, else for
/// a URN its last colon-separated part. `None` when that is empty.
fn uri_event(uri: &str) -> Option<&str> {
    let (rest, fragment) = uri.split_once('#').unwrap_or((uri, ""));
    let path = if fragment.is_empty() { rest.split('?').next().unwrap_or(rest) } else { fragment };
    let mut event = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if !path.contains('/') && path.starts_with("urn:") {
        event = event.rsplit(':').next().unwrap_or("");
    }
    Some(event).filter(|event| !event.is_empty())
}

/// `MessageHeader.destination[]`: `name`, and an ID from an `endpoint` of
/// the form `urn:uuid:<destination id>`.
fn fhir_destinations(header: &Object) -> Result<Vec<DestinationRef>, ApiError> {
    let list = optional_array(header, "destination", "MessageHeader.destination")?;
    let mut destinations = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let path = format!("MessageHeader.destination[{i}]");
        let item = as_object(item, &path)?;
        let name = optional_string(item, "name", &path)?;
        let endpoint = optional_string(item, "endpoint", &path)?;
        let id = endpoint.as_deref().and_then(destination_id);
        if id.is_none() && name.is_none() {
            return Err(ApiError::invalid(format!(
                "{path} names no destination: give a name, or an endpoint urn:uuid:<destination id>"
            )));
        }
        destinations.push(DestinationRef { id, name });
    }
    Ok(destinations)
}

/// The destination ID in an endpoint `urn:uuid:<uuid>`, hyphenated lower case.
fn destination_id(endpoint: &str) -> Option<String> {
    let uuid = endpoint.strip_prefix("urn:uuid:")?;
    let id = uuid::Uuid::try_parse(uuid).ok()?;
    Some(id.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::ErrorKind::{self, Invalid, Required};

    const NEW_PATIENT: &str = r#"{"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient"}, "Patient": {}}"#;

    /// A NewPatient message whose `Meta` has `extra` merged in.
    fn new_patient_with(extra: Value) -> String {
        let mut body: Value = serde_json::from_str(NEW_PATIENT).expect("fixture");
        if let (Some(meta), Value::Object(extra)) = (body["Meta"].as_object_mut(), extra) {
            meta.extend(extra);
        }
        body.to_string()
    }

    fn dest(id: Option<&str>, name: Option<&str>) -> DestinationRef {
        DestinationRef { id: id.map(str::to_owned), name: name.map(str::to_owned) }
    }

    fn redox_err(body: &str, endpoint: Endpoint) -> InboundError {
        match parse_redox(body.as_bytes(), endpoint) {
            Ok(inbound) => panic!("accepted {body}: {inbound:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn redox_bad_input_is_rejected_with_kind_and_text() {
        use Endpoint::{Query, Send};
        let with = |extra| new_patient_with(extra);
        let meta =
            |model: &str, event: &str| format!(r#"{{"Meta": {{"DataModel": "{model}", "EventType": "{event}"}}}}"#);
        // (body, endpoint, kind, text: exact, or a prefix when it ends in '…').
        #[rustfmt::skip]
        let cases: Vec<(String, Endpoint, ErrorKind, &str)> = vec![
            ("".into(), Send, Invalid, "Body is not valid JSON: EOF while parsing a value at line 1 column 0"),
            ("{\n  \"Meta\": {,\n}".into(), Send, Invalid, "Body is not valid JSON: key must be a string at line 2 column 12"),
            ("{} trailing".into(), Send, Invalid, "Body is not valid JSON: trailing characters at line 1 column 4"),
            ("[".repeat(10_000), Send, Invalid, "Body is not valid JSON: recursion limit exceeded…"),
            ("[1, 2]".into(), Send, Invalid, "Body must be a JSON object, found an array"),
            (r#""text""#.into(), Send, Invalid, "Body must be a JSON object, found a string"),
            ("{}".into(), Send, Required, "Required field missing - Meta"),
            (r#"{"Meta": null}"#.into(), Send, Required, "Required field missing - Meta"),
            (r#"{"Meta": "x"}"#.into(), Send, Required, "Meta must be an object, found a string"),
            (r#"{"resourceType": "Bundle"}"#.into(), Send, Required, "Required field missing - Meta (FHIR resources go to POST /fhir/R4/$process-message)"),
            (r#"{"Meta": {"EventType": "NewPatient"}}"#.into(), Send, Required, "Required field missing - Meta.DataModel"),
            (r#"{"Meta": {"DataModel": 7}}"#.into(), Send, Required, "Meta.DataModel must be a string, found a number"),
            (meta("", "NewPatient"), Send, Required, "Required field missing - Meta.DataModel"),
            (r#"{"Meta": {"DataModel": "PatientAdmin"}}"#.into(), Send, Required, "Required field missing - Meta.EventType"),
            (r#"{"Meta": {"DataModel": "PatientAdmin", "EventType": ["x"]}}"#.into(), Send, Required, "Meta.EventType must be a string, found an array"),
            (meta("Foo", "NewPatient"), Send, Invalid, "Unknown DataModel 'Foo'"),
            (meta("PatientAdmin", "Bar"), Send, Invalid, "Unknown EventType 'Bar' for DataModel 'PatientAdmin'"),
            (meta("ClinicalSummary", "PatientQueryResponse"), Query, Invalid, "EventType 'PatientQueryResponse' is not an event type: a name ending in 'Response' names the shape of a reply"),
            (meta("FHIR", "admin-notify"), Send, Invalid, "DataModel 'FHIR' is not sent here: post FHIR message Bundles to POST /fhir/R4/$process-message"),
            (meta("PatientAdmin", "VisitQuery"), Send, Invalid, "PatientAdmin:VisitQuery is a synchronous event type: use POST /query, not POST /endpoint"),
            (NEW_PATIENT.into(), Query, Invalid, "PatientAdmin:NewPatient is an asynchronous event type: use POST /endpoint, not POST /query"),
            (meta("PatientAdmin", "NewPatient"), Send, Required, "Required field missing - Patient in PatientAdmin:NewPatient"),
            (r#"{"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient"}, "Patient": null}"#.into(), Send, Required, "Required field missing - Patient in PatientAdmin:NewPatient"),
            (r#"{"Meta": {"DataModel": "PatientAdmin", "EventType": "VisitMerge"}, "Patient": {}}"#.into(), Send, Required, "Required field missing - Visit in PatientAdmin:VisitMerge"),
            (r#"{"Meta": {"DataModel": "Organization", "EventType": "Update"}, "Directory": {}, "Organizations": []}"#.into(), Send, Required, "Required field missing - Action in Organization:Update"),
            (meta("Scheduling", "AvailableSlots"), Query, Required, "Required field missing - StartDateTime in Scheduling:AvailableSlots"),
            (with(json!({"Destinations": {"ID": "x"}})), Send, Invalid, "Meta.Destinations must be an array, found an object"),
            (with(json!({"Destinations": ["x"]})), Send, Invalid, "Meta.Destinations[0] must be a JSON object, found a string"),
            (with(json!({"Destinations": [{"Name": "a"}, {}]})), Send, Invalid, "Meta.Destinations[1] must have an ID or a Name"),
            (with(json!({"Destinations": [{"ID": 5, "Name": "a"}]})), Send, Invalid, "Meta.Destinations[0].ID must be a string, found a number"),
            (with(json!({"Destinations": [{"ID": "x", "Name": true}]})), Send, Invalid, "Meta.Destinations[0].Name must be a string, found a boolean"),
            (with(json!({"Test": "true"})), Send, Invalid, "Meta.Test must be a boolean, found a string"),
        ];
        for (body, endpoint, kind, text) in &cases {
            let e = redox_err(body, *endpoint);
            assert_eq!(e.error.kind, *kind, "{body}: {}", e.error.text);
            match text.strip_suffix('…') {
                Some(fragment) => assert!(e.error.text.starts_with(fragment), "{body}: {}", e.error.text),
                None => assert_eq!(e.error.text, *text, "{body}"),
            }
        }
    }

    #[test]
    fn redox_errors_carry_what_was_known() {
        let e = redox_err(r#"{"Meta": {"DataModel": "PatientAdmin"}}"#, Endpoint::Send);
        assert_eq!((e.data_model.as_deref(), e.event_type), (Some("PatientAdmin"), None));
        let e = redox_err(r#"{"Meta": {"DataModel": "PatientAdmin", "EventType": "Bar"}}"#, Endpoint::Send);
        assert_eq!((e.data_model.as_deref(), e.event_type.as_deref()), (Some("PatientAdmin"), Some("Bar")));
        let e = redox_err("{}", Endpoint::Send);
        assert_eq!((e.data_model, e.event_type), (None, None));
    }

    #[test]
    fn redox_send_is_parsed() {
        let body = new_patient_with(
            json!({"Test": true, "Destinations": [{"ID": "d-1", "Name": "EHR"}, {"Name": "Lab", "ID": null}]}),
        );
        let inbound = parse_redox(body.as_bytes(), Endpoint::Send).expect("valid");
        assert_eq!((inbound.data_model.as_str(), inbound.event_type.as_str()), ("PatientAdmin", "NewPatient"));
        let expected = [dest(Some("d-1"), Some("EHR")), dest(None, Some("Lab"))];
        assert_eq!(inbound.destinations, expected);
        assert_eq!(inbound.meta["Test"], true);
        let sent: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(inbound.meta, sent["Meta"]);
    }

    #[test]
    fn redox_accepts_what_it_should() {
        #[rustfmt::skip]
        let cases: &[(&str, Endpoint)] = &[
            (r#"{"Meta": {"DataModel": "PatientAdmin", "EventType": "VisitQuery"}}"#, Endpoint::Query),
            (r#"{"Meta": {"DataModel": "Referral", "EventType": "AuthResponse"}, "Patient": {}}"#, Endpoint::Send),
            (r#"{"Meta": {"DataModel": "Claim", "EventType": "Payment", "Destinations": [], "Test": null}}"#, Endpoint::Send),
            (r#"{"Meta": {"DataModel": "Claim", "EventType": "Payment", "Destinations": null}}"#, Endpoint::Send),
        ];
        for (body, endpoint) in cases {
            let inbound =
                parse_redox(body.as_bytes(), *endpoint).unwrap_or_else(|e| panic!("{body}: {}", e.error.text));
            assert!(inbound.destinations.is_empty(), "{body}");
        }
    }

    /// A message Bundle whose first entry's resource is `header`.
    fn bundle(header: Value) -> String {
        json!({"resourceType": "Bundle", "type": "message", "entry": [{"resource": header}, {"resource": {"resourceType": "Patient"}}]}).to_string()
    }

    #[test]
    fn fhir_with_event_uri_is_parsed() {
        let id = "3F2504E0-4F89-41D3-9A0C-0305E82C3301";
        let header = json!({"resourceType": "MessageHeader", "eventUri": "http://example.org/fhir/message-events/patient-link",
            "destination": [{"name": "EHR", "endpoint": format!("urn:uuid:{id}")}, {"name": "Lab", "endpoint": "https://lab.example/in"},
                {"endpoint": format!("urn:uuid:{id}")}]});
        let inbound = parse_fhir(bundle(header).as_bytes()).expect("valid");
        assert_eq!((inbound.data_model.as_str(), inbound.event_type.as_str()), ("FHIR", "patient-link"));
        let id = id.to_lowercase();
        let expected = [dest(Some(&id), Some("EHR")), dest(None, Some("Lab")), dest(Some(&id), None)];
        assert_eq!(inbound.destinations, expected);
        assert_eq!(inbound.meta, Value::Null);
    }

    #[test]
    fn fhir_with_event_coding_is_parsed() {
        let header = json!({"resourceType": "MessageHeader", "eventCoding": {"system": "http://example.org/events", "code": "admin-notify"}});
        let inbound = parse_fhir(bundle(header).as_bytes()).expect("valid");
        assert_eq!(inbound.event_type, "admin-notify");
        assert!(inbound.destinations.is_empty());
    }

    #[test]
    fn event_names_from_uris() {
        #[rustfmt::skip]
        let cases = [
            ("http://example.org/events/admit", Some("admit")),
            ("http://example.org/events/admit/", Some("admit")),
            ("http://example.org/events/admit?v=2", Some("admit")),
            ("http://example.org/events#discharge", Some("discharge")),
            ("http://example.org/events/#", Some("events")),
            ("urn:ihe:iti:pmir:2019:patient-feed", Some("patient-feed")),
            ("admit", Some("admit")),
            ("urn:", None),
            ("http://example.org/events#", Some("events")),
            ("/", None),
            ("", None),
        ];
        for (uri, event) in cases {
            assert_eq!(uri_event(uri), event, "{uri}");
        }
    }

    #[test]
    fn fhir_bad_input_is_rejected_with_kind_and_text() {
        let header = |extra: Value| {
            let mut header = json!({"resourceType": "MessageHeader", "eventUri": "http://example.org/events/admit"});
            if let (Some(h), Value::Object(extra)) = (header.as_object_mut(), extra) {
                h.extend(extra);
            }
            bundle(header)
        };
        let mh = "Bundle.entry[0].resource.resourceType";
        #[rustfmt::skip]
        let cases: Vec<(String, ErrorKind, String)> = vec![
            ("{".into(), Invalid, "Body is not valid JSON: EOF while parsing an object at line 1 column 1".into()),
            ("[]".into(), Invalid, "Body must be a JSON object, found an array".into()),
            (r#"{"type": "message"}"#.into(), Required, "Required element missing - Bundle.resourceType (must be 'Bundle')".into()),
            (r#"{"resourceType": "Patient"}"#.into(), Invalid, "Bundle.resourceType must be 'Bundle', found 'Patient'".into()),
            (r#"{"resourceType": "Bundle"}"#.into(), Required, "Required element missing - Bundle.type (must be 'message')".into()),
            (r#"{"resourceType": "Bundle", "type": "collection"}"#.into(), Invalid, "Bundle.type must be 'message', found 'collection'".into()),
            (r#"{"resourceType": "Bundle", "type": "message"}"#.into(), Required, "Required element missing - Bundle.entry (its first entry is the MessageHeader)".into()),
            (r#"{"resourceType": "Bundle", "type": "message", "entry": {}}"#.into(), Invalid, "Bundle.entry must be an array, found an object".into()),
            (r#"{"resourceType": "Bundle", "type": "message", "entry": []}"#.into(), Required, "Bundle.entry is empty: a message Bundle's first entry must be a MessageHeader".into()),
            (r#"{"resourceType": "Bundle", "type": "message", "entry": [1]}"#.into(), Invalid, "Bundle.entry[0] must be a JSON object, found a number".into()),
            (r#"{"resourceType": "Bundle", "type": "message", "entry": [{}]}"#.into(), Required, "Required element missing - Bundle.entry[0].resource (the MessageHeader)".into()),
            (bundle(json!({"resourceType": "Patient"})), Invalid, format!("{mh} must be 'MessageHeader', found 'Patient'")),
            (bundle(json!({"eventUri": "x"})), Required, format!("Required element missing - {mh} (must be 'MessageHeader')")),
            (bundle(json!({"resourceType": "MessageHeader"})), Required, "Required element missing - MessageHeader.eventUri or MessageHeader.eventCoding".into()),
            (header(json!({"eventUri": 3})), Invalid, "MessageHeader.eventUri must be a string, found a number".into()),
            (header(json!({"eventUri": "urn:"})), Invalid, "MessageHeader.eventUri 'urn:' does not end in an event name".into()),
            (header(json!({"eventUri": null, "eventCoding": {"system": "s"}})), Required, "Required element missing - MessageHeader.eventCoding.code".into()),
            (header(json!({"eventUri": null, "eventCoding": {"code": 1}})), Invalid, "MessageHeader.eventCoding.code must be a string, found a number".into()),
            (header(json!({"eventUri": "http://x/admit-notifyResponse"})), Invalid, "EventType 'admit-notifyResponse' is not an event type: a name ending in 'Response' names the shape of a reply".into()),
            (header(json!({"destination": {"name": "x"}})), Invalid, "MessageHeader.destination must be an array, found an object".into()),
            (header(json!({"destination": [{"endpoint": "http://x"}]})), Invalid, "MessageHeader.destination[0] names no destination: give a name, or an endpoint urn:uuid:<destination id>".into()),
            (header(json!({"destination": [{"name": 1}]})), Invalid, "MessageHeader.destination[0].name must be a string, found a number".into()),
        ];
        for (body, kind, text) in &cases {
            let e = match parse_fhir(body.as_bytes()) {
                Ok(inbound) => panic!("accepted {body}: {inbound:?}"),
                Err(e) => e,
            };
            assert_eq!((e.error.kind, &e.error.text), (*kind, text), "{body}");
            assert_eq!(e.data_model.as_deref(), Some("FHIR"));
        }
    }
}
