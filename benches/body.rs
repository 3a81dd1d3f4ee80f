//! Preparing a Data Model body for delivery (`jq::prepare_body` with
//! no transform): setting `Meta.Transmission.ID` and `Meta.Message.ID`.
//! The baseline, in the same run, parses the whole body into a
//! `serde_json::Value`, sets the IDs and encodes it again: what ferrox did
//! before it copied every member but `Meta` as stored.
//!
//! Bodies: a 1 KiB `PatientAdmin` message and a 64 KiB `ClinicalSummary`
//! with many nested entries. Run with `cargo bench --bench body`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrox::jq::{prepare_body, set_meta_ids};
use serde_json::{Value, json};

fn body(bytes: usize) -> Vec<u8> {
    let entry = |n: usize| {
        json!({ "Code": format!("{n:05}"), "CodeSystem": "2.16.840.1.113883.6.1", "Name": "Hemoglobin A1c",
                "Value": { "Number": 6.4, "Units": "%" }, "Notes": ["reviewed", "no change"] })
    };
    let mut n = 0;
    let mut value = json!({ "Meta": { "DataModel": "ClinicalSummary", "EventType": "PatientPush" },
                            "Patient": { "Identifiers": [{ "ID": "0000000001", "IDType": "MR" }] }, "Results": [] });
    while serde_json::to_vec(&value).unwrap().len() < bytes {
        value["Results"].as_array_mut().unwrap().push(entry(n));
        n += 1;
    }
    serde_json::to_vec(&value).unwrap()
}

/// The baseline: the whole body through a `Value`.
fn by_value(payload: &[u8], message_id: u64, transmission_id: u64) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(payload).unwrap();
    if let Some(meta) = value.get_mut("Meta").and_then(Value::as_object_mut) {
        set_meta_ids(meta, message_id, transmission_id);
    }
    serde_json::to_vec(&value).unwrap()
}

fn prepare(c: &mut Criterion) {
    let mut group = c.benchmark_group("prepare_body");
    for (name, bytes) in [("1KiB", 1024), ("64KiB", 64 * 1024)] {
        let payload = body(bytes);
        group.throughput(Throughput::Bytes(payload.len() as u64));
        group.bench_with_input(BenchmarkId::new("ferrox", name), &payload, |b, p| {
            b.iter(|| prepare_body(black_box(p), None, Some((7, 7 << 16))).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("whole Value (baseline)", name), &payload, |b, p| {
            b.iter(|| by_value(black_box(p), 7, 7 << 16));
        });
    }
    group.finish();
}

criterion_group!(benches, prepare);
criterion_main!(benches);
