//! Load generator for the `sse` sink (a benchmark, not a test): opens many Server-Sent Events
//! connections to `GET /v1/streams/{stream}`, each with an HS256 JWT for one tenant, and
//! measures what the clients see for a fixed window.
//!
//! Connection `i` is tenant `t{i % tenants}`. Every event's `data:` must be a JSON object with
//! `"ccid"` (its tenant), `"seq"` (a number whose value modulo `tenants` is that tenant's index)
//! and `"sent_ms"` (milliseconds since the epoch, set when the record entered the pipeline). Per
//! event it records the latency (the time the client's `read` returned minus `sent_ms`), checks
//! the tenant (a foreign tenant is a violation) and checks the sequence (a jump of more than
//! `tenants` is a gap: events of this tenant the client did not get).
//!
//!   sse-bench --addr 127.0.0.1:18080 --stream bench --secret "$SECRET" --connections 10000
//!
//! Connections are opened in batches (`--batch` at once, the next batch once every connection
//! of the previous one has its response headers or failed), so the server's accept queue is
//! not overrun. The window starts when the ramp is over and lasts `--duration` seconds; the
//! process stops after ramp, window and a short drain whatever happens. It prints
//! `window: start` and `window: end` as they happen (so a script can sample the server over the
//! same window), then the figures.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(about = "Many authenticated SSE clients against a Weir `sse` sink")]
struct Args {
    /// The sink's `listen:` address.
    #[arg(long, default_value = "127.0.0.1:18080")]
    addr: SocketAddr,
    /// The stream's name (`/v1/streams/{stream}`).
    #[arg(long, default_value = "bench")]
    stream: String,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Tenants: connection `i` subscribes as `t{i % tenants}`.
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// The sink's `auth.hs256_secret`.
    #[arg(long, env = "SSE_BENCH_SECRET", hide_env_values = true)]
    secret: String,
    /// The sink's `auth.tenant_claim`.
    #[arg(long, default_value = "ccid")]
    tenant_claim: String,
    /// Seconds of the measured window, after the ramp.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Connections opened at once during the ramp (keep it under the listener's accept backlog,
    /// 128 for the `sse` sink's own listener).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Longest the ramp may take, in seconds; the window starts then with what is connected.
    #[arg(long, default_value_t = 60)]
    ramp_timeout: u64,
    /// Seconds a connection may take to get its response headers.
    #[arg(long, default_value_t = 10)]
    connect_timeout: u64,
    /// Print deliveries and latency per this many seconds of the window (0: not).
    #[arg(long, default_value_t = 0)]
    timeline: u64,
    /// Worker threads of the client's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Unix time in milliseconds, with sub-millisecond digits.
fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// The window, as Unix milliseconds (`f64` bits; 0 = not started / not ended).
#[derive(Default)]
struct Window {
    start: AtomicU64,
    end: AtomicU64,
}

impl Window {
    fn contains(&self, t: f64) -> bool {
        let s = self.start.load(Ordering::Relaxed);
        if s == 0 || t < f64::from_bits(s) {
            return false;
        }
        let e = self.end.load(Ordering::Relaxed);
        e == 0 || t < f64::from_bits(e)
    }
}

/// Why a connection did not get to streaming.
#[derive(Debug)]
enum Failure {
    Connect(String),
    Status(u16),
    Timeout,
    Closed(String),
}

impl Failure {
    fn kind(&self) -> String {
        match self {
            Failure::Connect(e) => format!("connect: {e}"),
            Failure::Status(s) => format!("HTTP {s}"),
            Failure::Timeout => "no response headers in time".into(),
            Failure::Closed(e) => format!("closed before the headers: {e}"),
        }
    }
}

/// What one connection saw.
#[derive(Default)]
struct ConnStats {
    established: bool,
    /// Events received at any time.
    events: u64,
    /// Events received inside the window.
    window_events: u64,
    /// The window's events: the second of the window they were read in (high 32 bits) and
    /// their latency in microseconds (low 32 bits).
    latencies_us: Vec<u64>,
    /// Events of another tenant.
    violations: u64,
    /// Events of its tenant it never got (sequence jumps).
    missing: u64,
    /// Events that came again or out of order.
    out_of_order: u64,
    /// Events whose data lacked the fields.
    malformed: u64,
    /// `event: reset` received.
    resets: u64,
    /// Heartbeats (empty comments).
    heartbeats: u64,
    /// The stream ended (EOF or error) before the bench stopped it, and why.
    dropped: Option<String>,
    /// When it dropped (Unix ms), to tell the window's drops from later ones.
    dropped_at: f64,
    /// Lowest and highest `seq` inside the window.
    min_seq: Option<u64>,
    max_seq: Option<u64>,
}

/// Parses a response body: HTTP/1.1 chunked framing (when used), then SSE lines.
struct BodyParser {
    chunked: bool,
    chunk: ChunkState,
    size_line: Vec<u8>,
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: Vec<u8>,
    body_done: bool,
}

#[derive(Clone, Copy)]
enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
}

