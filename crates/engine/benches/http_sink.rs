//! The `http` sink against a local axum server on the same machine: records/s one request per
//! record (`max_in_flight` 64) and in batches of 500 (JSON array, gzip), and the latency Weir
//! adds per record (source emit → server receipt), p50 and p99, measured by the server: at
//! full speed (where it is mostly queueing in the pipeline's buffers) and below saturation.
//!
//!     cargo bench -p weir-engine --bench http_sink
//!     HTTP_BENCH_RECORDS=50000 cargo bench -p weir-engine --bench http_sink

use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use weir_core::config::{BatchOptions, StageOptions};
use weir_core::{
    BuildContext, HumanDuration, PluginConfig, Record, Source, SourceContext, SourceError,
};
use weir_engine::Pipeline;
use weir_sinks::http::HttpSinkConfig;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Emits `n` records of about 250 bytes in batches of 500 (as fast as the pipeline takes them),
/// or at `rate` records/s in batches of 50, stamped with the time they leave.
struct Stamped(usize, Option<u64>);

#[async_trait]
impl Source for Stamped {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), SourceError> {
        let pad = "x".repeat(180);
        let step = if self.1.is_some() { 50 } else { 500 };
        let start = tokio::time::Instant::now();
        let mut i = 0;
        while i < self.0 {
            if let Some(rate) = self.1 {
                let due = start + std::time::Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
            }
            let end = (i + step).min(self.0);
            let batch = (i..end)
                .map(|s| {
                    Record::from_bytes(
                        serde_json::to_vec(&json!({"seq": s, "sent_ns": now_ns(), "pad": pad}))
                            .unwrap(),
                    )
                })
                .collect();
            cx.send(batch).await.map_err(|_| SourceError::Closed)?;
            i = end;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Seen {
    requests: u64,
    latencies_us: Vec<u64>,
}

async fn receive(seen: Arc<Mutex<Seen>>, headers: HeaderMap, body: Bytes) -> &'static str {
    let at = now_ns();
    let body = if headers.get("content-encoding").is_some() {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let items = match v {
        serde_json::Value::Array(a) => a,
        one => vec![one],
    };
    let mut s = seen.lock().unwrap();
    s.requests += 1;
    for it in items {
        let sent = it["sent_ns"].as_u64().unwrap();
        s.latencies_us.push(at.saturating_sub(sent) / 1000);
    }
    "ok"
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

async fn run(
    name: &str,
    n: usize,
    rate: Option<u64>,
    sink: serde_json::Value,
    in_flight: usize,
    batch: usize,
    max_wait_ms: u64,
) {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |h: HeaderMap, b: Bytes| receive(s.clone(), h, b));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut cfg = sink;
    cfg["url"] = json!(url);
    let options = StageOptions {
        batch: BatchOptions {
            max_records: batch,
            max_wait: HumanDuration::from_millis(max_wait_ms),
            ..BatchOptions::default()
        },
        max_in_flight: Some(in_flight),
        ..StageOptions::default()
    };
    let config: HttpSinkConfig = serde_json::from_value(cfg).unwrap();
    let sink = config
        .build(&BuildContext {
            options,
            ..BuildContext::for_test("bench", "http")
        })
        .unwrap();
    let pipeline = Pipeline::builder("bench")
        .source("stamped", Stamped(n, rate))
        .sink_with("http", Arc::from(sink), options)
        .build()
        .unwrap();
    let start = Instant::now();
    pipeline.run(CancellationToken::new()).await.unwrap();
    let elapsed = start.elapsed();
    server.abort();
    let mut s = seen.lock().unwrap();
    assert_eq!(s.latencies_us.len(), n, "{name}: every record arrived once");
    s.latencies_us.sort_unstable();
    println!(
        "{name:<34} {n:>8} records {:>9.0} records/s {:>8.0} requests/s   latency p50 {:>7.2} ms  p99 {:>7.2} ms",
        n as f64 / elapsed.as_secs_f64(),
        s.requests as f64 / elapsed.as_secs_f64(),
        pct(&s.latencies_us, 0.50),
        pct(&s.latencies_us, 0.99),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n: usize = std::env::var("HTTP_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Saturated: throughput; the latency is then mostly queueing in the pipeline's buffers.
        run(
            "unbatched, max_in_flight 64",
            n,
            None,
            json!({"idempotency_key": ""}),
            64,
            500,
            20,
        )
        .await;
        run(
            "batched 500, json_array, gzip",
            n * 10,
            None,
            json!({"batch_format": "json_array", "compression": "gzip"}),
            4,
            500,
            20,
        )
        .await;
        // Below saturation: the latency Weir adds.
        run(
            "unbatched at 10,000/s, max_wait 1ms",
            n / 2,
            Some(10_000),
            json!({"idempotency_key": ""}),
            64,
            500,
            1,
        )
        .await;
        run(
            "batched 500 at 100,000/s, max_wait 20ms",
            n * 5,
            Some(100_000),
            json!({"batch_format": "json_array", "compression": "gzip"}),
            4,
            500,
            20,
        )
        .await;
    });
}
