//! The error budget: stop a pipeline when the share of failed records in a sliding window is
//! too high. Counted per batch, not per record.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use weir_core::config::ErrorBudget;

/// Sliding-window failure accounting in one-second buckets.
#[derive(Debug)]
pub struct Budget {
    config: ErrorBudget,
    buckets: Mutex<Vec<(Instant, u64, u64)>>,
}

impl Budget {
    /// A budget.
    pub fn new(config: ErrorBudget) -> Self {
        Budget {
            config,
            buckets: Mutex::new(Vec::new()),
        }
    }

    /// The window the share is measured over.
    pub fn window(&self) -> weir_core::HumanDuration {
        self.config.window
    }

    /// Failed and total records within the window now.
    pub fn spent(&self) -> (u64, u64) {
        let now = Instant::now();
        let window = Duration::from(self.config.window);
        let b = self.buckets.lock().expect("budget lock");
        b.iter()
            .filter(|(t, _, _)| now.duration_since(*t) < window)
            .fold((0, 0), |(f, n), (_, bn, bf)| (f + bf, n + bn))
    }

    /// Records outcomes; returns an explanation when the budget is exceeded.
    pub fn record(&self, total: u64, failed: u64) -> Option<String> {
        let now = Instant::now();
        let window = Duration::from(self.config.window);
        let mut b = self.buckets.lock().expect("budget lock");
        b.retain(|(t, _, _)| now.duration_since(*t) < window);
        match b.last_mut() {
            Some((t, n, f)) if now.duration_since(*t) < Duration::from_secs(1) => {
                *n += total;
                *f += failed;
            }
            _ => b.push((now, total, failed)),
        }
        let (n, f) = b
            .iter()
            .fold((0, 0), |(n, f), (_, bn, bf)| (n + bn, f + bf));
        if n >= self.config.min_records
            && n > 0
            && (f as f64 / n as f64) > self.config.max_failed_ratio
        {
            return Some(format!(
                "error budget exceeded: {f} of {n} records failed in the last {} (max_failed_ratio {})",
                self.config.window, self.config.max_failed_ratio
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::HumanDuration;

    #[tokio::test(start_paused = true)]
    async fn trips_past_the_ratio_and_forgets_old_failures() {
        let b = Budget::new(ErrorBudget {
            max_failed_ratio: 0.5,
            window: HumanDuration::from_secs(10),
            min_records: 10,
        });
        assert!(b.record(4, 4).is_none(), "below min_records");
        assert!(b.record(10, 0).is_none(), "4 of 14");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(
            b.record(10, 5).is_none(),
            "old records forgotten: 5 of 10 is not above 0.5"
        );
        assert!(b.record(2, 2).unwrap().contains("7 of 12"));
    }
}
