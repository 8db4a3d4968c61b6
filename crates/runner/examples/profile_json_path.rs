//! A fixed amount of work on the JSON path (parse → filter → mask → serialize) for profilers:
//!
//!     cargo build --release -p weir-runner --example profile_json_path
//!     valgrind --tool=callgrind target/release/examples/profile_json_path 50000

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use weir_core::config::StageOptions;
use weir_core::{
    BuildContext, PluginConfig, Record, Sink, SinkError, Source, SourceContext, SourceError,
};
use weir_sources::generator::TransactionGenerator;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Replay(Vec<Record>);

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

struct Serialize;

#[async_trait]
impl Sink for Serialize {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(records.len() * 320);
        for r in records {
            r.value.write_to(&mut buf);
        }
        std::hint::black_box(&buf);
        Ok(())
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let mut g = TransactionGenerator::new(7, 0.03);
    let topic: Arc<str> = "p".into();
    let records: Vec<Record> = (0..n).map(|i| g.record(&topic, i as i64)).collect();
    let cx = BuildContext {
        pipeline: "p".into(),
        component: "c".into(),
    };
    let filter = weir_transforms::filter::FilterTransformConfig {
        patterns: vec![
            json!({"value": {"amount": [{"numeric": [">=", 0]}], "country": [{"anything-but": ["XX"]}]}}),
        ],
    };
    let mask: weir_transforms::fields::FieldsTransformConfig =
        serde_json::from_value(json!({"mask": ["value.card.number"], "keep_last": 4})).unwrap();
    let p = weir_runner::Pipeline::builder("p")
        .source("replay", Replay(records))
        .transform_with(
            "filter",
            Arc::from(filter.build(&cx).unwrap()),
            StageOptions::default(),
        )
        .transform_with(
            "mask",
            Arc::from(mask.build(&cx).unwrap()),
            StageOptions::default(),
        )
        .sink_with("serialize", Arc::new(Serialize), StageOptions::default())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = std::time::Instant::now();
    rt.block_on(p.run(CancellationToken::new())).unwrap();
    eprintln!("{n} records in {:?}", t.elapsed());
}
