//! Many nodes: the timing every node derives from `--node-lost-after` (heartbeat period, lease TTL, fence deadline,
//! stop grace), and the control plane's records about nodes (cordon/drain, lost).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Default time without a heartbeat after which a node is declared lost.
pub const DEFAULT_NODE_LOST_AFTER: Duration = Duration::from_secs(20);

/// The shortest `--node-lost-after` accepted.
pub const MIN_NODE_LOST_AFTER: Duration = Duration::from_secs(2);

/// Timing that cannot keep two copies apart.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TimingError {
    /// `--node-lost-after` is shorter than the shortest accepted.
    #[error("--node-lost-after {0:?} is too short: at least {MIN_NODE_LOST_AFTER:?}")]
    TooShort(Duration),
    /// The fence deadline is not strictly shorter than `--node-lost-after`.
    #[error(
        "fence deadline {fence:?} (heartbeat TTL {ttl:?}) must be shorter than --node-lost-after {lost_after:?}: \
         a node could be declared lost while its instances still run"
    )]
    FenceTooLate {
        /// The fence deadline.
        fence: Duration,
        /// The heartbeat lease TTL.
        ttl: Duration,
        /// The node-lost delay.
        lost_after: Duration,
    },
}

/// The timing of node liveness, derived from `--node-lost-after` (the same on every node).
///
/// - the heartbeat lease TTL is 3/10 of it and is renewed every third of the TTL;
/// - a node that has not renewed its lease for the fence deadline (6/10) stops its instances;
/// - the control plane declares a node lost once its heartbeat record has been gone for `lost_after − ttl`, i.e. at
///   the earliest `lost_after` after the last renewal, which leaves `lost_after − fence` for the fenced instances to
///   stop (they get half of it as stop grace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeTiming {
    /// Time without a heartbeat after which the node is lost.
    pub lost_after: Duration,
    /// The heartbeat lease TTL.
    pub ttl: Duration,
    /// How often the lease is renewed.
    pub period: Duration,
    /// Time without a renewal after which the node stops its instances.
    pub fence: Duration,
    /// Longest grace between SIGTERM and SIGKILL when fencing.
    pub fence_grace: Duration,
}

impl NodeTiming {
    /// The timing derived from `lost_after`, with the lease TTL of `ttl` when the node configuration fixes one.
    pub fn derive(lost_after: Duration, ttl: Option<Duration>) -> Result<Self, TimingError> {
        if lost_after < MIN_NODE_LOST_AFTER {
            return Err(TimingError::TooShort(lost_after));
        }
        let ttl = ttl.unwrap_or(lost_after * 3 / 10);
        let fence = lost_after * 6 / 10;
        if ttl >= fence || fence >= lost_after {
            return Err(TimingError::FenceTooLate { fence, ttl, lost_after });
        }
        Ok(NodeTiming { lost_after, ttl, period: ttl / 3, fence, fence_grace: (lost_after - fence) / 2 })
    }

    /// How long after its heartbeat record disappeared a node is declared lost.
    pub fn lost_after_expiry(&self) -> Duration {
        self.lost_after.saturating_sub(self.ttl)
    }
}

impl Default for NodeTiming {
    fn default() -> Self {
        NodeTiming::derive(DEFAULT_NODE_LOST_AFTER, None).unwrap_or(NodeTiming {
            lost_after: DEFAULT_NODE_LOST_AFTER,
            ttl: Duration::from_secs(6),
            period: Duration::from_secs(2),
            fence: Duration::from_secs(12),
            fence_grace: Duration::from_secs(4),
        })
    }
}

/// A cordoned node (`system/nodes/<node>/cordon`): it takes nothing new; with `drain`, its instances are moved off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cordon {
    /// Move every instance off the node too.
    #[serde(default)]
    pub drain: bool,
    /// When it was cordoned.
    pub since: DateTime<Utc>,
}

/// A node without a heartbeat as the control plane saw it (`system/nodes/<node>/lost`): written when its heartbeat
/// record is first seen gone (so a new leader counts from then, not from when it took over), marked lost once it
/// has been gone long enough, removed when the heartbeat is back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLoss {
    /// When its heartbeat record was first seen gone.
    pub since: DateTime<Utc>,
    /// When it was declared lost (its instances placed again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_derives_from_lost_after_and_fences_first() {
        let t = NodeTiming::derive(Duration::from_secs(20), None).expect("valid");
        assert_eq!(
            (t.ttl, t.period, t.fence),
            (Duration::from_secs(6), Duration::from_secs(2), Duration::from_secs(12))
        );
        assert!(t.fence + t.fence_grace < t.lost_after);
        let short = NodeTiming::derive(Duration::from_secs(5), None).expect("5s works");
        assert_eq!(short.ttl, Duration::from_millis(1500));
        assert_eq!(
            NodeTiming::derive(Duration::from_secs(1), None),
            Err(TimingError::TooShort(Duration::from_secs(1)))
        );
        let late = NodeTiming::derive(Duration::from_secs(20), Some(Duration::from_secs(15)));
        assert!(matches!(late, Err(TimingError::FenceTooLate { .. })), "{late:?}");
    }
}
