//! JSON without a tree: a validating scanner that finds the members a stage names, and splices
//! that change a document's bytes in place. A value nobody changes keeps its bytes; one a
//! transform edits keeps every byte it did not edit (numbers' digits, key order, spacing).

pub mod scan;
pub mod splice;

pub use scan::{
    Kind, RootIndex, Scalar, ScanError, ScanInfo, Slot, Wanted, kind, scalar, scan, scan_indexed,
    scan_valid, scan_with_index, validate,
};
pub use splice::Splice;

use crate::path::Segment;
use crate::record::Value;

/// Scans a value's current bytes for `wanted`: validating them unless they are known valid,
/// and then marking them known valid with the index of their root object's members, which
/// later scans start from. `None` when the value is not held as bytes.
pub fn scan_value(
    value: &mut Value,
    wanted: &Wanted,
    slots: &mut [Slot],
) -> Option<Result<ScanInfo, ScanError>> {
    let bytes = value.bytes()?;
    if value.is_checked() {
        return Some(match value.index() {
            Some(index) => scan_with_index(bytes, index, wanted, slots),
            None => scan_valid(bytes, wanted, slots),
        });
    }
    Some(match scan_indexed(bytes, wanted, slots) {
        Ok((info, index)) => {
            value.set_checked(index);
            Ok(info)
        }
        Err(e) => Err(e),
    })
}

/// The keys of a path made only of object keys (`value.card.number`), or `None` when it has an
/// index or a wildcard.
pub fn key_path(segments: &[Segment]) -> Option<Vec<&str>> {
    segments
        .iter()
        .map(|s| match s {
            Segment::Key(k) => Some(k.as_str()),
            _ => None,
        })
        .collect()
}

/// Slots on the stack for scans with few wanted nodes, on the heap for more.
#[allow(clippy::large_enum_variant)] // on the stack on purpose: no allocation per record
pub enum Slots {
    /// Up to 16 nodes.
    Inline([Slot; 16]),
    /// More.
    Heap(Vec<Slot>),
}

impl Slots {
    /// Slots for `wanted`.
    pub fn for_wanted(wanted: &Wanted) -> Slots {
        if wanted.len() <= 16 {
            Slots::Inline([Slot::NONE; 16])
        } else {
            Slots::Heap(vec![Slot::NONE; wanted.len()])
        }
    }

    /// The slots as a slice.
    pub fn slots_mut(&mut self) -> &mut [Slot] {
        match self {
            Slots::Inline(a) => a,
            Slots::Heap(v) => v,
        }
    }

    /// The slots as a slice.
    pub fn slots(&self) -> &[Slot] {
        match self {
            Slots::Inline(a) => a,
            Slots::Heap(v) => v,
        }
    }
}

#[cfg(test)]
mod tests;
