//! The Application spec: networks and a graph of components (`need` = start after, `proximity` = place near), each
//! with constraints on the node and the entity to run.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::entity::EntitySpec;
use super::network::NetworkSpec;

/// What an application is made of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationSpec {
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Networks the components attach to: names of Network objects, or inline network specs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkRef>,
    /// The components, each an entity with its placement rules.
    pub components: Vec<Component>,
}

impl ApplicationSpec {
    /// A one-component application running `entity` as component `name` (how a standalone Entity runs).
    pub fn single(name: &str, entity: EntitySpec) -> Self {
        ApplicationSpec {
            description: None,
            networks: Vec::new(),
            components: vec![Component {
                name: name.to_string(),
                replicas: 1,
                need: Vec::new(),
                proximity: Vec::new(),
                constraints: Constraints::default(),
                entity,
                on_node_loss: OnNodeLoss::Replace,
                max_unavailable: 1,
            }],
        }
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }
}

/// A network used by an application: a reference by name, or a network defined inline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NetworkRef {
    /// The name of a Network object.
    Name(String),
    /// A network defined in the application itself.
    Inline {
        /// The network's name.
        name: String,
        /// Its definition.
        #[serde(flatten)]
        spec: NetworkSpec,
    },
}

impl NetworkRef {
    /// The network's name.
    pub fn name(&self) -> &str {
        match self {
            NetworkRef::Name(n) => n,
            NetworkRef::Inline { name, .. } => name,
        }
    }
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// One component of an application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Component {
    /// The component's name, unique in the application.
    pub name: String,
    /// How many instances run (default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub replicas: u32,
    /// Components that must be Ready before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub need: Vec<String>,
    /// Components to be placed near: a name, a `{to, within, required}` rule, or a list of either.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "proximity_list")]
    pub proximity: Vec<Proximity>,
    /// What the node must offer.
    #[serde(default, skip_serializing_if = "Constraints::is_empty")]
    pub constraints: Constraints,
    /// What to run.
    pub entity: EntitySpec,
    /// What happens to its instances when their node is lost: placed again elsewhere (`replace`, default), or left
    /// running on the isolated node and never placed twice (`keep`).
    #[serde(default, skip_serializing_if = "OnNodeLoss::is_replace")]
    pub on_node_loss: OnNodeLoss,
    /// How many of its instances a drain may take down at once (default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub max_unavailable: u32,
}

/// What happens to a component's instances when their node is lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnNodeLoss {
    /// Stop them on the isolated node (fencing) and place them again elsewhere.
    #[default]
    Replace,
    /// Keep them running on the isolated node; never place them twice.
    Keep,
}

impl OnNodeLoss {
    /// The default policy.
    pub fn is_replace(&self) -> bool {
        *self == OnNodeLoss::Replace
    }
}

/// A rule to place a component near another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Proximity {
    /// The component to be near.
    pub to: String,
    /// How near: same node (default), same value of a node label, a round-trip latency, or a distance.
    #[serde(default)]
    pub within: Within,
    /// `true`: a hard constraint; `false` (default): a preference that only scores.
    #[serde(default)]
    pub required: bool,
}

fn proximity_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Proximity>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Name(String),
        Rule(Proximity),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        // A list first: a struct also reads from a sequence, so `[a, b]` would otherwise become `{to: a, within: b}`.
        Many(Vec<Item>),
        One(Item),
    }
    let items = match OneOrMany::deserialize(d).map_err(|_| {
        serde::de::Error::custom(
            "proximity must be a component name, a rule {to, within, required} with no other fields, or a list of these",
        )
    })? {
        OneOrMany::One(i) => vec![i],
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|i| match i {
            Item::Name(to) => Proximity { to, within: Within::Node, required: false },
            Item::Rule(r) => r,
        })
        .collect())
}

/// How near `proximity` asks to be.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Within {
    /// On the same node.
    #[default]
    Node,
    /// On a node with the same value of this node label (a topology key such as `site` or `zone`).
    Topology(String),
    /// Measured round-trip time at most this many milliseconds.
    LatencyMs(f64),
    /// Geographic distance between node positions at most this many metres.
    DistanceM(f64),
}

impl fmt::Display for Within {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Within::Node => f.write_str("node"),
            Within::Topology(k) => f.write_str(k),
            Within::LatencyMs(ms) => write!(f, "{ms}ms"),
            Within::DistanceM(m) if *m >= 1000.0 => write!(f, "{}km", m / 1000.0),
            Within::DistanceM(m) => write!(f, "{m}m"),
        }
    }
}

impl FromStr for Within {
    type Err = String;

    /// `node`; a number with `us`, `ms` or `s` (latency); a number with `m` or `km` (distance); else a label key.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "node" {
            return Ok(Within::Node);
        }
        if t.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a number with a unit"))?;
            return match unit {
                "us" => Ok(Within::LatencyMs(n / 1000.0)),
                "ms" => Ok(Within::LatencyMs(n)),
                "s" => Ok(Within::LatencyMs(n * 1000.0)),
                "m" => Ok(Within::DistanceM(n)),
                "km" => Ok(Within::DistanceM(n * 1000.0)),
                _ => {
                    Err(format!("`{s}`: unknown unit `{unit}`; use us, ms or s for a latency, m or km for a distance"))
                }
            };
        }
        if t.is_empty() || t.contains(char::is_whitespace) {
            return Err(format!("`{s}` is not `node`, a label key, a latency (5ms) or a distance (10km)"));
        }
        Ok(Within::Topology(t.to_string()))
    }
}

