//! The `weir` command: run pipelines, serve them behind the operations API, operate them over
//! that API, validate, list plugins, print the pipeline schema.

mod ctl;
mod dlq;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use weir_core::registry::PluginKind;
use weir_runtime::{RunError, Runtime, builtin_registry, docs};

/// Weir: pluggable pipelines from Kafka and friends to HTTPS, Kafka and logs.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Log filter (RUST_LOG syntax); RUST_LOG wins when set.
    #[arg(long, default_value = "info", global = true)]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipelines in a file or directory until their sources end or a signal arrives.
    Run {
        /// A pipeline file, or a directory of *.yaml / *.yml files.
        path: PathBuf,
        /// Worker threads for Weir's own work (default: one per core). librdkafka runs its
        /// own threads besides; on a small machine shared with a broker, fewer can be faster.
        #[arg(long, env = "WEIR_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Where components keep state between runs (the `file` source's read positions).
        /// Default: `$XDG_STATE_HOME/weir`, else `~/.local/state/weir`.
        #[arg(long, env = "WEIR_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Host pipelines from files and from the API until SIGTERM: a supervisor with a persisted
    /// state, live reloads (files are watched; SIGHUP reads them again) and the operations API.
    Serve {
        #[command(flatten)]
        args: serve::ServeArgs,
        /// Worker threads (default: one per core).
        #[arg(long, env = "WEIR_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Operate a `weir serve` through its API (list, get, apply, delete, pause, …).
    Ctl(ctl::CtlArgs),
    /// Dead-letter queues: `weir dlq redrive` sends their records again.
    Dlq(dlq::DlqArgs),
    /// Check pipeline files without connecting to anything; exit status 2 on errors.
    Validate {
        /// Pipeline files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List plugin types, or show one plugin's options, defaults and example.
    Plugins {
        /// A plugin type name.
        name: Option<String>,
    },
    /// Print the JSON Schema of the pipeline file format (for editors).
    Schema,
    /// Print generated documentation.
    #[command(hide = true)]
    Docs {
        /// `reference`: the YAML reference (docs/reference.md).
        what: String,
    },
}

// JSON-heavy pipelines allocate per record; mimalloc roughly doubles throughput over the system
// allocator here (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub(crate) const EXIT_FAILED: u8 = 1;
pub(crate) const EXIT_CONFIG: u8 = 2;

fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    // Colour only on a terminal: escape codes in a log file are noise to every reader.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Every plugin this binary has: the runtime's built-ins and the `sse` sink of weir-admin.
pub(crate) fn plugins() -> anyhow::Result<weir_core::Registry> {
    weir_admin::link();
    builtin_registry().context("plugin registration")
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let registry = plugins()?;
    match cli.command {
        Command::Validate { paths } => {
            let mut failed = false;
            for path in paths {
                match Runtime::from_path(&path, &registry) {
                    Ok(rt) => {
                        for w in rt.warnings() {
                            eprintln!("warning: {w}\n");
                        }
                        let names = rt.pipeline_names();
                        eprintln!(
                            "ok: {} ({} pipeline{}: {})",
                            path.display(),
                            names.len(),
                            if names.len() == 1 { "" } else { "s" },
                            names.join(", ")
                        );
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Run {
            path,
            threads,
            data_dir,
        } => {
            let data_dir = data_dir.or_else(default_data_dir);
            if data_dir.is_none() {
                tracing::warn!(
                    "no data folder (set --data-dir or HOME): file sources will not keep their read positions"
                );
            }
            let rt = match Runtime::from_path_in(&path, &registry, data_dir.map(Into::into)) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(EXIT_CONFIG));
                }
            };
            async_runtime(threads)?.block_on(run(rt))
        }
        Command::Serve { args, threads } => async_runtime(threads)?.block_on(serve::serve(args)),
        Command::Ctl(args) => async_runtime(Some(1))?.block_on(ctl::ctl(args)),
        Command::Dlq(args) => async_runtime(None)?.block_on(dlq::dlq(args, &registry)),
        Command::Plugins { name: None } => {
            for kind in [PluginKind::Source, PluginKind::Transform, PluginKind::Sink] {
                println!("{}s:", kind.noun());
                for e in registry.entries().filter(|e| e.kind == kind) {
                    println!("  {:<12} {}", e.type_name, e.summary);
                }
            }
            println!("\n`weir plugins <type>` shows a plugin's options, defaults and an example.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugins { name: Some(name) } => {
            let found: Vec<_> = registry.entries().filter(|e| e.type_name == name).collect();
            if found.is_empty() {
                let names: Vec<&str> = registry.entries().map(|e| e.type_name).collect();
                let hint = weir_core::config::did_you_mean(&name, names.iter().copied())
                    .map(|s| format!(", did you mean `{s}`?"))
                    .unwrap_or_default();
                eprintln!(
                    "error: no plugin `{name}`{hint} (known: {})",
                    names.join(", ")
                );
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            for (i, e) in found.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{}", docs::plugin_text(e));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&docs::pipeline_schema(&registry))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Docs { what } => match what.as_str() {
            "reference" => {
                print!("{}", docs::reference_markdown(&registry));
                Ok(ExitCode::SUCCESS)
            }
            other => anyhow::bail!("unknown docs page {other:?} (known: reference)"),
        },
    }
}

fn async_runtime(threads: Option<u16>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(usize::from(n));
    }
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `$XDG_STATE_HOME/weir`, else `~/.local/state/weir` (the XDG base directory convention).
pub(crate) fn default_data_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .map(|d| d.join("weir"))
}

async fn run(rt: Runtime) -> anyhow::Result<ExitCode> {
    for w in rt.warnings() {
        tracing::warn!("{w}");
    }
    let shutdown = CancellationToken::new();
    let names = rt.pipeline_names().join(", ");
    tracing::info!("starting pipelines: {names}");
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "stopping: no new records are read; in-flight records are delivered and acknowledged (signal again to exit at once)"
        );
        signals.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now; unacknowledged records will be replayed");
        std::process::exit(130);
    });
    let metrics = rt.metrics().clone();
    let result = rt.run(shutdown).await;
    for row in metrics.snapshot() {
        tracing::info!(
            pipeline = %row.pipeline, component = %row.component, kind = row.kind,
            received = row.received, sent = row.sent, discarded = row.discarded, errors = row.errors, dead_lettered = row.dead_lettered,
            "totals"
        );
    }
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // Standard output was closed (`weir run … | head`): stop quietly, as ripgrep does.
        Err(RunError::Failed(f))
            if f.iter()
                .all(|f| f.kind == weir_runtime::FailureKind::OutputClosed) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        Err(RunError::Config(e)) => {
            eprintln!("{e}");
            Ok(ExitCode::from(EXIT_CONFIG))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
