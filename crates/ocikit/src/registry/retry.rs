//! Retries with exponential backoff for transient registry failures: 429,
//! 5xx and I/O errors are retried (`--retry-times`, default 3); other 4xx
//! answers are final, since asking again cannot change them.

use std::time::Duration;

/// How many times to retry and how long to wait in between.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`--retry-times`).
    pub times: u32,
    /// The first wait; each later wait doubles, up to `max_delay`.
    pub base_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The policy for `--retry-times N`.
    pub fn new(times: u32) -> RetryPolicy {
        RetryPolicy {
            times,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }

    /// The wait before retry number `attempt` (0-based), with up to 25%
    /// jitter so that parallel transfers do not retry in lockstep; a
    /// `Retry-After` the server sent wins if it is longer (capped).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let jitter = exp.mul_f64(jitter_fraction() * 0.25);
        let delay = exp + jitter;
        match retry_after {
            Some(after) if after > delay => after.min(self.max_delay * 3),
            _ => delay,
        }
    }
}

/// Whether an HTTP status is worth retrying.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status) && status != 501 && status != 505
}

/// A cheap pseudo-random number in [0, 1) from the clock, enough for jitter.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

/// Parses `Retry-After` given in seconds (the HTTP-date form is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_statuses_retry() {
        let cases = [
            (429, true),
            (500, true),
            (502, true),
            (503, true),
            (504, true),
            (501, false),
            (400, false),
            (401, false),
            (404, false),
            (200, false),
        ];
        for (status, want) in cases {
            assert_eq!(retryable_status(status), want, "{status}");
        }
    }

    #[test]
    fn delays_grow_and_cap() {
        let p = RetryPolicy::new(3);
        let d0 = p.delay(0, None);
        assert!(
            d0 >= Duration::from_millis(200) && d0 <= Duration::from_millis(250),
            "{d0:?}"
        );
        let d2 = p.delay(2, None);
        assert!(
            d2 >= Duration::from_millis(800) && d2 <= Duration::from_millis(1000),
            "{d2:?}"
        );
        let d30 = p.delay(30, None);
        assert!(d30 <= Duration::from_millis(12_500), "{d30:?}");
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after(" 5 "), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
