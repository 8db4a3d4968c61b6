//! Records per second through the whole topology on one core (a current-thread runtime):
//! passthrough (no parsing) and parse → filter → mask → serialize. ~270-byte JSON transactions.
//!
//!     cargo bench -p weir-engine --bench pipeline

mod fixtures;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fixtures::{Shape, corpus, pipeline};
use tokio_util::sync::CancellationToken;

const N: usize = 200_000;

// The same allocator as the `weir` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let records = corpus(N);
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
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let p = pipeline(&records, shape);
                        let start = Instant::now();
                        rt.block_on(p.run(CancellationToken::new())).unwrap();
                        start.elapsed()
                    })
                    .sum()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
