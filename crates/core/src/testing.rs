//! Conformance checks every connector runs from its own tests, and small helpers for plugin tests.
//!
//! Sinks: [`sink_conformance`] writes known records and reads them back through the connector's
//! own reader (a file, a topic, an HTTP server's log), checking durability at `Ok`, order, values,
//! headers, empty batches and flush. Sources: [`run_source`] runs a source against a real
//! [`SourceContext`] and [`source_conformance`] checks every record carries a tracked ack and that
//! the source stops promptly when asked.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::plugin::{ComponentId, Sink, Source, SourceContext, SourceError};
use crate::record::{Header, Record};

/// A boxed future, for read-back callbacks.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a sink can round-trip.
#[derive(Debug, Clone, Copy)]
pub struct SinkCapabilities {
    /// Headers are stored and read back.
    pub headers: bool,
    /// Keys are stored and read back.
    pub keys: bool,
}

/// Test records with distinct values, keys and headers.
pub fn sample_records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r = Record::from_bytes(Bytes::from(
                json!({"seq": i, "name": format!("r{i}"), "nested": {"ok": i % 2 == 0}})
                    .to_string(),
            ));
            r.key = Some(Bytes::from(format!("k{i}")));
            r.headers.push(Header {
                name: "h".into(),
                value: Some(Bytes::from(format!("v{i}"))),
            });
            r.timestamp = Some(1_700_000_000_000 + i as i64);
            r
        })
        .collect()
}

/// Runs the sink conformance checks. `read_back` returns every record durably stored so far, in
/// write order. Returns a description of the first violation.
pub async fn sink_conformance(
    sink: &dyn Sink,
    caps: SinkCapabilities,
    read_back: &(dyn Fn() -> BoxFuture<'static, Vec<Record>> + Sync),
) -> Result<(), String> {
    sink.write(&[])
        .await
        .map_err(|e| format!("an empty batch must succeed, got: {e}"))?;
    let first = sample_records(5);
    sink.write(&first)
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    // Durable at Ok: readable now, before any flush.
    let got = read_back().await;
    compare(&first, &got, caps).map_err(|e| format!("after the first write returned Ok: {e}"))?;
    let second: Vec<Record> = sample_records(12).split_off(5);
    sink.write(&second)
        .await
        .map_err(|e| format!("second write failed: {e}"))?;
    sink.flush()
        .await
        .map_err(|e| format!("flush failed: {e}"))?;
    let all: Vec<Record> = first.into_iter().chain(second).collect();
    compare(&all, &read_back().await, caps)
        .map_err(|e| format!("after the second write and flush: {e}"))
}

fn compare(expected: &[Record], got: &[Record], caps: SinkCapabilities) -> Result<(), String> {
    if expected.len() != got.len() {
        return Err(format!(
            "expected {} records, read back {}",
            expected.len(),
            got.len()
        ));
    }
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        let ev: Json = e.value.decoded().map_err(|x| x.to_string())?.into_owned();
        let gv: Json = g
            .value
            .decoded()
            .map_err(|x| format!("record {i} read back is not JSON: {x}"))?
            .into_owned();
        if ev != gv {
            return Err(format!("record {i}: value {gv} != written {ev}"));
        }
        if caps.keys && e.key != g.key {
            return Err(format!(
                "record {i}: key {:?} != written {:?}",
                g.key, e.key
            ));
        }
        if caps.headers && e.headers != g.headers {
            return Err(format!(
                "record {i}: headers {:?} != written {:?}",
                g.headers, e.headers
            ));
        }
    }
    Ok(())
}

/// What a source produced.
#[derive(Debug)]
pub struct SourceRun {
    /// Every record received, in order.
    pub records: Vec<Record>,
    /// With [`run_source_acked`], the index of the first record that came without a tracked
    /// ack (its ack is taken off on arrival, so the records no longer show it).
    pub untracked: Option<usize>,
    /// The source's result (`None` if it had to be abandoned at the deadline).
    pub result: Option<Result<(), SourceError>>,
}

/// Runs a source until it ends, or until `stop_after` records arrived (then cancels it and waits up
/// to `deadline` for it to stop).
pub async fn run_source(
    source: Box<dyn Source>,
    stop_after: Option<usize>,
    deadline: Duration,
) -> SourceRun {
    let (tx, mut rx) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let id = ComponentId {
        pipeline: "test".into(),
        component: "source".into(),
    };
    let (cx, _acker) = SourceContext::new(id, tx, shutdown.clone());
    let mut task = tokio::spawn(source.run(cx));
    let mut records = Vec::new();
    // A source that neither ends nor sends enough is stopped at the deadline, not waited for.
    let give_up = tokio::time::sleep(deadline);
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            b = rx.recv() => match b {
                Some(b) => {
                    records.extend(b.records);
                    if stop_after.is_some_and(|n| records.len() >= n) && !shutdown.is_cancelled() {
                        shutdown.cancel();
                    }
                }
                None => break,
            },
            r = &mut task => {
                while let Ok(b) = rx.try_recv() { records.extend(b.records); }
                return SourceRun { records, result: r.ok(), untracked: None };
            }
            _ = &mut give_up, if !shutdown.is_cancelled() => shutdown.cancel(),
        }
    }
    let result = tokio::time::timeout(deadline, task)
        .await
        .ok()
        .and_then(|r| r.ok());
    SourceRun {
        records,
        result,
        untracked: None,
    }
}

