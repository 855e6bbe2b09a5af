//! The one retry delay of the agent: exponential from a base, capped, with jitter (so the many instances of one
//! failing application, or of a node coming back, do not retry in step). Every failing step of an instance (setup,
//! run, stop, teardown and the network steps inside them) and every crash restart waits for it, and so does the
//! cleanup of a stopping agent.

use std::time::Duration;

/// Exponential backoff with "equal jitter": attempt `n` waits between half and all of `base * 2^(n-1)`, never more
/// than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure (before jitter).
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before the next try after `attempt` consecutive failures (1 for the first), without jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next try after `attempt` consecutive failures, jittered: uniformly between half of
    /// [`Backoff::ceiling`] and all of it.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_below_it() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) };
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(5), Duration::from_millis(1600));
        assert_eq!(b.ceiling(6), Duration::from_secs(2), "capped");
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(2), "no overflow");
        let delays: Vec<Duration> = (0..200).map(|_| b.delay(10)).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(2)), "{delays:?}");
        let distinct: std::collections::BTreeSet<Duration> = delays.into_iter().collect();
        assert!(distinct.len() > 100, "jittered, not in step: {} distinct delays", distinct.len());
    }
}
