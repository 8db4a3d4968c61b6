//! Exponential backoff with full jitter, the only place Weir sleeps before a retry.

use std::time::Duration;

use weir_core::config::RetryOptions;

/// The delay before retry number `retry` (1 = the first retry): a random duration between half
/// and all of `min(max_backoff, initial_backoff * 2^(retry-1))`, never below a server's request.
pub fn backoff(opts: &RetryOptions, retry: u32, requested: Option<Duration>) -> Duration {
    let base =
        opts.initial_backoff.0.as_secs_f64() * 2f64.powi(retry.saturating_sub(1).min(30) as i32);
    let cap = base.min(opts.max_backoff.0.as_secs_f64());
    let jittered = cap * (0.5 + fastrand::f64() * 0.5);
    Duration::from_secs_f64(jittered).max(requested.unwrap_or_default())
}

/// True when another attempt is allowed after `attempts` attempts.
pub fn may_retry(opts: &RetryOptions, attempts: u32) -> bool {
    opts.max_attempts < 0 || i64::from(attempts) < opts.max_attempts
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::HumanDuration;

    #[test]
    fn grows_exponentially_within_jitter_and_caps() {
        let o = RetryOptions {
            max_attempts: 5,
            initial_backoff: HumanDuration::from_millis(100),
            max_backoff: HumanDuration::from_secs(1),
        };
        for _ in 0..50 {
            let d1 = backoff(&o, 1, None);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d3 = backoff(&o, 3, None);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            let d10 = backoff(&o, 10, None);
            assert!(
                d10 >= Duration::from_millis(500) && d10 <= Duration::from_secs(1),
                "{d10:?}"
            );
        }
        assert_eq!(
            backoff(&o, 1, Some(Duration::from_secs(7))),
            Duration::from_secs(7),
            "Retry-After wins"
        );
        assert!(may_retry(&o, 4) && !may_retry(&o, 5));
        assert!(may_retry(
            &RetryOptions {
                max_attempts: -1,
                ..o
            },
            1_000_000
        ));
    }
}
