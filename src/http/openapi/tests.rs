use std::collections::BTreeSet;

use serde_json::Value;

use super::{CONSOLE_PREFIX, document_json};
use crate::http::{register, routes};

fn document() -> Value {
    serde_json::from_str(document_json()).expect("the document is JSON")
}

/// (method, path) of every operation the document describes.
fn described(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("a path item").keys() {
            out.insert((method.clone(), path.clone()));
        }
    }
    out
}

#[test]
fn the_document_is_openapi_3_1() {
    let doc = document();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "ferrox");
    assert!(doc["info"]["description"].as_str().unwrap_or("").contains("/ui"), "the console's absence is said");
}

#[test]
fn every_route_the_server_registers_is_described_and_nothing_else() {
    let table = routes::table(register);
    let registered: BTreeSet<(String, String)> = table
        .iter()
        .filter(|r| !r.path.starts_with(CONSOLE_PREFIX))
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert!(registered.len() > 30, "the table holds the routes: {table:?}");
    assert_eq!(table.len(), table.iter().collect::<BTreeSet<_>>().len(), "a route is registered twice");
    let described = described(&document());
    let undescribed: Vec<_> = registered.difference(&described).collect();
    assert!(undescribed.is_empty(), "routes without a utoipa::path in ApiDoc: {undescribed:?}");
    let unserved: Vec<_> = described.difference(&registered).collect();
    assert!(unserved.is_empty(), "described but not registered: {unserved:?}");
}

#[test]
fn every_operation_names_its_auth_and_its_errors() {
    let doc = document();
    let public = ["/healthz", "/readyz", "/metrics", "/auth/authenticate", "/auth/refreshToken", super::DOCUMENT_PATH];
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    for (method, path) in described(&doc) {
        let op = &doc["paths"][&path][&method];
        let security = op["security"].as_array();
        if !public.contains(&path.as_str()) {
            let names: Vec<&String> =
                security.into_iter().flatten().filter_map(|s| s.as_object()).flat_map(|s| s.keys()).collect();
            assert!(!names.is_empty(), "{method} {path} names no security");
            assert!(names.iter().all(|n| schemes.contains_key(*n)), "{method} {path}: {names:?}");
        }
        let responses = op["responses"].as_object().expect("responses");
        assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path} has no success answer");
        if path.starts_with("/api/v1/") && path != super::DOCUMENT_PATH {
            let error = &responses["401"]["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(error, "#/components/schemas/RedoxErrors", "{method} {path}");
        }
    }
}

#[test]
fn every_reference_resolves() {
    let doc = document();
    let text = document_json();
    let mut rest = text;
    let mut count = 0;
    while let Some(at) = rest.find("\"$ref\":\"#/components/schemas/") {
        rest = &rest[at + "\"$ref\":\"#/components/schemas/".len()..];
        let name = &rest[..rest.find('"').expect("a closed string")];
        assert!(doc["components"]["schemas"][name].is_object(), "$ref to a missing schema {name}");
        count += 1;
    }
    assert!(count > 20, "only {count} references");
}
