//! `weir dlq redrive`: reads the dead letters of a pipeline's `dlq:` (a Kafka topic or a file
//! of envelopes), takes those a selection picks, optionally passes them through fix-up
//! transforms, and sends them back, without their error headers and with `weir.redrive.*`
//! headers: to the pipeline's input topic, or into the pipeline's first stage (its transforms,
//! sinks and DLQ, built as the pipeline itself is).
//!
//! Progress is the DLQ reader's own: the `kafka` source's consumer group, or the `file`
//! source's checkpoint, committed only once a redriven record is done. A crash mid-redrive
//! therefore repeats at most what was in flight (at least once), and a rerun goes on where the
//! last one stopped. A redrive reads up to where the DLQ ended when it started, so records that
//! fail again (and land in the same DLQ) wait for the next redrive instead of looping.

mod feed;
pub mod letter;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use weir_core::config::{
    ComponentSpec, ConfigErrors, HumanDuration, OnError, PipelineSpec, StageOptions, from_node,
    load_path, load_transforms, process_env,
};
use weir_core::{BuildContext, PluginConfig, Registry, Source};
use weir_engine::metrics::MetricsRegistry;
use weir_engine::sink_driver::SinkStage;
use weir_engine::stages::TransformStage;
use weir_engine::topology::{BUDGET, Pipeline, PipelineFailed, PipelineParts};
use weir_sources::file::checkpoint::CheckpointStore;
use weir_transforms::filter::FilterTransform;

use crate::build::{BuildEnv, Feed, build_fed, build_transform_stages};
use feed::RedriveSource;
pub use feed::{Ends, Progress};
use letter::Selector;
pub use letter::{LetterFormat, Selection, TopicRule};

/// Where redriven records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Into the pipeline's first stage: its transforms, sinks and DLQ.
    Pipeline,
    /// Back to the topic the record was read from, one of the pipeline's Kafka source's topics.
    Input,
}

/// What to redrive and how, as `weir dlq redrive` takes it.
#[derive(Debug, Clone)]
pub struct RedriveRequest {
    /// The pipeline file (or directory) that defines the pipeline.
    pub pipelines: PathBuf,
    /// The pipeline whose `dlq:` is read and that the letters go back to.
    pub pipeline: String,
    /// Where the letters go.
    pub to: Target,
    /// Take the letters of this pipeline (default: `pipeline`), unless `any_pipeline`.
    pub from_pipeline: Option<String>,
    /// Take the letters of every pipeline that writes to this DLQ.
    pub any_pipeline: bool,
    /// Take letters of these stages (`sink`, `transform`).
    pub stages: Vec<String>,
    /// Take letters of these components.
    pub components: Vec<String>,
    /// Take letters of these error classes (`weir.sink.Fatal`, or `Fatal`).
    pub classes: Vec<String>,
    /// Take letters dead-lettered at or after this time: RFC 3339, or a duration ago (`2h`).
    pub since: Option<String>,
    /// Take letters dead-lettered before this time.
    pub until: Option<String>,
    /// Take letters matching this EventBridge pattern (JSON, or `@file`), matched against the
    /// letter in the event shape, error headers included.
    pub pattern: Option<String>,
    /// A file of fix-up transforms applied to each letter before it is sent.
    pub transform: Option<PathBuf>,
    /// Print what would be sent, send nothing and commit nothing.
    pub dry_run: bool,
    /// The consumer group (Kafka DLQ) or checkpoint name (file DLQ) that keeps the progress;
    /// by default one per pipeline, selection and target.
    pub group: Option<String>,
    /// Where the checkpoint of a file DLQ is kept.
    pub data_dir: Option<PathBuf>,
    /// How long to wait for the brokers.
    pub connect_timeout: Duration,
    /// Stop when no letter arrived for this long although more were expected.
    pub idle_timeout: Duration,
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Letters read.
    pub read: u64,
    /// Letters taken and sent.
    pub selected: u64,
    /// Letters the selection left in the DLQ.
    pub skipped: u64,
    /// Lines or messages that were not dead letters.
    pub unreadable: u64,
    /// Sent records that are done.
    pub delivered: u64,
    /// Sent records that failed (read again by the next redrive).
    pub failed: u64,
    /// Sent records that failed again and went back to the pipeline's DLQ.
    pub dead_lettered_again: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// Where the records went.
    pub target: String,
    /// What keeps the progress: the consumer group, or the checkpoint.
    pub progress: String,
    /// Nothing was sent or committed.
    pub dry_run: bool,
}

