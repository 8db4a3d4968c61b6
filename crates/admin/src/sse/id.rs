//! Event ids: a compact, opaque encoding of where an event stands in its stream.
//!
//! An id carries the ring's epoch (a random number drawn when the stream is created), the
//! event's sequence number in that ring, and the stream's position vector at that event: for
//! every source partition seen so far, the last offset delivered. Within one epoch the sequence
//! number alone places a client exactly; after a restart (a new epoch) the vector tells which
//! records the client has seen, since the source resumes from its committed offsets.
//! Encoded as unsigned LEB128 varints, then base64url without padding.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A source partition: a hash of the topic's name and the partition number. Records without a
/// source position use [`SYNTHETIC`].
pub type PartKey = (u32, i32);

/// The key of records that have no source position; their offset is the sequence number.
pub const SYNTHETIC: PartKey = (u32::MAX, -1);

const VERSION: u64 = 1;

/// FNV-1a of a topic's name: stable across processes, unlike the standard hasher.
pub fn topic_hash(topic: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in topic.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    // u32::MAX is reserved for SYNTHETIC.
    if h == u32::MAX { h - 1 } else { h }
}

/// A decoded id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId {
    /// The ring's epoch.
    pub epoch: u64,
    /// The event's sequence number in the ring.
    pub seq: u64,
    /// Last offset delivered per partition, at this event.
    pub vector: BTreeMap<PartKey, i64>,
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn take(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Encodes an id.
pub fn encode(epoch: u64, seq: u64, vector: &BTreeMap<PartKey, i64>) -> String {
    let mut out = Vec::with_capacity(16 + vector.len() * 8);
    put(&mut out, VERSION);
    put(&mut out, epoch);
    put(&mut out, seq);
    put(&mut out, vector.len() as u64);
    for ((topic, partition), offset) in vector {
        put(&mut out, u64::from(*topic));
        put(&mut out, zigzag(i64::from(*partition)));
        put(&mut out, zigzag(*offset));
    }
    URL_SAFE_NO_PAD.encode(out)
}

/// Decodes an id; `None` when it is not one this encoding wrote.
pub fn decode(text: &str) -> Option<EventId> {
    let data = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
    let mut at = 0;
    if take(&data, &mut at)? != VERSION {
        return None;
    }
    let epoch = take(&data, &mut at)?;
    let seq = take(&data, &mut at)?;
    let n = take(&data, &mut at)?;
    if n > 100_000 {
        return None;
    }
    let mut vector = BTreeMap::new();
    for _ in 0..n {
        let topic = u32::try_from(take(&data, &mut at)?).ok()?;
        let partition = i32::try_from(unzigzag(take(&data, &mut at)?)).ok()?;
        let offset = unzigzag(take(&data, &mut at)?);
        vector.insert((topic, partition), offset);
    }
    (at == data.len()).then_some(EventId { epoch, seq, vector })
}
