//! End-to-end acknowledgements: drop-based handles that tell a source when a record is finished.
//!
//! Every record a source emits carries an [`Ack`]. Clones of the record (fan-out, splits) share it.
//! When the last clone is dropped, the record's status is final and is reported to the source's
//! [`AckReceiver`], grouped by the batch the source sent. Statuses combine worst-wins:
//! `Delivered < Errored < Rejected`. A record dropped without a status counts as delivered, which is
//! what filtering out means; a record dropped while a thread panics, or after the pipeline was
//! abandoned at a shutdown deadline, counts as errored so the source never commits past it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::record::Record;

/// Final status of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum AckStatus {
    /// Durably written by every sink, filtered out, dropped by policy, or dead-lettered successfully.
    Delivered = 0,
    /// Failed in a way that should be replayed: the source must not commit past it.
    Errored = 1,
    /// Failed permanently and was not dead-lettered: the source must not commit past it.
    Rejected = 2,
}

impl AckStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => AckStatus::Delivered,
            1 => AckStatus::Errored,
            _ => AckStatus::Rejected,
        }
    }
    /// True only for [`AckStatus::Delivered`].
    pub fn is_done(self) -> bool {
        self == AckStatus::Delivered
    }
}

/// The statuses of one batch a source sent, reported once every record in it is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchAck {
    /// The token [`Acker::attach`] returned for this batch.
    pub token: u64,
    /// One status per record, in the order the records were attached.
    pub statuses: Vec<AckStatus>,
}

impl BatchAck {
    /// The worst status in the batch (`Delivered` for an empty batch).
    pub fn worst(&self) -> AckStatus {
        self.statuses
            .iter()
            .copied()
            .max()
            .unwrap_or(AckStatus::Delivered)
    }
}

struct BatchState {
    remaining: AtomicUsize,
    statuses: Box<[AtomicU8]>,
    token: u64,
    tx: mpsc::UnboundedSender<BatchAck>,
    abandoned: Arc<AtomicBool>,
}

impl BatchState {
    fn record_done(&self, index: usize, status: AckStatus) {
        self.statuses[index].store(status as u8, Ordering::Release);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let statuses = self
                .statuses
                .iter()
                .map(|s| AckStatus::from_u8(s.load(Ordering::Acquire)))
                .collect();
            // The source may have stopped listening (finite sources do); that is fine.
            let _ = self.tx.send(BatchAck {
                token: self.token,
                statuses,
            });
        }
    }
}

struct AckNode {
    status: AtomicU8,
    batch: Arc<BatchState>,
    index: usize,
}

impl Drop for AckNode {
    fn drop(&mut self) {
        let mut status = AckStatus::from_u8(self.status.load(Ordering::Acquire));
        if std::thread::panicking() || self.batch.abandoned.load(Ordering::Acquire) {
            status = status.max(AckStatus::Errored);
        }
        self.batch.record_done(self.index, status);
    }
}

/// A record's completion handle. Cheap to clone; the status is reported when the last clone drops.
#[derive(Clone, Default)]
pub struct Ack(Option<Arc<AckNode>>);

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Ack(untracked)"),
            Some(n) => write!(
                f,
                "Ack(batch {}, #{}, {:?})",
                n.batch.token,
                n.index,
                self.status()
            ),
        }
    }
}

impl Ack {
    /// An ack nobody listens to (records built by hand, tests).
    pub fn none() -> Self {
        Ack(None)
    }

    /// True when a source is waiting for this record.
    pub fn is_tracked(&self) -> bool {
        self.0.is_some()
    }

    /// Raises the status (worst wins). Setting `Delivered` never lowers an error.
    pub fn set(&self, status: AckStatus) {
        if let Some(node) = &self.0 {
            node.status.fetch_max(status as u8, Ordering::AcqRel);
        }
    }

    /// The status so far.
    pub fn status(&self) -> AckStatus {
        self.0.as_ref().map_or(AckStatus::Delivered, |n| {
            AckStatus::from_u8(n.status.load(Ordering::Acquire))
        })
    }
}

/// Hands out acks for a source and reports completed batches to its [`AckReceiver`].
pub struct Acker {
    tx: mpsc::UnboundedSender<BatchAck>,
    abandoned: Arc<AtomicBool>,
    next_token: AtomicU64,
}

