//! The registry of Redox data models and their event types, as listed in
//! `datamodels.md`: whether each event type is asynchronous (SEND/RECEIVE on
//! `POST /endpoint`) or synchronous (REQUEST/RESPOND on `POST /query`), and
//! which top-level fields besides `Meta` a message of that type must carry.
//!
//! The table is written the way the document is, one line per group of event
//! types, and expanded into one [`EventSpec`] per event type at compile time.
//! A lookup is a linear scan of about a hundred rows: cheaper than a message's
//! JSON parse by orders of magnitude.

use crate::error::ApiError;

/// How an event type is exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SEND/RECEIVE: queued and delivered, `POST /endpoint`.
    Async,
    /// REQUEST/RESPOND: proxied to one destination, `POST /query`.
    Sync,
}

/// One event type of one data model.
#[derive(Debug)]
pub struct EventSpec {
    pub data_model: &'static str,
    /// The event type's name; `"*"` for the data model `FHIR`, which takes
    /// any event type from the message's `MessageHeader`.
    pub event_type: &'static str,
    pub kind: Kind,
    /// Top-level fields besides `Meta` that a message must carry.
    pub required: &'static [&'static str],
}

/// The data model of FHIR messages (`POST /fhir/R4/$process-message`).
pub const FHIR: &str = "FHIR";

/// FHIR messages take their event type from the `MessageHeader`, so one
/// wildcard row stands for all of them.
static FHIR_ANY: EventSpec = EventSpec { data_model: FHIR, event_type: "*", kind: Kind::Async, required: &[] };

/// Expands `DataModel: [EventType, ...] Kind [Required, ...];` lines into
/// one `EventSpec` per event type.
macro_rules! registry {
    ($($data_model:literal: [$($event_type:literal),+] $kind:ident $required:tt;)+) => {
        &[$($(EventSpec {
            data_model: $data_model,
            event_type: $event_type,
            kind: Kind::$kind,
            required: &$required,
        },)+)+]
    };
}

#[rustfmt::skip]
static EVENTS: &[EventSpec] = registry! {
    "PatientAdmin": ["Arrival", "Cancel", "Discharge", "NewPatient", "PatientMerge", "PatientUpdate",
        "PreAdmit", "Registration", "Transfer", "VisitUpdate"] Async ["Patient"];
    "PatientAdmin": ["VisitMerge"] Async ["Patient", "Visit"];
    "PatientAdmin": ["CensusQuery", "VisitQuery"] Sync [];
    "Scheduling": ["New", "Reschedule", "Modification", "Cancel", "NoShow"] Async ["Visit"];
    "Scheduling": ["PushSlots"] Async ["Slots"];
    "Scheduling": ["AvailableSlots", "Booked"] Sync ["StartDateTime"];
    "SurgicalScheduling": ["New", "Reschedule", "Modification", "Cancel", "NoShow"] Async
        ["Patient", "Procedures", "Visit"];
    "Results": ["New", "NewUnsolicited"] Async ["Patient", "Orders"];
    "Results": ["Query"] Sync [];
    "Order": ["New", "Update", "Cancel"] Async ["Patient", "Order"];
    "Order": ["GroupedOrders"] Async ["Patient", "Orders"];
    "Order": ["Query"] Sync [];
    "Medications": ["New", "Update", "Cancel"] Async ["Patient", "Order"];
    "Medications": ["Administration"] Async ["Patient", "Administrations"];
    "ClinicalSummary": ["PatientPush", "VisitPush"] Async [];
    "ClinicalSummary": ["PatientQuery", "VisitQuery", "DocumentQuery"] Sync ["Patient"];
    "ClinicalSummary": ["DocumentGet"] Sync ["Document"];
    "Notes": ["New", "Replace", "Delete"] Async ["Patient", "Note"];
    "Notes": ["Query"] Sync [];
    "Media": ["New", "Replace", "Delete"] Async ["Patient", "Media"];
    "Media": ["Query"] Sync [];
    "PatientSearch": ["Query"] Sync [];
    "PatientSearch": ["LocationQuery"] Sync ["Patient"];
    "Provider": ["New", "Update", "Activate", "Deactivate"] Async ["Providers"];
    "Provider": ["ProviderQuery"] Sync [];
    "Referral": ["New", "Modify", "Cancel", "AuthReview", "AuthResponse"] Async ["Patient"];
    "Referral": ["Query"] Sync ["Patient"];
    "Claim": ["Submission", "SubmissionBatch", "Payment", "PaymentBatch"] Async [];
    "Financial": ["AccountUpdate"] Async ["Patient"];
    "Financial": ["Transaction"] Async ["Patient", "Transactions"];
    "Vaccination": ["New", "Administration"] Async ["Patient", "Vaccinations"];
    "Vaccination": ["PatientQuery"] Sync [];
    "Flowsheet": ["New"] Async ["Patient", "Observations"];
    "Device": ["New"] Async ["Device", "Observations"];
    "Inventory": ["Update", "Deplete"] Async ["Items"];
    "Organization": ["New"] Async ["Directory", "Organizations"];
    "Organization": ["Update"] Async ["Action", "Directory", "Organizations"];
    "Organization": ["Query"] Sync ["Directory"];
    "PatientEducation": ["New", "Update", "Delete"] Async ["Patient", "Education"];
    "Research": ["Study", "SubjectUpdate"] Async [];
    "ClinicalDecisions": ["Request"] Sync ["Patient", "UnsignedMedicationOrders", "UnsignedProcedureOrders"];
    "Enrichment": ["NormalizationQuery"] Sync ["Entries"];
    "Enrichment": ["NaturalLanguageProcessingQuery"] Sync [];
    "SSO": ["SignOn"] Async ["Subject", "IssuedAt", "Expiration"];
};

