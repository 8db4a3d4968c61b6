//! A `weir serve` or `weir run` process of the test's own, and an HTTP client for the API.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// `weir serve` on a free loopback port with its own state folder; killed when dropped.
pub struct Serve {
    pub url: String,
    pub addr: String,
    pub state: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

pub fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.env("WEIR_DATA_DIR", std::env::temp_dir().join("weir-test-data"));
    c
}

impl Serve {
    /// Starts `weir serve` with `args` (files, options) in `state`, and waits for `/livez`.
    pub fn start(state: &Path, args: &[&str], envs: &[(&str, &str)]) -> Serve {
        let port = weir_testkit::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut s = Serve {
            url: format!("http://{addr}"),
            addr,
            state: state.to_path_buf(),
            log: state.join("serve.log"),
            child: None,
            args: args.iter().map(|a| a.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut c = weir();
        c.arg("serve")
            .arg("--listen")
            .arg(&self.addr)
            .arg("--state-dir")
            .arg(&self.state)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        self.child = Some(c.spawn().expect("cannot start weir serve"));
        let start = Instant::now();
        while std::net::TcpStream::connect(&self.addr).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("weir serve exited with {status}: {}", self.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "weir serve did not listen within 30s: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, then start again with the same state folder and arguments.
    pub fn kill9_and_restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGHUP (read the files again).
    pub fn hup(&self) {
        signal(self.child.as_ref().unwrap().id(), "-HUP");
    }

    /// SIGTERM, then waits for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        stop(self.child.take().unwrap(), "weir serve")
    }
}

/// SIGTERM, then the exit status; a process still running 60 s later is killed and the test
/// fails (a clean stop drains and commits well within that).
fn stop(mut c: Child, what: &str) -> std::process::ExitStatus {
    signal(c.id(), "-TERM");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            c.kill().unwrap();
            panic!("{what} did not stop within 60s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `weir run` of the test's own, its stderr in a log file; killed if the test fails before
/// stopping it.
pub struct Run(Option<Child>);

impl Run {
    /// `weir run config` with `RUST_LOG=info` and `envs`.
    pub fn start(config: &Path, envs: &[(&str, &str)], log: &Path) -> Run {
        Run::start_logging(config, envs, log, "info")
    }

    /// [`Run::start`] with a `RUST_LOG` filter of the test's own.
    pub fn start_logging(config: &Path, envs: &[(&str, &str)], log: &Path, filter: &str) -> Run {
        let mut c = weir();
        c.arg("run")
            .arg(config)
            .env("RUST_LOG", filter)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        for (k, v) in envs {
            c.env(k, v);
        }
        Run(Some(c.spawn().expect("cannot start weir run")))
    }

    /// A `weir run` the test spawned itself (its own stdout or environment).
    pub fn adopt(child: Child) -> Run {
        Run(Some(child))
    }

    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    /// The process, no longer killed on drop (for a test that kills it itself).
    pub fn take(mut self) -> Child {
        self.0.take().expect("running")
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child().try_wait().unwrap()
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        stop(self.0.take().expect("running"), "weir run")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An answer: status and JSON body (or text).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub json: Json,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

/// Calls the API.
pub async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<(&str, &str)>,
    extra: &[(&str, &str)],
) -> Answer {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some((ct, b)) = body {
        req = req.header("content-type", ct).body(b.to_owned());
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Answer {
        status,
        json: serde_json::from_str(&text).unwrap_or(Json::Null),
        text,
        headers,
    }
}

/// Polls a pipeline's status until `f` holds (at most `limit`); returns the last status.
pub async fn wait_status(
    base: &str,
    name: &str,
    limit: Duration,
    f: impl Fn(&Json) -> bool,
) -> Json {
    let deadline = Instant::now() + limit;
    loop {
        let a = call(
            "GET",
            &format!("{base}/v1/pipelines/{name}/status"),
            None,
            None,
            &[],
        )
        .await;
        if a.status == 200 && f(&a.json) {
            return a.json;
        }
        assert!(
            Instant::now() < deadline,
            "status of `{name}` did not reach the expected state within {limit:?}; last: {}",
            a.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The error shape every 4xx/5xx has.
pub fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.json["error"]["code"], code, "{}", a.text);
    assert!(a.json["error"]["message"].is_string(), "{}", a.text);
    assert!(a.json["error"]["details"].is_array(), "{}", a.text);
}