/// Why a redrive could not run, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedriveError {
    /// The pipeline file, or the fix-up transforms file, has errors.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// No pipeline of that name.
    #[error("{file}: no pipeline `{name}`{hint} (it defines: {known})")]
    UnknownPipeline {
        /// The pipeline file.
        file: String,
        /// The name asked for.
        name: String,
        /// `, did you mean …?`, or empty.
        hint: String,
        /// The names the file defines.
        known: String,
    },
    /// The pipeline has no dead-letter queue.
    #[error("{at}: pipeline `{pipeline}` has no `dlq:`, so it has no dead letters to redrive")]
    NoDlq {
        /// Where the pipeline is defined.
        at: String,
        /// The pipeline.
        pipeline: String,
    },
    /// The `dlq:` cannot be read back (its type, its options).
    #[error("{at}: {message}")]
    Dlq {
        /// Where the `dlq:` is defined.
        at: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A command-line argument is wrong.
    #[error("{arg}: {message}")]
    Argument {
        /// The argument (`--pattern`).
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {what} {}", .path.display())]
    Unreadable {
        /// Which file (`the DLQ file`, `the transforms file`).
        what: String,
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The brokers could not be reached or refused.
    #[error("{at}: {message}")]
    Kafka {
        /// The `dlq:` or source the brokers belong to.
        at: String,
        /// What happened.
        message: String,
    },
    /// The redrive started and stopped on a failure; what it did until then is in `summary`.
    #[error("the redrive stopped: {failure}")]
    Failed {
        /// Why.
        failure: PipelineFailed,
        /// What it did until it stopped.
        summary: Box<Summary>,
    },
}

fn at(spec: &PipelineSpec, c: &ComponentSpec) -> String {
    format!(
        "{}:{}:{}: {}",
        spec.file.name, c.location.line, c.location.column, c.path
    )
}

/// A time argument: RFC 3339 (`2026-01-05T10:00:00Z`), milliseconds since the epoch, or a
/// duration before `now` (`90m`).
pub fn parse_time(arg: &str, text: &str, now: i64) -> Result<i64, RedriveError> {
    let text = text.trim();
    if let Some(t) = weir_core::time::parse_rfc3339_millis(text) {
        return Ok(t);
    }
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    match serde_json::from_value::<HumanDuration>(json!(text)) {
        Ok(d) => Ok(now - i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX)),
        Err(_) => Err(RedriveError::Argument {
            arg: arg.into(),
            message: format!(
                "{text:?} is not a time: write an RFC 3339 time with its offset (2026-01-05T10:00:00Z), milliseconds since the epoch, or a duration ago (90m, 2h)"
            ),
        }),
    }
}

/// Compiles `--pattern`: JSON text, or `@file` holding it. Errors say where.
fn compile_pattern(text: &str) -> Result<FilterTransform, RedriveError> {
    let (arg, json_text) = match text.strip_prefix('@') {
        Some(path) => {
            let t = std::fs::read_to_string(path).map_err(|e| RedriveError::Unreadable {
                what: "the --pattern file".into(),
                path: path.into(),
                source: e,
            })?;
            (format!("--pattern {path}"), t)
        }
        None => ("--pattern".to_owned(), text.to_owned()),
    };
    let json: serde_json::Value =
        serde_json::from_str(&json_text).map_err(|e| RedriveError::Argument {
            arg: format!("{arg}:{}:{}", e.line(), e.column()),
            message: format!("not JSON: {e}"),
        })?;
    FilterTransform::new(&[json]).map_err(|e| RedriveError::Argument {
        arg: match e.path.strip_prefix("patterns[0]") {
            Some("") | None => arg.clone(),
            Some(rest) => format!("{arg}: {}", rest.trim_start_matches('.')),
        },
        message: e.message,
    })
}

/// The default progress name: the same pipeline, selection and target resume the same
/// progress; another selection reads the DLQ from its start.
fn default_id(req: &RedriveRequest, selection: &Selection) -> String {
    let key = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        req.to,
        selection.pipeline,
        selection.stages,
        selection.components,
        selection.classes,
        req.since,
        req.until,
        req.pattern,
        req.pipeline
    );
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("weir-redrive.{}.{:08x}", req.pipeline, hash as u32)
}

