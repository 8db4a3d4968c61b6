//! One pipeline's keeper: a task that owns the running generation's handle, applies commands
//! in order (pause, resume, stop, start, restart, replace, delete), restarts with backoff after
//! a failure that may pass by itself, and records what it observes for status.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use weir_core::config::PipelineSpec;
use weir_engine::{EngineStatus, FailureKind, Phase, Pipeline, PipelineHandle};

use super::Env;
use crate::store::Desired;

/// What the actor is doing, beside the engine's own phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Activity {
    /// A generation runs; its engine phase says the rest.
    Running,
    /// Not running, by request.
    Stopped,
    /// Not running: the source reached its end and everything was delivered.
    Completed,
    /// Waiting to restart after a transient failure.
    Recovering { reason: String, at: SystemTime },
    /// Stopped by a failure that needs an operator.
    Failed(String),
}

/// What the actor records for status; read by the supervisor without asking the actor.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    pub activity: Activity,
    pub since: SystemTime,
    pub engine: Option<watch::Receiver<EngineStatus>>,
    pub desired: Desired,
    pub generation: u64,
    pub observed_generation: u64,
    pub restart_count: u64,
    pub last_error: Option<String>,
    pub last_reload_error: Option<String>,
    /// Component names and kinds of the running definition, in pipeline order.
    pub components: Vec<(String, &'static str)>,
}

impl Observed {
    pub(crate) fn new(desired: Desired, generation: u64) -> Self {
        Observed {
            // Until the keeper reports, a pipeline that should run is starting.
            activity: if desired == Desired::Stopped {
                Activity::Stopped
            } else {
                Activity::Running
            },
            since: SystemTime::now(),
            engine: None,
            desired,
            generation,
            observed_generation: 0,
            restart_count: 0,
            last_error: None,
            last_reload_error: None,
            components: Vec::new(),
        }
    }

    fn set(&mut self, activity: Activity) {
        if self.activity != activity {
            self.activity = activity;
            self.since = SystemTime::now();
        }
    }
}

pub(crate) type Shared = Arc<Mutex<Observed>>;

/// A definition to run: its spec, and the pipeline already built from it when the change was
/// validated (built again for every later start).
pub(crate) struct Generation {
    pub spec: PipelineSpec,
    pub generation: u64,
    pub prebuilt: Option<Pipeline>,
}

/// What the actor is asked to do.
pub(crate) enum Command {
    Pause,
    Resume,
    Stop,
    Start,
    Restart,
    Replace(Box<Generation>),
    /// Drain, commit, end the task.
    Remove(oneshot::Sender<()>),
}

fn components(spec: &PipelineSpec) -> Vec<(String, &'static str)> {
    let mut v = vec![(spec.source.name.clone(), "source")];
    if spec.source.format.is_some() {
        v.push((format!("{}.format", spec.source.name), "transform"));
    }
    v.extend(
        spec.transforms
            .iter()
            .map(|t| (t.name.clone(), "transform")),
    );
    for s in &spec.sinks {
        v.extend(s.transforms.iter().map(|t| (t.name.clone(), "transform")));
        if s.format.is_some() {
            v.push((format!("{}.format", s.name), "transform"));
        }
        v.push((s.name.clone(), "sink"));
    }
    v.extend(spec.dlq.iter().map(|d| (d.name.clone(), "dlq")));
    v
}

/// Backoff before restart number `n` (1, 2, 4, … seconds, at most a minute).
fn backoff(n: u64) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

pub(crate) struct Actor {
    pub env: Arc<Env>,
    pub shared: Shared,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub current: Generation,
}

enum Next {
    /// Start (again) with the current generation.
    Start,
    /// Wait for a command (stopped, completed, failed).
    Idle,
    /// The actor ends.
    Exit,
}

impl Actor {
    fn desired(&self) -> Desired {
        self.shared.lock().expect("status lock").desired
    }

    fn observe(&self, f: impl FnOnce(&mut Observed)) {
        f(&mut self.shared.lock().expect("status lock"));
    }

    pub(crate) async fn run(mut self) {
        let name = self.current.spec.name.clone();
        let mut next = if self.desired() == Desired::Stopped {
            Next::Idle
        } else {
            Next::Start
        };
        loop {
            next = match next {
                Next::Start => self.run_generation().await,
                Next::Idle => self.idle().await,
                Next::Exit => break,
            };
        }
        tracing::debug!(pipeline = %name, "pipeline keeper ended");
    }

    /// Builds (unless built already) and runs the current generation until it ends or a
    /// command replaces, stops or removes it.
    async fn run_generation(&mut self) -> Next {
        let built = match self.current.prebuilt.take() {
            Some(p) => Ok(p),
            None => self.env.build(&self.current.spec),
        };
        let pipeline = match built {
            Ok(p) => p,
            Err(e) => {
                let reason = format!("the definition does not build: {e}");
                self.observe(|o| {
                    o.last_error = Some(reason.clone());
                    o.set(Activity::Failed(reason));
                });
                return Next::Idle;
            }
        };
        let generation = self.current.generation;
        let comps = components(&self.current.spec);
        let mut handle = pipeline.start();
        if self.desired() == Desired::Paused {
            handle.pause();
        }
        let engine = handle.watch();
        self.observe(|o| {
            o.engine = Some(engine);
            o.observed_generation = generation;
            o.components = comps;
            o.set(Activity::Running);
        });
        loop {
            tokio::select! {
                result = handle.wait() => return self.ended(result).await,
                cmd = self.commands.recv() => {
                    let Some(cmd) = cmd else {
                        self.drain(&mut handle).await;
                        return Next::Exit;
                    };
                    match cmd {
                        Command::Pause => handle.pause(),
                        Command::Resume | Command::Start => handle.resume(),
                        Command::Stop => {
                            self.drain(&mut handle).await;
                            self.observe(|o| o.set(Activity::Stopped));
                            return Next::Idle;
                        }
                        Command::Restart => {
                            self.drain(&mut handle).await;
                            self.observe(|o| o.restart_count += 1);
                            return Next::Start;
                        }
                        Command::Replace(g) => {
                            let g = *g;
                            // The old generation drains to its acks and commits (releasing its
                            // group membership) before the new one starts from those offsets.
                            self.drain(&mut handle).await;
                            self.current = g;
                            return Next::Start;
                        }
                        Command::Remove(done) => {
                            self.drain(&mut handle).await;
                            let _ = done.send(());
                            return Next::Exit;
                        }
                    }
                }
            }
        }
    }

