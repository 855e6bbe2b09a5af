//! Why a node cannot take an instance: one typed reason per filter of the scheduler, carrying the numbers
//! (`needs 2 gpio, has 1 free`), rendered the same way by `fosctl plan` and the API.

use std::fmt;

use crate::manifest::{Accelerator, Arch, EntityKind, InterfaceType, IoType, Within};
use crate::quantity::format_bytes;
use serde::{Deserialize, Serialize};

/// The first reason a node was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Rejection {
    /// The node's agent is not alive.
    NotReady,
    /// The node is cordoned.
    Cordoned,
    /// The node is excluded for this instance.
    Excluded {
        /// Why (`source of the migration`).
        because: String,
    },
    /// Wrong cpu architecture.
    Arch {
        /// What the component requires.
        wanted: Arch,
        /// What the node is.
        has: Arch,
    },
    /// Wrong operating system.
    Os {
        /// What the component requires.
        wanted: String,
        /// What the node runs.
        has: String,
    },
    /// The node has no runtime for the entity's kind.
    Runtime {
        /// The entity's kind.
        kind: EntityKind,
        /// The kinds the node runs.
        has: Vec<EntityKind>,
    },
    /// The component lists its nodes and this is not one of them.
    NotListed,
    /// A `nodeSelector` label does not match.
    Label {
        /// The label key.
        key: String,
        /// The value required.
        wanted: String,
        /// The node's value, if it has the label.
        has: Option<String>,
    },
    /// Not enough free cpu.
    Cpu {
        /// Millicores needed.
        needs: u64,
        /// Millicores free.
        free: u64,
        /// Millicores in all.
        total: u64,
    },
    /// Not enough free memory.
    Memory {
        /// Bytes needed.
        needs: u64,
        /// Bytes free.
        free: u64,
        /// Bytes in all.
        total: u64,
    },
    /// Not enough free disk.
    Disk {
        /// Bytes needed.
        needs: u64,
        /// Bytes free.
        free: u64,
        /// Bytes in all.
        total: u64,
    },
    /// Too few network interfaces of a type.
    Interfaces {
        /// The interface type.
        kind: InterfaceType,
        /// How many are needed.
        needs: u32,
        /// How many the node has.
        has: u32,
    },
    /// Too few free I/O devices of a type.
    Io {
        /// The device type.
        kind: IoType,
        /// How many are needed.
        needs: u32,
        /// How many are free.
        free: u32,
        /// How many the node has.
        total: u32,
    },
    /// Too few free accelerators of a type.
    Accelerators {
        /// The accelerator type.
        kind: Accelerator,
        /// How many are needed.
        needs: u32,
        /// How many are free.
        free: u32,
        /// How many the node has.
        total: u32,
    },
    /// A required proximity rule is not met.
    Proximity {
        /// The component that declared the rule.
        from: String,
        /// The component to be near.
        to: String,
        /// How near.
        #[serde(with = "within_text")]
        within: Within,
        /// Where the other side is and how far it is (`db is on node-2: rtt 12.5ms`).
        detail: String,
    },
}

mod within_text {
    use crate::manifest::Within;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(w: &Within, s: S) -> Result<S::Ok, S::Error> {
        w.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Within, D::Error> {
        Within::deserialize(d)
    }
}

impl Rejection {
    /// The filter that produced this rejection.
    pub fn filter(&self) -> &'static str {
        match self {
            Rejection::NotReady | Rejection::Cordoned => "readiness",
            Rejection::Excluded { .. } => "exclusion",
            Rejection::Arch { .. } | Rejection::Os { .. } => "platform",
            Rejection::Runtime { .. } => "runtime",
            Rejection::NotListed | Rejection::Label { .. } => "selection",
            Rejection::Cpu { .. } | Rejection::Memory { .. } | Rejection::Disk { .. } => "resources",
            Rejection::Interfaces { .. } => "interfaces",
            Rejection::Io { .. } => "io",
            Rejection::Accelerators { .. } => "accelerators",
            Rejection::Proximity { .. } => "proximity",
        }
    }

    /// True for reasons that freeing capacity on the node would remove (cpu, memory, disk, devices in use).
    pub fn is_capacity(&self) -> bool {
        match self {
            Rejection::Cpu { total, needs, .. }
            | Rejection::Memory { total, needs, .. }
            | Rejection::Disk { total, needs, .. } => needs <= total,
            Rejection::Io { total, needs, .. } | Rejection::Accelerators { total, needs, .. } => needs <= total,
            _ => false,
        }
    }
}