/// Letters per batch of the DLQ's reader. The reader commits a batch once all of it is done,
/// so this bounds what a crash makes a rerun send again beyond what was in flight.
const READER_BATCH: usize = 100;

/// The DLQ's reader, and where its letters end.
struct Reader {
    source: Box<dyn Source>,
    format: LetterFormat,
    ends: Ends,
    pending: HashSet<i32>,
    total: u64,
    name: String,
    progress: String,
}

/// The source that reads the DLQ back: `config` built for the redrive `id`, a failure named
/// after the `dlq:` at `at`.
fn build_reader(
    config: impl PluginConfig<Output = dyn Source>,
    at: String,
    id: &str,
    data_dir: Option<&Arc<Path>>,
) -> Result<Box<dyn Source>, RedriveError> {
    let mut cx = BuildContext::for_test(id, "dlq");
    cx.data_dir = data_dir.cloned();
    config.build(&cx).map_err(|e| RedriveError::Dlq {
        at,
        message: e.message,
    })
}

fn file_reader(
    dlq: &ComponentSpec,
    at: String,
    id: &str,
    data_dir: Option<&Arc<Path>>,
) -> Result<Reader, RedriveError> {
    let cfg: weir_sinks::file::FileSinkConfig =
        from_node(&dlq.config, &dlq.path).map_err(|e| RedriveError::Dlq {
            at: at.clone(),
            message: e.message,
        })?;
    if cfg.envelope == Some(false) {
        return Err(RedriveError::Dlq {
            at,
            message: "this DLQ file is written with `envelope: false`: its lines carry no error headers and no key, so they cannot be selected or redriven".into(),
        });
    }
    let unreadable = |e| RedriveError::Unreadable {
        what: format!("the DLQ file (the dlq: at {at})"),
        path: cfg.path.clone(),
        source: e,
    };
    let lines = count_lines(&cfg.path).map_err(unreadable)?;
    let Some(dir) = data_dir else {
        return Err(RedriveError::Argument {
            arg: "--data-dir".into(),
            message: "a file DLQ's progress is a checkpoint in a data folder: give --data-dir (or set HOME)".into(),
        });
    };
    // Where the reader resumes: its checkpoint, when it names this file.
    let file = std::fs::File::open(&cfg.path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    let start = CheckpointStore::new(dir, id, "dlq", &cfg.path)
        .load()
        .filter(|cp| cp.matches(&file, &meta))
        .map_or(0, |cp| cp.line);
    let reader: weir_sources::file::FileSourceConfig = serde_json::from_value(json!({
        "path": cfg.path,
        // Followed, so the source goes on committing its checkpoint while the records it read
        // are delivered; the redrive stops it once they are.
        "follow": true,
        "checkpoint": true,
        "max_batch": READER_BATCH,
    }))
    .expect("valid file source options");
    let source = build_reader(reader, at, id, data_dir)?;
    Ok(Reader {
        source,
        format: LetterFormat::Envelope,
        ends: Ends([(0, lines)].into_iter().collect()),
        pending: if start < lines {
            [0].into_iter().collect()
        } else {
            HashSet::new()
        },
        total: (lines - start).max(0) as u64,
        name: cfg.path.display().to_string(),
        progress: format!("checkpoint {id} in {}", dir.join("file-source").display()),
    })
}

/// Where a file's letters end: just after its last whole line that is not blank (the file
/// source skips blank lines). One pass, 64 KiB at a time.
fn count_lines(path: &Path) -> std::io::Result<i64> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut line, mut end, mut blank) = (0i64, 0i64, true);
    loop {
        let got = f.read(&mut buf)?;
        if got == 0 {
            return Ok(end);
        }
        for b in &buf[..got] {
            if *b == b'\n' {
                line += 1;
                if !blank {
                    end = line;
                }
                blank = true;
            } else if !b.is_ascii_whitespace() {
                blank = false;
            }
        }
    }
}