/// Like [`run_source`], but every record is acknowledged as delivered as soon as it arrives (its
/// ack is taken off), as a pipeline whose sinks wrote it would: for sources that commit positions
/// and wait for their acks before they stop. `deadline` bounds the wait for the records; once
/// asked to stop (or at the deadline) the source has 2 seconds to end.
pub async fn run_source_acked(
    source: Box<dyn Source>,
    stop_after: Option<usize>,
    deadline: Duration,
) -> SourceRun {
    let (tx, mut rx) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let id = ComponentId {
        pipeline: "test".into(),
        component: "source".into(),
    };
    let (cx, _acker) = SourceContext::new(id, tx, shutdown.clone());
    let task = tokio::spawn(source.run(cx));
    let mut records = Vec::new();
    let mut untracked = None;
    let collect = async {
        while let Some(b) = rx.recv().await {
            for mut r in b.records {
                if !r.ack.is_tracked() && untracked.is_none() {
                    untracked = Some(records.len());
                }
                r.ack = crate::ack::Ack::none();
                records.push(r);
            }
            if stop_after.is_some_and(|n| records.len() >= n) && !shutdown.is_cancelled() {
                shutdown.cancel();
            }
        }
    };
    let _ = tokio::time::timeout(deadline, collect).await;
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .ok()
        .and_then(|r| r.ok());
    SourceRun {
        records,
        result,
        untracked,
    }
}

/// Checks a source: it emits `expected` records (or at least `expected` for endless sources, which
/// are then stopped), every record has a tracked ack, and it stops within two seconds of shutdown.
pub async fn source_conformance(
    source: Box<dyn Source>,
    expected: usize,
    endless: bool,
) -> Result<SourceRun, String> {
    // Records are acknowledged as they arrive, as a pipeline would, so a source that waits for
    // its acks before it stops (Kafka) is not held up.
    let run = run_source_acked(source, endless.then_some(expected), Duration::from_secs(30)).await;
    match &run.result {
        None => return Err("the source did not stop within 2s of shutdown".into()),
        Some(Err(e)) => return Err(format!("the source failed: {e}")),
        Some(Ok(())) => {}
    }
    if endless && run.records.len() < expected || !endless && run.records.len() != expected {
        return Err(format!(
            "expected {expected} records, got {}",
            run.records.len()
        ));
    }
    if let Some(i) = run.untracked {
        return Err(format!(
            "record {i} has no tracked ack: send records through SourceContext::send"
        ));
    }
    Ok(run)
}

/// Checks that a source with positions replays what was not delivered: a first run reads
/// `expected` records and reports the last batch errored (a sink failed it) before it stops; a
/// second run from `make()` must deliver those records again. Returns the second run's records.
/// Sources without positions (stdin, a generator) do not promise this.
pub async fn source_replay_conformance(
    make: &dyn Fn() -> Box<dyn Source>,
    expected: usize,
    deadline: Duration,
) -> Result<Vec<Record>, String> {
    let first = run_source(make(), Some(expected), deadline).await;
    if first.records.len() < expected {
        return Err(format!(
            "the first run gave {} records, expected {expected}",
            first.records.len()
        ));
    }
    let failed: Vec<Json> = first.records[expected / 2..]
        .iter()
        .map(|r| {
            r.value
                .decoded()
                .map(|j| j.into_owned())
                .unwrap_or(Json::Null)
        })
        .collect();
    for (i, r) in first.records.iter().enumerate() {
        if i >= expected / 2 {
            r.ack.set(crate::ack::AckStatus::Errored);
        }
    }
    drop(first);
    // Give the source's ack loop a moment to see the outcomes and commit what was delivered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = run_source_acked(make(), Some(failed.len()), deadline).await;
    let got: Vec<Json> = second
        .records
        .iter()
        .map(|r| {
            r.value
                .decoded()
                .map(|j| j.into_owned())
                .unwrap_or(Json::Null)
        })
        .collect();
    for f in &failed {
        if !got.contains(f) {
            return Err(format!(
                "a record whose ack failed was not delivered again: {f} (the second run gave {} records)",
                got.len()
            ));
        }
    }
    Ok(second.records)
}
