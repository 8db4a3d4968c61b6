//! `redis`: reads Redis streams in a consumer group, at least once: `XREADGROUP` hands out
//! entries, each is acknowledged with `XACK` only once its record is done, and entries a crashed
//! consumer left pending are taken over with `XAUTOCLAIM`.
//!
//! One task reads (its own connection, since `XREADGROUP ... BLOCK` holds the connection it
//! waits on) and sends batches; a second one takes the acks and sends `XACK` on the shared
//! connection. Acks are per entry, so nothing waits for an earlier record: a failed record
//! simply stays pending, to be claimed again after `claim_idle` or read again at the next start.

pub mod config;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Map, Value as Json};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weir_core::telemetry::ComponentTelemetry;
use weir_core::{
    AckReceiver, BuildContext, BuildError, Header, Origin, PluginConfig, Record, Source,
    SourceContext, SourceError,
};
use weir_redis::redis::{self, Value};
use weir_redis::streams::{Entry, autoclaim_reply, id_offset, parse_id, read_reply};
use weir_redis::{ConnectOptions, Failure, RedisClient};

pub use config::{RedisSourceConfig, StartFrom};

impl PluginConfig for RedisSourceConfig {
    const TYPE: &'static str = "redis";
    const SUMMARY: &'static str =
        "Read Redis streams in a consumer group (XREADGROUP), at least once";
    const EXAMPLE: &'static str = r#"type: redis
url: redis://127.0.0.1:6379
username: weir
password: "${REDIS_PASSWORD:-change-me}"
streams: [events]
group: weir-events
start_from: earliest
claim_idle: 5m
"#;
    type Output = dyn Source;

    fn build(self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let client = RedisClient::new(&ConnectOptions {
            url: &self.url,
            username: self.username.as_deref(),
            password: self.password.as_ref(),
            database: i64::from(self.database),
            tls: self.tls.as_ref(),
            timeout: self.timeout.into(),
            connect_timeout: self.connect_timeout.into(),
        })
        .map_err(|e| BuildError::at(e.option, e.message))?;
        if self.streams.is_empty() {
            return Err(BuildError::at("streams", "give at least one stream"));
        }
        if let Some(i) = self.streams.iter().position(|s| s.is_empty()) {
            return Err(BuildError::at(format!("streams[{i}]"), "empty stream name"));
        }
        if let Some(i) =
            (1..self.streams.len()).find(|&i| self.streams[..i].contains(&self.streams[i]))
        {
            return Err(BuildError::at(format!("streams[{i}]"), "listed twice"));
        }
        if self.group.is_empty() {
            return Err(BuildError::at("group", "must not be empty"));
        }
        if self.consumer.as_deref() == Some("") {
            return Err(BuildError::at("consumer", "must not be empty"));
        }
        if self.batch_records == 0 {
            return Err(BuildError::at("batch_records", "must be at least 1"));
        }
        if self.value_field.is_empty() {
            return Err(BuildError::at("value_field", "must not be empty"));
        }
        for (option, d) in [
            ("block", self.block),
            ("claim_idle", self.claim_idle),
            ("claim_interval", self.claim_interval),
        ] {
            if d.0.is_zero() {
                return Err(BuildError::at(option, "must be longer than 0s"));
            }
        }
        let consumer = self
            .consumer
            .clone()
            .unwrap_or_else(|| format!("weir-{}-{}-{}", hostname(), cx.pipeline, cx.component));
        let reader = client.dedicated(self.block.0);
        Ok(Box::new(RedisSource {
            streams: self.streams.iter().map(|s| Arc::from(s.as_str())).collect(),
            client: Arc::new(client),
            reader,
            consumer,
            config: self,
            telemetry: cx.telemetry.clone(),
        }))
    }
}

weir_core::register_plugin!(RedisSourceConfig);

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "weir".into())
}

/// The running source.
pub struct RedisSource {
    config: RedisSourceConfig,
    streams: Vec<Arc<str>>,
    /// Group set-up, claims and `XACK`.
    client: Arc<RedisClient>,
    /// Blocking reads only.
    reader: RedisClient,
    consumer: String,
    telemetry: ComponentTelemetry,
}