#[cfg(feature = "kafka")]
async fn kafka_reader(
    dlq: &ComponentSpec,
    at: String,
    id: &str,
    connect_timeout: Duration,
) -> Result<Reader, RedriveError> {
    let cfg: weir_sinks::kafka::KafkaSinkConfig =
        from_node(&dlq.config, &dlq.path).map_err(|e| RedriveError::Dlq {
            at: at.clone(),
            message: e.message,
        })?;
    if cfg.topic.contains('<') {
        return Err(RedriveError::Dlq {
            at,
            message: format!(
                "the DLQ topic is a template (`{}`): redrive reads one topic; define a pipeline whose dlq: names it",
                cfg.topic
            ),
        });
    }
    let props = weir_kafka::client_properties(
        &cfg.bootstrap_servers,
        cfg.tls.as_ref(),
        cfg.sasl.as_ref(),
        &format!("{id}-admin"),
    )
    .map_err(|e| RedriveError::Dlq {
        at: at.clone(),
        message: e.to_string(),
    })?;
    let (group, topic) = (id.to_owned(), cfg.topic.clone());
    let positions = tokio::task::spawn_blocking(move || {
        weir_kafka::admin::group_positions(&props, &group, &[topic], None, connect_timeout)
    })
    .await
    .map_err(|e| RedriveError::Kafka {
        at: at.clone(),
        message: format!("the Kafka client thread failed: {e}"),
    })?
    .map_err(|e| RedriveError::Kafka {
        at: at.clone(),
        message: format!(
            "cannot read the DLQ topic `{}` at {} (within {}): {e}",
            cfg.topic,
            cfg.bootstrap_servers,
            HumanDuration(connect_timeout)
        ),
    })?;
    let mut ends = Ends::default();
    let mut pending = HashSet::new();
    let mut total = 0u64;
    for p in &positions {
        let start = p.committed.unwrap_or(p.log_start).max(p.log_start);
        ends.0.insert(p.partition, p.log_end);
        if start < p.log_end {
            pending.insert(p.partition);
            total += (p.log_end - start) as u64;
        }
    }
    let mut reader: weir_sources::kafka::KafkaSourceConfig = serde_json::from_value(json!({
        "bootstrap_servers": cfg.bootstrap_servers,
        "topics": [cfg.topic],
        "group_id": id,
        "start_from": "earliest",
        "connect_timeout": HumanDuration(connect_timeout).to_string(),
        "drain_timeout": "60s",
        // Progress is committed per batch of the reader: small batches commit often.
        "batch_records": READER_BATCH,
        // A redrive killed mid-way holds its partitions until its session times out; a rerun
        // waits for them (within --idle-timeout), so keep that short.
        "options": {
            "session.timeout.ms": "10000",
            "heartbeat.interval.ms": "1000",
            "max.poll.interval.ms": "30000",
        },
    }))
    .expect("valid kafka source options");
    reader.tls = cfg.tls.clone();
    reader.sasl = cfg.sasl.clone();
    let source = build_reader(reader, at, id, None)?;
    Ok(Reader {
        source,
        format: LetterFormat::Record,
        ends,
        pending,
        total,
        name: cfg.topic,
        progress: format!("consumer group {id}"),
    })
}