    async fn drain(&mut self, handle: &mut PipelineHandle) {
        drain(&self.shared, handle).await;
    }

    /// The generation ended by itself: completed, or failed.
    async fn ended(&mut self, result: Result<(), weir_engine::PipelineFailed>) -> Next {
        match result {
            Ok(()) => {
                self.observe(|o| o.set(Activity::Completed));
                Next::Idle
            }
            Err(e) if e.kind == FailureKind::Transient => {
                let n = {
                    let mut o = self.shared.lock().expect("status lock");
                    o.restart_count += 1;
                    o.last_error = Some(e.reason.clone());
                    o.restart_count
                };
                let wait = backoff(n);
                tracing::warn!(pipeline = %e.pipeline, "{}; restarting in {wait:?}", e.reason);
                self.observe(|o| {
                    o.set(Activity::Recovering {
                        reason: e.reason.clone(),
                        at: SystemTime::now() + wait,
                    })
                });
                let sleep = tokio::time::sleep(wait);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => return Next::Start,
                        cmd = self.commands.recv() => match cmd {
                            None => return Next::Exit,
                            Some(c) => if let Some(next) = self.idle_command(c) { return next },
                        }
                    }
                }
            }
            Err(e) => {
                self.observe(|o| {
                    o.last_error = Some(e.reason.clone());
                    o.set(Activity::Failed(e.reason.clone()));
                });
                Next::Idle
            }
        }
    }

    /// Not running: waits for a command that starts it again.
    async fn idle(&mut self) -> Next {
        self.observe(|o| o.engine = None);
        loop {
            let Some(cmd) = self.commands.recv().await else {
                return Next::Exit;
            };
            if let Some(next) = self.idle_command(cmd) {
                return next;
            }
        }
    }

    /// A command while nothing runs; `None` keeps waiting.
    fn idle_command(&mut self, cmd: Command) -> Option<Next> {
        match cmd {
            Command::Pause | Command::Resume | Command::Start => {
                (self.desired() != Desired::Stopped).then_some(Next::Start)
            }
            Command::Restart => {
                self.observe(|o| o.restart_count += 1);
                Some(Next::Start)
            }
            Command::Stop => {
                self.observe(|o| o.set(Activity::Stopped));
                None
            }
            Command::Replace(g) => {
                self.current = *g;
                if self.desired() == Desired::Stopped {
                    self.observe(|o| o.set(Activity::Stopped));
                    None
                } else {
                    Some(Next::Start)
                }
            }
            Command::Remove(done) => {
                let _ = done.send(());
                Some(Next::Exit)
            }
        }
    }
}

/// Stops a generation gracefully and waits until it drained and committed.
async fn drain(shared: &Shared, handle: &mut PipelineHandle) {
    handle.stop();
    if let Err(e) = handle.wait().await
        && e.kind != FailureKind::OutputClosed
    {
        shared.lock().expect("status lock").last_error = Some(e.reason.clone());
    }
}

/// The observed state and its reason, derived from the actor's activity, the engine's phase
/// and the components' health.
pub(crate) fn derive(
    o: &Observed,
    health: &[(String, Option<(String, SystemTime)>)],
) -> (super::State, Option<String>, SystemTime) {
    use super::State;
    match &o.activity {
        Activity::Failed(r) => (State::Failed, Some(r.clone()), o.since),
        Activity::Recovering { reason, at } => {
            let left = at
                .duration_since(SystemTime::now())
                .map(|d| format!("restarting in {}s", d.as_secs() + 1))
                .unwrap_or_else(|_| "restarting".to_owned());
            (
                State::Recovering,
                Some(format!("{left} after: {reason}")),
                o.since,
            )
        }
        Activity::Stopped => (State::Stopped, None, o.since),
        Activity::Completed => (
            State::Stopped,
            Some("completed: the source reached its end and everything was delivered".into()),
            o.since,
        ),
        Activity::Running => {
            let Some(engine) = &o.engine else {
                return (State::Starting, None, o.since);
            };
            let e = engine.borrow().clone();
            match e.phase {
                Phase::Starting => (State::Starting, None, e.since),
                Phase::Paused => (State::Paused, None, e.since),
                Phase::Stopping | Phase::Stopped | Phase::Failed => {
                    (State::Stopping, None, e.since)
                }
                Phase::Running => match health
                    .iter()
                    .filter_map(|(c, h)| h.as_ref().map(|(r, since)| (c, r, *since)))
                    .min_by_key(|(_, _, since)| *since)
                {
                    Some((c, r, since)) => (
                        State::Degraded,
                        Some(format!("`{c}`: {r}")),
                        since.max(e.since),
                    ),
                    None => (State::Running, None, e.since),
                },
            }
        }
    }
}