/// What the SSE parser hands over.
enum Item<'a> {
    Event {
        name: &'a [u8],
        data: &'a [u8],
    },
    /// An empty comment (`:`), the sink's heartbeat.
    Heartbeat,
}

impl BodyParser {
    fn new(chunked: bool) -> Self {
        BodyParser {
            chunked,
            chunk: ChunkState::Size,
            size_line: Vec::new(),
            line: Vec::with_capacity(1024),
            data: Vec::with_capacity(1024),
            has_data: false,
            event: Vec::new(),
            body_done: false,
        }
    }

    fn feed(&mut self, mut bytes: &[u8], out: &mut dyn FnMut(Item<'_>)) {
        if !self.chunked {
            self.sse(bytes, out);
            return;
        }
        while !bytes.is_empty() {
            match self.chunk {
                ChunkState::Size => match bytes.iter().position(|b| *b == b'\n') {
                    None => {
                        self.size_line.extend_from_slice(bytes);
                        return;
                    }
                    Some(i) => {
                        self.size_line.extend_from_slice(&bytes[..i]);
                        bytes = &bytes[i + 1..];
                        let text = String::from_utf8_lossy(&self.size_line);
                        let hex = text.split(';').next().unwrap_or("").trim();
                        let size = usize::from_str_radix(hex, 16).unwrap_or(0);
                        self.size_line.clear();
                        if size == 0 {
                            self.body_done = true;
                            self.chunk = ChunkState::Trailer;
                        } else {
                            self.chunk = ChunkState::Data(size);
                        }
                    }
                },
                ChunkState::Data(left) => {
                    let n = left.min(bytes.len());
                    let (now, rest) = bytes.split_at(n);
                    self.sse(now, out);
                    bytes = rest;
                    self.chunk = if n == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n)
                    };
                }
                ChunkState::DataEnd => match bytes.iter().position(|b| *b == b'\n') {
                    None => return,
                    Some(i) => {
                        bytes = &bytes[i + 1..];
                        self.chunk = ChunkState::Size;
                    }
                },
                ChunkState::Trailer => return,
            }
        }
    }

    fn sse(&mut self, mut bytes: &[u8], out: &mut dyn FnMut(Item<'_>)) {
        while let Some(i) = bytes.iter().position(|b| *b == b'\n') {
            let line = if self.line.is_empty() {
                &bytes[..i]
            } else {
                self.line.extend_from_slice(&bytes[..i]);
                &self.line[..]
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if self.has_data {
                    out(Item::Event {
                        name: &self.event,
                        data: &self.data,
                    });
                }
                self.data.clear();
                self.event.clear();
                self.has_data = false;
            } else if line[0] == b':' {
                if line.len() == 1 {
                    out(Item::Heartbeat);
                }
            } else {
                let (field, value) = match line.iter().position(|b| *b == b':') {
                    Some(c) => {
                        let v = &line[c + 1..];
                        (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
                    }
                    None => (line, &b""[..]),
                };
                match field {
                    b"data" => {
                        if self.has_data {
                            self.data.push(b'\n');
                        }
                        self.data.extend_from_slice(value);
                        self.has_data = true;
                    }
                    b"event" => {
                        self.event.clear();
                        self.event.extend_from_slice(value);
                    }
                    _ => {}
                }
            }
            self.line.clear();
            bytes = &bytes[i + 1..];
        }
        self.line.extend_from_slice(bytes);
    }
}

/// The raw text of `"key":` in a compact JSON object (a string without its quotes, a number as
/// written).
fn field<'a>(data: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let pat = format!("\"{key}\":");
    let pat = pat.as_bytes();
    let at = data.windows(pat.len()).position(|w| w == pat)? + pat.len();
    let rest = &data[at..];
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
    if let Some(s) = rest.strip_prefix(b"\"") {
        let end = s.iter().position(|b| *b == b'"')?;
        Some(&s[..end])
    } else {
        let end = rest
            .iter()
            .position(|b| matches!(b, b',' | b'}' | b' ' | b'\n'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    }
}

fn num(b: &[u8]) -> Option<f64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

struct Shared {
    window: Window,
    stop: CancellationToken,
    tenants: u64,
}

struct Conn {
    index: usize,
    tenant: String,
    request: Vec<u8>,
}

async fn headers(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, bool, usize), Failure> {
    let mut tmp = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut tmp)
            .await
            .map_err(|e| Failure::Closed(e.to_string()))?;
        if n == 0 {
            return Err(Failure::Closed("EOF".into()));
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let chunked = head
                .lines()
                .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
            return Ok((status, chunked, end + 4));
        }
        if buf.len() > 64 * 1024 {
            return Err(Failure::Closed("headers larger than 64 KiB".into()));
        }
    }
}