impl Serialize for Within {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Within {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a node must offer for a component to be placed on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Constraints {
    /// Required cpu architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// Required operating system (`linux`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// I/O devices needed, each allocated exclusively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io: Vec<DeviceRequest<IoType>>,
    /// Network interfaces the node must have (not allocated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<InterfaceRequest>,
    /// Accelerators needed, each allocated exclusively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<AcceleratorRequest>,
    /// Node labels that must match exactly.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Only these nodes may be used (empty: any node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

impl Constraints {
    /// True when nothing is constrained.
    pub fn is_empty(&self) -> bool {
        *self == Constraints::default()
    }
}

/// A request for `number` devices of one type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceRequest<T> {
    /// The device type.
    #[serde(rename = "type")]
    pub kind: T,
    /// How many (default 1).
    #[serde(default = "one")]
    pub number: u32,
}

/// A request for network interfaces of one type.
pub type InterfaceRequest = DeviceRequest<InterfaceType>;
/// A request for accelerators of one type.
pub type AcceleratorRequest = DeviceRequest<Accelerator>;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s $(, alias = $alias)*)] $var),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s $(| $alias)* => Ok($name::$var),)+
                    _ => Err(format!("unknown value `{s}`: expected one of {}",
                        [$($s),+].join(", "))),
                }
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// CPU architectures (with the Debian/Go aliases `amd64`, `arm64`).
    Arch {
        /// 64-bit x86.
        X86_64 = "x86_64" | "amd64",
        /// 64-bit Arm.
        Aarch64 = "aarch64" | "arm64",
        /// 32-bit Arm v7.
        Armv7 = "armv7" | "armhf" | "armv7l",
        /// 64-bit RISC-V.
        Riscv64 = "riscv64",
    }
);

string_enum!(
    /// I/O device types.
    IoType {
        /// A GPIO chip or declared group of lines.
        Gpio = "gpio",
        /// A serial port.
        Com = "com",
        /// An I2C bus.
        I2c = "i2c",
        /// An SPI bus.
        Spi = "spi",
        /// A CAN interface.
        Can = "can",
        /// A USB device.
        Usb = "usb",
    }
);

string_enum!(
    /// Network interface types.
    InterfaceType {
        /// Wired Ethernet.
        Eth = "eth",
        /// Wireless LAN.
        Wlan = "wlan",
        /// An industrial field bus.
        Fieldbus = "fieldbus",
        /// Time-sensitive networking Ethernet.
        Tsn = "tsn",
        /// A cellular modem.
        Cellular = "cellular",
        /// A Linux bridge (discovered; not requestable in a useful way).
        Bridge = "bridge",
        /// A virtual interface (veth, tun, vxlan, …).
        Virtual = "virtual",
        /// The loopback interface.
        Loopback = "loopback",
    }
);

string_enum!(
    /// Accelerator types.
    Accelerator {
        /// An NVIDIA CUDA GPU.
        Cuda = "cuda",
        /// An OpenCL device.
        Opencl = "opencl",
        /// An FPGA.
        Fpga = "fpga",
        /// A NetFPGA board.
        Netfpga = "netfpga",
        /// A tensor processing unit.
        Tpu = "tpu",
        /// A neural processing unit.
        Npu = "npu",
        /// A DRM render node (a GPU without CUDA).
        Gpu = "gpu",
    }
);

impl Arch {
    /// The architecture of the machine this code was built for.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            "arm" => Some(Arch::Armv7),
            "riscv64" => Some(Arch::Riscv64),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_parses_every_form() {
        assert_eq!("node".parse::<Within>(), Ok(Within::Node));
        assert_eq!("site".parse::<Within>(), Ok(Within::Topology("site".into())));
        assert_eq!("5ms".parse::<Within>(), Ok(Within::LatencyMs(5.0)));
        assert_eq!("500us".parse::<Within>(), Ok(Within::LatencyMs(0.5)));
        assert_eq!("10km".parse::<Within>(), Ok(Within::DistanceM(10_000.0)));
        assert_eq!("300m".parse::<Within>(), Ok(Within::DistanceM(300.0)));
        assert!("5 parsecs".parse::<Within>().is_err());
        assert!("5h".parse::<Within>().is_err());
    }

    #[test]
    fn proximity_accepts_shorthand_rule_and_list() {
        let c: Component = serde_json::from_value(serde_json::json!({
            "name": "web", "proximity": "db", "entity": {"kind": "native", "command": ["true"]}
        }))
        .unwrap();
        assert_eq!(c.proximity, vec![Proximity { to: "db".into(), within: Within::Node, required: false }]);
        let c: Component = serde_json::from_value(serde_json::json!({
            "name": "web", "proximity": [{"to": "db", "within": "5ms", "required": true}, "cache"],
            "entity": {"kind": "native", "command": ["true"]}
        }))
        .unwrap();
        assert_eq!(c.proximity[0].within, Within::LatencyMs(5.0));
        assert!(c.proximity[0].required);
        assert_eq!(c.proximity[1].to, "cache");
    }

    #[test]
    fn arch_aliases() {
        assert_eq!("amd64".parse::<Arch>(), Ok(Arch::X86_64));
        assert_eq!(serde_json::from_str::<Arch>("\"arm64\"").unwrap(), Arch::Aarch64);
        assert_eq!(serde_json::to_string(&Arch::Aarch64).unwrap(), "\"aarch64\"");
        assert!("sparc".parse::<Arch>().is_err());
    }
}
