//! What the supervisor reports about a pipeline: its observed state (derived from what the
//! engine and the components observe, never assumed) beside the state an operator asked for.

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::Desired;

/// A pipeline's observed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Building and starting (health checks).
    Starting,
    /// Records flow and no component reports a problem.
    Running,
    /// Running, while a component struggles (a sink retrying, the error budget being spent).
    Degraded,
    /// Nothing is read; records in flight finish.
    Paused,
    /// Draining to acks and committing before it stops.
    Stopping,
    /// Not running: stopped by request, or its source reached its end.
    Stopped,
    /// Restarting with backoff after a failure that may pass by itself.
    Recovering,
    /// Stopped by a failure that needs an operator (bad credentials, the error budget exhausted,
    /// a definition that does not build); stays so until restarted or updated.
    Failed,
}

impl State {
    /// Every state, for the `weir_pipeline_state` gauge.
    pub const ALL: [State; 8] = [
        State::Starting,
        State::Running,
        State::Degraded,
        State::Paused,
        State::Stopping,
        State::Stopped,
        State::Recovering,
        State::Failed,
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Degraded => "degraded",
            State::Paused => "paused",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Recovering => "recovering",
            State::Failed => "failed",
        }
    }
}

/// Where a pipeline's definition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Created over the API; stored in the state folder.
    Api,
    /// Read from a pipeline file; changed by editing the file.
    File,
}

/// One component's state and counters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComponentStatus {
    /// Component name.
    pub name: String,
    /// `source`, `transform`, `sink` or `dlq`.
    pub kind: String,
    /// `running`, or `degraded` while it struggles.
    pub state: State,
    /// What it struggles with, when degraded.
    pub reason: Option<String>,
    /// Records it received.
    pub received_events: u64,
    /// Records it passed on or wrote.
    pub sent_events: u64,
    /// Records that failed at it.
    pub errors: u64,
}

/// A pipeline's status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PipelineStatus {
    /// Pipeline name.
    pub name: String,
    /// What it is doing, as observed.
    pub state: State,
    /// What an operator asked it to be doing.
    #[schema(value_type = String, example = "running")]
    pub desired_state: Desired,
    /// Why it is in this state (the failure, the component that struggles), when there is a
    /// reason to give.
    pub reason: Option<String>,
    /// When it entered this state (RFC 3339).
    pub since: String,
    /// The generation of the definition asked for (bumped on every update).
    pub generation: u64,
    /// The generation that runs (or last ran).
    pub observed_generation: u64,
    /// Automatic and requested restarts since the process started.
    pub restart_count: u64,
    /// The last failure, kept after it recovered.
    pub last_error: Option<String>,
    /// The last definition change that could not be applied (the old generation kept running).
    pub last_reload_error: Option<String>,
    /// Each component, in pipeline order.
    pub components: Vec<ComponentStatus>,
}

/// A pipeline in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PipelineSummary {
    /// Pipeline name.
    pub name: String,
    /// What it is doing, as observed.
    pub state: State,
    /// What an operator asked it to be doing.
    #[schema(value_type = String, example = "running")]
    pub desired_state: Desired,
    /// `api` or `file`.
    pub origin: Origin,
    /// The file it comes from, for `file` pipelines.
    pub file: Option<String>,
}