/// Whether `name` is a data model ferrox accepts, `FHIR` included.
pub fn is_known_data_model(name: &str) -> bool {
    name == FHIR || EVENTS.iter().any(|spec| spec.data_model == name)
}

/// Looks up an event type of a data model.
///
/// For the data model `FHIR` every event type resolves to one asynchronous
/// wildcard spec (its `event_type` is `"*"`), except names ending in
/// `Response`. Every error is of kind `Invalid`.
pub fn lookup(data_model: &str, event_type: &str) -> Result<&'static EventSpec, ApiError> {
    if !is_known_data_model(data_model) {
        return Err(ApiError::invalid(unknown_data_model(data_model)));
    }
    let is_auth_response = data_model == "Referral" && event_type == "AuthResponse";
    if event_type.ends_with("Response") && !is_auth_response {
        return Err(ApiError::invalid(format!(
            "EventType '{event_type}' is not an event type: a name ending in 'Response' names the shape of a reply"
        )));
    }
    if data_model == FHIR {
        return Ok(&FHIR_ANY);
    }
    let same_model = || EVENTS.iter().filter(|spec| spec.data_model == data_model);
    if let Some(spec) = same_model().find(|spec| spec.event_type == event_type) {
        return Ok(spec);
    }
    let mut text = format!("Unknown EventType '{event_type}' for DataModel '{data_model}'");
    if let Some(near) = same_model().find(|spec| spec.event_type.eq_ignore_ascii_case(event_type)) {
        text.push_str(&format!("; did you mean '{}'?", near.event_type));
    }
    Err(ApiError::invalid(text))
}

