//! `weir serve`: the supervisor and its API, file watching and SIGHUP reloads, until SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use weir_admin::{AdminConfig, Listener};
use weir_core::telemetry::Telemetry;
use weir_runtime::supervisor::{Supervisor, SupervisorOptions};

use crate::{EXIT_CONFIG, wait_for_signal};

/// Options of `weir serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Pipeline files or directories of *.yaml / *.yml files (read-only over the API; edit the
    /// files to change them: they are watched).
    pub paths: Vec<PathBuf>,
    /// Where the API listens.
    #[arg(long, env = "WEIR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The folder of the state store (pipelines created over the API, desired states, usage)
    /// and of components' state. Default: the data folder (`$XDG_STATE_HOME/weir`, else
    /// `~/.local/state/weir`).
    #[arg(long, env = "WEIR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// A file holding the bearer token mutating API calls need (else `WEIR_ADMIN_TOKEN`).
    /// Without a token the API listens on loopback only.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Serve the API over TLS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = weir_admin::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// Close a connection whose writes make no progress for this long: an event-stream client
    /// that stopped reading (it was already dropped from its stream).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub send_timeout: Duration,
    /// How often the pipeline files are checked when file notifications are not available.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
}

fn read_token(args: &ServeArgs) -> anyhow::Result<Option<String>> {
    if let Some(f) = &args.token_file {
        let t = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the token file {}", f.display()))?;
        let t = t.trim().to_owned();
        anyhow::ensure!(!t.is_empty(), "the token file {} is empty", f.display());
        return Ok(Some(t));
    }
    Ok(std::env::var("WEIR_ADMIN_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty()))
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let token = read_token(&args)?;
    let cfg = AdminConfig {
        listen: args.listen,
        token,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        body_limit: args.body_limit,
        send_timeout: args.send_timeout,
    };
    // Bind first: a port in use or a refused address fails before anything starts.
    let listener = Listener::bind(cfg.clone())?;
    let state_dir = args
        .state_dir
        .clone()
        .or_else(crate::default_data_dir)
        .context("no state folder: set --state-dir (or HOME)")?;
    let registry = crate::plugins()?;
    let (sup, report) = Supervisor::start(SupervisorOptions {
        files: args.paths.clone(),
        state_dir: state_dir.clone(),
        registry,
        telemetry: Telemetry::default(),
    })
    .await?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    if !report.errors.is_empty() {
        eprintln!("{}", weir_core::config::ConfigErrors(report.errors));
        sup.shutdown().await;
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let addr = listener.local_addr();
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    tracing::info!(
        state = %state_dir.display(),
        "serving the API on {scheme}://{addr}; pipelines: {}",
        sup.list().len()
    );
    let shutdown = CancellationToken::new();
    let api = tokio::spawn(listener.serve(sup.clone(), shutdown.clone()));
    let watcher = tokio::spawn(watch_files(
        sup.clone(),
        args.paths.clone(),
        args.poll_interval,
        shutdown.clone(),
    ));
    let usage = tokio::spawn(account_usage(sup.clone(), shutdown.clone()));
    let hup = tokio::spawn(reload_on_sighup(sup.clone(), shutdown.clone()));

    wait_for_signal().await;
    tracing::info!(
        "stopping: pipelines drain to their acks and commit (signal again to exit at once)"
    );
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now; unacknowledged records will be replayed");
        std::process::exit(130);
    });
    shutdown.cancel();
    sup.shutdown().await;
    let _ = watcher.await;
    let _ = usage.await;
    let _ = hup.await;
    match api.await {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(anyhow::anyhow!("the API task failed: {e}")),
    }
}

async fn account_usage(sup: Supervisor, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tick.tick() => sup.account_usage(),
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(unix)]
async fn reload_on_sighup(sup: Supervisor, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reading the pipeline files again");
                sup.reload_files().await;
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_sighup(_sup: Supervisor, shutdown: CancellationToken) {
    shutdown.cancelled().await;
}

/// The content of every pipeline file under `paths` (pipeline files are small; comparing
/// contents misses no change, whatever the file system's timestamp resolution).
fn snapshot(paths: &[PathBuf]) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for p in paths {
        let files: Vec<PathBuf> = if p.is_dir() {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|f| matches!(f.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")))
                .collect()
        } else {
            vec![p.clone()]
        };
        for f in files {
            let content = std::fs::read(&f).ok();
            out.push((f, content));
        }
    }
    out.sort();
    out
}

/// Reloads when a pipeline file changes: file notifications (debounced, 300 ms after the last
/// event) when the platform gives them, and a poll of the files' contents in any case (editors
/// that replace files, network file systems).
async fn watch_files(
    sup: Supervisor,
    paths: Vec<PathBuf>,
    poll: Duration,
    shutdown: CancellationToken,
) {
    if paths.is_empty() {
        return;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let _watcher = notify_watcher(&paths, tx);
    let mut last = snapshot(&paths);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(()) = rx.recv() => {
                // Debounce: an editor's save is several events.
                loop {
                    tokio::select! {
                        Some(()) = rx.recv() => {}
                        _ = tokio::time::sleep(Duration::from_millis(300)) => break,
                    }
                }
            }
            _ = tick.tick() => {}
        }
        let now = snapshot(&paths);
        if now != last {
            last = now;
            tracing::info!("a pipeline file changed: reloading");
            sup.reload_files().await;
        }
    }
}

fn notify_watcher(
    paths: &[PathBuf],
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok() {
            let _ = tx.send(());
        }
    })
    .map_err(|e| tracing::info!("file notifications unavailable ({e}); polling the pipeline files"))
    .ok()?;
    for p in paths {
        // Watch the folder: editors replace files, which a watch on the file itself misses.
        let target: &Path = if p.is_dir() {
            p
        } else {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
        };
        if let Err(e) = w.watch(target, notify::RecursiveMode::NonRecursive) {
            tracing::info!("cannot watch {} ({e}); polling it", target.display());
        }
    }
    Some(w)
}
