//! A real Kafka-protocol broker (Tansu, one per test) and an independent rdkafka client to
//! create topics, produce and consume, plus the small network helpers the other fixtures share.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// A Tansu broker of this test's own (SQLite storage in a temporary folder, in RAM when
/// `/dev/shm` exists; a free loopback port), killed when dropped. Each test gets a fresh broker, so no test sees another's groups or
/// load. The binary comes from `WEIR_TANSU` (`scripts/test.sh` installs it); the test fails
/// loudly without it.
pub struct Broker {
    addr: String,
    child: Option<std::process::Child>,
    port: u16,
    advertised: String,
    storage: String,
    /// Started with `--authentication`: every client must authenticate with SASL.
    authentication: bool,
    dir: tempfile::TempDir,
}

/// A SCRAM mechanism Tansu 0.6.0 keeps credentials for (`tansu user create --mechanism`).
/// Tansu 0.6.0 has no PLAIN: its SASL library is built without it, so a PLAIN handshake fails
/// (`NoSharedMechanism` on the broker's side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scram {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl Scram {
    /// The mechanism's name in Kafka (`sasl.mechanism`).
    pub fn mechanism(self) -> &'static str {
        match self {
            Scram::Sha256 => "SCRAM-SHA-256",
            Scram::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn tansu_name(self) -> &'static str {
        match self {
            Scram::Sha256 => "scram256",
            Scram::Sha512 => "scram512",
        }
    }
}

/// A user with a SCRAM credential for one mechanism, on a broker that requires SASL
/// ([`Broker::start_with_sasl`]).
#[derive(Debug, Clone)]
pub struct SaslUser {
    pub name: String,
    pub password: String,
    pub mechanism: Scram,
}

impl SaslUser {
    pub fn new(name: &str, password: &str, mechanism: Scram) -> SaslUser {
        SaslUser {
            name: name.to_owned(),
            password: password.to_owned(),
            mechanism,
        }
    }

    /// The librdkafka properties an independent client authenticates as this user with (for
    /// the `extra` of [`produce`], [`consume_until_with`], [`create_topics_with`],
    /// [`committed_with`]).
    pub fn client_properties(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", self.mechanism.mechanism()),
            ("sasl.username", &self.name),
            ("sasl.password", &self.password),
        ]
    }
}

/// The Tansu binary, from `WEIR_TANSU`.
pub fn tansu_binary() -> std::path::PathBuf {
    let path = std::env::var("WEIR_TANSU").unwrap_or_else(|_| {
        panic!(
            "WEIR_TANSU is not set: the Kafka tests start Tansu brokers of their own. Run them \
             through scripts/test.sh, which installs Tansu, or set WEIR_TANSU to a tansu binary \
             (cargo install tansu --version 0.6.0 --locked --features dynostore,libsql)"
        )
    });
    let path = std::path::PathBuf::from(path);
    assert!(
        path.is_file(),
        "WEIR_TANSU={} is not a file",
        path.display()
    );
    path
}

