//! A fixed amount of work on the JSON path for profilers, one of the four shapes of the
//! criterion bench (`passthrough`, `filter`, `mask`, `full`: parse → filter → mask → serialize):
//!
//!     cargo build --release -p weir-engine --example profile_json_path
//!     valgrind --tool=callgrind target/release/examples/profile_json_path 30000 full
//!
//! Instructions per record are the difference between two record counts divided by the
//! difference in records (that removes start-up and the corpus generation's fixed part).

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let shape = match args.next().as_deref().unwrap_or("full") {
        "passthrough" => fixtures::Shape::Passthrough,
        "filter" => fixtures::Shape::Filter,
        "mask" => fixtures::Shape::FilterMask,
        "full" => fixtures::Shape::Full,
        other => {
            eprintln!("unknown shape {other:?}: passthrough, filter, mask or full");
            std::process::exit(2);
        }
    };
    let records = fixtures::corpus(n);
    let p = fixtures::pipeline(&records, shape);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = std::time::Instant::now();
    rt.block_on(p.run(CancellationToken::new())).unwrap();
    eprintln!("{n} records in {:?}", t.elapsed());
}
