//! The streams of this process: each a bounded ring of encoded events and the clients reading
//! it. A stream outlives the sink that feeds it across a reload (the new sink takes the same
//! stream, ring and clients), and is closed a grace period after its last sink is gone.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_core::Record;
use weir_core::telemetry::{Counter, Gauge};
use weir_transforms::filter::FilterTransform;

use super::auth::Authenticator;
use super::id::{self, EventId, PartKey, SYNTHETIC};

/// How long a stream without a sink keeps its ring and clients (a reload replaces the sink
/// within this time).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(10);

/// What a stream's clients are served with; replaced whole when the sink is rebuilt.
pub struct Settings {
    /// JWT checks, if the stream is not public.
    pub auth: Option<Authenticator>,
    /// Allowed origins.
    pub cors_origins: Vec<String>,
    /// Comment heartbeat period.
    pub heartbeat: Duration,
    /// `retry:` sent on connect.
    pub retry: Duration,
    /// Bytes a client may have waiting.
    pub client_queue_bytes: usize,
    /// Most clients.
    pub max_clients: usize,
    /// Ring limits.
    pub ring_max_events: usize,
    /// Ring limits.
    pub ring_max_bytes: usize,
}

/// The stream's metrics, from the sink that feeds it.
#[derive(Clone)]
pub struct Metrics {
    /// Clients connected.
    pub clients: Gauge,
    /// Clients disconnected for falling behind.
    pub slow: Counter,
    /// Clients disconnected when their token expired.
    pub expired: Counter,
    /// Clients whose position was gone (sent `event: reset`).
    pub resets: Counter,
    /// Events in the ring.
    pub ring_events: Gauge,
}

/// An event as the ring holds it.
pub struct Event {
    /// Its sequence number in the ring.
    pub seq: u64,
    /// Its id (as sent).
    pub id: Arc<str>,
    /// Its source partition.
    pub key: PartKey,
    /// Its source offset.
    pub offset: i64,
    /// Milliseconds since the epoch: the record's timestamp, else when it arrived.
    pub time_ms: i64,
    /// Its tenant.
    pub tenant: Option<Arc<str>>,
    /// The whole encoded event, `id:` to the blank line.
    pub frame: Bytes,
    /// The record as filters see it (its bytes, no parsed tree, no ack).
    pub view: Record,
    /// What it costs the ring: the frame and the record's bytes kept for filters.
    pub cost: usize,
}

/// An event before it enters the ring (rendered outside the stream's lock).
pub struct Draft {
    /// Source partition and offset (`None`: the record has no source position).
    pub position: Option<(PartKey, i64)>,
    /// Event time.
    pub time_ms: i64,
    /// Tenant.
    pub tenant: Option<Arc<str>>,
    /// `event:` name.
    pub event: String,
    /// `data:` text.
    pub data: String,
    /// For filters.
    pub view: Record,
}

struct Client {
    tx: mpsc::UnboundedSender<Arc<Event>>,
    queued: Arc<AtomicUsize>,
    filter: Option<Arc<FilterTransform>>,
    tenant: Option<Arc<str>>,
}

#[derive(Default)]
struct Inner {
    ring: VecDeque<Arc<Event>>,
    bytes: usize,
    next_seq: u64,
    vector: BTreeMap<PartKey, i64>,
    /// Per partition, the highest offset the ring does not hold although it may have existed:
    /// evicted, or before the first one this stream saw.
    floor: HashMap<PartKey, i64>,
    evicted_any: bool,
    clients: HashMap<u64, Client>,
    by_tenant: HashMap<Arc<str>, HashSet<u64>>,
    unrestricted: HashSet<u64>,
    next_client: u64,
}

/// Who feeds a stream.
struct Owner {
    pipeline: String,
    sinks: usize,
}

/// One stream.
pub struct Stream {
    /// Its name.
    pub name: String,
    epoch: u64,
    created_ms: i64,
    settings: RwLock<Arc<Settings>>,
    metrics: RwLock<Option<Metrics>>,
    inner: Mutex<Inner>,
    owner: Mutex<Owner>,
    /// Cancelled when the stream is closed: every client's response ends.
    pub closed: CancellationToken,
    listener: Mutex<Option<(SocketAddr, CancellationToken)>>,
}

/// Where a client starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// With the next event.
    Live,
    /// After this id (`Last-Event-ID`); `None` when the text was not an id.
    After(Option<EventId>),
    /// From this time (milliseconds since the epoch).
    Since(i64),
}

/// Why a client was told `event: reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// Its position is older than the ring.
    PositionGone,
    /// The id was not one this stream wrote.
    UnknownId,
    /// The time is older than the ring.
    SinceBeforeRing,
}