async fn client(
    conn: Conn,
    addr: SocketAddr,
    connect_timeout: Duration,
    shared: Arc<Shared>,
    ready: oneshot::Sender<Result<(), Failure>>,
) -> ConnStats {
    let mut stats = ConnStats::default();
    let setup = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| Failure::Connect(e.kind().to_string()))?;
        let _ = s.set_nodelay(true);
        s.write_all(&conn.request)
            .await
            .map_err(|e| Failure::Closed(e.to_string()))?;
        let mut buf = Vec::new();
        let (status, chunked, body_at) = headers(&mut s, &mut buf).await?;
        if status != 200 {
            return Err(Failure::Status(status));
        }
        Ok((s, chunked, buf.split_off(body_at)))
    };
    let (mut s, chunked, rest) = match tokio::time::timeout(connect_timeout, setup).await {
        Err(_) => {
            let _ = ready.send(Err(Failure::Timeout));
            return stats;
        }
        Ok(Err(f)) => {
            let _ = ready.send(Err(f));
            return stats;
        }
        Ok(Ok(x)) => x,
    };
    stats.established = true;
    let _ = ready.send(Ok(()));

    let tenants = shared.tenants;
    let own_index = (conn.index as u64) % tenants;
    let own = conn.tenant.as_bytes();
    let mut parser = BodyParser::new(chunked);
    let mut last_seq: Option<u64> = None;
    let mut on_read = |bytes: &[u8], stats: &mut ConnStats, parser: &mut BodyParser| {
        let read_at = now_ms();
        let in_window = shared.window.contains(read_at);
        let window_start = f64::from_bits(shared.window.start.load(Ordering::Relaxed));
        parser.feed(bytes, &mut |item| match item {
            Item::Heartbeat => stats.heartbeats += 1,
            Item::Event { name, data } => {
                if name == b"reset" {
                    stats.resets += 1;
                    return;
                }
                stats.events += 1;
                let (Some(ccid), Some(seq), Some(sent)) = (
                    field(data, "ccid"),
                    field(data, "seq").and_then(num),
                    field(data, "sent_ms").and_then(num),
                ) else {
                    stats.malformed += 1;
                    return;
                };
                let seq = seq as u64;
                if ccid != own || seq % tenants != own_index {
                    stats.violations += 1;
                    return;
                }
                match last_seq {
                    Some(l) if seq <= l => stats.out_of_order += 1,
                    Some(l) => {
                        stats.missing += (seq - l) / tenants - 1;
                        last_seq = Some(seq);
                    }
                    None => last_seq = Some(seq),
                }
                if in_window {
                    stats.window_events += 1;
                    let us = ((read_at - sent) * 1000.0).clamp(0.0, u32::MAX as f64);
                    let sec = ((read_at - window_start) / 1000.0).max(0.0) as u64;
                    stats.latencies_us.push((sec << 32) | us as u64);
                    stats.min_seq = Some(stats.min_seq.map_or(seq, |m| m.min(seq)));
                    stats.max_seq = Some(stats.max_seq.map_or(seq, |m| m.max(seq)));
                }
            }
        });
    };
    on_read(&rest, &mut stats, &mut parser);
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            r = s.read(&mut buf) => match r {
                Ok(0) => {
                    stats.dropped = Some(if parser.body_done { "stream ended".into() } else { "EOF".into() });
                    stats.dropped_at = now_ms();
                    break;
                }
                Ok(n) => on_read(&buf[..n], &mut stats, &mut parser),
                Err(e) => {
                    stats.dropped = Some(e.kind().to_string());
                    stats.dropped_at = now_ms();
                    break;
                }
            },
        }
    }
    stats
}

