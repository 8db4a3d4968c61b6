//! A running pipeline's handle: what phase it is in (published on a watch channel), pause and
//! resume, a graceful stop that drains and commits, and its result.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::topology::{FailureKind, PipelineFailed};

/// Where a running pipeline is, as its engine observes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Health checks and start-up.
    Starting,
    /// Records flow.
    Running,
    /// Nothing is taken from the source; records in flight finish.
    Paused,
    /// Asked to stop: the source stopped reading, in-flight records drain to their acks.
    Stopping,
    /// Ended: the source finished or it was stopped, everything delivered and committed.
    Stopped,
    /// Ended with a failure.
    Failed,
}

/// A phase, since when, and the failure once it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineStatus {
    /// The phase.
    pub phase: Phase,
    /// When it began.
    pub since: SystemTime,
    /// Why it failed, when [`Phase::Failed`].
    pub failure: Option<PipelineFailed>,
}

impl EngineStatus {
    pub(crate) fn new(phase: Phase, failure: Option<PipelineFailed>) -> Self {
        EngineStatus {
            phase,
            since: SystemTime::now(),
            failure,
        }
    }
}

/// The handle of a started pipeline ([`crate::Pipeline::start`]).
pub struct PipelineHandle {
    name: Arc<str>,
    stop: CancellationToken,
    paused: watch::Sender<bool>,
    status: watch::Receiver<EngineStatus>,
    task: Option<JoinHandle<Result<(), PipelineFailed>>>,
    result: Option<Result<(), PipelineFailed>>,
}

impl PipelineHandle {
    pub(crate) fn new(
        name: Arc<str>,
        stop: CancellationToken,
        paused: watch::Sender<bool>,
        status: watch::Receiver<EngineStatus>,
        task: JoinHandle<Result<(), PipelineFailed>>,
    ) -> Self {
        PipelineHandle {
            name,
            stop,
            paused,
            status,
            task: Some(task),
            result: None,
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current status.
    pub fn status(&self) -> EngineStatus {
        self.status.borrow().clone()
    }

    /// A receiver of every status change.
    pub fn watch(&self) -> watch::Receiver<EngineStatus> {
        self.status.clone()
    }

    /// Stops taking records from the source (records in flight still finish).
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Takes records from the source again.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Asks for a graceful stop: the source stops reading, in-flight records drain to their
    /// acks and are committed, bounded by the pipeline's shutdown deadline.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// The token [`PipelineHandle::stop`] cancels, for whoever must stop the pipeline later.
    pub fn stopper(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// True once the pipeline ended.
    pub fn is_finished(&self) -> bool {
        self.result.is_some() || self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the pipeline to end and returns how it ended (again on later calls).
    /// Cancel-safe: waiting can be abandoned and resumed.
    pub async fn wait(&mut self) -> Result<(), PipelineFailed> {
        if let Some(task) = self.task.as_mut() {
            let r = match task.await {
                Ok(r) => r,
                Err(e) => Err(PipelineFailed {
                    pipeline: self.name.to_string(),
                    reason: format!("pipeline task crashed: {e}"),
                    kind: FailureKind::Fatal,
                }),
            };
            self.result = Some(r);
            self.task = None;
        }
        self.result.clone().expect("set above")
    }
}

impl Drop for PipelineHandle {
    /// A handle dropped stops its pipeline (it is never left running unowned).
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