/// A stream entry's position: the stream and the entry id.
type Position = (Arc<str>, String);

/// What the reader and the ack task share: the positions of each batch sent, and every
/// position in flight (so a claim does not deliver twice what this source already has).
#[derive(Default)]
struct InFlight {
    batches: HashMap<u64, Vec<Position>>,
    positions: HashSet<Position>,
}

/// How a step of the read loop ended.
enum Step {
    Go,
    Stop,
}

impl RedisSource {
    fn name(&self, cx: &SourceContext) -> String {
        format!("{}/{}", cx.id.pipeline, cx.id.component)
    }

    /// Runs `f` until it succeeds, is refused, or shutdown: while Redis is unavailable the
    /// component is degraded and the attempt repeats with backoff (100 ms doubling to 5 s).
    async fn retrying<T, F, Fut>(
        &self,
        shutdown: &CancellationToken,
        what: &str,
        mut f: F,
    ) -> Result<Option<T>, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match f().await {
                Ok(v) => return Ok(Some(v)),
                Err(Failure::Refused(m)) => {
                    return Err(SourceError::Read(format!("{what}: {m}")));
                }
                Err(f) => {
                    let m = format!("{what}: {}; retrying", f.message());
                    tracing::warn!("{m}");
                    self.telemetry.health.degraded(m);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn query(client: &RedisClient, cmd: &redis::Cmd) -> Result<Value, Failure> {
        let mut con = client.connection().await?;
        match cmd.query_async::<Value>(&mut con).await {
            Ok(v) => Ok(v),
            Err(e) => Err(client.failure(&e).await),
        }
    }

    /// `XGROUP CREATE <stream> <group> $|0 MKSTREAM` for every stream; an existing group
    /// (`BUSYGROUP`) is left as it is.
    async fn create_groups(&self) -> Result<(), Failure> {
        let start = match self.config.start_from {
            StartFrom::Latest => "$",
            StartFrom::Earliest => "0",
        };
        for s in &self.streams {
            let mut c = redis::cmd("XGROUP");
            c.arg("CREATE")
                .arg(&**s)
                .arg(&self.config.group)
                .arg(start)
                .arg("MKSTREAM");
            match Self::query(&self.client, &c).await {
                Ok(_) => {
                    tracing::info!(stream = %s, group = %self.config.group, "created the consumer group at {start}");
                }
                Err(Failure::Refused(m)) if m.contains("BUSYGROUP") => {}
                Err(Failure::Refused(m)) => {
                    return Err(Failure::Refused(format!(
                        "cannot create the consumer group {} on stream {s}: {m}",
                        self.config.group
                    )));
                }
                Err(f) => return Err(f),
            }
        }
        Ok(())
    }

    fn xreadgroup(&self, streams: &[&Arc<str>], ids: &[&str], block: bool) -> redis::Cmd {
        let mut c = redis::cmd("XREADGROUP");
        c.arg("GROUP")
            .arg(&self.config.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.config.batch_records);
        if block {
            c.arg("BLOCK").arg(self.config.block.0.as_millis() as u64);
        }
        c.arg("STREAMS");
        for s in streams {
            c.arg(&***s);
        }
        for id in ids {
            c.arg(*id);
        }
        c
    }

    fn record(&self, stream: &Arc<str>, e: &Entry) -> Record {
        let fields = e.fields.as_deref().unwrap_or_default();
        let cfg = &self.config;
        let mut r = match e.field(&cfg.value_field) {
            Some(v) => Record::from_bytes(Bytes::copy_from_slice(v)),
            None => Record::from_json(Json::Object(
                fields
                    .iter()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(k).into_owned(),
                            Json::String(String::from_utf8_lossy(v).into_owned()),
                        )
                    })
                    .collect::<Map<String, Json>>(),
            )),
        };
        let has_value = e.field(&cfg.value_field).is_some();
        if has_value {
            for (k, v) in fields {
                if *k == cfg.value_field.as_bytes() {
                    continue;
                }
                if !cfg.key_field.is_empty() && *k == cfg.key_field.as_bytes() {
                    r.key = Some(Bytes::copy_from_slice(v));
                    continue;
                }
                let name = if cfg.headers_prefix.is_empty() {
                    &k[..]
                } else {
                    k.strip_prefix(cfg.headers_prefix.as_bytes()).unwrap_or(k)
                };
                r.headers.push(Header {
                    name: String::from_utf8_lossy(name).into_owned(),
                    value: Some(Bytes::copy_from_slice(v)),
                });
            }
        }
        r.headers.push(Header {
            name: "redis.id".into(),
            value: Some(Bytes::copy_from_slice(e.id.as_bytes())),
        });
        r.timestamp = parse_id(&e.id).and_then(|(ms, _)| i64::try_from(ms).ok());
        let offset = id_offset(&e.id).unwrap_or_else(|| {
            tracing::warn!(stream = %stream, id = %e.id, "the entry id does not fit an offset (a sequence of a million or more); the record's offset is 0, its redis.id header is exact");
            0
        });
        r.meta.origin = Some(Origin {
            topic: stream.clone(),
            partition: 0,
            offset,
        });
        r
    }

    /// Sends the entries as one batch, skipping those already in flight here; entries deleted
    /// from the stream while pending are acknowledged (there is nothing left to deliver).
    async fn deliver(
        &self,
        cx: &SourceContext,
        inflight: &Mutex<InFlight>,
        got: Vec<(Arc<str>, Vec<Entry>)>,
    ) -> Result<usize, SourceError> {
        let mut records = Vec::new();
        let mut positions = Vec::new();
        let mut gone: Vec<Position> = Vec::new();
        let mut state = inflight.lock().await;
        for (stream, entries) in got {
            for e in entries {
                let pos = (stream.clone(), e.id.clone());
                if state.positions.contains(&pos) {
                    continue;
                }
                if e.fields.is_none() {
                    gone.push(pos);
                    continue;
                }
                records.push(self.record(&stream, &e));
                positions.push(pos);
            }
        }
        let n = records.len();
        if n > 0 {
            for p in &positions {
                state.positions.insert(p.clone());
            }
            // The lock is held while sending, so the ack of a fast pipeline cannot arrive
            // before the batch is registered. Never abandoned half-way: a batch dropped
            // unsent would report its records done.
            let token = cx.send(records).await.map_err(|_| SourceError::Closed)?;
            state.batches.insert(token, positions);
        }
        drop(state);
        if !gone.is_empty() {
            tracing::warn!(
                "{} pending entries were deleted from their stream before delivery (trimmed?); acknowledging them",
                gone.len()
            );
            let _ = xack(&self.client, &self.config.group, &gone).await;
        }
        Ok(n)
    }

    /// Reads this consumer's own pending entries (delivered before a restart, never
    /// acknowledged), stream by stream from the start of its pending list.
    async fn own_pending(
        &self,
        cx: &SourceContext,
        inflight: &Mutex<InFlight>,
    ) -> Result<Step, SourceError> {
        for s in &self.streams {
            let mut after = "0".to_owned();
            loop {
                let cmd = self.xreadgroup(&[s], &[&after], false);
                let Some(v) = self
                    .retrying(
                        &cx.shutdown,
                        "reading this consumer's pending entries",
                        || Self::query(&self.client, &cmd),
                    )
                    .await?
                else {
                    return Ok(Step::Stop);
                };
                let got = read_reply(&v).map_err(|e| SourceError::Read(e.to_string()))?;
                let entries: Vec<Entry> = got.into_iter().flat_map(|(_, es)| es).collect();
                let Some(last) = entries.last() else { break };
                after = last.id.clone();
                let n = entries.len();
                self.deliver(cx, inflight, vec![(s.clone(), entries)])
                    .await?;
                tracing::info!(stream = %s, "re-read {n} entries this consumer had not acknowledged");
            }
        }
        Ok(Step::Go)
    }

    /// `XAUTOCLAIM` of every entry pending longer than `claim_idle`, any consumer's.
    async fn claim(
        &self,
        cx: &SourceContext,
        inflight: &Mutex<InFlight>,
    ) -> Result<Step, SourceError> {
        let idle = self.config.claim_idle.0.as_millis() as u64;
        for s in &self.streams {
            let mut cursor = "0-0".to_owned();
            loop {
                let mut cmd = redis::cmd("XAUTOCLAIM");
                cmd.arg(&**s)
                    .arg(&self.config.group)
                    .arg(&self.consumer)
                    .arg(idle)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(self.config.batch_records);
                let Some(v) = self
                    .retrying(&cx.shutdown, "claiming idle pending entries", || {
                        Self::query(&self.client, &cmd)
                    })
                    .await?
                else {
                    return Ok(Step::Stop);
                };
                let (next, entries) =
                    autoclaim_reply(&v).map_err(|e| SourceError::Read(e.to_string()))?;
                let n = self
                    .deliver(cx, inflight, vec![(s.clone(), entries)])
                    .await?;
                if n > 0 {
                    tracing::info!(stream = %s, "took over {n} entries pending for more than {}", self.config.claim_idle);
                }
                if next == "0-0" || cx.shutdown.is_cancelled() {
                    break;
                }
                cursor = next;
            }
        }
        Ok(Step::Go)
    }

    async fn read_loop(
        &self,
        cx: &SourceContext,
        inflight: &Mutex<InFlight>,
    ) -> Result<(), SourceError> {
        let Some(()) = self
            .retrying(&cx.shutdown, "creating the consumer group", || {
                self.create_groups()
            })
            .await?
        else {
            return Ok(());
        };
        if let Step::Stop = self.own_pending(cx, inflight).await? {
            return Ok(());
        }
        let streams: Vec<&Arc<str>> = self.streams.iter().collect();
        let news: Vec<&str> = vec![">"; streams.len()];
        let read = self.xreadgroup(&streams, &news, true);
        let mut next_claim = Instant::now();
        let mut backoff = Duration::from_millis(100);
        while !cx.shutdown.is_cancelled() {
            if Instant::now() >= next_claim {
                if let Step::Stop = self.claim(cx, inflight).await? {
                    break;
                }
                next_claim = Instant::now() + self.config.claim_interval.0;
            }
            let reply = tokio::select! {
                // Entries Redis hands out to a read abandoned here stay pending for this
                // consumer and are read again at its next start (or claimed).
                _ = cx.shutdown.cancelled() => break,
                r = Self::query(&self.reader, &read) => r,
            };
            match reply {
                Ok(v) => {
                    backoff = Duration::from_millis(100);
                    let got = read_reply(&v).map_err(|e| SourceError::Read(e.to_string()))?;
                    let got: Vec<(Arc<str>, Vec<Entry>)> = got
                        .into_iter()
                        .filter_map(|(name, es)| {
                            let s = self.streams.iter().find(|s| ***s == *name)?;
                            Some((s.clone(), es))
                        })
                        .collect();
                    self.telemetry.health.ok();
                    self.deliver(cx, inflight, got).await?;
                }
                // The group (or the stream) was deleted: create it again.
                Err(Failure::Refused(m)) if m.contains("NOGROUP") => {
                    tracing::warn!("{m}: creating the consumer group again");
                    let Some(()) = self
                        .retrying(&cx.shutdown, "creating the consumer group", || {
                            self.create_groups()
                        })
                        .await?
                    else {
                        break;
                    };
                }
                Err(Failure::Refused(m)) => {
                    return Err(SourceError::Read(format!("reading the streams: {m}")));
                }
                Err(f) => {
                    let m = format!("reading the streams: {}; retrying", f.message());
                    tracing::warn!("{m}");
                    self.telemetry.health.degraded(m);
                    tokio::select! {
                        _ = cx.shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        Ok(())
    }
}

/// `XACK` of these positions, one command per stream, in one round trip.
async fn xack(client: &RedisClient, group: &str, done: &[Position]) -> Result<(), Failure> {
    let mut by_stream: HashMap<&str, Vec<&str>> = HashMap::new();
    for (s, id) in done {
        by_stream.entry(s).or_default().push(id);
    }
    let mut pipe = redis::pipe();
    for (s, ids) in by_stream {
        pipe.cmd("XACK").arg(s).arg(group).arg(ids).ignore();
    }
    let mut con = client.connection().await?;
    match pipe.query_async::<()>(&mut con).await {
        Ok(()) => Ok(()),
        Err(e) => Err(client.failure(&e).await),
    }
}

/// Takes the acks, acknowledges what is done with `XACK` (retrying while Redis is away), and
/// once `stop` is cancelled waits up to `drain` for what is still in flight.
async fn ack_loop(
    client: Arc<RedisClient>,
    group: String,
    mut acks: AckReceiver,
    inflight: Arc<Mutex<InFlight>>,
    stop: CancellationToken,
    drain: Duration,
    name: String,
) {
    let mut done: Vec<Position> = Vec::new();
    let mut deadline: Option<Instant> = None;
    loop {
        let idle = done.is_empty() && deadline.is_none();
        tokio::select! {
            biased;
            a = acks.recv() => match a {
                Some(a) => {
                    let mut state = inflight.lock().await;
                    if let Some(positions) = state.batches.remove(&a.token) {
                        for (pos, status) in positions.into_iter().zip(a.statuses) {
                            state.positions.remove(&pos);
                            // A failed record stays pending: claimed again after
                            // claim_idle, or read again at the next start.
                            if status.is_done() {
                                done.push(pos);
                            }
                        }
                    }
                }
                None => break,
            },
            _ = stop.cancelled(), if deadline.is_none() => {
                deadline = Some(Instant::now() + drain);
            }
            _ = tokio::time::sleep(Duration::from_millis(200)), if !idle => {}
        }
        // Take every ack already there before the round trip.
        while let Some(a) = acks.try_recv() {
            let mut state = inflight.lock().await;
            if let Some(positions) = state.batches.remove(&a.token) {
                for (pos, status) in positions.into_iter().zip(a.statuses) {
                    state.positions.remove(&pos);
                    if status.is_done() {
                        done.push(pos);
                    }
                }
            }
        }
        if !done.is_empty() {
            match xack(&client, &group, &done).await {
                Ok(()) => done.clear(),
                Err(f) => {
                    tracing::warn!(source = %name, "XACK of {} entries failed (kept for the next try): {}", done.len(), f.message())
                }
            }
        }
        if let Some(d) = deadline {
            let waiting = inflight.lock().await.positions.len();
            if waiting == 0 && done.is_empty() {
                break;
            }
            if Instant::now() >= d {
                tracing::warn!(
                    source = %name,
                    "shutdown: {} records still in flight and {} not acknowledged after {:?}; they stay pending and are delivered again",
                    waiting,
                    done.len(),
                    drain
                );
                break;
            }
        }
    }
}

#[async_trait]
impl Source for RedisSource {
    async fn run(self: Box<Self>, mut cx: SourceContext) -> Result<(), SourceError> {
        let name = self.name(&cx);
        let acks = cx
            .take_acks()
            .ok_or_else(|| SourceError::Other("the ack receiver was already taken".into()))?;
        let inflight = Arc::new(Mutex::new(InFlight::default()));
        let stop = CancellationToken::new();
        let acker = tokio::spawn(ack_loop(
            self.client.clone(),
            self.config.group.clone(),
            acks,
            inflight.clone(),
            stop.clone(),
            self.config.drain_timeout.0,
            name.clone(),
        ));
        tracing::info!(source = %name, group = %self.config.group, consumer = %self.consumer, "reading streams {:?}", self.config.streams);
        let result = self.read_loop(&cx, &inflight).await;
        // Shutdown: stop sending, let what is in flight finish and be acknowledged.
        cx.close_output();
        stop.cancel();
        let _ = acker.await;
        tracing::info!(source = %name, "redis source stopped");
        result
    }
}