/// Formats millicores as cpus (`2`, `1.5`).
pub fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{}", millis as f64 / 1000.0)
    }
}

fn free_of(f: &mut fmt::Formatter<'_>, free: String, total: String, all_free: bool) -> fmt::Result {
    if all_free {
        write!(f, "has {free}")
    } else {
        write!(f, "has {free} free of {total}")
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NotReady => f.write_str("not ready"),
            Rejection::Cordoned => f.write_str("cordoned"),
            Rejection::Excluded { because } => write!(f, "excluded: {because}"),
            Rejection::Arch { wanted, has } => write!(f, "arch {has} != {wanted}"),
            Rejection::Os { wanted, has } => write!(f, "os {has} != {wanted}"),
            Rejection::Runtime { kind, has } if has.is_empty() => write!(f, "no {kind} runtime (runs none)"),
            Rejection::Runtime { kind, has } => {
                write!(f, "no {kind} runtime (runs {})", has.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "))
            }
            Rejection::NotListed => f.write_str("not in the component's nodes list"),
            Rejection::Label { key, wanted, has: Some(has) } => write!(f, "label {key}={has} != {wanted}"),
            Rejection::Label { key, wanted, has: None } => write!(f, "no label {key} (wants {key}={wanted})"),
            Rejection::Cpu { needs, free, total } => {
                write!(f, "needs {} cpu, ", format_cpu(*needs))?;
                free_of(f, format_cpu(*free), format_cpu(*total), free == total)
            }
            Rejection::Memory { needs, free, total } => {
                write!(f, "needs {} memory, ", format_bytes(*needs))?;
                free_of(f, format_bytes(*free), format_bytes(*total), free == total)
            }
            Rejection::Disk { needs, free, total } => {
                write!(f, "needs {} disk, ", format_bytes(*needs))?;
                free_of(f, format_bytes(*free), format_bytes(*total), free == total)
            }
            Rejection::Interfaces { kind, needs, has } => write!(f, "needs {needs} {kind} interfaces, has {has}"),
            Rejection::Io { kind, needs, free, total } => count(f, needs, kind.as_str(), free, total),
            Rejection::Accelerators { kind, needs, free, total } => count(f, needs, kind.as_str(), free, total),
            Rejection::Proximity { from, to, within, detail } => {
                write!(f, "{from} must be within {within} of {to}; {detail}")
            }
        }
    }
}

fn count(f: &mut fmt::Formatter<'_>, needs: &u32, kind: &str, free: &u32, total: &u32) -> fmt::Result {
    if *total == 0 {
        write!(f, "needs {needs} {kind}, has none")
    } else if free == total {
        write!(f, "needs {needs} {kind}, has {total}")
    } else {
        write!(f, "needs {needs} {kind}, has {free} free of {total}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_with_their_numbers() {
        let r = Rejection::Io { kind: IoType::Gpio, needs: 2, free: 1, total: 3 };
        assert_eq!(r.to_string(), "needs 2 gpio, has 1 free of 3");
        assert!(r.is_capacity());
        let r = Rejection::Io { kind: IoType::Gpio, needs: 1, free: 0, total: 0 };
        assert_eq!(r.to_string(), "needs 1 gpio, has none");
        assert!(!r.is_capacity());
        let r = Rejection::Arch { wanted: Arch::X86_64, has: Arch::Aarch64 };
        assert_eq!(r.to_string(), "arch aarch64 != x86_64");
        let r = Rejection::Memory { needs: 4 << 30, free: 1 << 30, total: 8 << 30 };
        assert_eq!(r.to_string(), "needs 4Gi memory, has 1Gi free of 8Gi");
        let r = Rejection::Cpu { needs: 1500, free: 1000, total: 1000 };
        assert_eq!(r.to_string(), "needs 1.5 cpu, has 1");
        assert_eq!(r.filter(), "resources");
    }

    #[test]
    fn rejections_serialize_with_a_reason_tag() {
        let r = Rejection::Proximity {
            from: "web".into(),
            to: "db".into(),
            within: Within::LatencyMs(5.0),
            detail: "on n2: rtt 12ms".into(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["reason"], "proximity");
        assert_eq!(v["within"], "5ms");
        assert_eq!(serde_json::from_value::<Rejection>(v).unwrap(), r);
    }
}
