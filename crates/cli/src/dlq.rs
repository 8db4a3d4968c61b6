//! `weir dlq redrive`: the command line of weir-runtime's redrive, with a progress bar on a
//! terminal (plain lines otherwise) and a summary at the end.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use weir_runtime::redrive::{self, Progress, RedriveError, RedriveRequest, Summary, Target};

/// Dead-letter queues: read them back and send their records again.
#[derive(clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Send a pipeline's dead letters again (selected, optionally fixed up) to its input topic
    /// or into its first stage, committing progress as records are done.
    Redrive(RedriveArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum To {
    /// Into the pipeline's first stage: its transforms, sinks and DLQ.
    Pipeline,
    /// Back to the Kafka topic each letter was read from (the pipeline's source topics).
    Input,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    /// A progress bar.
    Bar,
    /// A line every few seconds.
    Lines,
    /// Only the summary.
    None,
}

#[derive(clap::Args)]
struct RedriveArgs {
    /// The pipeline file (or directory) that defines the pipeline.
    path: PathBuf,
    /// The pipeline whose `dlq:` is read and that the letters go back to.
    #[arg(long, short)]
    pipeline: String,
    /// Where the records go.
    #[arg(long, value_enum, default_value_t = To::Pipeline)]
    to: To,
    /// Take the letters of this pipeline (default: --pipeline), for a DLQ several share.
    #[arg(long)]
    from_pipeline: Option<String>,
    /// Take the letters of every pipeline that writes to the DLQ.
    #[arg(long, conflicts_with = "from_pipeline")]
    any_pipeline: bool,
    /// Take letters of this stage (`sink`, `transform`); repeatable.
    #[arg(long = "stage", value_name = "STAGE")]
    stages: Vec<String>,
    /// Take letters of this component (a sink's or transform's name); repeatable.
    #[arg(long = "component", value_name = "NAME")]
    components: Vec<String>,
    /// Take letters of this error class (`weir.sink.RetriesExhausted`, or `RetriesExhausted`);
    /// repeatable.
    #[arg(long = "class", value_name = "CLASS")]
    classes: Vec<String>,
    /// Take letters dead-lettered at or after this time: RFC 3339 (2026-01-05T10:00:00Z),
    /// milliseconds since the epoch, or a duration ago (90m).
    #[arg(long)]
    since: Option<String>,
    /// Take letters dead-lettered before this time (as --since).
    #[arg(long)]
    until: Option<String>,
    /// Take letters matching this EventBridge pattern (JSON, or @file), matched against the
    /// letter in the event shape with its error headers.
    #[arg(long)]
    pattern: Option<String>,
    /// A YAML file of fix-up transforms (`transforms:` and a list, as in a pipeline) applied to
    /// each letter before it is sent.
    #[arg(long, value_name = "FILE")]
    transform: Option<PathBuf>,
    /// Print each record that would be sent (JSON lines on standard output); send nothing,
    /// commit nothing.
    #[arg(long)]
    dry_run: bool,
    /// The consumer group (Kafka DLQ) or checkpoint name (file DLQ) that keeps the progress.
    /// Default: one per pipeline, selection and target, so the same command resumes.
    #[arg(long)]
    group: Option<String>,
    /// Where a file DLQ's checkpoint is kept. Default: `$XDG_STATE_HOME/weir`, else
    /// `~/.local/state/weir`.
    #[arg(long, env = "WEIR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// How long to wait for the Kafka brokers.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Stop when no letter arrived for this long although more were expected.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// How progress is shown on standard error.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
}

/// Runs `weir dlq …`. Exit status 0 when done, 1 when the redrive stopped on a failure, 2 when
/// it could not start (bad arguments or configuration, unreachable brokers): nothing changed.
pub async fn dlq(args: DlqArgs, registry: &weir_core::Registry) -> anyhow::Result<ExitCode> {
    let DlqCommand::Redrive(a) = args.command;
    let req = RedriveRequest {
        pipelines: a.path,
        pipeline: a.pipeline.clone(),
        to: match a.to {
            To::Pipeline => Target::Pipeline,
            To::Input => Target::Input,
        },
        from_pipeline: a.from_pipeline,
        any_pipeline: a.any_pipeline,
        stages: a.stages,
        components: a.components,
        classes: a.classes,
        since: a.since,
        until: a.until,
        pattern: a.pattern,
        transform: a.transform,
        dry_run: a.dry_run,
        group: a.group,
        data_dir: a.data_dir.or_else(crate::default_data_dir),
        connect_timeout: a.connect_timeout,
        idle_timeout: a.idle_timeout,
    };
    let progress = Arc::new(Progress::default());
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        crate::wait_for_signal().await;
        tracing::info!(
            "stopping: no more letters are read; records in flight are finished and committed (signal again to exit at once)"
        );
        signals.cancel();
        crate::wait_for_signal().await;
        std::process::exit(130);
    });
    let mode = match a.progress {
        ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
        ProgressMode::Auto => ProgressMode::Lines,
        m => m,
    };
    let display = tokio::spawn(show_progress(progress.clone(), mode));
    let result = redrive::redrive(&req, registry, progress, shutdown).await;
    display.abort();
    let _ = display.await;
    match result {
        Ok(s) => {
            eprint!("{}", summary_text(&a.pipeline, &s));
            Ok(ExitCode::SUCCESS)
        }
        Err(RedriveError::Failed { failure, summary }) => {
            eprint!("{}", summary_text(&a.pipeline, &summary));
            eprintln!(
                "error: the redrive stopped: {failure}\nThe letters not done stay in the DLQ; run the same command again to go on."
            );
            Ok(ExitCode::from(crate::EXIT_FAILED))
        }
        Err(RedriveError::Config(e)) => {
            eprintln!("{e}");
            Ok(ExitCode::from(crate::EXIT_CONFIG))
        }
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::new(e));
            Ok(ExitCode::from(crate::EXIT_CONFIG))
        }
    }
}

