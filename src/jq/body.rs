//! Preparing a message body for delivery: the subscription's transform,
//! then, for Data Model bodies, `Meta.Transmission.ID` and
//! `Meta.Message.ID` (SPEC §4).

use serde_json::Value;

use super::{meta_ids, program::Transform};

/// Builds the body to deliver. `Ok(None)` means the transform filtered the
/// message out; `Err` is a processing failure.
pub fn prepare_body(
    payload: &[u8],
    transform: Option<&Transform>,
    ids: Option<(u64, u64)>,
) -> Result<Option<Vec<u8>>, String> {
    if transform.is_none() {
        match ids {
            None => return Ok(Some(payload.to_vec())),
            Some((message_id, transmission_id)) => {
                if let Some(body) = meta_ids::set_ids(payload, message_id, transmission_id) {
                    return Ok(Some(body));
                }
            }
        }
    }
    let mut value: Value = serde_json::from_slice(payload).map_err(|e| format!("stored body is not JSON: {e}"))?;
    if let Some(transform) = transform {
        match transform.run(&value).map_err(|e| format!("transform failed: {e}"))? {
            Some(out) => value = out,
            None => return Ok(None),
        }
    }
    if let Some((message_id, transmission_id)) = ids
        && let Some(meta) = value.get_mut("Meta").and_then(Value::as_object_mut)
    {
        meta_ids::set_meta_ids(meta, message_id, transmission_id);
    }
    serde_json::to_vec(&value).map(Some).map_err(|e| format!("could not encode the body: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn data_model_bodies_get_their_ids_and_transforms_apply() {
        let payload = br#"{"Meta":{"DataModel":"PatientAdmin"},"Patient":{"SSN":"1"}}"#;
        let out = prepare_body(payload, None, Some((7, 70001))).unwrap().unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["Meta"]["Message"]["ID"].as_u64(), v["Meta"]["Transmission"]["ID"].as_u64()),
            (Some(7), Some(70001))
        );
        let t = Transform::compile("del(.Patient.SSN)").unwrap();
        let out: Value = serde_json::from_slice(&prepare_body(payload, Some(&t), None).unwrap().unwrap()).unwrap();
        assert_eq!(out["Patient"], json!({}));
        let filter = Transform::compile("select(.Meta.DataModel == \"Order\")").unwrap();
        assert_eq!(prepare_body(payload, Some(&filter), Some((1, 1))).unwrap(), None);
        let broken = Transform::compile("error(\"no\")").unwrap();
        assert!(prepare_body(payload, Some(&broken), None).unwrap_err().contains("no"));
        assert_eq!(prepare_body(b"{}", None, None).unwrap().unwrap(), b"{}");
    }
}
