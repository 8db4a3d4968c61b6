//! Per-partition offset tracking: acks arrive in any order, commits advance only over a contiguous
//! run of finished offsets.

use std::collections::{HashMap, VecDeque};

/// Tracks the offsets of one partition from emission to completion.
///
/// Offsets must be tracked in increasing order (gaps are fine: compacted topics and transaction
/// markers leave holes). [`PartitionOffsets::committable`] is the highest offset such that it and
/// every tracked offset before it are done. A failed offset blocks the partition for good: nothing
/// past it is ever committable, so a restart replays it.
#[derive(Debug, Default, Clone)]
pub struct PartitionOffsets {
    pending: VecDeque<(i64, State)>,
    committed: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InFlight,
    Done,
    Failed,
}

/// Why an offset could not be tracked or acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OffsetError {
    /// Offsets must be tracked in increasing order.
    #[error("offset {offset} tracked out of order (last tracked {last}); offsets must increase")]
    OutOfOrder {
        /// The offending offset.
        offset: i64,
        /// The last offset tracked.
        last: i64,
    },
    /// The acknowledged offset was never tracked (or is already committed).
    #[error("offset {0} is not in flight")]
    Unknown(i64),
}

impl PartitionOffsets {
    /// Registers an emitted offset.
    pub fn track(&mut self, offset: i64) -> Result<(), OffsetError> {
        let last = self.pending.back().map(|(o, _)| *o).or(self.committed);
        if let Some(last) = last
            && offset <= last
        {
            return Err(OffsetError::OutOfOrder { offset, last });
        }
        self.pending.push_back((offset, State::InFlight));
        Ok(())
    }

    /// Records the outcome of an offset (`done = false` means it failed).
    pub fn ack(&mut self, offset: i64, done: bool) -> Result<(), OffsetError> {
        let idx = self
            .pending
            .binary_search_by_key(&offset, |(o, _)| *o)
            .map_err(|_| OffsetError::Unknown(offset))?;
        let state = &mut self.pending[idx].1;
        if *state == State::InFlight {
            *state = if done { State::Done } else { State::Failed };
        }
        while let Some((o, State::Done)) = self.pending.front().copied() {
            self.committed = Some(o);
            self.pending.pop_front();
        }
        Ok(())
    }

    /// Highest offset with every tracked offset up to it done.
    pub fn committable(&self) -> Option<i64> {
        self.committed
    }

    /// Number of offsets tracked but not yet passed by the commit point.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// True when a failed offset blocks this partition.
    pub fn is_blocked(&self) -> bool {
        self.pending
            .front()
            .is_some_and(|(_, s)| *s == State::Failed)
    }
}

/// Offset tracking across partitions, keyed by `(topic, partition)` or any other key.
#[derive(Debug)]
pub struct OffsetTracker<K> {
    partitions: HashMap<K, PartitionOffsets>,
}

impl<K> Default for OffsetTracker<K> {
    fn default() -> Self {
        OffsetTracker {
            partitions: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> OffsetTracker<K> {
    /// Registers an emitted offset of a partition.
    pub fn track(&mut self, partition: &K, offset: i64) -> Result<(), OffsetError> {
        self.partitions
            .entry(partition.clone())
            .or_default()
            .track(offset)
    }
    /// Records an outcome.
    pub fn ack(&mut self, partition: &K, offset: i64, done: bool) -> Result<(), OffsetError> {
        self.partitions
            .get_mut(partition)
            .ok_or(OffsetError::Unknown(offset))?
            .ack(offset, done)
    }
    /// Highest contiguous done offset of a partition.
    pub fn committable(&self, partition: &K) -> Option<i64> {
        self.partitions.get(partition).and_then(|p| p.committable())
    }
    /// Forgets a partition (after it was revoked and committed).
    pub fn remove(&mut self, partition: &K) -> Option<PartitionOffsets> {
        self.partitions.remove(partition)
    }
    /// Every partition with its state.
    pub fn partitions(&self) -> impl Iterator<Item = (&K, &PartitionOffsets)> {
        self.partitions.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_only_contiguous_done_offsets() {
        let mut p = PartitionOffsets::default();
        for o in [10, 11, 13, 14] {
            p.track(o).unwrap();
        }
        p.ack(11, true).unwrap();
        assert_eq!(p.committable(), None, "10 still in flight");
        p.ack(10, true).unwrap();
        assert_eq!(p.committable(), Some(11));
        p.ack(14, true).unwrap();
        assert_eq!(
            p.committable(),
            Some(11),
            "13 (the gap after 11 is not an offset) still in flight"
        );
        p.ack(13, true).unwrap();
        assert_eq!(p.committable(), Some(14));
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn a_failure_blocks_the_partition() {
        let mut p = PartitionOffsets::default();
        for o in 0..3 {
            p.track(o).unwrap();
        }
        p.ack(1, false).unwrap();
        p.ack(0, true).unwrap();
        p.ack(2, true).unwrap();
        assert_eq!(p.committable(), Some(0));
        assert!(p.is_blocked());
    }

    #[test]
    fn rejects_out_of_order_tracking_and_unknown_acks() {
        let mut p = PartitionOffsets::default();
        p.track(5).unwrap();
        assert_eq!(
            p.track(5),
            Err(OffsetError::OutOfOrder { offset: 5, last: 5 })
        );
        assert_eq!(p.ack(4, true), Err(OffsetError::Unknown(4)));
    }

    proptest! {
        /// Whatever the ack order and whichever offsets fail, the commit point is exactly the
        /// offset before the first offset (in tracking order) that is not done.
        #[test]
        fn commit_point_is_highest_contiguous_done(
            gaps in proptest::collection::vec(1i64..4, 1..60),
            seed in any::<u64>(),
            fail_mask in proptest::collection::vec(proptest::bool::weighted(0.1), 60),
            ack_share in 0.0f64..=1.0,
        ) {
            let mut offsets = Vec::new();
            let mut o = 100;
            for g in &gaps { o += g; offsets.push(o); }
            let mut p = PartitionOffsets::default();
            for &o in &offsets { p.track(o).unwrap(); }
            // Shuffle the ack order deterministically from the seed; ack only a share of them.
            let mut order: Vec<usize> = (0..offsets.len()).collect();
            let mut s = seed | 1;
            for i in (1..order.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let acked = ((offsets.len() as f64) * ack_share) as usize;
            let mut done = vec![false; offsets.len()];
            for &i in order.iter().take(acked) {
                let ok = !fail_mask[i];
                p.ack(offsets[i], ok).unwrap();
                done[i] = ok;
                // Invariant after every ack: all offsets up to the commit point are done.
                if let Some(c) = p.committable() {
                    for (j, &off) in offsets.iter().enumerate() {
                        if off <= c { prop_assert!(done[j]); }
                    }
                }
            }
            let expected = offsets.iter().zip(&done).take_while(|(_, d)| **d).last().map(|(o, _)| *o);
            prop_assert_eq!(p.committable(), expected);
        }
    }
}
