//! The `sse` sink end to end, with real clients: curl, Python (`httpx-sse` and
//! `sseclient-py`), and a browser `EventSource` in headless Chromium. Resume by id across a
//! server restart, JWT tenant isolation, a token expiring mid-stream, a client that never
//! reads, HTTP/2 over TLS, and the stream on `weir serve`'s listener.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};
use support::*;

const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

fn jwt(claims: Json) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token_for(tenant: &str, ttl: u64) -> String {
    jwt(json!({"sub": "test", "ccid": tenant, "exp": now_s() + ttl}))
}

fn which(tool: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{tool}` is not installed: scripts/test.sh installs it"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn python_has(module: &str) {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .unwrap()
        .success();
    assert!(
        ok,
        "the Python module `{module}` is missing: scripts/test.sh installs it with pip"
    );
}

/// `weir run` on a pipeline file, with its own data folder; killed when dropped.
struct Run {
    child: Option<Child>,
    file: PathBuf,
    data: PathBuf,
    log: PathBuf,
    envs: Vec<(String, String)>,
}

impl Run {
    fn start(dir: &Path, yaml: &str, port: u16) -> Run {
        Run::start_with(dir, yaml, port, &[])
    }

    fn start_with(dir: &Path, yaml: &str, port: u16, envs: &[(&str, &str)]) -> Run {
        let file = dir.join("pipeline.yaml");
        std::fs::write(&file, yaml).unwrap();
        let mut r = Run {
            child: None,
            file,
            data: dir.join("data"),
            log: dir.join("weir.log"),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        r.spawn(port);
        r
    }

    fn spawn(&mut self, port: u16) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = weir()
            .arg("run")
            .arg(&self.file)
            .arg("--data-dir")
            .arg(&self.data)
            .env("RUST_LOG", "info")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("weir run exited with {s}: {}", self.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the SSE listener did not open within 30s: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "weir run did not stop on SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn append(path: &Path, lines: impl IntoIterator<Item = Json>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = String::new();
    for l in lines {
        text.push_str(&l.to_string());
        text.push('\n');
    }
    f.write_all(text.as_bytes()).unwrap();
}

/// A pipeline that follows `input` into an `sse` sink on `port`, with `extra` sink options.
fn follow_yaml(input: &Path, port: u16, extra: &str) -> String {
    format!(
        "pipelines:\n  gw:\n    source:\n      type: file\n      path: {}\n      follow: true\n      poll_interval: 50ms\n    sinks:\n      - type: sse\n        stream: events\n        listen: 127.0.0.1:{port}\n        event: messaging_events_topic\n{extra}",
        input.display()
    )
}

/// One SSE event as a client parsed it.
#[derive(Debug, Clone, PartialEq)]
struct Ev {
    id: String,
    event: String,
    data: String,
}

/// Parses a whole SSE response body (as the spec's parser does: fields up to a blank line).
fn parse_events(body: &str) -> (Vec<Ev>, Vec<String>, Option<u64>) {
    let (mut out, mut comments, mut retry) = (Vec::new(), Vec::new(), None);
    let mut cur = Ev {
        id: String::new(),
        event: String::new(),
        data: String::new(),
    };
    let mut has = false;
    for line in body.split('\n') {
        if line.is_empty() {
            if has {
                out.push(cur.clone());
            }
            cur.event.clear();
            cur.data.clear();
            has = false;
        } else if let Some(c) = line.strip_prefix(':') {
            comments.push(c.trim().to_owned());
        } else if let Some((k, v)) = line.split_once(": ") {
            match k {
                "id" => cur.id = v.to_owned(),
                "event" => cur.event = v.to_owned(),
                "data" => {
                    if has && !cur.data.is_empty() {
                        cur.data.push('\n');
                    }
                    cur.data.push_str(v);
                    has = true;
                }
                "retry" => retry = v.parse().ok(),
                _ => {}
            }
        }
    }
    (out, comments, retry)
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new(which("curl")).args(args).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ns(events: &[Ev]) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e.event == "messaging_events_topic")
        .map(|e| {
            serde_json::from_str::<Json>(&e.data).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

#[test]
fn curl_gets_the_events_with_sse_headers_and_resumes_by_last_event_id_with_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    append(&input, (0..5).map(|n| json!({"n": n, "ccid": "a"})));
    let port = weir_testkit::free_port();
    let _run = Run::start(
        dir.path(),
        &follow_yaml(
            &input,
            port,
            "        client_retry: 250ms\n        heartbeat: 300ms\n",
        ),
        port,
    );
    let url = format!("http://127.0.0.1:{port}/v1/streams/events");
    // The records already delivered are in the ring: start from the first one's time.
    let since = "2000-01-01T00:00:00Z";
    let (head, err) = curl(&[
        "-sN",
        "-i",
        "--max-time",
        "2",
        &format!("{url}?since={since}"),
    ]);
    let lower = head.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{head}{err}");
    assert!(lower.contains("content-type: text/event-stream"), "{head}");
    assert!(lower.contains("cache-control: no-cache"), "{head}");
    assert!(lower.contains("x-accel-buffering: no"), "{head}");
    let body = head.split("\r\n\r\n").nth(1).unwrap();
    let (events, comments, retry) = parse_events(body);
    assert_eq!(retry, Some(250), "{body}");
    assert!(
        comments.iter().filter(|c| c.is_empty()).count() >= 3,
        "a heartbeat every 300ms over 2s: {comments:?}"
    );
    // The ring was started after the records arrived, so `since` the year 2000 is older
    // than the ring: an explicit reset, never a silent gap.
    assert_eq!(events[0].event, "reset", "{body}");
    assert!(events[0].data.contains("since_before_ring"), "{body}");

    // Live: curl connects, more records arrive, curl sees them in order with their ids.
    let live = std::thread::spawn({
        let url = url.clone();
        move || curl(&["-sN", "--max-time", "3", &url]).0
    });
    std::thread::sleep(Duration::from_millis(700));
    append(&input, (5..15).map(|n| json!({"n": n, "ccid": "a"})));
    let (events, _, _) = parse_events(&live.join().unwrap());
    assert_eq!(ns(&events), (5..15).collect::<Vec<_>>());
    let ids: std::collections::BTreeSet<_> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 10, "every id is distinct");
    assert!(
        events
            .iter()
            .all(|e| e.id.len() < 40 && !e.id.contains(':'))
    );

    // Resume after the 4th of them by header, and by query: the 6 after it, once each.
    let after = events[3].id.clone();
    append(&input, (15..17).map(|n| json!({"n": n, "ccid": "a"})));
    std::thread::sleep(Duration::from_millis(500));
    let by_header = curl(&[
        "-sN",
        "--max-time",
        "1",
        "-H",
        &format!("Last-Event-ID: {after}"),
        &url,
    ])
    .0;
    assert_eq!(ns(&parse_events(&by_header).0), (9..17).collect::<Vec<_>>());
    let by_query = curl(&[
        "-sN",
        "--max-time",
        "1",
        &format!("{url}?lastEventId={after}"),
    ])
    .0;
    assert_eq!(ns(&parse_events(&by_query).0), (9..17).collect::<Vec<_>>());

    // Unknown streams and bad parameters are answered in the API's error shape.
    let (nf, _) = curl(&[
        "-s",
        "-w",
        "\n%{http_code}",
        &format!("http://127.0.0.1:{port}/v1/streams/nope"),
    ]);
    assert!(
        nf.ends_with("\n404") && nf.contains("\"not_found\""),
        "{nf}"
    );
    let (bad, _) = curl(&[
        "-s",
        "-w",
        "\n%{http_code}",
        &format!("{url}?filter=%7Bnot-json"),
    ]);
    assert!(
        bad.ends_with("\n400") && bad.contains("invalid_filter"),
        "{bad}"
    );
    let (bad, _) = curl(&[
        "-s",
        "-w",
        "\n%{http_code}",
        &format!("{url}?since=yesterday"),
    ]);
    assert!(
        bad.ends_with("\n400") && bad.contains("invalid_since"),
        "{bad}"
    );
}

#[test]
fn jwt_clients_see_only_their_tenant_in_python_clients_whatever_their_filter_asks() {
    python_has("httpx_sse");
    python_has("sseclient");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "").unwrap();
    let port = weir_testkit::free_port();
    let extra = format!(
        "        tenant: <$.value.ccid>\n        auth:\n          hs256_secret: {SECRET}\n          tenant_claim: ccid\n"
    );
    let run = Run::start(dir.path(), &follow_yaml(&input, port, &extra), port);
    let url = format!("http://127.0.0.1:{port}/v1/streams/events");
    let script = dir.path().join("clients.py");
    std::fs::write(
        &script,
        r#"
import json, sys, threading, httpx, sseclient, urllib.request
from httpx_sse import connect_sse
url, tok_a, tok_b, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
got = {}
def with_httpx(name, token, params):
    out = got.setdefault(name, [])
    with httpx.Client(timeout=httpx.Timeout(10.0)) as c:
        with connect_sse(c, "GET", url, params=params, headers={"Authorization": "Bearer " + token}) as es:
            for ev in es.iter_sse():
                if ev.event == "messaging_events_topic":
                    out.append(json.loads(ev.data))
                if len(out) >= want:
                    return
def with_sseclient(name, token):
    out = got.setdefault(name, [])
    req = urllib.request.Request(url + "?access_token=" + token, headers={"Accept": "text/event-stream"})
    resp = urllib.request.urlopen(req, timeout=10)
    for ev in sseclient.SSEClient(resp).events():
        if ev.event == "messaging_events_topic":
            out.append(json.loads(ev.data))
        if len(out) >= want:
            return
threads = [
    threading.Thread(target=with_httpx, args=("a", tok_a, {})),
    # Tenant a asks for tenant b's records: the token wins.
    threading.Thread(target=with_httpx, args=("a_asks_b", tok_a, {"filter": json.dumps({"value": {"ccid": ["b"]}})})),
    threading.Thread(target=with_httpx, args=("a_even", tok_a, {"filter": json.dumps({"value": {"n": [{"numeric": [">=", 0]}], "even": [True]}})})),
    threading.Thread(target=with_sseclient, args=("b", tok_b)),
]
for t in threads: t.start()
print("connected", flush=True)
for t in threads: t.join(timeout=20)
print(json.dumps(got), flush=True)
"#,
    )
    .unwrap();
    let mut py = Command::new("python3")
        .arg(&script)
        .args([&url, &token_for("a", 120), &token_for("b", 120), "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "connected");
    std::thread::sleep(Duration::from_millis(800));
    append(
        &input,
        (0..40).map(|n| {
            let t = ["a", "b", "c", "a"][n % 4];
            json!({"n": n, "ccid": t, "even": n % 2 == 0})
        }),
    );
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    py.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(py.wait().unwrap().success(), "{err}\n{}", run.log_text());
    let got: Json =
        serde_json::from_str(rest.trim()).unwrap_or_else(|e| panic!("{e}: {rest}{err}"));
    let a: Vec<i64> = got["a"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["n"].as_i64().unwrap())
        .collect();
    // Tenant a's records are n % 4 in {0, 3}: the first ten of them, in order.
    let want_a: Vec<i64> = (0..40)
        .filter(|n| n % 4 == 0 || n % 4 == 3)
        .take(10)
        .collect();
    assert_eq!(a, want_a);
    for v in got["a"]
        .as_array()
        .unwrap()
        .iter()
        .chain(got["a_even"].as_array().unwrap())
    {
        assert_eq!(v["ccid"], "a", "{v}");
    }
    assert!(
        got["a_asks_b"].as_array().unwrap().is_empty(),
        "a client of tenant a saw another tenant's record: {}",
        got["a_asks_b"]
    );
    let even: Vec<i64> = got["a_even"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["n"].as_i64().unwrap())
        .collect();
    assert_eq!(even, vec![0, 4, 8, 12, 16, 20, 24, 28, 32, 36]);
    let b: Vec<i64> = got["b"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["n"].as_i64().unwrap())
        .collect();
    assert_eq!(
        b,
        (0..40).filter(|n| n % 4 == 1).take(10).collect::<Vec<_>>()
    );
}

#[test]
fn tokens_are_checked_from_header_cookie_and_query_and_an_expiring_token_ends_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "").unwrap();
    let port = weir_testkit::free_port();
    let extra = format!(
        "        heartbeat: 200ms\n        auth:\n          hs256_secret: {SECRET}\n          tenant_claim: ccid\n          leeway: 0s\n"
    );
    let _run = Run::start(dir.path(), &follow_yaml(&input, port, &extra), port);
    let url = format!("http://127.0.0.1:{port}/v1/streams/events");
    let code = |args: &[&str]| -> String {
        let mut a = vec![
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "1",
        ];
        a.extend_from_slice(args);
        curl(&a).0
    };
    assert_eq!(code(&[&url]), "401", "no token");
    assert_eq!(
        code(&["-H", "Authorization: Bearer not.a.jwt", &url]),
        "401"
    );
    let wrong = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"ccid": "a", "exp": now_s() + 60}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-that-is-32-bytes-long!!"),
    )
    .unwrap();
    assert_eq!(
        code(&["-H", &format!("Authorization: Bearer {wrong}"), &url]),
        "401",
        "wrong key"
    );
    let expired = jwt(json!({"ccid": "a", "exp": now_s() - 10}));
    assert_eq!(
        code(&["-H", &format!("Authorization: Bearer {expired}"), &url]),
        "401",
        "expired"
    );
    let no_tenant = jwt(json!({"exp": now_s() + 60}));
    let (body, _) = curl(&[
        "-s",
        "-H",
        &format!("Authorization: Bearer {no_tenant}"),
        &url,
    ]);
    assert!(body.contains("no `ccid` claim"), "{body}");
    let no_exp = jwt(json!({"ccid": "a"}));
    assert_eq!(
        code(&["-H", &format!("Authorization: Bearer {no_exp}"), &url]),
        "401",
        "a token must expire"
    );
    let (hdr, _) = curl(&["-s", "-i", "--max-time", "1", &url]);
    assert!(
        hdr.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{hdr}"
    );
    // A valid token in each of the three places (curl exits 28 at --max-time: streaming).
    let ok = token_for("a", 60);
    assert_eq!(
        code(&["-H", &format!("Authorization: Bearer {ok}"), &url]),
        "200"
    );
    assert_eq!(
        code(&["--cookie", &format!("weir_token={ok}"), &url]),
        "200"
    );
    assert_eq!(code(&[&format!("{url}?access_token={ok}")]), "200");

    // A token that expires in 2s: the server ends the response then, not later.
    let short = jwt(json!({"ccid": "a", "exp": now_s() + 2}));
    let start = Instant::now();
    let (body, _) = curl(&[
        "-sN",
        "--max-time",
        "15",
        "-H",
        &format!("Authorization: Bearer {short}"),
        &url,
    ]);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the stream outlived its token: {took:?}"
    );
    assert!(
        took >= Duration::from_millis(900),
        "ended before the token expired: {took:?}"
    );
    assert!(body.contains(": token expired"), "{body}");
}

#[test]
fn a_browser_event_source_cut_off_by_a_server_restart_resumes_with_no_gap_and_no_duplicate() {
    python_has("selenium");
    let chromedriver = which("chromedriver");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "").unwrap();
    let port = weir_testkit::free_port();
    let page_port = weir_testkit::free_port();
    let extra = format!(
        "        client_retry: 200ms\n        cors_origins: [\"http://127.0.0.1:{page_port}\"]\n        tenant: <$.value.ccid>\n        auth:\n          hs256_secret: {SECRET}\n          tenant_claim: ccid\n"
    );
    let mut run = Run::start(dir.path(), &follow_yaml(&input, port, &extra), port);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/events-gateway");
    let script = dir.path().join("browser.py");
    std::fs::write(
        &script,
        r#"
import functools, http.server, json, sys, threading, time, urllib.parse
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
root, page_port, stream, token, driver_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
handler.log_message = lambda *a: None
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), handler)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
opts = webdriver.ChromeOptions()
for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]:
    opts.add_argument(a)
d = webdriver.Chrome(service=Service(driver_path), options=opts)
try:
    q = urllib.parse.urlencode({"stream": stream, "token": token})
    d.get(f"http://127.0.0.1:{page_port}/index.html?{q}")
    def wait(pred, what, limit=30):
        end = time.time() + limit
        while time.time() < end:
            if pred():
                return
            time.sleep(0.05)
        raise SystemExit(f"timed out waiting for {what}: " + json.dumps(d.execute_script("return [window.weirEvents, window.weirResets, window.weirOpens]")))
    count = lambda: d.execute_script("return window.weirEvents.length")
    wait(lambda: d.execute_script("return window.weirOpens") >= 1, "the first connection")
    print("open", flush=True)
    for want in sys.stdin:
        want = int(want)
        wait(lambda: count() >= want, f"{want} events")
        print("have", want, flush=True)
    print(json.dumps(d.execute_script("return {events: window.weirEvents, resets: window.weirResets, opens: window.weirOpens}")), flush=True)
finally:
    d.quit()
    httpd.shutdown()
"#,
    )
    .unwrap();
    let stream = format!("http://127.0.0.1:{port}/v1/streams/events");
    let mut py = Command::new("python3")
        .arg(&script)
        .arg(&example)
        .arg(page_port.to_string())
        .arg(&stream)
        .arg(token_for("a", 600))
        .arg(&chromedriver)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_py = py.stdin.take().unwrap();
    let mut from_py = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    let mut expect = |from_py: &mut BufReader<_>, want: &str| {
        line.clear();
        from_py.read_line(&mut line).unwrap();
        if line.trim() != want {
            let mut err = String::new();
            let _ = py.stderr.take().unwrap().read_to_string(&mut err);
            panic!("browser script said {line:?}, not {want:?}: {err}");
        }
    };
    expect(&mut from_py, "open");
    let rec = |n: usize| json!({"n": n, "ccid": if n % 3 == 2 { "b" } else { "a" }});
    append(&input, (0..30).map(rec));
    let tenant_a = |r: std::ops::Range<usize>| r.filter(|n| n % 3 != 2).count();
    writeln!(to_py, "{}", tenant_a(0..30)).unwrap();
    expect(&mut from_py, &format!("have {}", tenant_a(0..30)));
    // The server goes away; records arrive while it is down; it comes back and resumes from
    // its checkpoint; the browser reconnects with Last-Event-ID by itself.
    run.stop();
    append(&input, (30..60).map(rec));
    std::thread::sleep(Duration::from_millis(500));
    run.spawn(port);
    append(&input, (60..90).map(rec));
    writeln!(to_py, "{}", tenant_a(0..90)).unwrap();
    expect(&mut from_py, &format!("have {}", tenant_a(0..90)));
    drop(to_py);
    let mut rest = String::new();
    from_py.read_to_string(&mut rest).unwrap();
    assert!(py.wait().unwrap().success());
    let got: Json = serde_json::from_str(rest.trim()).unwrap();
    let seen: Vec<i64> = got["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::from_str::<Json>(e["data"].as_str().unwrap()).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let want: Vec<i64> = (0..90).filter(|n| n % 3 != 2).collect();
    assert_eq!(
        seen, want,
        "every event of tenant a once, in order, across the restart"
    );
    assert_eq!(got["resets"], json!([]), "no reset: nothing was lost");
    assert!(
        got["opens"].as_i64().unwrap() >= 2,
        "the browser reconnected: {got}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_weir_serve_a_client_that_never_reads_is_dropped_while_others_receive_and_a_reload_keeps_clients()
 {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &["--send-timeout", "2s"], &[]);
    let u = &s.url;
    let def = |rate: u32, queue: u32| {
        json!({"name": "gw", "source": {"type": "generator", "rate_per_sec": rate, "seed": 3},
               "sinks": [{"type": "sse", "stream": "orders", "client_queue_bytes": queue, "ring_max_events": 100}]})
        .to_string()
    };
    let a = call(
        "POST",
        &format!("{u}/v1/pipelines"),
        None,
        Some(("application/json", &def(2000, 262_144))),
        &[],
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    wait_status(u, "gw", Duration::from_secs(20), |s| {
        s["state"] == "running"
    })
    .await;
    let url = format!("{u}/v1/streams/orders");
    // A client that sends its request and never reads a byte.
    let addr = s.addr.clone();
    let mut stuck = std::net::TcpStream::connect(&addr).unwrap();
    stuck
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    write!(stuck, "GET /v1/streams/orders HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // Meanwhile a reading client gets a steady stream for 8 s.
    let reader = tokio::task::spawn_blocking({
        let url = url.clone();
        move || curl(&["-sN", "--max-time", "8", &url]).0
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = call("GET", &format!("{u}/metrics"), None, None, &[])
            .await
            .text;
        let dropped = m
            .lines()
            .find(|l| {
                l.starts_with("weir_sse_client_disconnects_total") && l.contains("reason=\"slow\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if dropped >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stuck client was never dropped: {m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Its writes stall for longer than --send-timeout: the server closes the connection, so
    // reading it to the end (what the socket buffers still hold, then the end) finishes.
    std::thread::sleep(Duration::from_secs(4));
    let mut sink = Vec::new();
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let r = stuck.read_to_end(&mut sink);
    assert!(
        r.is_ok(),
        "the dropped client's connection was not closed: {r:?}"
    );
    // A reload while the reader is connected: it keeps receiving on the same connection.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = call(
        "PUT",
        &format!("{u}/v1/pipelines/gw"),
        None,
        Some(("application/json", &def(1000, 262_144))),
        &[],
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let body = reader.await.unwrap();
    let (events, _, _) = parse_events(&body);
    assert!(
        events.len() > 2000,
        "the reading client got {} events",
        events.len()
    );
    let gens: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let distinct: std::collections::HashSet<_> = gens.iter().collect();
    assert_eq!(distinct.len(), gens.len(), "no event twice");
    let m = call("GET", &format!("{u}/metrics"), None, None, &[])
        .await
        .text;
    assert!(m.contains("weir_sse_clients{"), "{m}");
}

#[test]
fn http2_over_tls_on_the_sinks_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    weir_testkit::tls::certificates(dir.path());
    let input = dir.path().join("in.ndjson");
    append(&input, [json!({"n": 0})]);
    let port = weir_testkit::free_port();
    let extra = format!(
        "        tls:\n          cert_file: {}\n          key_file: {}\n",
        dir.path().join("server.pem").display(),
        dir.path().join("server.key").display()
    );
    let _run = Run::start(dir.path(), &follow_yaml(&input, port, &extra), port);
    let url = format!("https://127.0.0.1:{port}/v1/streams/events");
    let (out, err) = curl(&[
        "-sN",
        "--http2",
        "--max-time",
        "2",
        "--cacert",
        &dir.path().join("ca.pem").display().to_string(),
        "-w",
        "\nversion=%{http_version}",
        &url,
    ]);
    assert!(out.contains("retry: 3000"), "{out}{err}");
    assert!(out.ends_with("version=2"), "{out}{err}");
}

#[test]
fn bad_sse_options_are_located_errors_and_two_pipelines_cannot_feed_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("stream: \"a b\"", "stream"),
        ("auth:\n          hs256_secret: short", "at least 32 bytes"),
        (
            "auth:\n          hs256_secret: a-shared-secret-of-at-least-32-bytes!\n          public_key_file: /nope.pem",
            "exactly one of",
        ),
        (
            "auth:\n          public_key_file: /nope.pem",
            "cannot read /nope.pem",
        ),
        (
            "tls:\n          cert_file: a\n          key_file: b",
            "`tls` is for `listen`",
        ),
        ("event: \"<weir.nope>\"", "unknown variable"),
        ("ring_max_events: 0", "at least 1"),
    ];
    for (opt, want) in cases {
        let f = dir.path().join("bad.yaml");
        std::fs::write(
            &f,
            format!("pipelines:\n  p:\n    source:\n      type: generator\n    sinks:\n      - type: sse\n        {opt}\n"),
        )
        .unwrap();
        let out = weir().arg("validate").arg(&f).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{opt}: {err}");
        assert!(err.contains(want), "{opt}: {err}");
        assert!(
            err.contains("bad.yaml:7:") || err.contains("bad.yaml:8:"),
            "located at the option's line: {err}"
        );
    }
    let f = dir.path().join("two.yaml");
    std::fs::write(
        &f,
        "pipelines:\n  one:\n    source: {type: generator, rate_per_sec: 10}\n    sinks: [{type: sse, stream: shared}]\n  two:\n    source: {type: generator, rate_per_sec: 10}\n    sinks: [{type: sse, stream: shared}]\n",
    )
    .unwrap();
    let out = weir()
        .arg("run")
        .arg(&f)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("the stream `shared` is already fed by the pipeline"),
        "{err}"
    );
}

/// The events-gateway example as shipped (only its port changed): Kafka → filter → SSE with JWT
/// tenants and → a Redis stream per tenant, read by curl with a token from the example's own
/// token maker and by Python's redis client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_gateway_example_serves_each_tenant_its_events_and_writes_redis_streams() {
    python_has("redis");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/events-gateway");
    let broker = weir_testkit::Broker::start();
    weir_testkit::create_topics(&broker.addr(), &["messaging_events_topic"], 3).await;
    let redis = weir_testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = weir_testkit::free_port();
    let yaml = std::fs::read_to_string(root.join("pipeline.yaml"))
        .unwrap()
        .replace(
            "listen: 127.0.0.1:8090",
            &format!("listen: 127.0.0.1:{port}"),
        );
    assert!(yaml.contains(&format!("127.0.0.1:{port}")));
    let run = Run::start_with(
        dir.path(),
        &yaml,
        port,
        &[("KAFKA", &broker.addr()), ("REDIS_URL", &redis.url())],
    );
    // `start_from: latest`: wait until the consumer has its partitions (a probe arrives).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probe = json!({"ccid": "probe", "type": "probe"}).to_string();
        weir_testkit::produce(
            &broker.addr(),
            "messaging_events_topic",
            &[weir_testkit::Msg::new("p", probe)],
            &[],
        )
        .await;
        if redis.cli(&["XLEN", "events:probe"]).trim() != "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never consumed: {}",
            run.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let token = |ccid: &str| -> String {
        let out = Command::new("python3")
            .arg(root.join("token.py"))
            .arg(ccid)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let url = format!("http://127.0.0.1:{port}/v1/streams/events");
    let c1 = tokio::task::spawn_blocking({
        let (url, t) = (url.clone(), token("c-1"));
        move || {
            curl(&[
                "-sN",
                "--max-time",
                "6",
                "-H",
                &format!("Authorization: Bearer {t}"),
                &url,
            ])
            .0
        }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut msgs = Vec::new();
    for n in 0..30 {
        let ccid = if n % 2 == 0 { "c-1" } else { "c-2" };
        msgs.push(weir_testkit::Msg::new(
            ccid,
            json!({"ccid": ccid, "type": "message.sent", "n": n}).to_string(),
        ));
    }
    msgs.push(weir_testkit::Msg::new(
        "c-1",
        json!({"ccid": "c-1", "type": "internal.audit", "n": 100}).to_string(),
    ));
    msgs.push(weir_testkit::Msg::new(
        "x",
        json!({"type": "message.sent", "n": 101}).to_string(),
    ));
    weir_testkit::produce(&broker.addr(), "messaging_events_topic", &msgs, &[]).await;
    let (events, _, _) = parse_events(&c1.await.unwrap());
    let mut got: Vec<i64> = ns(&events);
    got.sort();
    assert_eq!(
        got,
        (0..30).step_by(2).collect::<Vec<_>>(),
        "c-1 sees its events only, filtered"
    );
    // Redis: one stream per tenant, each entry with its Kafka position, read by redis-py.
    let script = format!(
        r#"
import json, redis
r = redis.Redis.from_url("{}")
out = {{}}
for t in ["c-1", "c-2"]:
    out[t] = [dict((k.decode(), v.decode()) for k, v in f.items()) for _, f in r.xrange("events:" + t)]
print(json.dumps(out))
"#,
        redis.url()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let streams: Json = serde_json::from_slice(&out.stdout).unwrap();
    for (t, first) in [("c-1", 0), ("c-2", 1)] {
        let entries = streams[t].as_array().unwrap();
        let mut n: Vec<i64> = entries
            .iter()
            .map(|e| {
                serde_json::from_str::<Json>(e["value"].as_str().unwrap()).unwrap()["n"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        n.sort();
        assert_eq!(
            n,
            (first..30).step_by(2).collect::<Vec<_>>(),
            "{t}: {entries:?}"
        );
        assert!(
            entries
                .iter()
                .all(|e| e["topic"] == "messaging_events_topic" && e.get("offset").is_some()),
            "{entries:?}"
        );
    }
}
