//! A real HTTPS server for the `http` sink's tests: axum over rustls with the certificates
//! `tls::certificates` makes (server certificate for 127.0.0.1 signed by a test CA), optionally
//! demanding client certificates. It records every request (gzip bodies decoded), counts the
//! requests in flight, and answers as the test's `respond` function says.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    /// The body, gunzipped when `Content-Encoding: gzip`.
    pub body: Vec<u8>,
    /// Size on the wire.
    pub wire_bytes: usize,
    pub at: Instant,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// What the server answers: status, extra headers, body, and a delay before answering.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
    /// Send the body gzip-compressed, with `Content-Encoding: gzip`.
    pub gzip: bool,
}

impl Answer {
    pub fn ok() -> Self {
        Answer::status(200)
    }
    pub fn status(status: u16) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
            gzip: false,
        }
    }
    pub fn body(mut self, b: impl Into<String>) -> Self {
        self.body = b.into();
        self
    }
    pub fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    pub fn gzipped(mut self) -> Self {
        self.gzip = true;
        self
    }
    pub fn after(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Respond = Box<dyn Fn(&Seen, usize) -> Answer + Send + Sync>;

struct State {
    seen: Mutex<Vec<Seen>>,
    respond: Respond,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

pub struct Https {
    pub url: String,
    state: Arc<State>,
    handle: axum_server::Handle,
}

impl Drop for Https {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl Https {
    /// Serves on a free 127.0.0.1 port with `dir`'s `server.pem`/`server.key`; with
    /// `client_ca`, only clients with a certificate signed by it get through the handshake.
    /// `respond` gets each request and how many came before it.
    pub async fn start(
        dir: &Path,
        client_ca: Option<&Path>,
        respond: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static,
    ) -> Https {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("server.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let builder = rustls::ServerConfig::builder();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca).unwrap() {
                    roots.add(c.unwrap()).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));

        let state = Arc::new(State {
            seen: Mutex::new(Vec::new()),
            respond: Box::new(respond),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let s = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move { handle(&s, method, uri, headers, body).await }
            },
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, tls)
            .handle(handle.clone())
            .serve(app.into_make_service());
        tokio::spawn(server);
        Https {
            url: format!("https://127.0.0.1:{}", addr.port()),
            state,
            handle,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The most requests the server was handling at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests arrived (or `timeout` passed) and returns them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Seen> {
        let end = Instant::now() + timeout;
        while self.state.seen.lock().unwrap().len() < n && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.seen()
    }
}

async fn handle(s: &State, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let decoded = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .expect("a gzip body");
        out
    } else {
        body.to_vec()
    };
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: decoded,
        wire_bytes: body.len(),
        at: Instant::now(),
    };
    let answer = {
        let mut all = s.seen.lock().unwrap();
        let a = (s.respond)(&seen, all.len());
        all.push(seen);
        a
    };
    tokio::time::sleep(answer.delay).await;
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut r = (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
    for (k, v) in answer.headers {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}
