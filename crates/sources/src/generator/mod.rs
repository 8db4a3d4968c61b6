//! `generator`: synthetic credit-card transactions, like the MSK → EventBridge fraud-detection
//! demo's producer: reproducible with a seed, rate-limited, with occasional anomalies.

mod transactions;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::time::Instant;
use weir_core::{BuildContext, BuildError, PluginConfig, Source, SourceContext, SourceError};

pub use transactions::{Transaction, TransactionGenerator, luhn_valid};

/// Generates synthetic card transactions: `id`, `card` (number, brand, holder), `amount`,
/// `currency`, `merchant` (name, category), `country`, `timestamp` (RFC 3339) and `anomaly`
/// (true for the few suspicious ones: large amounts, unusual countries). The key is the card
/// number. With `count` the pipeline ends once all are delivered; without it, it runs until stopped.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSourceConfig {
    /// How many transactions to generate; omit to run until stopped.
    #[serde(default)]
    pub count: Option<u64>,
    /// Transactions per second; omit for as fast as the pipeline takes them.
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    /// Seed for a reproducible sequence; omit for a different one each run.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Share (0.0–1.0) of transactions that are anomalies.
    #[serde(default = "default_anomaly_rate")]
    pub anomaly_rate: f64,
    /// Most transactions per batch sent downstream.
    #[serde(default = "default_batch")]
    pub max_batch: usize,
}

fn default_anomaly_rate() -> f64 {
    0.03
}
fn default_batch() -> usize {
    500
}

/// The generator source.
pub struct GeneratorSource {
    config: GeneratorSourceConfig,
    seed: u64,
}

impl PluginConfig for GeneratorSourceConfig {
    const TYPE: &'static str = "generator";
    const SUMMARY: &'static str =
        "Generate synthetic credit-card transactions (seeded, rate-limited, with anomalies)";
    const EXAMPLE: &'static str = "type: generator\ncount: 10000\nrate_per_sec: 2000\nseed: 42\n";
    type Output = dyn Source;
    fn build(self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        if let Some(r) = self.rate_per_sec
            && !(r > 0.0 && r.is_finite())
        {
            return Err(BuildError::at("rate_per_sec", "must be a positive number"));
        }
        if !(0.0..=1.0).contains(&self.anomaly_rate) {
            return Err(BuildError::at(
                "anomaly_rate",
                "must be between 0.0 and 1.0",
            ));
        }
        if self.max_batch == 0 {
            return Err(BuildError::at("max_batch", "must be at least 1"));
        }
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
        Ok(Box::new(GeneratorSource { config: self, seed }))
    }
}

weir_core::register_plugin!(GeneratorSourceConfig);

#[async_trait]
impl Source for GeneratorSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), SourceError> {
        let c = &self.config;
        let mut generator = TransactionGenerator::new(self.seed, c.anomaly_rate);
        let topic: Arc<str> = "generator".into();
        let batch_size = match c.rate_per_sec {
            // Keep batches to about a tenth of a second of traffic so the rate is smooth.
            Some(r) => ((r / 10.0).ceil() as usize).clamp(1, c.max_batch),
            None => c.max_batch,
        };
        let start = Instant::now();
        let mut sent: u64 = 0;
        loop {
            let remaining = c.count.map_or(u64::MAX, |n| n - sent);
            if remaining == 0 {
                return Ok(());
            }
            if let Some(rate) = c.rate_per_sec {
                let due = start + Duration::from_secs_f64(sent as f64 / rate);
                tokio::select! {
                    _ = cx.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep_until(due) => {}
                }
            } else if cx.shutdown.is_cancelled() {
                return Ok(());
            }
            let n = remaining.min(batch_size as u64) as usize;
            let batch: Vec<_> = (0..n)
                .map(|i| generator.record(&topic, (sent + i as u64) as i64))
                .collect();
            tokio::select! {
                _ = cx.shutdown.cancelled() => return Ok(()),
                r = cx.send(batch) => { r.map_err(|_| SourceError::Closed)?; }
            }
            sent += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::testing::{run_source, source_conformance};

    fn build(count: Option<u64>, rate: Option<f64>, seed: u64) -> Box<dyn Source> {
        GeneratorSourceConfig {
            count,
            rate_per_sec: rate,
            seed: Some(seed),
            anomaly_rate: 0.05,
            max_batch: 100,
        }
        .build(&BuildContext::for_test("p", "g"))
        .unwrap()
    }

    #[tokio::test]
    async fn emits_count_records_with_acks_and_is_reproducible() {
        let a = source_conformance(build(Some(1000), None, 9), 1000, false)
            .await
            .unwrap();
        let b = source_conformance(build(Some(1000), None, 9), 1000, false)
            .await
            .unwrap();
        let bytes = |r: &weir_core::Record| r.value.to_bytes();
        assert!(
            a.records
                .iter()
                .zip(&b.records)
                .all(|(x, y)| bytes(x) == bytes(y) && x.key == y.key)
        );
        let c = source_conformance(build(Some(10), None, 10), 10, false)
            .await
            .unwrap();
        assert_ne!(
            bytes(&a.records[0]),
            bytes(&c.records[0]),
            "another seed gives other data"
        );
        let anomalies = a
            .records
            .iter()
            .filter(|r| r.value.decoded().unwrap()["anomaly"] == true)
            .count();
        assert!(
            (20..=90).contains(&anomalies),
            "about 5% anomalies, got {anomalies}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn respects_the_rate() {
        let started = Instant::now();
        let run = run_source(
            build(Some(500), Some(1000.0), 1),
            None,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(run.records.len(), 500);
        let took = started.elapsed();
        // 500 records at 1000/s: the last batch is due at ~0.4-0.5s of virtual time.
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_millis(600),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn endless_generator_stops_on_shutdown() {
        source_conformance(build(None, None, 3), 2000, true)
            .await
            .unwrap();
    }

    #[test]
    fn rejects_bad_options() {
        let cx = BuildContext::for_test("p", "g");
        let bad = GeneratorSourceConfig {
            count: None,
            rate_per_sec: Some(0.0),
            seed: None,
            anomaly_rate: 0.1,
            max_batch: 1,
        };
        assert_eq!(bad.build(&cx).err().unwrap().path, "rate_per_sec");
    }
}
