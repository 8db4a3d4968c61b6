//! `jq`: runs a jq program (via jaq) on each record; the outputs become the new values.
//!
//! Programs run on a thread of their own with a known stack, so that what a record makes a
//! program do (recurse, build deep values) fails that record with a clear error instead of
//! overflowing a stack and aborting the process: see [`program`] for the guards.

mod program;
#[cfg(test)]
mod tests;
mod values;

use std::sync::{Arc, Mutex, mpsc};

use async_trait::async_trait;
use jaq_core::{Ctx, Vars, unwrap_valr};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use weir_core::{BuildContext, BuildError, Flow, PluginConfig, Record, Transform, TransformError};

use program::{Data, Filter};

/// What the program receives as `.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum JqInput {
    /// The Pipes event `{topic, partition, offset, timestamp, key, headers, value}`.
    #[default]
    Event,
    /// Only the value.
    Value,
}

/// Runs a jq program compiled once at start-up. Each output becomes a record value: no output
/// drops the record (counts as done), several outputs split it (all share the original ack).
/// A runtime error sends the record to the stage's `on_error`.
///
/// Numbers keep the digits they were written with (a 30-digit id stays exact unless the program
/// does arithmetic with it). A record cannot crash Weir through the program: recursion deeper
/// than the jq thread's stack allows, and outputs nested deeper than 128 levels, fail that record.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JqTransformConfig {
    /// The jq program, e.g. `.value | select(.amount > 100) | {id, amount}`.
    pub program: String,
    /// What `.` is: the whole event (default) or just the value.
    #[serde(default)]
    pub input: JqInput,
}

/// One record's outputs, or why the program failed on it.
type Outputs = Result<Vec<Json>, String>;

/// A batch of program inputs and where to send the outputs.
struct Job {
    inputs: Vec<Json>,
    reply: Reply,
}

/// An async caller awaits the outputs; a plain [`Transform::apply`] blocks for them.
enum Reply {
    Async(tokio::sync::oneshot::Sender<Vec<Outputs>>),
    Blocking(mpsc::Sender<Vec<Outputs>>),
}

/// The compiled jq transform.
pub struct JqTransform {
    filter: Arc<Filter>,
    input: JqInput,
    /// The jq thread, started on first use (`weir validate` starts none).
    worker: Mutex<Option<mpsc::Sender<Job>>>,
}

impl PluginConfig for JqTransformConfig {
    const TYPE: &'static str = "jq";
    const SUMMARY: &'static str = "Transform, filter or split records with a jq program (jaq)";
    const EXAMPLE: &'static str = r#"type: jq
program: '.value | select(.amount > 100) | {id, amount, country}'
"#;
    type Output = dyn Transform;

    fn build(self, _cx: &BuildContext) -> Result<Box<dyn Transform>, BuildError> {
        let filter = program::compile(&self.program).map_err(|e| BuildError::at("program", e))?;
        Ok(Box::new(JqTransform {
            filter: Arc::new(filter),
            input: self.input,
            worker: Mutex::new(None),
        }))
    }
}

weir_core::register_plugin!(JqTransformConfig);

/// Runs the program on one input, on the jq thread.
fn run_one(filter: &Filter, input: &Json) -> Outputs {
    let ctx = Ctx::<Data>::new(&filter.lut, Vars::new([]));
    let mut outs = Vec::new();
    for out in filter.id.run((ctx, values::to_val(input))).map(unwrap_valr) {
        let v = out.map_err(|e| format!("jq program failed: {e}"))?;
        let json = values::to_json(&v);
        values::drop_deep(v);
        outs.push(json?);
    }
    Ok(outs)
}

fn worker(filter: Arc<Filter>, jobs: mpsc::Receiver<Job>) {
    program::mark_stack_top();
    while let Ok(job) = jobs.recv() {
        let outputs = job.inputs.iter().map(|i| run_one(&filter, i)).collect();
        match job.reply {
            Reply::Async(tx) => drop(tx.send(outputs)),
            Reply::Blocking(tx) => drop(tx.send(outputs)),
        }
    }
}

impl JqTransform {
    fn sender(&self) -> Result<mpsc::Sender<Job>, TransformError> {
        let mut guard = self.worker.lock().expect("jq worker lock");
        if let Some(tx) = guard.as_ref() {
            return Ok(tx.clone());
        }
        let (tx, rx) = mpsc::channel();
        let filter = self.filter.clone();
        std::thread::Builder::new()
            .name("weir-jq".into())
            .stack_size(program::STACK_BYTES)
            .spawn(move || worker(filter, rx))
            .map_err(|e| TransformError::Retriable(format!("cannot start the jq thread: {e}")))?;
        *guard = Some(tx.clone());
        Ok(tx)
    }

    fn input(&self, record: &mut Record) -> Result<Json, TransformError> {
        Ok(match self.input {
            JqInput::Event => weir_core::event::envelope(record)?,
            JqInput::Value => record.value.json()?.clone(),
        })
    }

    fn submit(&self, inputs: Vec<Json>, reply: Reply) -> Result<(), TransformError> {
        self.sender()?
            .send(Job { inputs, reply })
            .map_err(|_| TransformError::Retriable("the jq thread stopped".into()))
    }
}

fn apply_outputs(record: &mut Record, outputs: Outputs) -> Result<Flow, TransformError> {
    let mut outs = outputs.map_err(TransformError::Fatal)?;
    Ok(match outs.len() {
        0 => Flow::Drop,
        1 => {
            record.value.set_json(outs.pop().expect("one"));
            Flow::Keep
        }
        _ => Flow::Split(outs.into_iter().map(|v| record.derive(v)).collect()),
    })
}

#[async_trait]
impl Transform for JqTransform {
    /// One record, waiting for the jq thread (the runner uses [`Transform::apply_batch`]).
    fn apply(&self, record: &mut Record) -> Result<Flow, TransformError> {
        let input = self.input(record)?;
        let (tx, rx) = mpsc::channel();
        self.submit(vec![input], Reply::Blocking(tx))?;
        let outputs = rx
            .recv()
            .map_err(|_| TransformError::Retriable("the jq thread stopped".into()))?;
        apply_outputs(
            record,
            outputs.into_iter().next().expect("one output per input"),
        )
    }

    fn is_batched(&self) -> bool {
        true
    }

    async fn apply_batch(&self, records: &mut [Record]) -> Vec<Result<Flow, TransformError>> {
        let mut results: Vec<Option<Result<Flow, TransformError>>> =
            (0..records.len()).map(|_| None).collect();
        let mut inputs = Vec::with_capacity(records.len());
        let mut at = Vec::with_capacity(records.len());
        for (i, r) in records.iter_mut().enumerate() {
            match self.input(r) {
                Ok(j) => {
                    inputs.push(j);
                    at.push(i);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !inputs.is_empty() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let outputs = match self.submit(inputs, Reply::Async(tx)) {
                Ok(()) => rx
                    .await
                    .map_err(|_| TransformError::Retriable("the jq thread stopped".into())),
                Err(e) => Err(e),
            };
            match outputs {
                Ok(outputs) => {
                    for (i, o) in at.into_iter().zip(outputs) {
                        results[i] = Some(apply_outputs(&mut records[i], o));
                    }
                }
                Err(e) => {
                    for i in at {
                        results[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every record has a result"))
            .collect()
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<JqTransform>();
}
