//! A fixed amount of work on the JSON path (parse → filter → mask → serialize) for profilers:
//!
//!     cargo build --release -p weir-engine --example profile_json_path
//!     valgrind --tool=callgrind target/release/examples/profile_json_path 30000

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let records = fixtures::corpus(n);
    let p = fixtures::pipeline(&records, fixtures::Shape::Full);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = std::time::Instant::now();
    rt.block_on(p.run(CancellationToken::new())).unwrap();
    eprintln!("{n} records in {:?}", t.elapsed());
}
