//! The supervisor behind `weir serve`: hosts pipelines from files and pipelines created over
//! the API, keeps what an operator asked (persisted in the store) apart from what it observes,
//! and changes a running pipeline by one path whoever asks (API, a changed file, SIGHUP): build
//! and validate the new definition first, leave unchanged pipelines alone, drain and commit the
//! old generation before the new one starts.

mod actor;
mod definition;
mod offsets;
mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use weir_core::config::{ConfigError, ConfigErrors, PipelineSpec, load_path_partial, process_env};
use weir_core::telemetry::{Counter, Telemetry};
use weir_core::{Registry, time::rfc3339};
use weir_engine::{MetricsRegistry, Pipeline};

use crate::build::{BuildEnv, build_specs};
use crate::store::{Desired, Store, StoreError, StoredPipeline};
use actor::{Actor, Command, Generation, Observed, Shared, derive};
pub use definition::{ContentType, Definition, redacted_definition};
pub use offsets::{OffsetChange, PartitionOffset};
pub use status::{ComponentStatus, Origin, PipelineStatus, PipelineSummary, State};

/// Why the supervisor refused a request. The API maps each to a status code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// No pipeline of that name.
    #[error("no pipeline named `{0}`")]
    NotFound(String),
    /// A pipeline of that name exists already.
    #[error("a pipeline named `{0}` exists already; PUT /v1/pipelines/{0} replaces it")]
    Exists(String),
    /// The pipeline comes from a file: change the file instead.
    #[error("pipeline `{name}` is defined in {file}; edit that file to change it")]
    FromFile {
        /// Pipeline name.
        name: String,
        /// The file.
        file: String,
    },
    /// `If-Match` named another generation.
    #[error("pipeline `{name}` is at generation {current}, not {expected}")]
    StaleGeneration {
        /// Pipeline name.
        name: String,
        /// The generation asked for.
        expected: u64,
        /// The current generation.
        current: u64,
    },
    /// The definition is invalid; the errors are located in the submitted document.
    #[error("{0}")]
    Invalid(ConfigErrors),
    /// The body's `name:` is not the pipeline's name in the URL.
    #[error("the body names pipeline `{body}` but the request is for `{url}`")]
    NameMismatch {
        /// Name in the body.
        body: String,
        /// Name in the URL.
        url: String,
    },
    /// The request needs the pipeline in another state.
    #[error("{0}")]
    WrongState(String),
    /// The pipeline's source has no consumer-group offsets (not a Kafka source).
    #[error("pipeline `{0}` does not read from Kafka: it has no consumer-group offsets")]
    NoOffsets(String),
    /// The brokers refused or could not be reached.
    #[error("{0}")]
    Kafka(String),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a supervisor needs to build pipelines.
pub(crate) struct Env {
    registry: Registry,
    metrics: MetricsRegistry,
    data_dir: Arc<Path>,
}

impl Env {
    fn build(&self, spec: &PipelineSpec) -> Result<Pipeline, ConfigErrors> {
        let env = BuildEnv {
            registry: &self.registry,
            metrics: &self.metrics,
            data_dir: Some(&self.data_dir),
        };
        let mut out = build_specs(std::slice::from_ref(spec), Vec::new(), env)?;
        Ok(out.pipelines.remove(0).pipeline)
    }
}

struct Managed {
    origin: Origin,
    file: Option<PathBuf>,
    definition: Definition,
    shared: Shared,
    commands: mpsc::UnboundedSender<Command>,
}

/// Counters of the supervisor itself.
struct Counters {
    reloads_ok: Counter,
    reloads_error: Counter,
}

/// The supervisor.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    env: Arc<Env>,
    store: Mutex<Store>,
    files: Vec<PathBuf>,
    pipelines: Mutex<BTreeMap<String, Managed>>,
    counters: Counters,
    /// Where usage was last accounted, per pipeline: (events, bytes).
    usage_marks: Mutex<BTreeMap<String, (u64, u64)>>,
}

/// How a supervisor starts.
pub struct SupervisorOptions {
    /// Pipeline files or directories (read-only over the API).
    pub files: Vec<PathBuf>,
    /// Where the store and components' state live.
    pub state_dir: PathBuf,
    /// The plugins.
    pub registry: Registry,
    /// The process's metrics.
    pub telemetry: Telemetry,
}