impl ResetReason {
    fn as_str(self) -> &'static str {
        match self {
            ResetReason::PositionGone => "position_gone",
            ResetReason::UnknownId => "unknown_id",
            ResetReason::SinceBeforeRing => "since_before_ring",
        }
    }
}

/// A subscription: what to send first, then the live queue.
pub struct Subscription {
    /// `event: reset`, when the start position is gone.
    pub reset: Option<Bytes>,
    /// Events from the ring after the start position, in order.
    pub backlog: Vec<Arc<Event>>,
    /// Live events.
    pub rx: mpsc::UnboundedReceiver<Arc<Event>>,
    /// Bytes in `rx`.
    pub queued: Arc<AtomicUsize>,
    /// Removes the client when dropped.
    pub guard: ClientGuard,
}

/// Removes its client from the stream when dropped.
pub struct ClientGuard {
    stream: Arc<Stream>,
    id: u64,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let mut inner = self.stream.inner.lock().unwrap_or_else(|e| e.into_inner());
        remove_client(&mut inner, self.id);
        let n = inner.clients.len();
        drop(inner);
        if let Some(m) = self.stream.metrics() {
            m.clients.set(n as i64);
        }
    }
}

fn remove_client(inner: &mut Inner, id: u64) {
    if let Some(c) = inner.clients.remove(&id) {
        match &c.tenant {
            Some(t) => {
                if let Some(set) = inner.by_tenant.get_mut(t) {
                    set.remove(&id);
                    if set.is_empty() {
                        inner.by_tenant.remove(t);
                    }
                }
            }
            None => {
                inner.unrestricted.remove(&id);
            }
        }
    }
}

/// The stream is full of clients.
#[derive(Debug)]
pub struct TooManyClients(pub usize);

/// A copy of a kept record with its value parsed, for filters (a value that is not JSON is
/// matched as absent).
fn parse(kept: &Record) -> Record {
    let mut r = kept.clone();
    let _ = r.value.json();
    r
}