/// The text for an unknown data model, with a hint when only the case differs.
fn unknown_data_model(data_model: &str) -> String {
    let mut text = format!("Unknown DataModel '{data_model}'");
    let near =
        EVENTS.iter().map(|spec| spec.data_model).chain([FHIR]).find(|known| known.eq_ignore_ascii_case(data_model));
    if let Some(near) = near {
        text.push_str(&format!("; did you mean '{near}'?"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// The table of `datamodels.md`, verbatim, as the independent record
    /// that the registry is checked against.
    const DOCUMENT: &str = "\
| PatientAdmin | Arrival, Cancel, Discharge, NewPatient, PatientMerge, PatientUpdate, PreAdmit, Registration, Transfer, VisitUpdate | async | Patient |
| PatientAdmin | VisitMerge | async | Patient, Visit |
| PatientAdmin | CensusQuery, VisitQuery | sync | — |
| Scheduling | New, Reschedule, Modification, Cancel, NoShow | async | Visit |
| Scheduling | PushSlots | async | Slots |
| Scheduling | AvailableSlots, Booked | sync | StartDateTime |
| SurgicalScheduling | New, Reschedule, Modification, Cancel, NoShow | async | Patient, Procedures, Visit |
| Results | New, NewUnsolicited | async | Patient, Orders |
| Results | Query | sync | — |
| Order | New, Update, Cancel | async | Patient, Order |
| Order | GroupedOrders | async | Patient, Orders |
| Order | Query | sync | — |
| Medications | New, Update, Cancel | async | Patient, Order |
| Medications | Administration | async | Patient, Administrations |
| ClinicalSummary | PatientPush, VisitPush | async | — |
| ClinicalSummary | PatientQuery, VisitQuery, DocumentQuery | sync | Patient |
| ClinicalSummary | DocumentGet | sync | Document |
| Notes | New, Replace, Delete | async | Patient, Note |
| Notes | Query | sync | — |
| Media | New, Replace, Delete | async | Patient, Media |
| Media | Query | sync | — |
| PatientSearch | Query | sync | — |
| PatientSearch | LocationQuery | sync | Patient |
| Provider | New, Update, Activate, Deactivate | async | Providers |
| Provider | ProviderQuery | sync | — |
| Referral | New, Modify, Cancel, AuthReview, AuthResponse | async | Patient |
| Referral | Query | sync | Patient |
| Claim | Submission, SubmissionBatch, Payment, PaymentBatch | async | — |
| Financial | AccountUpdate | async | Patient |
| Financial | Transaction | async | Patient, Transactions |
| Vaccination | New, Administration | async | Patient, Vaccinations |
| Vaccination | PatientQuery | sync | — |
| Flowsheet | New | async | Patient, Observations |
| Device | New | async | Device, Observations |
| Inventory | Update, Deplete | async | Items |
| Organization | New | async | Directory, Organizations |
| Organization | Update | async | Action, Directory, Organizations |
| Organization | Query | sync | Directory |
| PatientEducation | New, Update, Delete | async | Patient, Education |
| Research | Study, SubjectUpdate | async | — |
| ClinicalDecisions | Request | sync | Patient, UnsignedMedicationOrders, UnsignedProcedureOrders |
| Enrichment | NormalizationQuery | sync | Entries |
| Enrichment | NaturalLanguageProcessingQuery | sync | — |
| SSO | SignOn | async | Subject, IssuedAt, Expiration |
";

    /// Splits a comma-separated cell; `—` is the empty list.
    fn cell_list(cell: &str) -> Vec<&str> {
        if cell == "—" { Vec::new() } else { cell.split(", ").collect() }
    }

    /// Every event type of the document, expanded: (model, event, kind, required).
    fn document_rows() -> Vec<(&'static str, &'static str, Kind, Vec<&'static str>)> {
        let mut rows = Vec::new();
        for line in DOCUMENT.lines() {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let [model, events, kind, required] = cells[..] else { panic!("bad row {line}") };
            let kind = match kind {
                "async" => Kind::Async,
                "sync" => Kind::Sync,
                other => panic!("bad kind {other}"),
            };
            for event in cell_list(events) {
                rows.push((model, event, kind, cell_list(required)));
            }
        }
        rows
    }

    #[test]
    fn every_document_row_resolves_with_its_kind_and_required_fields() {
        let rows = document_rows();
        for (model, event, kind, required) in &rows {
            let spec = lookup(model, event).unwrap_or_else(|e| panic!("{model}:{event}: {}", e.text));
            assert_eq!((spec.data_model, spec.event_type), (*model, *event));
            assert_eq!(spec.kind, *kind, "{model}:{event}");
            assert_eq!(spec.required, &required[..], "{model}:{event}");
        }
        // Nothing in the registry that the document lacks, and no duplicates.
        assert_eq!(rows.len(), 90);
        assert_eq!(EVENTS.len(), rows.len());
        for (i, a) in EVENTS.iter().enumerate() {
            let duplicate =
                EVENTS[i + 1..].iter().any(|b| (a.data_model, a.event_type) == (b.data_model, b.event_type));
            assert!(!duplicate, "{}:{} twice", a.data_model, a.event_type);
        }
    }

    #[test]
    fn spot_checks_and_special_cases() {
        use Kind::{Async, Sync};
        let cases: &[(&str, &str, Kind, &[&str])] = &[
            ("PatientAdmin", "NewPatient", Async, &["Patient"]),
            ("PatientAdmin", "VisitMerge", Async, &["Patient", "Visit"]),
            ("PatientAdmin", "VisitQuery", Sync, &[]),
            ("PatientAdmin", "Cancel", Async, &["Patient"]),
            ("Scheduling", "Cancel", Async, &["Visit"]),
            ("Scheduling", "AvailableSlots", Sync, &["StartDateTime"]),
            ("SurgicalScheduling", "Cancel", Async, &["Patient", "Procedures", "Visit"]),
            ("Results", "Query", Sync, &[]),
            ("Order", "GroupedOrders", Async, &["Patient", "Orders"]),
            ("Medications", "Administration", Async, &["Patient", "Administrations"]),
            ("ClinicalSummary", "VisitQuery", Sync, &["Patient"]),
            ("ClinicalSummary", "DocumentGet", Sync, &["Document"]),
            ("Notes", "Replace", Async, &["Patient", "Note"]),
            ("Media", "Query", Sync, &[]),
            ("PatientSearch", "LocationQuery", Sync, &["Patient"]),
            ("Provider", "ProviderQuery", Sync, &[]),
            ("Referral", "AuthResponse", Async, &["Patient"]),
            ("Referral", "Query", Sync, &["Patient"]),
            ("Claim", "PaymentBatch", Async, &[]),
            ("Financial", "Transaction", Async, &["Patient", "Transactions"]),
            ("Vaccination", "PatientQuery", Sync, &[]),
            ("Flowsheet", "New", Async, &["Patient", "Observations"]),
            ("Device", "New", Async, &["Device", "Observations"]),
            ("Inventory", "Deplete", Async, &["Items"]),
            ("Organization", "Update", Async, &["Action", "Directory", "Organizations"]),
            ("Organization", "Query", Sync, &["Directory"]),
            ("PatientEducation", "Delete", Async, &["Patient", "Education"]),
            ("Research", "Study", Async, &[]),
            ("ClinicalDecisions", "Request", Sync, &["Patient", "UnsignedMedicationOrders", "UnsignedProcedureOrders"]),
            ("Enrichment", "NaturalLanguageProcessingQuery", Sync, &[]),
            ("SSO", "SignOn", Async, &["Subject", "IssuedAt", "Expiration"]),
            ("FHIR", "admin-notify", Async, &[]),
        ];
        for (model, event, kind, required) in cases {
            let spec = lookup(model, event).unwrap_or_else(|e| panic!("{model}:{event}: {}", e.text));
            assert_eq!((spec.kind, spec.required), (*kind, *required), "{model}:{event}");
        }
        assert_eq!(lookup("FHIR", "patient-link").map(|s| s.event_type).ok(), Some("*"));
    }

    #[test]
    fn errors_are_invalid_with_clear_texts() {
        let cases: &[(&str, &str, &str)] = &[
            ("Foo", "NewPatient", "Unknown DataModel 'Foo'"),
            ("patientadmin", "NewPatient", "Unknown DataModel 'patientadmin'; did you mean 'PatientAdmin'?"),
            ("PatientAdmin", "Bar", "Unknown EventType 'Bar' for DataModel 'PatientAdmin'"),
            (
                "PatientAdmin",
                "newpatient",
                "Unknown EventType 'newpatient' for DataModel 'PatientAdmin'; did you mean 'NewPatient'?",
            ),
            ("PatientAdmin", "Query", "Unknown EventType 'Query' for DataModel 'PatientAdmin'"),
            ("PatientAdmin", "", "Unknown EventType '' for DataModel 'PatientAdmin'"),
            ("ClinicalSummary", "PatientQueryResponse", "EventType 'PatientQueryResponse' is not an event type"),
            ("PatientAdmin", "AuthResponse", "names the shape of a reply"),
            ("FHIR", "admin-notifyResponse", "names the shape of a reply"),
        ];
        for (model, event, text) in cases {
            let e = lookup(model, event).expect_err(event);
            assert_eq!(e.kind, ErrorKind::Invalid, "{model}:{event}");
            assert!(e.text.starts_with(text) || e.text.contains(text), "{model}:{event}: {}", e.text);
        }
    }

    #[test]
    fn no_event_type_but_auth_response_ends_in_response() {
        let odd: Vec<_> = EVENTS.iter().filter(|s| s.event_type.ends_with("Response")).map(|s| s.event_type).collect();
        assert_eq!(odd, ["AuthResponse"]);
    }

    #[test]
    fn known_data_models() {
        for model in ["PatientAdmin", "SSO", "FHIR", "Enrichment"] {
            assert!(is_known_data_model(model), "{model}");
        }
        for model in ["", "Fhir", "Patientadmin", "Query"] {
            assert!(!is_known_data_model(model), "{model}");
        }
    }
}