/// A free port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `addr`.
pub fn wait_listening(addr: &str, timeout: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < timeout,
            "nothing listening on {addr} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Broker {
    /// Starts a broker that listens and advertises on a free port.
    pub fn start() -> Broker {
        let port = free_port();
        Broker::start_with(port, &format!("127.0.0.1:{port}"))
    }

    /// Starts a broker listening on `port` and advertising `advertised` (a TLS proxy in front).
    pub fn start_with(port: u16, advertised: &str) -> Broker {
        Broker::spawn(port, advertised, "sqlite://tansu.db")
    }

    /// Starts a broker that requires SASL authentication (`tansu broker --authentication`) and
    /// knows `users`' SCRAM credentials, then checks that each of them can authenticate.
    ///
    /// Tansu 0.6.0 only takes credentials (AlterUserScramCredentials, what `tansu user create`
    /// sends) from a client that has authenticated, and its `tansu user create` cannot, so the
    /// users are created on the same SQLite storage while the broker runs without
    /// authentication, and the broker is then restarted with it. Topics are created afterwards
    /// with [`create_topics_with`] and a user's [`SaslUser::client_properties`].
    pub fn start_with_sasl(users: &[SaslUser]) -> Broker {
        let mut broker = Broker::start();
        for u in users {
            let out = std::process::Command::new(tansu_binary())
                .args(["user", "create", "--broker"])
                .arg(format!("tcp://{}", broker.addr))
                .args([
                    "--mechanism",
                    u.mechanism.tansu_name(),
                    &u.name,
                    &u.password,
                ])
                .output()
                .expect("cannot run tansu user create");
            assert!(
                out.status.success(),
                "tansu user create {} failed: {}{}",
                u.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        broker.stop();
        broker.authentication = true;
        broker.restart();
        // `tansu user create` exits 0 whatever the broker answered: prove every credential works.
        for u in users {
            let mut cfg = client_config(&broker.addr);
            for (k, v) in u.client_properties() {
                cfg.set(k, v);
            }
            let consumer: BaseConsumer = cfg.create().unwrap();
            if let Err(e) = consumer.fetch_metadata(None, Duration::from_secs(10)) {
                panic!(
                    "user {} cannot authenticate with {} on the test broker: {e}\n{}",
                    u.name,
                    u.mechanism.mechanism(),
                    broker.log_tail(20)
                );
            }
        }
        broker
    }

    /// A broker with Tansu's memory engine. Tansu 0.6.0's SQLite engine cannot serve
    /// snappy-compressed batches (its fetch fails with `UnexpectedType("Snappy")`, seen with
    /// Python's confluent-kafka too), while the memory engine returns them as stored; but the
    /// memory engine returns nothing when a fetch starts inside a batch, so it only suits tests
    /// that read every partition from offset 0 without pausing or resuming, or whose records
    /// were produced one per batch (`batch.num.messages: 1`), where every offset starts one.
    pub fn start_in_memory() -> Broker {
        let port = free_port();
        Broker::start_in_memory_with(port, &format!("127.0.0.1:{port}"))
    }

    /// [`Broker::start_in_memory`] listening on `port` and advertising `advertised` (a proxy in
    /// front). Tansu 0.6.0's SQLite engine panics (`more or less than one row`, lite.rs:503)
    /// when an idempotent producer asks for a new epoch after its records timed out, and
    /// serves nothing afterwards; the memory engine does not.
    pub fn start_in_memory_with(port: u16, advertised: &str) -> Broker {
        Broker::spawn(port, advertised, "memory://tansu/")
    }

    fn spawn(port: u16, advertised: &str, storage: &str) -> Broker {
        let mut broker = Broker {
            addr: format!("127.0.0.1:{port}"),
            child: None,
            port,
            advertised: advertised.to_owned(),
            storage: storage.to_owned(),
            authentication: false,
            // Storage in RAM where there is a tmpfs: SQLite's WAL checkpoints fsync, and on a
            // disk shared with compilers and linkers one fsync can take seconds, long enough for
            // group sessions to expire and a test to measure the disk instead of Weir.
            dir: tempfile::Builder::new()
                .prefix("tansu-")
                .tempdir_in("/dev/shm")
                .or_else(|_| tempfile::tempdir())
                .unwrap(),
        };
        broker.launch();
        broker
    }

    /// Starts the process (again) on the same port and storage, and waits until it listens.
    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .unwrap();
        let mut command = std::process::Command::new(tansu_binary());
        command.arg("broker");
        if self.authentication {
            command.arg("--authentication");
        }
        let child = command
            .arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{}", self.advertised))
            .arg("--storage-engine")
            // Tansu resolves the SQLite path against its working directory.
            .arg(&self.storage)
            .current_dir(self.dir.path())
            // Tansu reads RUST_LOG too: a debug filter meant for the tests logs gigabytes.
            // `WEIR_TANSU_LOG` sets the broker's own filter when a failure needs its side.
            .env(
                "RUST_LOG",
                std::env::var("WEIR_TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start tansu");
        self.child = Some(child);
        wait_listening(&self.addr, Duration::from_secs(20));
    }

    /// Stops the broker (SIGTERM, then SIGKILL after 10 s) and waits until its port refuses
    /// connections; [`Broker::restart`] starts it again with the same port and storage.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let start = Instant::now();
        while c.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                let _ = c.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        while std::net::TcpStream::connect(&self.addr).is_ok() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{} still accepts connections after the broker stopped",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a stopped broker again on the same port, with the same storage.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is running; stop it first");
        self.launch();
    }

    /// What the broker logged so far (warnings and errors, every run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    /// `host:port` clients connect to.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// The last `lines` lines the broker logged (warnings and errors), for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        last_lines(&self.log(), lines)
    }
}

/// The last `n` lines of `text`, for failure messages that quote a log.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000_000;
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// Creates topics through the Kafka admin API (Tansu does not auto-create them).
pub async fn create_topics(bootstrap: &str, names: &[&str], partitions: i32) {
    create_topics_with(bootstrap, &[], names, partitions).await
}