/// The files as loaded: the specs that build, every name defined, errors and warnings.
#[derive(Default)]
struct LoadedFiles {
    specs: Vec<PipelineSpec>,
    names: std::collections::BTreeSet<String>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

/// What the supervisor found in the files at start-up that it could not run.
#[derive(Debug)]
pub struct StartReport {
    /// Errors in the files (those pipelines are not running).
    pub errors: Vec<ConfigError>,
    /// Warnings about the pipelines that run.
    pub warnings: Vec<ConfigError>,
}

fn file_of(spec: &PipelineSpec) -> PathBuf {
    PathBuf::from(&*spec.file.name)
}

impl Supervisor {
    /// Opens the store, loads the files, and starts every pipeline in its desired state: API
    /// pipelines from the store (resuming from their committed offsets), file pipelines from
    /// the files.
    pub async fn start(
        opts: SupervisorOptions,
    ) -> Result<(Supervisor, StartReport), SupervisorError> {
        std::fs::create_dir_all(&opts.state_dir).map_err(|e| {
            SupervisorError::WrongState(format!(
                "cannot create the state folder {}: {e}",
                opts.state_dir.display()
            ))
        })?;
        let store = Store::open(&opts.state_dir)?;
        let stored = store.pipelines()?;
        let metrics = MetricsRegistry::on(opts.telemetry.clone());
        let t = &opts.telemetry;
        t.gauge(
            "weir_build_info",
            "Weir's version.",
            vec![("version", env!("CARGO_PKG_VERSION").to_owned())],
        )
        .set(1);
        let reload = |result: &str| {
            t.counter(
                "weir_config_reloads_total",
                "Definition changes applied (ok) or refused (error), from the API, files or SIGHUP.",
                vec![("result", result.to_owned())],
            )
        };
        let sup = Supervisor {
            inner: Arc::new(Inner {
                env: Arc::new(Env {
                    registry: opts.registry,
                    metrics,
                    data_dir: Arc::from(opts.state_dir.as_path()),
                }),
                store: Mutex::new(store),
                files: opts.files,
                pipelines: Mutex::new(BTreeMap::new()),
                counters: Counters {
                    reloads_ok: reload("ok"),
                    reloads_error: reload("error"),
                },
                usage_marks: Mutex::new(BTreeMap::new()),
            }),
        };
        let mut report = StartReport {
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        for p in stored {
            let content_type = ContentType::from_mime(&p.content_type);
            match Definition::parse(&p.definition, content_type, &p.name) {
                Ok((definition, _)) => {
                    sup.spawn(
                        &p.name,
                        Origin::Api,
                        None,
                        definition,
                        p.generation,
                        p.desired,
                        None,
                    );
                }
                Err(e) => {
                    tracing::error!(pipeline = %p.name, "the stored definition no longer loads: {e}");
                    report.errors.extend(e.0);
                }
            }
        }
        let loaded = sup.load_files();
        report.errors.extend(loaded.errors);
        report.warnings.extend(loaded.warnings);
        for spec in loaded.specs {
            let name = spec.name.to_string();
            if sup
                .inner
                .pipelines
                .lock()
                .expect("pipelines lock")
                .contains_key(&name)
            {
                report.errors.push(spec.file.error(
                    spec.location,
                    spec.path.clone(),
                    format!("pipeline `{name}` exists already (created over the API); rename one of them"),
                ));
                continue;
            }
            let desired = sup
                .inner
                .store
                .lock()
                .expect("store lock")
                .file_desired(&name)?
                .unwrap_or(Desired::Running);
            let file = file_of(&spec);
            sup.spawn(
                &name,
                Origin::File,
                Some(file),
                Definition::from_file(spec),
                1,
                desired,
                None,
            );
        }
        Ok((sup, report))
    }

    /// Loads every file: the specs that load and build, every pipeline name the files define
    /// (valid or not), the errors, the warnings.
    fn load_files(&self) -> LoadedFiles {
        let mut specs = Vec::new();
        let mut out = LoadedFiles::default();
        for f in &self.inner.files {
            let (s, e) = load_path_partial(f, &process_env);
            specs.extend(s);
            out.errors.extend(e);
        }
        for spec in specs {
            out.names.insert(spec.name.to_string());
            match self.validate_spec(&spec) {
                Ok(w) => {
                    out.warnings.extend(w);
                    out.specs.push(spec);
                }
                Err(e) => out.errors.extend(e.0),
            }
        }
        out
    }

    /// Builds a spec to check it (nothing connects); returns its warnings.
    fn validate_spec(&self, spec: &PipelineSpec) -> Result<Vec<ConfigError>, ConfigErrors> {
        let env = &self.inner.env;
        let out = build_specs(
            std::slice::from_ref(spec),
            Vec::new(),
            BuildEnv {
                registry: &env.registry,
                metrics: &MetricsRegistry::default(),
                data_dir: Some(&env.data_dir),
            },
        )?;
        Ok(out.warnings)
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &self,
        name: &str,
        origin: Origin,
        file: Option<PathBuf>,
        definition: Definition,
        generation: u64,
        desired: Desired,
        prebuilt: Option<Pipeline>,
    ) {
        let shared: Shared = Arc::new(Mutex::new(Observed::new(desired, generation)));
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = Actor {
            env: self.inner.env.clone(),
            shared: shared.clone(),
            commands: rx,
            current: Generation {
                spec: definition.spec.clone(),
                generation,
                prebuilt,
            },
        };
        tokio::spawn(actor.run());
        self.inner.pipelines.lock().expect("pipelines lock").insert(
            name.to_owned(),
            Managed {
                origin,
                file,
                definition,
                shared,
                commands: tx,
            },
        );
    }

    /// The process's metrics.
    pub fn telemetry(&self) -> &Telemetry {
        self.inner.env.metrics.telemetry()
    }

    /// The plugins this supervisor builds with.
    pub fn registry(&self) -> &Registry {
        &self.inner.env.registry
    }

    /// Every pipeline, by name.
    pub fn list(&self) -> Vec<PipelineSummary> {
        let map = self.inner.pipelines.lock().expect("pipelines lock");
        map.iter()
            .map(|(name, m)| {
                let st = self.status_of(name, m);
                PipelineSummary {
                    name: name.clone(),
                    state: st.state,
                    desired_state: st.desired_state,
                    origin: m.origin,
                    file: m.file.as_ref().map(|f| f.display().to_string()),
                }
            })
            .collect()
    }

    fn status_of(&self, name: &str, m: &Managed) -> PipelineStatus {
        let o = m.shared.lock().expect("status lock").clone();
        let telemetry = self.telemetry();
        let health: Vec<(String, Option<(String, SystemTime)>)> = telemetry
            .pipeline_health(name)
            .into_iter()
            .map(|(c, h)| (c, h.current()))
            .collect();
        let (state, reason, since) = derive(&o, &health);
        let rows = self.inner.env.metrics.snapshot();
        let components = o
            .components
            .iter()
            .map(|(c, kind)| {
                let row = rows
                    .iter()
                    .find(|r| r.pipeline == name && r.component == *c);
                let h = health
                    .iter()
                    .find(|(hc, _)| hc == c)
                    .and_then(|(_, h)| h.clone());
                ComponentStatus {
                    name: c.clone(),
                    kind: (*kind).to_owned(),
                    state: if h.is_some() {
                        State::Degraded
                    } else {
                        State::Running
                    },
                    reason: h.map(|(r, _)| r),
                    received_events: row.map_or(0, |r| r.received),
                    sent_events: row.map_or(0, |r| r.sent),
                    errors: row.map_or(0, |r| r.errors),
                }
            })
            .collect();
        PipelineStatus {
            name: name.to_owned(),
            state,
            desired_state: o.desired,
            reason,
            since: rfc3339(since),
            generation: o.generation,
            observed_generation: o.observed_generation,
            restart_count: o.restart_count,
            last_error: o.last_error,
            last_reload_error: o.last_reload_error,
            components,
        }
    }

    /// A pipeline's status.
    pub fn status(&self, name: &str) -> Result<PipelineStatus, SupervisorError> {
        let map = self.inner.pipelines.lock().expect("pipelines lock");
        let m = map
            .get(name)
            .ok_or_else(|| SupervisorError::NotFound(name.to_owned()))?;
        Ok(self.status_of(name, m))
    }

    /// A pipeline's definition (secrets shown as their references) and status.
    pub fn get(
        &self,
        name: &str,
    ) -> Result<(serde_json::Value, Origin, Option<String>, PipelineStatus), SupervisorError> {
        let map = self.inner.pipelines.lock().expect("pipelines lock");
        let m = map
            .get(name)
            .ok_or_else(|| SupervisorError::NotFound(name.to_owned()))?;
        Ok((
            m.definition.redacted.clone(),
            m.origin,
            m.file.as_ref().map(|f| f.display().to_string()),
            self.status_of(name, m),
        ))
    }

    /// Checks a pipeline body without running it: its warnings, or its located errors.
    pub fn validate(
        &self,
        body: &str,
        content_type: ContentType,
    ) -> Result<(String, Vec<ConfigError>), SupervisorError> {
        let (def, _) =
            Definition::parse(body, content_type, "body").map_err(SupervisorError::Invalid)?;
        let warnings = self
            .validate_spec(&def.spec)
            .map_err(SupervisorError::Invalid)?;
        Ok((def.spec.name.to_string(), warnings))
    }

    fn built(&self, def: &Definition) -> Result<Pipeline, SupervisorError> {
        self.inner.env.build(&def.spec).map_err(|e| {
            self.inner.counters.reloads_error.inc(1);
            SupervisorError::Invalid(e)
        })
    }

    /// Creates a pipeline from an API body and starts it (desired `running`).
    pub fn create(
        &self,
        body: &str,
        content_type: ContentType,
    ) -> Result<PipelineStatus, SupervisorError> {
        let (def, _) =
            Definition::parse(body, content_type, "body").map_err(SupervisorError::Invalid)?;
        let name = def.spec.name.to_string();
        if self
            .inner
            .pipelines
            .lock()
            .expect("pipelines lock")
            .contains_key(&name)
        {
            return Err(SupervisorError::Exists(name));
        }
        let pipeline = self.built(&def)?;
        self.inner
            .store
            .lock()
            .expect("store lock")
            .put(&StoredPipeline {
                name: name.clone(),
                definition: body.to_owned(),
                content_type: content_type.mime().to_owned(),
                generation: 1,
                desired: Desired::Running,
            })?;
        self.spawn(
            &name,
            Origin::Api,
            None,
            def,
            1,
            Desired::Running,
            Some(pipeline),
        );
        self.status(&name)
    }

    /// Replaces an API pipeline's definition (or creates it): validated and built first, so a
    /// definition that fails leaves the running one untouched.
    pub fn replace(
        &self,
        name: &str,
        body: &str,
        content_type: ContentType,
        if_match: Option<u64>,
    ) -> Result<PipelineStatus, SupervisorError> {
        let (def, _) =
            Definition::parse(body, content_type, "body").map_err(SupervisorError::Invalid)?;
        if *def.spec.name != *name {
            return Err(SupervisorError::NameMismatch {
                body: def.spec.name.to_string(),
                url: name.to_owned(),
            });
        }
        let existing = {
            let map = self.inner.pipelines.lock().expect("pipelines lock");
            map.get(name).map(|m| {
                let o = m.shared.lock().expect("status lock");
                (
                    m.origin,
                    m.file.clone(),
                    o.generation,
                    o.desired,
                    m.definition.spec.canonical.clone(),
                )
            })
        };
        let Some((origin, file, generation, desired, canonical)) = existing else {
            if let Some(expected) = if_match {
                return Err(SupervisorError::StaleGeneration {
                    name: name.to_owned(),
                    expected,
                    current: 0,
                });
            }
            return self.create(body, content_type);
        };
        if origin == Origin::File {
            return Err(SupervisorError::FromFile {
                name: name.to_owned(),
                file: file.map(|f| f.display().to_string()).unwrap_or_default(),
            });
        }
        if let Some(expected) = if_match
            && expected != generation
        {
            return Err(SupervisorError::StaleGeneration {
                name: name.to_owned(),
                expected,
                current: generation,
            });
        }
        if canonical == def.spec.canonical {
            // The same pipeline: nothing to restart.
            return self.status(name);
        }
        let pipeline = self.built(&def)?;
        let generation = generation + 1;
        self.inner
            .store
            .lock()
            .expect("store lock")
            .put(&StoredPipeline {
                name: name.to_owned(),
                definition: body.to_owned(),
                content_type: content_type.mime().to_owned(),
                generation,
                desired,
            })?;
        self.apply_generation(name, def, generation, Some(pipeline));
        self.status(name)
    }

    /// Hands a new generation to a pipeline's keeper.
    fn apply_generation(
        &self,
        name: &str,
        def: Definition,
        generation: u64,
        prebuilt: Option<Pipeline>,
    ) {
        let mut map = self.inner.pipelines.lock().expect("pipelines lock");
        let Some(m) = map.get_mut(name) else {
            return;
        };
        {
            let mut o = m.shared.lock().expect("status lock");
            o.generation = generation;
            o.last_reload_error = None;
        }
        let _ = m.commands.send(Command::Replace(Box::new(Generation {
            spec: def.spec.clone(),
            generation,
            prebuilt,
        })));
        m.definition = def;
        self.inner.counters.reloads_ok.inc(1);
    }

    /// Drains, commits and removes an API pipeline.
    pub async fn delete(&self, name: &str) -> Result<(), SupervisorError> {
        let (done, rx) = oneshot::channel();
        {
            let map = self.inner.pipelines.lock().expect("pipelines lock");
            let m = map
                .get(name)
                .ok_or_else(|| SupervisorError::NotFound(name.to_owned()))?;
            if m.origin == Origin::File {
                return Err(SupervisorError::FromFile {
                    name: name.to_owned(),
                    file: m
                        .file
                        .as_ref()
                        .map(|f| f.display().to_string())
                        .unwrap_or_default(),
                });
            }
            let _ = m.commands.send(Command::Remove(done));
        }
        let _ = rx.await;
        self.forget(name)?;
        self.inner.store.lock().expect("store lock").delete(name)?;
        Ok(())
    }

    fn forget(&self, name: &str) -> Result<(), SupervisorError> {
        self.inner
            .pipelines
            .lock()
            .expect("pipelines lock")
            .remove(name);
        self.inner.env.metrics.remove_pipeline(name);
        Ok(())
    }

    /// Asks a pipeline to pause, resume, stop, start or restart; returns at once (the status
    /// shows the progress). The desired state is persisted first.
    pub fn command(&self, name: &str, what: Action) -> Result<PipelineStatus, SupervisorError> {
        let desired = match what {
            Action::Pause => Desired::Paused,
            Action::Stop => Desired::Stopped,
            Action::Resume | Action::Start | Action::Restart => Desired::Running,
        };
        {
            let map = self.inner.pipelines.lock().expect("pipelines lock");
            let m = map
                .get(name)
                .ok_or_else(|| SupervisorError::NotFound(name.to_owned()))?;
            self.inner.store.lock().expect("store lock").set_desired(
                name,
                m.origin == Origin::File,
                desired,
            )?;
            m.shared.lock().expect("status lock").desired = desired;
            let cmd = match what {
                Action::Pause => Command::Pause,
                Action::Resume => Command::Resume,
                Action::Stop => Command::Stop,
                Action::Start => Command::Start,
                Action::Restart => Command::Restart,
            };
            let _ = m.commands.send(cmd);
        }
        self.status(name)
    }

    /// Ready when every pipeline whose desired state is `running` runs (a finished finite
    /// pipeline counts); otherwise the reason per pipeline that does not.
    pub fn readiness(&self) -> Vec<(String, String)> {
        self.list_statuses()
            .into_iter()
            .filter(|s| s.desired_state == Desired::Running)
            .filter(|s| {
                s.state != State::Running
                    && !(s.state == State::Stopped
                        && s.reason
                            .as_deref()
                            .is_some_and(|r| r.starts_with("completed")))
            })
            .map(|s| {
                let why = match &s.reason {
                    Some(r) => format!("{}: {r}", s.state.as_str()),
                    None => s.state.as_str().to_owned(),
                };
                (s.name, why)
            })
            .collect()
    }

    fn list_statuses(&self) -> Vec<PipelineStatus> {
        let map = self.inner.pipelines.lock().expect("pipelines lock");
        map.iter().map(|(n, m)| self.status_of(n, m)).collect()
    }

    /// Sets `weir_pipeline_state{state}` (1 for the current state) and
    /// `weir_pipeline_restarts_total` from the statuses, before a scrape.
    pub fn refresh_gauges(&self) {
        let t = self.telemetry();
        for s in self.list_statuses() {
            for state in State::ALL {
                t.gauge(
                    "weir_pipeline_state",
                    "1 for a pipeline's current state, 0 for the others.",
                    vec![
                        ("pipeline", s.name.clone()),
                        ("state", state.as_str().to_owned()),
                    ],
                )
                .set(i64::from(state == s.state));
            }
            t.counter(
                "weir_pipeline_restarts_total",
                "Restarts of a pipeline since the process started (automatic and requested).",
                vec![("pipeline", s.name.clone())],
            )
            .advance_to(s.restart_count);
        }
    }

    /// Reads the files again and applies what changed (SIGHUP, a file watcher): new pipelines
    /// start, changed ones get a new generation, removed ones drain and stop; unchanged ones are
    /// not touched. A file that does not load or build changes nothing of its pipelines and
    /// puts the errors in their `last_reload_error`.
    pub async fn reload_files(&self) -> ReloadOutcome {
        let LoadedFiles {
            specs,
            names,
            errors,
            ..
        } = self.load_files();
        let mut outcome = ReloadOutcome::default();
        // Files with errors: their pipelines stay as they are.
        let broken: Vec<String> = errors.iter().map(|e| e.file.to_string()).collect();
        if !errors.is_empty() {
            self.inner.counters.reloads_error.inc(1);
            let text = ConfigErrors(errors.clone()).to_string();
            let map = self.inner.pipelines.lock().expect("pipelines lock");
            for m in map.values() {
                if m.file
                    .as_ref()
                    .is_some_and(|f| broken.contains(&f.display().to_string()))
                {
                    m.shared.lock().expect("status lock").last_reload_error = Some(text.clone());
                }
            }
            outcome.errors = errors;
        }
        let current: Vec<(String, Option<PathBuf>, String)> = {
            let map = self.inner.pipelines.lock().expect("pipelines lock");
            map.iter()
                .filter(|(_, m)| m.origin == Origin::File)
                .map(|(n, m)| {
                    (
                        n.clone(),
                        m.file.clone(),
                        m.definition.spec.canonical.clone(),
                    )
                })
                .collect()
        };
        for spec in specs {
            let name = spec.name.to_string();
            match current.iter().find(|(n, _, _)| *n == name) {
                Some((_, _, canonical)) if *canonical == spec.canonical => {
                    // Its file loads again: the last reload error is over.
                    if let Some(m) = self
                        .inner
                        .pipelines
                        .lock()
                        .expect("pipelines lock")
                        .get(&name)
                    {
                        m.shared.lock().expect("status lock").last_reload_error = None;
                    }
                }
                Some(_) => {
                    let generation = {
                        let map = self.inner.pipelines.lock().expect("pipelines lock");
                        map.get(&name)
                            .map_or(1, |m| m.shared.lock().expect("status lock").generation + 1)
                    };
                    let def = Definition::from_file(spec);
                    match self.built(&def) {
                        Ok(p) => {
                            self.apply_generation(&name, def, generation, Some(p));
                            outcome.changed.push(name);
                        }
                        Err(e) => {
                            let map = self.inner.pipelines.lock().expect("pipelines lock");
                            if let Some(m) = map.get(&name) {
                                m.shared.lock().expect("status lock").last_reload_error =
                                    Some(e.to_string());
                            }
                        }
                    }
                }
                None => {
                    if self
                        .inner
                        .pipelines
                        .lock()
                        .expect("pipelines lock")
                        .contains_key(&name)
                    {
                        tracing::error!(pipeline = %name, "a file defines pipeline `{name}`, which exists already (created over the API); ignored");
                        continue;
                    }
                    let def = Definition::from_file(spec);
                    if let Ok(p) = self.built(&def) {
                        let file = file_of(&def.spec);
                        self.spawn(
                            &name,
                            Origin::File,
                            Some(file),
                            def,
                            1,
                            Desired::Running,
                            Some(p),
                        );
                        self.inner.counters.reloads_ok.inc(1);
                        outcome.added.push(name);
                    }
                }
            }
        }
        // Pipelines the files no longer define (and whose file loaded).
        for (name, file, _) in current {
            let file_ok = file
                .as_ref()
                .is_some_and(|f| !broken.contains(&f.display().to_string()));
            if file_ok && !names.contains(&name) {
                let (done, rx) = oneshot::channel();
                if let Some(m) = self
                    .inner
                    .pipelines
                    .lock()
                    .expect("pipelines lock")
                    .get(&name)
                {
                    let _ = m.commands.send(Command::Remove(done));
                }
                let _ = rx.await;
                let _ = self.forget(&name);
                self.inner.counters.reloads_ok.inc(1);
                outcome.removed.push(name);
            }
        }
        if !outcome.added.is_empty() || !outcome.changed.is_empty() || !outcome.removed.is_empty() {
            tracing::info!(added = ?outcome.added, changed = ?outcome.changed, removed = ?outcome.removed, "pipeline files reloaded");
        }
        outcome
    }

    /// Adds what each pipeline's source received since the last call to the store's hourly
    /// usage (events and bytes).
    pub fn account_usage(&self) {
        let hour: String = rfc3339(SystemTime::now()).chars().take(13).collect();
        let rows = self.inner.env.metrics.snapshot();
        let t = self.telemetry();
        let mut marks = self.inner.usage_marks.lock().expect("usage lock");
        let store = self.inner.store.lock().expect("store lock");
        for r in rows.iter().filter(|r| r.kind == "source") {
            let bytes = t
                .value(
                    "weir_component_received_bytes_total",
                    &[
                        ("pipeline", &r.pipeline),
                        ("component", &r.component),
                        ("component_kind", "source"),
                        ("component_type", &self.source_type(&r.pipeline)),
                    ],
                )
                .unwrap_or(0) as u64;
            let mark = marks.entry(r.pipeline.clone()).or_insert((0, 0));
            let (de, db) = (
                r.received.saturating_sub(mark.0),
                bytes.saturating_sub(mark.1),
            );
            if de > 0 || db > 0 {
                if let Err(e) = store.add_usage(&r.pipeline, "", &hour, de, db) {
                    tracing::warn!("cannot record usage: {e}");
                    continue;
                }
                *mark = (r.received, bytes);
            }
        }
    }

    fn source_type(&self, pipeline: &str) -> String {
        self.inner
            .pipelines
            .lock()
            .expect("pipelines lock")
            .get(pipeline)
            .map(|m| m.definition.spec.source.type_name.clone())
            .unwrap_or_default()
    }

    /// A pipeline's usage per hour: (hour, events, bytes).
    pub fn usage(&self, name: &str) -> Result<Vec<(String, u64, u64)>, SupervisorError> {
        self.status(name)?;
        Ok(self.inner.store.lock().expect("store lock").usage(name)?)
    }

    /// Stops every pipeline gracefully (they drain and commit) and waits for them.
    pub async fn shutdown(&self) {
        self.account_usage();
        let waits: Vec<oneshot::Receiver<()>> = {
            let map = self.inner.pipelines.lock().expect("pipelines lock");
            map.values()
                .map(|m| {
                    let (done, rx) = oneshot::channel();
                    let _ = m.commands.send(Command::Remove(done));
                    rx
                })
                .collect()
        };
        for w in waits {
            let _ = w.await;
        }
        self.account_usage();
    }

    /// The source spec of a pipeline, for its offsets.
    pub(crate) fn spec(&self, name: &str) -> Result<(PipelineSpec, State), SupervisorError> {
        let st = self.status(name)?;
        let map = self.inner.pipelines.lock().expect("pipelines lock");
        let m = map
            .get(name)
            .ok_or_else(|| SupervisorError::NotFound(name.to_owned()))?;
        Ok((m.definition.spec.clone(), st.state))
    }

    /// Waits until `f` holds for the pipeline's status, up to `timeout` (tests, `weir ctl`).
    pub async fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        f: impl Fn(&PipelineStatus) -> bool,
    ) -> Result<PipelineStatus, SupervisorError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.status(name)?;
            if f(&s) || tokio::time::Instant::now() >= deadline {
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A request to change what a pipeline does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop reading; keep the consumer in its group.
    Pause,
    /// Read again.
    Resume,
    /// Drain, commit and stop.
    Stop,
    /// Start a stopped or failed pipeline.
    Start,
    /// Drain, commit and start again.
    Restart,
}

/// What a reload of the files changed.
#[derive(Debug, Default)]
pub struct ReloadOutcome {
    /// New pipelines started.
    pub added: Vec<String>,
    /// Pipelines given a new generation.
    pub changed: Vec<String>,
    /// Pipelines removed (drained and stopped).
    pub removed: Vec<String>,
    /// Errors in files (their pipelines left as they were).
    pub errors: Vec<ConfigError>,
}
