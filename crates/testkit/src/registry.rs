//! The Confluent-compatible Schema Registry the Avro tests use (rivven-schema, one per test, in
//! memory), a fault-injecting proxy in front of it, and the third-party Python Avro client.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::kafka::{free_port, wait_listening};

/// A rivven-schema server on a free loopback port, killed when dropped. The binary comes from
/// `WEIR_SCHEMA_REGISTRY` (`scripts/install-registry.sh`, run by `scripts/test.sh`); the test
/// fails loudly without it.
pub struct SchemaRegistry {
    url: String,
    port: u16,
    child: Child,
}

impl SchemaRegistry {
    pub fn start() -> SchemaRegistry {
        let bin = std::env::var("WEIR_SCHEMA_REGISTRY").unwrap_or_else(|_| {
            panic!(
                "WEIR_SCHEMA_REGISTRY is not set: the Avro tests start a rivven-schema registry of \
                 their own. Run them through scripts/test.sh, or set it to the binary \
                 scripts/install-registry.sh prints"
            )
        });
        assert!(
            Path::new(&bin).is_file(),
            "WEIR_SCHEMA_REGISTRY={bin} is not a file"
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--log-level", "warn"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("cannot start the schema registry");
        wait_listening(&format!("127.0.0.1:{port}"), Duration::from_secs(20));
        // rivven-schema 0.0.22 wrongly finds a `uuid` field backward-incompatible with itself
        // (409 "writer=Uuid, reader=Uuid") and ignores its `--compatibility` flag. Compatibility
        // is the registry's business, not Weir's: switch its check off through the REST API.
        let body = r#"{"compatibility":"NONE"}"#;
        let answer = http(
            port,
            &format!(
                "PUT /config HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/vnd.schemaregistry.v1+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "PUT /config: {answer}");
        SchemaRegistry {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child,
        }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Registers an Avro schema under `subject` through the REST API; returns its id.
    pub fn register(&self, subject: &str, schema: &str) -> u32 {
        let body = serde_json::json!({ "schema": schema }).to_string();
        let answer = http(
            self.port,
            &format!(
                "POST /subjects/{subject}/versions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/vnd.schemaregistry.v1+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "register {subject}: {answer}"
        );
        let json = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["id"].as_u64().unwrap() as u32
    }

    /// The registered subjects (`GET /subjects`).
    pub fn subjects(&self) -> Vec<String> {
        let answer = http(
            self.port,
            "GET /subjects HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
        );
        let json = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        serde_json::from_str(json).unwrap_or_else(|e| panic!("GET /subjects ({e}): {answer}"))
    }
}

impl Drop for SchemaRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw HTTP/1.1 exchange with a test server; returns the status line, the headers and the
/// body (a chunked body put back together).
fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        return answer;
    };
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return answer;
    }
    let mut joined = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        joined.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    format!("{head}\r\n\r\n{joined}")
}

/// A TCP proxy in front of a server that can be switched "down": every open connection is cut
/// and each new request is answered `503 Service Unavailable`, as a registry behind a load
/// balancer answers while it restarts.
pub struct FaultProxy {
    pub url: String,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl FaultProxy {
    pub fn start(backend_port: u16, up: bool) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let flag = Arc::new(AtomicBool::new(up));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (f, o) = (flag.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                if !f.load(Ordering::SeqCst) {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 4096];
                        let _ = client.set_read_timeout(Some(Duration::from_secs(2)));
                        let _ = client.read(&mut buf);
                        let _ = client.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                    });
                    continue;
                }
                let Ok(backend) = TcpStream::connect(("127.0.0.1", backend_port)) else {
                    continue;
                };
                {
                    let mut open = o.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(backend.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), backend.try_clone().unwrap()),
                    (backend, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        FaultProxy {
            url,
            up: flag,
            open,
        }
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for s in self.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Runs the Python Avro client (`tests/avro/avro_client.py`, confluent-kafka's AvroSerializer
/// and AvroDeserializer) and returns its standard output; fails loudly when it fails.
pub fn python_avro(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/avro_client.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect(
            "python3 is needed for the Avro interop tests (scripts/test.sh installs its packages)",
        );
    assert!(
        out.status.success(),
        "python avro_client.py {args:?} failed (confluent-kafka, fastavro installed? scripts/test.sh installs them):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A front for a registry that demands an `Authorization` header, as a Confluent Cloud registry
/// does: requests with the expected value are passed to the registry (one request per
/// connection), others get `401` with the Confluent error body. Every header seen is recorded.
pub struct AuthGate {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl AuthGate {
    pub fn start(backend_port: u16, expected: &str) -> AuthGate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let (s, expected) = (seen.clone(), expected.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let (s, expected) = (s.clone(), expected.clone());
                std::thread::spawn(move || gate_one(client, backend_port, &expected, &s));
            }
        });
        AuthGate { url, seen }
    }
}

fn gate_one(
    mut client: TcpStream,
    backend_port: u16,
    expected: &str,
    seen: &Mutex<Vec<Option<String>>>,
) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let auth = header("authorization");
    seen.lock().unwrap().push(auth.clone());
    if auth.as_deref() != Some(expected) {
        let body = r#"{"error_code":40101,"message":"Unauthorized"}"#;
        let _ = client.write_all(
            format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/vnd.schemaregistry.v1+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        return;
    }
    // Forward with `connection: close`, so the registry's answer ends with its connection.
    let mut forwarded: String = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect();
    forwarded.push_str("connection: close\r\n\r\n");
    let Ok(mut backend) = TcpStream::connect(("127.0.0.1", backend_port)) else {
        return;
    };
    let _ = backend.write_all(forwarded.as_bytes());
    let _ = backend.write_all(&buf[head_end..head_end + length]);
    let mut answer = Vec::new();
    let _ = backend.read_to_end(&mut answer);
    let _ = client.write_all(&answer);
}

/// Produces `count` Avro card transactions from sequence number `start` with the Python client
/// (`schema` v1 or v2), writing Python's expectations to `expected`.
pub fn python_produce(
    bootstrap: &str,
    registry: &str,
    topic: &str,
    count: usize,
    start: usize,
    schema: &str,
    expected: &Path,
) {
    python_avro(&[
        "produce",
        "--bootstrap",
        bootstrap,
        "--registry",
        registry,
        "--topic",
        topic,
        "--schema",
        schema,
        "--start",
        &start.to_string(),
        "--count",
        &count.to_string(),
        "--expected",
        expected.to_str().unwrap(),
    ]);
}