/// [`create_topics`] with extra client properties (SASL, TLS).
pub async fn create_topics_with(
    bootstrap: &str,
    extra: &[(&str, &str)],
    names: &[&str],
    partitions: i32,
) {
    let mut cfg = client_config(bootstrap);
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let admin: AdminClient<DefaultClientContext> = cfg.create().unwrap();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create_topics request failed");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default)]
pub struct Msg {
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub partition: Option<i32>,
    pub headers: Vec<(String, String)>,
}

impl Msg {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Msg {
            key: Some(key.into()),
            value: value.into().into_bytes(),
            ..Default::default()
        }
    }
}

/// Produces every message and waits until the broker acknowledged all of them.
pub async fn produce(bootstrap: &str, topic: &str, msgs: &[Msg], extra: &[(&str, &str)]) {
    let mut cfg = client_config(bootstrap);
    cfg.set("linger.ms", "5").set("enable.idempotence", "true");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let producer: FutureProducer = cfg.create().unwrap();
    let mut futures = Vec::with_capacity(msgs.len());
    for m in msgs {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &m.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        let mut r = FutureRecord::to(topic).payload(&m.value).headers(headers);
        if let Some(k) = &m.key {
            r = r.key(k);
        }
        if let Some(p) = m.partition {
            r = r.partition(p);
        }
        loop {
            match producer.send_result(r) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    r = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => panic!("test producer cannot enqueue: {e}"),
            }
        }
    }
    for f in futures {
        f.await
            .expect("producer dropped")
            .unwrap_or_else(|(e, _)| panic!("test producer failed: {e}"));
    }
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    /// The value's bytes as they are.
    pub raw: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Reads every partition of `topic` from the beginning (no consumer group) until `want` records
/// arrived and then `quiet` passed without more, or `timeout` ran out. Blocking.
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    quiet: Duration,
    timeout: Duration,
) -> Vec<Got> {
    consume_until(
        bootstrap,
        topic,
        partitions,
        |g| g.len() >= want,
        quiet,
        timeout,
    )
}

/// [`consume_all`] on a blocking thread, for async tests.
pub async fn read_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    quiet: Duration,
    timeout: Duration,
) -> Vec<Got> {
    let (b, t) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || consume_all(&b, &t, partitions, want, quiet, timeout))
        .await
        .expect("reader thread panicked")
}

/// Like [`consume_all`] but stops once `done` holds for what arrived (and `quiet` passed).
pub fn consume_until(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    done: impl Fn(&[Got]) -> bool,
    quiet: Duration,
    timeout: Duration,
) -> Vec<Got> {
    consume_until_with(bootstrap, &[], topic, partitions, done, quiet, timeout)
}

/// [`consume_until`] with extra client properties (TLS).
pub fn consume_until_with(
    bootstrap: &str,
    extra: &[(&str, &str)],
    topic: &str,
    partitions: i32,
    done: impl Fn(&[Got]) -> bool,
    quiet: Duration,
    timeout: Duration,
) -> Vec<Got> {
    let mut cfg = client_config(bootstrap);
    cfg.set("group.id", unique("reader"))
        .set("enable.auto.commit", "false");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let consumer: BaseConsumer = cfg.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut last = Instant::now();
    while start.elapsed() < timeout {
        if last.elapsed() >= quiet && done(&got) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Instant::now();
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                got.push(Got {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    raw: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Some(Err(e)) => panic!("test consumer error: {e}"),
            None => {}
        }
    }
    got
}

/// The low and high watermarks of each partition of `topic`, as the broker reports them.
pub fn watermarks(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    watermarks_with(bootstrap, &[], topic, partitions)
}

/// [`watermarks`] with extra client properties (SASL, TLS).
pub fn watermarks_with(
    bootstrap: &str,
    extra: &[(&str, &str)],
    topic: &str,
    partitions: i32,
) -> Vec<(i64, i64)> {
    let mut cfg = client_config(bootstrap);
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let consumer: BaseConsumer = cfg.create().unwrap();
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap_or((-1, -1))
        })
        .collect()
}

/// The committed offsets of `group` for each partition of `topic` (None = nothing committed).
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    committed_with(bootstrap, &[], group, topic, partitions)
}

/// [`committed`] with extra client properties (SASL, TLS).
pub fn committed_with(
    bootstrap: &str,
    extra: &[(&str, &str)],
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<Option<i64>> {
    let mut cfg = client_config(bootstrap);
    cfg.set("group.id", group);
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let consumer: BaseConsumer = cfg.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let c = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    (0..partitions)
        .map(|p| match c.find_partition(topic, p).unwrap().offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}