#[cfg(not(feature = "kafka"))]
async fn kafka_reader(
    _dlq: &ComponentSpec,
    at: String,
    _id: &str,
    _connect_timeout: Duration,
) -> Result<Reader, RedriveError> {
    Err(RedriveError::Dlq {
        at,
        message: "this build has no Kafka support".into(),
    })
}

/// The pipeline's Kafka source, for `--to input`.
#[cfg(feature = "kafka")]
fn input_source(
    spec: &PipelineSpec,
) -> Result<weir_sources::kafka::KafkaSourceConfig, RedriveError> {
    if spec.source.type_name != "kafka" {
        return Err(RedriveError::Argument {
            arg: "--to input".into(),
            message: format!(
                "pipeline `{}` reads from a `{}` source ({}), not a Kafka topic: use --to pipeline to send the letters into its first stage",
                spec.name,
                spec.source.type_name,
                at(spec, &spec.source)
            ),
        });
    }
    from_node(&spec.source.config, &spec.source.path).map_err(|e| RedriveError::Dlq {
        at: at(spec, &spec.source),
        message: e.message,
    })
}

/// With `--to input`: the pipeline's Kafka source, and the topics a letter must come from.
#[cfg(feature = "kafka")]
fn input_of(
    spec: &PipelineSpec,
    to: Target,
) -> Result<
    (
        Option<weir_sources::kafka::KafkaSourceConfig>,
        Option<TopicRule>,
    ),
    RedriveError,
> {
    if to == Target::Pipeline {
        return Ok((None, None));
    }
    let src = input_source(spec)?;
    let rule = match &src.topic_pattern {
        Some(p) => TopicRule::Pattern(weir_kafka::admin::topic_pattern(p).map_err(|e| {
            RedriveError::Dlq {
                at: at(spec, &spec.source),
                message: e.to_string(),
            }
        })?),
        None => TopicRule::List(src.topics.clone()),
    };
    Ok((Some(src), Some(rule)))
}

#[cfg(not(feature = "kafka"))]
fn input_of(
    _spec: &PipelineSpec,
    to: Target,
) -> Result<(Option<()>, Option<TopicRule>), RedriveError> {
    match to {
        Target::Pipeline => Ok((None, None)),
        Target::Input => Err(RedriveError::Argument {
            arg: "--to input".into(),
            message: "this build has no Kafka support".into(),
        }),
    }
}

/// The Kafka sink writing redriven records to the input topic they were read from.
#[cfg(feature = "kafka")]
fn input_sink(
    spec: &PipelineSpec,
    src: &weir_sources::kafka::KafkaSourceConfig,
    id: &str,
) -> Result<(Arc<dyn weir_core::Sink>, String), RedriveError> {
    let topic = match (&src.topic_pattern, src.topics.as_slice()) {
        (None, [one]) => one.clone(),
        _ => "<$.topic>".to_owned(),
    };
    let mut cfg: weir_sinks::kafka::KafkaSinkConfig = serde_json::from_value(json!({
        "bootstrap_servers": src.bootstrap_servers,
        "topic": topic,
    }))
    .expect("valid kafka sink options");
    cfg.tls = src.tls.clone();
    cfg.sasl = src.sasl.clone();
    let sink = cfg
        .build(&BuildContext::for_test(id, "input"))
        .map_err(|e| RedriveError::Dlq {
            at: at(spec, &spec.source),
            message: e.message,
        })?;
    let shown = if topic.starts_with('<') {
        "the topic each letter came from".to_owned()
    } else {
        format!("topic `{topic}`")
    };
    Ok((Arc::from(sink), shown))
}

