//! Arbitrary bytes as the body of `POST /endpoint`, `POST /query` and
//! `POST /fhir/R4/$process-message`, through the parsing and validation the
//! server runs before anything is written. They must never panic; what
//! they accept must be a JSON object whose data model and event type are
//! known (an asynchronous one on `/endpoint`, a synchronous one on
//! `/query`), and what they refuse must be refused with a 4xx.

#![no_main]

use ferrox::{
    datamodels,
    inbound::{Endpoint, parse_fhir, parse_redox},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let object = serde_json::from_slice::<serde_json::Value>(data).ok().filter(serde_json::Value::is_object);
    for endpoint in [Endpoint::Send, Endpoint::Query] {
        match parse_redox(data, endpoint) {
            Ok(inbound) => {
                assert!(object.is_some(), "accepted a body that is not a JSON object");
                let spec = datamodels::lookup(&inbound.data_model, &inbound.event_type).expect("a known event type");
                let expected = match endpoint {
                    Endpoint::Send => datamodels::Kind::Async,
                    Endpoint::Query => datamodels::Kind::Sync,
                };
                assert_eq!(spec.kind, expected, "{}:{} on the wrong path", inbound.data_model, inbound.event_type);
                assert!(inbound.meta.is_object(), "the echoed Meta is not an object");
            }
            Err(e) => assert!(e.error.status().is_client_error(), "refused with {}", e.error.status()),
        }
    }
    match parse_fhir(data) {
        Ok(inbound) => {
            assert!(object.is_some(), "accepted a bundle that is not a JSON object");
            assert_eq!(inbound.data_model, datamodels::FHIR);
            assert!(!inbound.event_type.is_empty(), "a FHIR message without an event");
        }
        Err(e) => assert!(e.error.status().is_client_error(), "refused with {}", e.error.status()),
    }
});