/// Receives [`BatchAck`]s for the batches a source sent, in completion order.
pub struct AckReceiver(mpsc::UnboundedReceiver<BatchAck>);

impl AckReceiver {
    /// The next completed batch; `None` once every ack is gone and the acker is dropped.
    pub async fn recv(&mut self) -> Option<BatchAck> {
        self.0.recv().await
    }
    /// A completed batch if one is ready.
    pub fn try_recv(&mut self) -> Option<BatchAck> {
        self.0.try_recv().ok()
    }
}

impl Acker {
    /// A new acker and the receiver its batches report to.
    pub fn new() -> (Arc<Acker>, AckReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let acker = Acker {
            tx,
            abandoned: Arc::new(AtomicBool::new(false)),
            next_token: AtomicU64::new(0),
        };
        (Arc::new(acker), AckReceiver(rx))
    }

    /// Gives every record a fresh ack belonging to one new batch and returns the batch token.
    /// An empty batch is reported done at once.
    pub fn attach(&self, records: &mut [Record]) -> u64 {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        if records.is_empty() {
            let _ = self.tx.send(BatchAck {
                token,
                statuses: Vec::new(),
            });
            return token;
        }
        let batch = Arc::new(BatchState {
            remaining: AtomicUsize::new(records.len()),
            statuses: (0..records.len()).map(|_| AtomicU8::new(0)).collect(),
            token,
            tx: self.tx.clone(),
            abandoned: self.abandoned.clone(),
        });
        for (index, record) in records.iter_mut().enumerate() {
            record.ack = Ack(Some(Arc::new(AckNode {
                status: AtomicU8::new(0),
                batch: batch.clone(),
                index,
            })));
        }
        token
    }

    /// Marks everything still in flight as errored when it drops. The runner calls this before it
    /// aborts a pipeline at the shutdown deadline, so aborted work is never reported as delivered.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(n: usize) -> Vec<Record> {
        (0..n).map(|i| Record::from_json(json!(i))).collect()
    }

    #[tokio::test]
    async fn batch_reports_once_all_clones_are_dropped() {
        let (acker, mut rx) = Acker::new();
        let mut recs = batch(3);
        let token = acker.attach(&mut recs);
        let fanout: Vec<Record> = recs.to_vec();
        drop(recs);
        assert!(rx.try_recv().is_none(), "fan-out clones still alive");
        fanout[1].ack.set(AckStatus::Errored);
        drop(fanout);
        let done = rx.recv().await.unwrap();
        assert_eq!(done.token, token);
        assert_eq!(
            done.statuses,
            vec![
                AckStatus::Delivered,
                AckStatus::Errored,
                AckStatus::Delivered
            ]
        );
        assert_eq!(done.worst(), AckStatus::Errored);
    }

    #[tokio::test]
    async fn worst_status_wins_regardless_of_order() {
        let (acker, mut rx) = Acker::new();
        let mut recs = batch(1);
        acker.attach(&mut recs);
        let a = recs[0].ack.clone();
        let b = recs[0].ack.clone();
        b.set(AckStatus::Rejected);
        a.set(AckStatus::Delivered);
        a.set(AckStatus::Errored);
        drop((a, b, recs));
        assert_eq!(rx.recv().await.unwrap().statuses, vec![AckStatus::Rejected]);
    }

    #[tokio::test]
    async fn abandoned_acks_report_errored() {
        let (acker, mut rx) = Acker::new();
        let mut recs = batch(2);
        acker.attach(&mut recs);
        acker.abandon();
        drop(recs);
        assert_eq!(rx.recv().await.unwrap().worst(), AckStatus::Errored);
    }

    #[tokio::test]
    async fn a_panic_while_holding_a_record_reports_errored() {
        let (acker, mut rx) = Acker::new();
        let mut recs = batch(1);
        acker.attach(&mut recs);
        let held = recs.pop().unwrap();
        let result = std::thread::spawn(move || {
            let _r = held;
            panic!("sink crashed");
        })
        .join();
        assert!(result.is_err());
        assert_eq!(rx.recv().await.unwrap().worst(), AckStatus::Errored);
    }

    #[tokio::test]
    async fn empty_batch_is_done_immediately() {
        let (acker, mut rx) = Acker::new();
        let token = acker.attach(&mut []);
        assert_eq!(
            rx.recv().await.unwrap(),
            BatchAck {
                token,
                statuses: vec![]
            }
        );
    }
}