/// A pipeline from the redrive's source through `transforms` into one sink.
fn pipeline_into(
    name: &str,
    spec: &PipelineSpec,
    source: RedriveSource,
    transforms: Vec<TransformStage>,
    sink: Arc<dyn weir_core::Sink>,
    sink_type: &str,
    metrics: &MetricsRegistry,
) -> Pipeline {
    let name: Arc<str> = Arc::from(name);
    Pipeline::from(PipelineParts {
        source_metrics: metrics.component(&name, "dlq", "source", "redrive"),
        source: (Arc::from("dlq"), Box::new(source)),
        budget_health: metrics.telemetry().health(&name, BUDGET),
        transforms,
        sinks: vec![SinkStage {
            name: Arc::from(sink_type),
            sink,
            options: StageOptions::default(),
            on_error: OnError::Stop,
            transforms: Vec::new(),
            metrics: metrics.component(&name, sink_type, "sink", sink_type),
        }],
        dlq: None,
        budget: None,
        settings: spec.settings,
        name,
    })
}

/// Runs a redrive to its end (every letter up to where the DLQ ended when it started is read)
/// or until `shutdown`; `progress` counts as it goes.
pub async fn redrive(
    req: &RedriveRequest,
    registry: &Registry,
    progress: Arc<Progress>,
    shutdown: CancellationToken,
) -> Result<Summary, RedriveError> {
    let started = Instant::now();
    let specs = load_path(&req.pipelines, &process_env)?;
    let Some(spec) = specs.iter().find(|p| *p.name == *req.pipeline) else {
        let names: Vec<&str> = specs.iter().map(|p| &*p.name).collect();
        return Err(RedriveError::UnknownPipeline {
            file: req.pipelines.display().to_string(),
            name: req.pipeline.clone(),
            hint: weir_core::config::did_you_mean(&req.pipeline, names.iter().copied())
                .map(|s| format!(", did you mean `{s}`?"))
                .unwrap_or_default(),
            known: names.join(", "),
        });
    };
    let Some(dlq) = &spec.dlq else {
        return Err(RedriveError::NoDlq {
            at: format!(
                "{}:{}:{}: {}",
                spec.file.name, spec.location.line, spec.location.column, spec.path
            ),
            pipeline: req.pipeline.clone(),
        });
    };
    let now = weir_core::time::now_millis();
    let selection = Selection {
        pipeline: if req.any_pipeline {
            None
        } else {
            Some(
                req.from_pipeline
                    .clone()
                    .unwrap_or_else(|| req.pipeline.clone()),
            )
        },
        stages: req.stages.clone(),
        components: req.components.clone(),
        classes: req.classes.clone(),
        since: req
            .since
            .as_deref()
            .map(|t| parse_time("--since", t, now))
            .transpose()?,
        until: req
            .until
            .as_deref()
            .map(|t| parse_time("--until", t, now))
            .transpose()?,
    };
    let pattern = req.pattern.as_deref().map(compile_pattern).transpose()?;
    let (input, topics) = input_of(spec, req.to)?;
    let id = match &req.group {
        Some(g) if g.trim().is_empty() => {
            return Err(RedriveError::Argument {
                arg: "--group".into(),
                message: "must not be empty".into(),
            });
        }
        Some(g) => g.clone(),
        None => default_id(req, &selection),
    };
    let run_name = match (req.to, req.dry_run) {
        (Target::Pipeline, false) => spec.name.to_string(),
        _ => id.clone(),
    };
    let metrics = MetricsRegistry::default();
    let data_dir: Option<Arc<Path>> = req.data_dir.clone().map(Arc::from);
    let env = BuildEnv {
        registry,
        metrics: &metrics,
        data_dir: data_dir.as_ref(),
    };
    let fixups = match &req.transform {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| RedriveError::Unreadable {
                what: "the transforms file".into(),
                path: path.clone(),
                source: e,
            })?;
            let (file, specs, errors) =
                load_transforms(&path.display().to_string(), &text, &process_env);
            if !errors.is_empty() {
                return Err(ConfigErrors(errors).into());
            }
            build_transform_stages(&file, &specs, &Arc::from(run_name.as_str()), env)?
        }
    };
    let dlq_at = at(spec, dlq);
    let reader = match dlq.type_name.as_str() {
        "kafka" => kafka_reader(dlq, dlq_at, &id, req.connect_timeout).await?,
        "file" => file_reader(dlq, dlq_at, &id, data_dir.as_ref())?,
        other => {
            return Err(RedriveError::Dlq {
                at: dlq_at,
                message: format!(
                    "a `{other}` DLQ cannot be read back: redrive reads `kafka` and `file` DLQs"
                ),
            });
        }
    };
    progress
        .total
        .store(reader.total, std::sync::atomic::Ordering::Relaxed);
    let source = RedriveSource {
        reader: reader.source,
        format: reader.format,
        ends: reader.ends,
        pending: reader.pending,
        selector: Arc::new(Selector {
            selection,
            pattern,
            topics,
        }),
        progress: progress.clone(),
        dry_run: req.dry_run,
        idle_timeout: req.idle_timeout,
        started_at: now,
        dlq_name: reader.name,
    };
    let (pipeline, target) = if req.dry_run {
        let out: weir_sinks::stdout::StdoutSinkConfig =
            serde_json::from_value(json!({"envelope": true})).expect("valid stdout options");
        let sink = out
            .build(&BuildContext::for_test(&id, "stdout"))
            .map_err(|e| RedriveError::Argument {
                arg: "--dry-run".into(),
                message: e.message,
            })?;
        let target = "standard output (dry run: nothing sent, nothing committed)".to_owned();
        (
            pipeline_into(
                &run_name,
                spec,
                source,
                fixups,
                Arc::from(sink),
                "stdout",
                &metrics,
            ),
            target,
        )
    } else {
        match req.to {
            Target::Pipeline => {
                let built = build_fed(
                    spec,
                    env,
                    Feed {
                        source: Box::new(source),
                        front: fixups,
                    },
                )?;
                (
                    built.pipeline,
                    format!("the first stage of pipeline `{}`", spec.name),
                )
            }
            #[cfg(feature = "kafka")]
            Target::Input => {
                let src = input.as_ref().expect("checked above");
                let (sink, shown) = input_sink(spec, src, &id)?;
                (
                    pipeline_into(&run_name, spec, source, fixups, sink, "kafka", &metrics),
                    format!("{shown} at {}", src.bootstrap_servers),
                )
            }
            #[cfg(not(feature = "kafka"))]
            Target::Input => {
                let _ = input;
                unreachable!("refused by input_of")
            }
        }
    };
    let result = pipeline.run(shutdown).await;
    let get = |c: &std::sync::atomic::AtomicU64| Progress::get(c);
    let summary = Summary {
        read: get(&progress.read),
        selected: get(&progress.selected),
        skipped: get(&progress.skipped),
        unreadable: get(&progress.unreadable),
        delivered: get(&progress.delivered),
        failed: get(&progress.failed),
        dead_lettered_again: metrics
            .snapshot()
            .iter()
            .filter(|r| *r.pipeline == *run_name)
            .map(|r| r.dead_lettered)
            .sum(),
        elapsed: started.elapsed(),
        target,
        progress: if req.dry_run {
            format!("{} (not moved: dry run)", reader.progress)
        } else {
            reader.progress
        },
        dry_run: req.dry_run,
    };
    match result {
        Ok(()) => Ok(summary),
        Err(failure) => Err(RedriveError::Failed {
            failure,
            summary: Box::new(summary),
        }),
    }
}
