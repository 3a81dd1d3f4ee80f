//! Format 6: fencing in cluster mode (SPEC §17). Frozen once released,
//! like the formats before it.
//!
//! - Type 23 `DeliveryTaken` version 1: a node took a destination's lease,
//!   at the lease's revision (its fencing token). Only cluster nodes write
//!   it, before they deliver the destination; a node alone never does.

use rkyv::{Archive, Serialize, rancor, util::AlignedVec};

use super::v1;
use crate::{
    journal::{Event, Replayed},
    model::Id,
};

type Decoded<T> = Result<T, String>;

pub mod types {
    pub const DELIVERY_TAKEN: u8 = 23;
}

#[derive(Archive, Serialize)]
pub struct DeliveryTaken {
    pub destination_id: u128,
    pub node: String,
    pub epoch: u64,
}

/// The type, version and bytes of `event` if format 6 writes it.
pub fn encode(event: &Event) -> Option<Result<(u8, u8, AlignedVec), rancor::Error>> {
    match event {
        Event::DeliveryTaken { destination_id, node, epoch } => {
            let record = DeliveryTaken { destination_id: destination_id.0, node: node.clone(), epoch: *epoch };
            Some(v1::to_bytes(&record).map(|b| (types::DELIVERY_TAKEN, 1, b)))
        }
        _ => None,
    }
}

/// Reads a record of format 6's: `None` if it is not one.
pub fn decode(type_code: u8, version: u8, bytes: &[u8]) -> Option<Decoded<Replayed<'static>>> {
    match (type_code, version) {
        (types::DELIVERY_TAKEN, 1) => Some(v1::decode_access::<ArchivedDeliveryTaken>(bytes).map(|t| {
            Replayed::Event(Event::DeliveryTaken {
                destination_id: Id(t.destination_id.to_native()),
                node: t.node.to_string(),
                epoch: t.epoch.to_native(),
            })
        })),
        _ => None,
    }
}

/// Every kind format 6 added: (type, version).
pub const KINDS: [(u8, u8); 1] = [(types::DELIVERY_TAKEN, 1)];
