//! Records per second through the whole topology on one core (a current-thread runtime):
//! passthrough (no parsing) and parse → filter → mask → serialize. ~300-byte JSON transactions.
//!
//!     cargo bench -p weir-runner --bench pipeline

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use weir_core::config::{BatchOptions, StageOptions};
use weir_core::{
    BuildContext, HumanDuration, PluginConfig, Record, Sink, SinkError, Source, SourceContext,
    SourceError,
};
use weir_runner::Pipeline;
use weir_sources::generator::TransactionGenerator;

const N: usize = 200_000;

// The same allocator as the `weir` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Replays pre-generated records (cloning shares their bytes), 500 per batch.
struct Replay(Arc<Vec<Record>>);

#[async_trait]
impl Source for Replay {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), SourceError> {
        for chunk in self.0.chunks(500) {
            cx.send(chunk.to_vec())
                .await
                .map_err(|_| SourceError::Closed)?;
        }
        Ok(())
    }
}

/// Serializes every record into a reused buffer, as a network or file sink would, then discards it.
struct Serialize;

#[async_trait]
impl Sink for Serialize {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(records.len() * 320);
        for r in records {
            r.value.write_to(&mut buf);
            buf.push(b'\n');
        }
        std::hint::black_box(&buf);
        Ok(())
    }
}

fn corpus() -> Arc<Vec<Record>> {
    let mut g = TransactionGenerator::new(7, 0.03);
    let topic: Arc<str> = "bench".into();
    Arc::new((0..N).map(|i| g.record(&topic, i as i64)).collect())
}

fn opts() -> StageOptions {
    StageOptions {
        batch: BatchOptions {
            max_records: 500,
            max_bytes: 8 << 20,
            max_wait: HumanDuration::from_millis(50),
        },
        ..StageOptions::default()
    }
}

fn cx() -> BuildContext {
    BuildContext {
        pipeline: "bench".into(),
        component: "c".into(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Passthrough,
    Filter,
    FilterMask,
    Full,
}

fn run_once(rt: &tokio::runtime::Runtime, records: &Arc<Vec<Record>>, shape: Shape) -> Duration {
    let mut b = Pipeline::builder("bench").source("replay", Replay(records.clone()));
    if shape != Shape::Passthrough {
        let filter = weir_transforms::filter::FilterTransformConfig {
            patterns: vec![
                json!({"value": {"amount": [{"numeric": [">=", 0]}], "country": [{"anything-but": ["XX"]}]}}),
            ],
        };
        let mask: weir_transforms::fields::FieldsTransformConfig =
            serde_json::from_value(json!({"mask": ["value.card.number"], "keep_last": 4})).unwrap();
        b = b.transform_with(
            "filter",
            Arc::from(filter.build(&cx()).unwrap()),
            StageOptions::default(),
        );
        if shape != Shape::Filter {
            b = b.transform_with(
                "mask",
                Arc::from(mask.build(&cx()).unwrap()),
                StageOptions::default(),
            );
        }
        if shape == Shape::Full {
            b = b.sink_with("serialize", Arc::new(Serialize), opts());
        } else {
            let null = weir_sinks::null::NullSinkConfig {}.build(&cx()).unwrap();
            b = b.sink_with("null", Arc::from(null), opts());
        }
    } else {
        let null = weir_sinks::null::NullSinkConfig {}.build(&cx()).unwrap();
        b = b.sink_with("null", Arc::from(null), opts());
    }
    let p = b.build().unwrap();
    let start = Instant::now();
    rt.block_on(p.run(CancellationToken::new())).unwrap();
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let records = corpus();
    let avg = records
        .iter()
        .map(|r| r.value.to_bytes().len())
        .sum::<usize>()
        / N;
    eprintln!("corpus: {N} records, {avg} bytes on average");
    let mut g = c.benchmark_group("pipeline_one_core");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    for (name, shape) in [
        ("passthrough_null", Shape::Passthrough),
        ("parse_filter_null", Shape::Filter),
        ("parse_filter_mask_null", Shape::FilterMask),
        ("parse_filter_mask_serialize", Shape::Full),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run_once(&rt, &records, shape)).sum())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