fn counts(p: &Progress) -> (u64, u64, u64, u64, u64) {
    (
        Progress::get(&p.read),
        Progress::get(&p.selected),
        Progress::get(&p.delivered),
        Progress::get(&p.failed),
        Progress::get(&p.skipped),
    )
}

/// Shows progress until aborted: a bar (indicatif) or a plain line every 5 seconds.
async fn show_progress(p: Arc<Progress>, mode: ProgressMode) {
    let started = Instant::now();
    match mode {
        ProgressMode::Bar => {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            )
            .with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} letters read  {msg}",
                )
                .expect("a valid template"),
            );
            struct Clear(indicatif::ProgressBar);
            impl Drop for Clear {
                fn drop(&mut self) {
                    self.0.finish_and_clear();
                }
            }
            let bar = Clear(bar);
            loop {
                let (read, sent, done, failed, skipped) = counts(&p);
                let total = Progress::get(&p.total);
                if total > 0 {
                    bar.0.set_length(total);
                }
                bar.0.set_position(read);
                let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
                bar.0.set_message(format!(
                    "sent {sent}, delivered {done}, failed {failed}, skipped {skipped}, {rate:.0}/s"
                ));
                bar.0.tick();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        ProgressMode::Lines => loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (read, sent, done, failed, skipped) = counts(&p);
            let total = Progress::get(&p.total);
            let of = if total > 0 {
                format!("/{total}")
            } else {
                String::new()
            };
            let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "redrive: read {read}{of}, sent {sent}, delivered {done}, failed {failed}, skipped {skipped} ({rate:.0}/s)"
            );
        },
        ProgressMode::Auto | ProgressMode::None => std::future::pending().await,
    }
}

fn summary_text(pipeline: &str, s: &Summary) -> String {
    let secs = s.elapsed.as_secs_f64();
    let rate = s.delivered as f64 / secs.max(0.001);
    let mut t = format!(
        "redrive of pipeline `{pipeline}`{}:\n",
        if s.dry_run { " (dry run)" } else { "" }
    );
    t.push_str(&format!("  read         {}\n", s.read));
    t.push_str(&format!("  sent         {}  to {}\n", s.selected, s.target));
    t.push_str(&format!(
        "  delivered    {}  ({} of them dead-lettered again)\n",
        s.delivered, s.dead_lettered_again
    ));
    t.push_str(&format!(
        "  failed       {}  (stay in the DLQ; read again next time)\n",
        s.failed
    ));
    t.push_str(&format!(
        "  skipped      {}  (not selected; left in the DLQ)\n",
        s.skipped
    ));
    if s.unreadable > 0 {
        t.push_str(&format!(
            "  not letters  {}  (left where they are; see the warnings above)\n",
            s.unreadable
        ));
    }
    t.push_str(&format!("  progress     {}\n", s.progress));
    t.push_str(&format!(
        "  took         {secs:.1}s ({rate:.0} records/s)\n"
    ));
    t
}
