//! A real `redis-server` per test (a free loopback port, a temporary folder), which a test can
//! `kill -9` and restart on the same port and folder, and `redis-cli` against it. The Debian
//! package `redis-server` provides both (built with TLS); a test fails loudly when they are
//! missing. [`RedisServer::start_tls`] serves TLS only, with the certificates of
//! [`crate::tls::certificates`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::kafka::free_port;

/// A program of the `redis-server` package, from `PATH` (or `WEIR_REDIS_SERVER` for the server).
fn program(name: &str) -> PathBuf {
    if name == "redis-server"
        && let Ok(p) = std::env::var("WEIR_REDIS_SERVER")
    {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not installed: the Redis tests start redis-server processes of their own. \
             Install it with `sudo apt-get install -y redis-server` (scripts/test.sh does), or set \
             WEIR_REDIS_SERVER to a redis-server binary"
        )
    })
}

/// A `redis-server` of this test's own, killed when dropped. Extra configuration directives
/// (`["appendonly", "yes"]`, `["user", "weir on >pw ~* &* +@all"]`) are given as pairs and kept
/// for restarts.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    config: Vec<(String, String)>,
    /// The folder of [`crate::tls::certificates`] for a TLS-only server.
    tls: Option<PathBuf>,
    child: Option<Child>,
}

impl RedisServer {
    /// A server with Redis's defaults (no persistence beyond the default snapshots).
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A server with these configuration directives (name, value).
    pub fn start_with(config: &[(&str, &str)]) -> RedisServer {
        RedisServer::start_on(free_port(), config)
    }

    /// A server on this port (one a test reserved earlier, to start Redis late).
    pub fn start_on(port: u16, config: &[(&str, &str)]) -> RedisServer {
        RedisServer::launch(port, None, config)
    }

    /// A server that speaks TLS only (`port 0`, `tls-port` a free port), its certificate
    /// `server.pem` from `certs`, a folder made by [`crate::tls::certificates`], whose `ca.pem`
    /// verifies clients that present a certificate. Clients need none unless `config` has
    /// `("tls-auth-clients", "yes")` (the last value of a directive wins). [`RedisServer::url`]
    /// is then `rediss://…`, and [`RedisServer::cli`] connects with `--tls`, trusting `ca.pem`
    /// and presenting `client.pem`.
    pub fn start_tls(certs: &Path, config: &[(&str, &str)]) -> RedisServer {
        let certs = certs
            .canonicalize()
            .unwrap_or_else(|e| panic!("certificate folder {}: {e}", certs.display()));
        RedisServer::launch(free_port(), Some(certs), config)
    }

    fn launch(port: u16, tls: Option<PathBuf>, config: &[(&str, &str)]) -> RedisServer {
        let mut s = RedisServer {
            port,
            dir: tempfile::tempdir().unwrap(),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tls,
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let log = self.dir.path().join("redis.log");
        let mut cmd = Command::new(program("redis-server"));
        match &self.tls {
            None => {
                cmd.arg("--port").arg(self.port.to_string());
            }
            Some(certs) => {
                cmd.args(["--port", "0", "--tls-port"])
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(certs.join("server.pem"))
                    .arg("--tls-key-file")
                    .arg(certs.join("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(certs.join("ca.pem"))
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        cmd.arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .arg("--daemonize")
            .arg("no")
            .arg("--save")
            .arg("");
        for (k, v) in &self.config {
            // redis-server joins the words after `--name` itself; one argument with spaces
            // would be taken as a single quoted word.
            cmd.arg(format!("--{k}"));
            if v.trim().is_empty() {
                cmd.arg(v);
            } else {
                cmd.args(v.split_whitespace());
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        // Listening is not ready: after a restart the server answers LOADING until the
        // append-only file is read back.
        let start = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "redis-server on {addr} exited ({status}) at start-up; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let out = self.cli_output(&["PING"]);
            if out.trim() == "PONG" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "redis-server on {addr} does not answer PING after 30s: {out}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://127.0.0.1:<port>` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's folder (its append-only file, its log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `kill -9`: the server gets no chance to write anything more.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL redis-server");
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port, folder and configuration (after
    /// [`RedisServer::kill9`]); returns once it answers `PING`, data loaded.
    pub fn restart(&mut self) {
        self.spawn();
    }

    fn cli_output(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(program("redis-cli"));
        cmd.arg("-p").arg(self.port.to_string());
        if let Some(certs) = &self.tls {
            cmd.arg("--tls")
                .arg("--cacert")
                .arg(certs.join("ca.pem"))
                .arg("--cert")
                .arg(certs.join("client.pem"))
                .arg("--key")
                .arg(certs.join("client.key"));
        }
        let out = cmd.args(args).output().expect("cannot run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// Runs one command with `redis-cli` as the default user (over TLS for a TLS server;
    /// `-n 3` first selects a database); returns its raw output. Panics if Redis answered an
    /// error.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_output(args);
        assert!(
            !out.starts_with("ERR") && !out.starts_with("WRONGTYPE") && !out.contains("(error)"),
            "redis-cli {args:?}: {out}"
        );
        out
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
    }
}