fn encode_frame(id: &str, event: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(id.len() + event.len() + data.len() + 32);
    out.push_str("id: ");
    out.push_str(id);
    out.push_str("\nevent: ");
    out.push_str(event);
    out.push('\n');
    // A line break inside the data would end the field: each line is a `data:` of its own,
    // which clients join with "\n" again.
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// Field values must not hold line breaks (they would start another field).
pub fn single_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

impl Stream {
    pub(crate) fn new(name: &str, pipeline: &str, settings: Settings) -> Stream {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // Distinct per stream and process: the time, the process and the name mixed.
        let epoch =
            (nanos ^ (u64::from(std::process::id()) << 40) ^ u64::from(id::topic_hash(name)))
                & 0x000f_ffff_ffff_ffff;
        Stream {
            name: name.to_owned(),
            epoch,
            created_ms: weir_core::time::now_millis(),
            settings: RwLock::new(Arc::new(settings)),
            metrics: RwLock::new(None),
            inner: Mutex::new(Inner::default()),
            owner: Mutex::new(Owner {
                pipeline: pipeline.to_owned(),
                sinks: 0,
            }),
            closed: CancellationToken::new(),
            listener: Mutex::new(None),
        }
    }

    /// The current settings.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current metrics, once a sink gave them.
    pub fn metrics(&self) -> Option<Metrics> {
        self.metrics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts events into the ring and hands them to the clients they are for. Clients that
    /// cannot take them (their queue is full) are disconnected.
    pub fn publish(&self, drafts: Vec<Draft>) {
        let settings = self.settings();
        let metrics = self.metrics();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // A client is behind when more than its limit still waits as a batch arrives (checked
        // per batch, not per event: a batch is handed over whole, and a client cannot read in
        // the middle of one). Its queue holds at most the limit plus one batch.
        let slow: Vec<u64> = inner
            .clients
            .iter()
            .filter(|(_, c)| c.queued.load(Ordering::Acquire) > settings.client_queue_bytes)
            .map(|(id, _)| *id)
            .collect();
        for cid in &slow {
            remove_client(&mut inner, *cid);
        }
        for d in drafts {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let (key, offset) = d.position.unwrap_or((SYNTHETIC, seq as i64));
            if !inner.vector.contains_key(&key) {
                inner.floor.insert(key, offset - 1);
            }
            inner.vector.insert(key, offset);
            let id: Arc<str> = id::encode(self.epoch, seq, &inner.vector).into();
            let frame = encode_frame(&id, &d.event, &d.data);
            let cost = frame.len() + d.view.approx_size();
            let ev = Arc::new(Event {
                cost,
                seq,
                id,
                key,
                offset,
                time_ms: d.time_ms,
                tenant: d.tenant,
                frame,
                view: d.view,
            });
            inner.bytes += ev.cost;
            inner.ring.push_back(ev.clone());
            while inner.ring.len() > settings.ring_max_events.max(1)
                || (inner.bytes > settings.ring_max_bytes && inner.ring.len() > 1)
            {
                let Some(old) = inner.ring.pop_front() else {
                    break;
                };
                inner.bytes -= old.cost;
                let f = inner.floor.entry(old.key).or_insert(i64::MIN);
                *f = (*f).max(old.offset);
                inner.evicted_any = true;
            }
            let len = ev.frame.len();
            let targets = inner
                .unrestricted
                .iter()
                .chain(
                    ev.tenant
                        .as_ref()
                        .and_then(|t| inner.by_tenant.get(t))
                        .into_iter()
                        .flatten(),
                )
                .copied()
                .collect::<Vec<_>>();
            // Parsed once per event, and only if a client filters.
            let mut parsed: Option<Record> = None;
            for cid in targets {
                let Some(c) = inner.clients.get(&cid) else {
                    continue;
                };
                if let Some(f) = &c.filter
                    && !f.matches_parsed(parsed.get_or_insert_with(|| parse(&ev.view)))
                {
                    continue;
                }
                if c.tx.send(ev.clone()).is_ok() {
                    c.queued.fetch_add(len, Ordering::AcqRel);
                } else {
                    // Its response is gone; its guard removes it too.
                    remove_client(&mut inner, cid);
                }
            }
        }
        let (clients, held) = (inner.clients.len(), inner.ring.len());
        drop(inner);
        if let Some(m) = metrics {
            m.slow.inc(slow.len() as u64);
            m.clients.set(clients as i64);
            m.ring_events.set(held as i64);
        }
        if !slow.is_empty() {
            tracing::info!(
                stream = %self.name,
                clients = slow.len(),
                "disconnected SSE clients that fell behind (they can resume by their last id)"
            );
        }
    }

    /// Adds a client. Its backlog and its registration for live events are taken under one
    /// lock, so it gets every event once, with no gap between the two.
    pub fn subscribe(
        self: &Arc<Self>,
        start: Start,
        tenant: Option<Arc<str>>,
        filter: Option<Arc<FilterTransform>>,
    ) -> Result<Subscription, TooManyClients> {
        let settings = self.settings();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.clients.len() >= settings.max_clients {
            return Err(TooManyClients(settings.max_clients));
        }
        let (from, reset) = self.start_index(&inner, &start);
        let visible = |e: &Event| {
            (tenant.is_none() || e.tenant == tenant)
                && filter
                    .as_ref()
                    .is_none_or(|f| f.matches_parsed(&parse(&e.view)))
        };
        let backlog = match from {
            Some(i) => inner
                .ring
                .range(i..)
                .filter(|e| visible(e))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let reset = reset.map(|why| {
            let newest = inner.ring.back();
            let oldest = inner.ring.front().map(|e| {
                weir_core::time::rfc3339(
                    UNIX_EPOCH + Duration::from_millis(e.time_ms.max(0) as u64),
                )
            });
            let data = json!({"reason": why.as_str(), "oldest_held": oldest}).to_string();
            let mut out = String::new();
            if let Some(n) = newest {
                out.push_str("id: ");
                out.push_str(&n.id);
                out.push('\n');
            }
            out.push_str("event: reset\ndata: ");
            out.push_str(&data);
            out.push_str("\n\n");
            Bytes::from(out)
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let cid = inner.next_client;
        inner.next_client += 1;
        match &tenant {
            Some(t) => {
                inner.by_tenant.entry(t.clone()).or_default().insert(cid);
            }
            None => {
                inner.unrestricted.insert(cid);
            }
        }
        inner.clients.insert(
            cid,
            Client {
                tx,
                queued: queued.clone(),
                filter,
                tenant,
            },
        );
        let n = inner.clients.len();
        drop(inner);
        if let Some(m) = self.metrics() {
            m.clients.set(n as i64);
            if reset.is_some() {
                m.resets.inc(1);
            }
        }
        Ok(Subscription {
            reset,
            backlog,
            rx,
            queued,
            guard: ClientGuard {
                stream: self.clone(),
                id: cid,
            },
        })
    }

    /// The ring index to start at (`None`: live), and whether the client must be told its
    /// position is gone.
    fn start_index(&self, inner: &Inner, start: &Start) -> (Option<usize>, Option<ResetReason>) {
        let first_seq = inner.ring.front().map(|e| e.seq).unwrap_or(inner.next_seq);
        match start {
            Start::Live => (None, None),
            Start::After(None) => (None, Some(ResetReason::UnknownId)),
            Start::After(Some(at)) if at.epoch == self.epoch => {
                if at.seq >= inner.next_seq {
                    (None, Some(ResetReason::UnknownId))
                } else if at.seq + 1 >= first_seq {
                    (Some((at.seq + 1 - first_seq) as usize), None)
                } else {
                    (None, Some(ResetReason::PositionGone))
                }
            }
            Start::After(Some(at)) => {
                // Another epoch (the process restarted, or the stream was recreated): what the
                // client has seen is its vector; the ring resumes where the source did.
                if at.vector.contains_key(&SYNTHETIC) || inner.floor.contains_key(&SYNTHETIC) {
                    return (None, Some(ResetReason::PositionGone));
                }
                let gap = inner
                    .floor
                    .iter()
                    .any(|(k, floor)| at.vector.get(k).copied().unwrap_or(-1) < *floor);
                if gap {
                    return (None, Some(ResetReason::PositionGone));
                }
                let i = inner
                    .ring
                    .iter()
                    .position(|e| e.offset > at.vector.get(&e.key).copied().unwrap_or(-1));
                (Some(i.unwrap_or(inner.ring.len())), None)
            }
            Start::Since(ms) => {
                let complete = !inner.evicted_any && *ms >= self.created_ms;
                let held = inner.ring.front().is_some_and(|e| *ms >= e.time_ms);
                if !(complete || held) {
                    return (None, Some(ResetReason::SinceBeforeRing));
                }
                let i = inner.ring.iter().position(|e| e.time_ms >= *ms);
                (Some(i.unwrap_or(inner.ring.len())), None)
            }
        }
    }
}

/// A sink's hold on its stream; the stream is released when the last one is dropped.
pub struct Lease {
    /// The stream.
    pub stream: Arc<Stream>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut owner = self.stream.owner.lock().unwrap_or_else(|e| e.into_inner());
        owner.sinks = owner.sinks.saturating_sub(1);
        if owner.sinks > 0 {
            return;
        }
        drop(owner);
        let stream = self.stream.clone();
        let release = move || {
            let owner = stream.owner.lock().unwrap_or_else(|e| e.into_inner());
            if owner.sinks == 0 {
                drop(owner);
                HUB.remove(&stream);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    tokio::time::sleep(ORPHAN_GRACE).await;
                    release();
                });
            }
            Err(_) => release(),
        }
    }
}

/// Another pipeline feeds the stream.
#[derive(Debug)]
pub struct Taken {
    /// The pipeline that feeds it.
    pub by: String,
}

/// The process's streams.
#[derive(Default)]
pub struct Hub {
    streams: Mutex<HashMap<String, Arc<Stream>>>,
}

/// The one hub of this process.
pub static HUB: LazyLock<Hub> = LazyLock::new(Hub::default);

impl Hub {
    /// The stream `name`, made if needed, leased to `pipeline`'s sink with new settings.
    pub fn lease(
        &self,
        name: &str,
        pipeline: &str,
        settings: Settings,
        metrics: Metrics,
    ) -> Result<Lease, Taken> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let stream = match streams.get(name) {
            Some(s) => {
                let mut owner = s.owner.lock().unwrap_or_else(|e| e.into_inner());
                if owner.sinks > 0 && owner.pipeline != pipeline {
                    return Err(Taken {
                        by: owner.pipeline.clone(),
                    });
                }
                owner.pipeline = pipeline.to_owned();
                owner.sinks += 1;
                drop(owner);
                *s.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
                s.clone()
            }
            None => {
                let s = Arc::new(Stream::new(name, pipeline, settings));
                s.owner.lock().unwrap_or_else(|e| e.into_inner()).sinks = 1;
                streams.insert(name.to_owned(), s.clone());
                s
            }
        };
        *stream.metrics.write().unwrap_or_else(|e| e.into_inner()) = Some(metrics);
        Ok(Lease { stream })
    }

    /// The stream `name`, if one is fed.
    pub fn get(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn remove(&self, stream: &Arc<Stream>) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if streams
            .get(&stream.name)
            .is_some_and(|s| Arc::ptr_eq(s, stream))
        {
            streams.remove(&stream.name);
        }
        drop(streams);
        stream.closed.cancel();
        if let Some((_, stop)) = stream
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            stop.cancel();
        }
    }

    /// Ends every client's response (the process is shutting down).
    pub fn close_all(&self) {
        let streams: Vec<_> = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for s in streams {
            s.closed.cancel();
        }
    }
}

impl Stream {
    /// The address of the stream's own listener, and a token that stops it, replacing the one
    /// it had. Returns `false` when it already listens there.
    pub fn set_listener(&self, addr: Option<SocketAddr>, stop: CancellationToken) -> bool {
        let mut l = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(a), Some((have, _))) = (addr, l.as_ref())
            && *have == a
        {
            return false;
        }
        if let Some((_, old)) = l.take() {
            old.cancel();
        }
        if let Some(a) = addr {
            *l = Some((a, stop));
        }
        true
    }
}
