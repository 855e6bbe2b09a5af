//! What the kernel can enforce: resource requests below its granularity are rounded up, never refused at run time.
//! The scheduler accounts the rounded amounts (what the node really sets aside), the agent sets them as cgroup
//! limits, and `fosctl describe` shows each rounding with its reason.
//!
//! - CPU is enforced as a CFS quota per [`CPU_PERIOD_US`] period; the kernel refuses a quota below
//!   [`MIN_CPU_QUOTA_US`] (1 ms), so the smallest CPU limit is [`MIN_CPU_MILLIS`] (10m), as in Kubernetes.
//! - Memory limits are kept in whole pages: a limit is rounded up to a multiple of [`PAGE_BYTES`].

use std::fmt;

use crate::quantity::format_bytes;

/// The CFS period cpu limits are expressed in, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The smallest CFS quota the kernel accepts, in microseconds.
pub const MIN_CPU_QUOTA_US: u64 = 1_000;

/// The smallest enforceable cpu limit, in millicores (a [`MIN_CPU_QUOTA_US`] quota per [`CPU_PERIOD_US`]).
pub const MIN_CPU_MILLIS: u64 = MIN_CPU_QUOTA_US * 1000 / CPU_PERIOD_US;

/// The granularity of memory limits (the page size).
pub const PAGE_BYTES: u64 = 4096;

/// A cpu request (millicores; 0: none) as the kernel can enforce it.
pub fn cpu_millis(requested: u64) -> u64 {
    if requested == 0 {
        0
    } else {
        requested.max(MIN_CPU_MILLIS)
    }
}

/// The CFS quota of a cpu amount (already rounded with [`cpu_millis`]), in microseconds per [`CPU_PERIOD_US`].
pub fn cpu_quota_us(millis: u64) -> u64 {
    (millis.saturating_mul(CPU_PERIOD_US) / 1000).max(MIN_CPU_QUOTA_US)
}

/// A memory request (bytes; 0: none) as the kernel can enforce it: whole pages.
pub fn memory_bytes(requested: u64) -> u64 {
    requested.div_ceil(PAGE_BYTES).saturating_mul(PAGE_BYTES)
}

/// A request that was rounded up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rounding {
    /// The resource (`cpu`, `memory`).
    pub resource: &'static str,
    /// The amount asked for, as displayed.
    pub requested: String,
    /// The amount reserved and enforced, as displayed.
    pub effective: String,
    /// Why.
    pub reason: &'static str,
}

impl fmt::Display for Rounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} rounded up to {} ({})", self.resource, self.requested, self.effective, self.reason)
    }
}

/// The roundings of a cpu request of `requested` millicores and a memory request of `memory` bytes (none when both
/// are enforceable as they are).
pub fn roundings(requested_cpu: u64, requested_memory: u64) -> Vec<Rounding> {
    let mut out = Vec::new();
    let cpu = cpu_millis(requested_cpu);
    if cpu != requested_cpu {
        out.push(Rounding {
            resource: "cpu",
            requested: format!("{requested_cpu}m"),
            effective: format!("{cpu}m"),
            reason: "the kernel's smallest cpu quota is 1ms per 100ms period",
        });
    }
    let memory = memory_bytes(requested_memory);
    if memory != requested_memory {
        out.push(Rounding {
            resource: "memory",
            requested: format_bytes(requested_memory),
            effective: format_bytes(memory),
            reason: "memory limits are whole 4Ki pages",
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_below_the_smallest_quota_is_rounded_up() {
        assert_eq!(MIN_CPU_MILLIS, 10);
        assert_eq!(cpu_millis(0), 0, "no request, no limit");
        assert_eq!(cpu_millis(1), 10);
        assert_eq!(cpu_millis(9), 10);
        assert_eq!(cpu_millis(10), 10);
        assert_eq!(cpu_millis(250), 250);
        assert_eq!(cpu_quota_us(cpu_millis(1)), 1_000, "a quota the kernel accepts");
        assert_eq!(cpu_quota_us(500), 50_000);
    }

    #[test]
    fn memory_is_rounded_up_to_whole_pages() {
        assert_eq!(memory_bytes(0), 0);
        assert_eq!(memory_bytes(1), 4096);
        assert_eq!(memory_bytes(4096), 4096);
        assert_eq!(memory_bytes(10_000), 12_288);
        assert_eq!(memory_bytes(64 << 20), 64 << 20);
    }

    #[test]
    fn roundings_say_what_and_why() {
        assert!(roundings(500, 256 << 20).is_empty());
        let r = roundings(1, 1000);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0].to_string(),
            "cpu 1m rounded up to 10m (the kernel's smallest cpu quota is 1ms per 100ms period)"
        );
        assert_eq!(r[1].requested, "1000");
        assert_eq!(r[1].effective, "4Ki");
    }
}
