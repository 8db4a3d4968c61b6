//! Avro decode → filter → JSON encode beside JSON → filter → JSON, on the same 20-field card
//! transactions, one core. The Avro path is Weir's source converter (Confluent wire format,
//! schema from the converter's cache, Avro → JSON mapping) followed by the `filter` transform
//! and the JSON a sink writes; the JSON path is the same filter on the same data as JSON text,
//! written out unchanged (what Weir does with an unmodified JSON value) or re-serialized.
//!
//!     cargo bench -p weir-formats --bench avro_vs_json

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value as Json, json};
use weir_core::config::format::{FormatKind, FormatSpec, SchemaRegistryConfig};
use weir_core::{Flow, Record, Transform};
use weir_formats::SourceConverter;
use weir_formats::avro_json::Compiled;
use weir_formats::registry::SchemaRegistryClient;
use weir_transforms::filter::FilterTransform;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: usize = 50_000;
const SCHEMA_ID: u32 = 7;

const SCHEMA: &str = r#"{"type": "record", "name": "Payment", "namespace": "bench", "fields": [
  {"name": "id", "type": "string"},
  {"name": "seq", "type": "long"},
  {"name": "account", "type": "string"},
  {"name": "amount", "type": "double"},
  {"name": "currency", "type": {"type": "enum", "name": "Currency", "symbols": ["EUR", "USD", "GBP"]}},
  {"name": "country", "type": "string"},
  {"name": "city", "type": "string"},
  {"name": "merchant", "type": "string"},
  {"name": "category", "type": {"type": "enum", "name": "Category", "symbols": ["grocery", "travel", "electronics", "gambling"]}},
  {"name": "card_present", "type": "boolean"},
  {"name": "channel", "type": {"type": "enum", "name": "Channel", "symbols": ["pos", "web", "app"]}},
  {"name": "device", "type": ["null", "string"], "default": null},
  {"name": "ip", "type": "string"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "risk", "type": "int"},
  {"name": "score", "type": "double"},
  {"name": "installments", "type": "int"},
  {"name": "reference", "type": "string"},
  {"name": "tags", "type": {"type": "array", "items": "string"}},
  {"name": "flagged", "type": "boolean"}
]}"#;

fn payment(i: usize) -> Json {
    json!({
        "id": format!("tx-{i:08}"),
        "seq": i,
        "account": format!("acct-{:06}", i * 7919 % 1_000_000),
        "amount": (i * 37 % 50_000) as f64 / 10.0,
        "currency": (["EUR", "USD", "GBP"][i % 3]),
        "country": (["NL", "DE", "FR", "US", "GB"][i % 5]),
        "city": (["Amsterdam", "Berlin", "Paris", "Boston", "Leeds"][i % 5]),
        "merchant": format!("merchant-{}", i % 997),
        "category": (["grocery", "travel", "electronics", "gambling"][i % 4]),
        "card_present": !i.is_multiple_of(3),
        "channel": (["pos", "web", "app"][i % 3]),
        "device": if i.is_multiple_of(4) { Json::Null } else { json!(format!("dev-{}", i % 311)) },
        "ip": format!("10.{}.{}.{}", i % 256, i / 256 % 256, i % 7),
        "ts": 1_795_000_000_000u64 + i as u64 * 1234,
        "risk": (i % 100) as i64,
        "score": (i % 1000) as f64 / 1000.0,
        "installments": (i % 12) as i64,
        "reference": format!("ref-{i:x}"),
        "tags": (0..i % 3).map(|t| format!("t{t}")).collect::<Vec<_>>(),
        "flagged": i.is_multiple_of(17),
    })
}

fn filter() -> FilterTransform {
    FilterTransform::new(&[json!({"value": {
        "country": ["NL", "DE"],
        "amount": [{"numeric": [">", 1000]}]
    }})])
    .unwrap()
}

/// Filters and writes what passes: the bytes a sink would send.
fn filter_and_write(filter: &FilterTransform, records: &mut [Record], reencode: bool) -> usize {
    let mut bytes = 0;
    for r in records {
        if let Ok(Flow::Keep) = filter.apply(r) {
            bytes += if reencode {
                serde_json::to_vec(r.value.parsed().unwrap()).unwrap().len()
            } else {
                r.value.to_bytes().len()
            };
        }
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let schema = apache_avro::Schema::parse_str(SCHEMA).unwrap();
    let compiled = Compiled::new(schema.clone()).unwrap();
    let cfg: SchemaRegistryConfig =
        serde_json::from_value(json!({"url": "http://127.0.0.1:9"})).unwrap();
    let registry = Arc::new(SchemaRegistryClient::new(&cfg).unwrap());
    registry.preload(SCHEMA_ID, &schema, None).unwrap();
    let converter = SourceConverter::new(
        FormatSpec::new(FormatKind::String),
        FormatSpec::new(FormatKind::Avro),
        Some(registry),
    )
    .unwrap()
    .unwrap();

    let payments: Vec<Json> = (0..N).map(payment).collect();
    let json_bytes: Vec<bytes::Bytes> = payments
        .iter()
        .map(|p| serde_json::to_vec(p).unwrap().into())
        .collect();
    #[allow(deprecated)]
    let avro_bytes: Vec<bytes::Bytes> = payments
        .iter()
        .map(|p| {
            let datum =
                apache_avro::to_avro_datum(&schema, compiled.from_json(p).unwrap()).unwrap();
            let mut out = vec![0];
            out.extend_from_slice(&SCHEMA_ID.to_be_bytes());
            out.extend_from_slice(&datum);
            out.into()
        })
        .collect();
    let avg = |v: &[bytes::Bytes]| v.iter().map(|b| b.len()).sum::<usize>() / v.len();
    eprintln!(
        "{N} payments of 20 fields: JSON {} bytes, Avro {} bytes on average",
        avg(&json_bytes),
        avg(&avro_bytes)
    );
    let filter = filter();
    let records = |v: &[bytes::Bytes]| -> Vec<Record> {
        v.iter().map(|b| Record::from_bytes(b.clone())).collect()
    };
    // Both paths keep the same records.
    let mut check = records(&avro_bytes);
    rt.block_on(converter.apply_batch(&mut check));
    let kept = |rs: &mut [Record]| {
        rs.iter_mut()
            .map(|r| filter.apply(r))
            .filter(|f| matches!(f, Ok(Flow::Keep)))
            .count()
    };
    let kept_avro = kept(&mut check);
    let kept_json = kept(&mut records(&json_bytes));
    assert_eq!(kept_avro, kept_json);
    eprintln!("the filter keeps {kept_json} of {N}");

    let mut g = c.benchmark_group("avro_vs_json_one_core");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("json_filter_json_passthrough", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let mut rs = records(&json_bytes);
                    let start = Instant::now();
                    black_box(filter_and_write(&filter, &mut rs, false));
                    start.elapsed()
                })
                .sum()
        })
    });
    g.bench_function("json_filter_json_reencoded", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let mut rs = records(&json_bytes);
                    let start = Instant::now();
                    black_box(filter_and_write(&filter, &mut rs, true));
                    start.elapsed()
                })
                .sum()
        })
    });
    g.bench_function("avro_decode_filter_json", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let mut rs = records(&avro_bytes);
                    let start = Instant::now();
                    let results = rt.block_on(converter.apply_batch(&mut rs));
                    assert!(results.iter().all(|r| r.is_ok()));
                    black_box(filter_and_write(&filter, &mut rs, false));
                    start.elapsed()
                })
                .sum()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