/// Per `width` seconds of the window: deliveries/s, p50, p99 and max latency. `timed` is sorted
/// (second, latency) pairs; the last bucket may be shorter than `width`.
fn timeline(timed: &[u64], width: u64, window_s: u64) -> Vec<String> {
    let mut out = Vec::new();
    if width == 0 {
        return out;
    }
    let mut i = 0;
    // The window's last instant rounds into a second of its own: left out.
    while i < timed.len() && (timed[i] >> 32) < window_s {
        let bucket = (timed[i] >> 32) / width;
        let mut lat: Vec<u32> = Vec::new();
        while i < timed.len() && (timed[i] >> 32) / width == bucket {
            lat.push(timed[i] as u32);
            i += 1;
        }
        lat.sort_unstable();
        out.push(format!(
            "timeline: {:>3}-{:<3} s  {:>7.0} deliveries/s  p50 {:>7.2}  p99 {:>7.2}  max {:>7.2} ms",
            bucket * width,
            (bucket + 1) * width,
            lat.len() as f64 / width as f64,
            percentile(&lat, 50.0),
            percentile(&lat, 99.0),
            lat.last().map_or(f64::NAN, |m| *m as f64 / 1000.0)
        ));
    }
    out
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// This process's user + system CPU seconds (`/proc/self/stat`, in Linux's fixed 100 Hz
/// `USER_HZ`); `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name in parentheses: state is field 3, utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn run(args: Args) {
    let tenants = args.tenants.max(1);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + args.ramp_timeout
        + args.duration
        + 3600;
    let key = EncodingKey::from_secret(args.secret.as_bytes());
    let header = Header::new(Algorithm::HS256);
    let shared = Arc::new(Shared {
        window: Window::default(),
        stop: CancellationToken::new(),
        tenants: tenants as u64,
    });
    say(&format!(
        "sse-bench: {} connections to http://{}/v1/streams/{}, {} tenants, batches of {}, window {} s",
        args.connections, args.addr, args.stream, tenants, args.batch, args.duration
    ));

    let connect_timeout = Duration::from_secs(args.connect_timeout);
    let ramp_started = Instant::now();
    let ramp_deadline = ramp_started + Duration::from_secs(args.ramp_timeout);
    let mut tasks = Vec::with_capacity(args.connections);
    let mut failures: std::collections::BTreeMap<String, u64> = Default::default();
    let (mut established, mut failed) = (0u64, 0u64);
    let mut next_report = 1000;
    let mut i = 0;
    while i < args.connections && Instant::now() < ramp_deadline {
        let end = (i + args.batch.max(1)).min(args.connections);
        let mut waits = Vec::with_capacity(end - i);
        for index in i..end {
            let tenant = format!("t{}", index % tenants);
            let claims = serde_json::json!({
                "sub": format!("sse-bench-{index}"),
                args.tenant_claim.as_str(): tenant,
                "exp": exp,
            });
            let token = jsonwebtoken::encode(&header, &claims, &key).expect("sign a JWT");
            let request = format!(
                "GET /v1/streams/{} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nAuthorization: Bearer {}\r\n\r\n",
                args.stream, args.addr, token
            )
            .into_bytes();
            let (tx, rx) = oneshot::channel();
            let conn = Conn {
                index,
                tenant,
                request,
            };
            tasks.push(tokio::spawn(client(
                conn,
                args.addr,
                connect_timeout,
                shared.clone(),
                tx,
            )));
            waits.push(rx);
        }
        for w in waits {
            match w.await {
                Ok(Ok(())) => established += 1,
                Ok(Err(f)) => {
                    failed += 1;
                    *failures.entry(f.kind()).or_default() += 1;
                }
                Err(_) => {
                    failed += 1;
                    *failures.entry("task ended".into()).or_default() += 1;
                }
            }
        }
        i = end;
        if i >= next_report {
            eprintln!(
                "ramp: {i} attempted, {established} established, {failed} failed, {:.1} s",
                ramp_started.elapsed().as_secs_f64()
            );
            next_report = (i / 1000 + 1) * 1000;
        }
    }
    let ramp = ramp_started.elapsed();
    say(&format!(
        "ramp: {established} established, {failed} failed of {i} attempted in {:.1} s",
        ramp.as_secs_f64()
    ));
    for (why, n) in &failures {
        say(&format!("ramp: failed: {n} × {why}"));
    }

    let start = now_ms();
    let cpu0 = cpu_seconds();
    shared
        .window
        .start
        .store(start.to_bits(), Ordering::Relaxed);
    say("window: start");
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let end = now_ms();
    shared.window.end.store(end.to_bits(), Ordering::Relaxed);
    let cpu1 = cpu_seconds();
    say("window: end");
    shared.stop.cancel();
    let window_s = (end - start) / 1000.0;

    // Every task ends at the stop; a hard limit anyway.
    let mut all = Vec::with_capacity(tasks.len());
    let drain = tokio::time::timeout(Duration::from_secs(10), async {
        for t in tasks {
            if let Ok(s) = t.await {
                all.push(s);
            }
        }
    })
    .await;
    if drain.is_err() {
        say("warning: some connections did not stop within 10 s; their figures are missing");
    }

    let mut timed: Vec<u64> = Vec::new();
    let (mut events, mut window_events, mut violations, mut missing, mut ooo) = (0, 0, 0, 0, 0);
    let (mut malformed, mut resets, mut heartbeats) = (0, 0, 0);
    let (mut dropped_window, mut dropped_ramp) = (0u64, 0u64);
    let mut drops: std::collections::BTreeMap<String, u64> = Default::default();
    let (mut min_seq, mut max_seq) = (u64::MAX, 0u64);
    let mut zero_event_conns = 0u64;
    for s in &all {
        if !s.established {
            continue;
        }
        events += s.events;
        window_events += s.window_events;
        violations += s.violations;
        missing += s.missing;
        ooo += s.out_of_order;
        malformed += s.malformed;
        resets += s.resets;
        heartbeats += s.heartbeats;
        if s.window_events == 0 {
            zero_event_conns += 1;
        }
        if let Some(why) = &s.dropped {
            if s.dropped_at >= start {
                dropped_window += 1;
            } else {
                dropped_ramp += 1;
            }
            *drops.entry(why.clone()).or_default() += 1;
        }
        if let (Some(a), Some(b)) = (s.min_seq, s.max_seq) {
            min_seq = min_seq.min(a);
            max_seq = max_seq.max(b);
        }
        timed.extend_from_slice(&s.latencies_us);
    }
    // Sorted, the events fall in runs by second, each run sorted by latency.
    timed.sort_unstable();
    let timeline = timeline(&timed, args.timeline, args.duration);
    let mut lat: Vec<u32> = timed.iter().map(|t| *t as u32).collect();
    drop(timed);
    lat.sort_unstable();
    let source_events = if max_seq >= min_seq {
        max_seq - min_seq + 1
    } else {
        0
    };
    say(&format!(
        "connections: {established} established, {failed} failed, {dropped_ramp} dropped during the ramp, {dropped_window} dropped during the window, {zero_event_conns} with no event in the window"
    ));
    for (why, n) in &drops {
        say(&format!("connections: dropped: {n} × {why}"));
    }
    say(&format!(
        "events: {events} received in all, {window_events} in the {window_s:.1} s window = {:.0} deliveries/s",
        window_events as f64 / window_s
    ));
    say(&format!(
        "source: seq {}..{} seen in the window = {:.0} events/s produced",
        if source_events > 0 { min_seq } else { 0 },
        max_seq,
        source_events as f64 / window_s
    ));
    say(&format!(
        "latency ms (source → client read, {} events): p50 {:.2}, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
        lat.len(),
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0),
        percentile(&lat, 99.9),
        lat.last().map_or(f64::NAN, |m| *m as f64 / 1000.0)
    ));
    for line in timeline {
        say(&line);
    }
    say(&format!("violations: {violations}"));
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        say(&format!(
            "client CPU over the window: {:.1} s = {:.2} cores",
            b - a,
            (b - a) / window_s
        ));
    }
    say(&format!(
        "missing (sequence gaps): {missing}, out of order: {ooo}, malformed: {malformed}, resets: {resets}, heartbeats: {heartbeats}"
    ));
}

fn main() {
    let args = Args::parse();
    let hard = Duration::from_secs(args.ramp_timeout + args.duration + 30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let done = rt.block_on(async { tokio::time::timeout(hard, run(args)).await });
    if done.is_err() {
        say(&format!("error: hard stop after {} s", hard.as_secs()));
        std::process::exit(2);
    }
    // Don't wait for the sockets' tasks: exiting closes them.
    rt.shutdown_background();
}
