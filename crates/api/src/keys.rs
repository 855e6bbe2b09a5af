//! The store key layout — the one place keys are built and parsed — and the seed's store URIs:
//! `dfos://<sys>/<rest>` is `/fos/<sys>/desired/<rest>`, `afos://<sys>/<rest>` is `/fos/<sys>/actual/<rest>`, where
//! `*` matches one segment and `**` any number of segments.
//!
//! ```text
//! /fos/<sys>/desired/apps/<tenant>/<app>
//! /fos/<sys>/desired/networks/<tenant>/<net>
//! /fos/<sys>/desired/images/<image>
//! /fos/<sys>/desired/nodes/<node>/plugins/<plugin>
//! /fos/<sys>/desired/nodes/<node>/instances/<instance>
//! /fos/<sys>/actual/nodes/<node>/info
//! /fos/<sys>/actual/heartbeats/<node>               a node's status, on its heartbeat lease
//! /fos/<sys>/actual/nodes/<node>/plugins/<plugin>
//! /fos/<sys>/actual/nodes/<node>/instances/<instance>
//! /fos/<sys>/actual/nodes/<node>/networks/<net>
//! /fos/<sys>/actual/apps/<tenant>/<app>
//! /fos/<sys>/system/election/<name>                 leader election (controller)
//! /fos/<sys>/system/events/<seq>                    bounded event log
//! /fos/<sys>/system/tokens/<id>                     API tokens (hashed)
//! /fos/<sys>/system/tenants/<tenant>                a tenant's policy (may it run as root)
//! /fos/<sys>/system/secrets/<tenant>/<name>         Secret objects, encrypted
//! /fos/<sys>/system/bootstrap/cluster               the cluster CA and keys, encrypted with the join token
//! /fos/<sys>/system/segments/<tenant>/<net>         a network's VxLAN/VLAN id (network plugin)
//! /fos/<sys>/system/vlans/<id>                      VLAN id allocations
//! /fos/<sys>/system/vnis/<id>                       VxLAN VNI allocations
//! /fos/<sys>/system/ipam/<tenant>/<net>/<ip>        address allocations
//! ```

use std::fmt;

use thiserror::Error;

use crate::record::InstanceId;

/// The default system id.
pub const DEFAULT_SYSTEM: &str = "0";

/// Builds and parses the keys of one system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new(DEFAULT_SYSTEM)
    }
}

impl Keys {
    /// The keys of system `sys`.
    pub fn new(sys: &str) -> Self {
        Keys { root: format!("/fos/{sys}/") }
    }

    /// `/fos/<sys>/`, the prefix of everything.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `/fos/<sys>/desired/`.
    pub fn desired(&self) -> String {
        format!("{}desired/", self.root)
    }

    /// `/fos/<sys>/actual/`.
    pub fn actual(&self) -> String {
        format!("{}actual/", self.root)
    }

    /// An application as applied.
    pub fn desired_app(&self, tenant: &str, app: &str) -> String {
        format!("{}desired/apps/{tenant}/{app}", self.root)
    }

    /// Every application (all tenants).
    pub fn desired_apps_prefix(&self) -> String {
        format!("{}desired/apps/", self.root)
    }

    /// A network as applied.
    pub fn desired_network(&self, tenant: &str, net: &str) -> String {
        format!("{}desired/networks/{tenant}/{net}", self.root)
    }

    /// Every network (all tenants).
    pub fn desired_networks_prefix(&self) -> String {
        format!("{}desired/networks/", self.root)
    }

    /// An image.
    pub fn desired_image(&self, image: &str) -> String {
        format!("{}desired/images/{image}", self.root)
    }

    /// Every image.
    pub fn desired_images_prefix(&self) -> String {
        format!("{}desired/images/", self.root)
    }

    /// A plugin's enablement/configuration on a node.
    pub fn desired_node_plugin(&self, node: &str, plugin: &str) -> String {
        format!("{}desired/nodes/{node}/plugins/{plugin}", self.root)
    }

    /// A desired instance record.
    pub fn desired_instance(&self, node: &str, id: &InstanceId) -> String {
        format!("{}desired/nodes/{node}/instances/{id}", self.root)
    }

    /// Every desired instance of a node.
    pub fn desired_instances_prefix(&self, node: &str) -> String {
        format!("{}desired/nodes/{node}/instances/", self.root)
    }

    /// Everything desired of every node.
    pub fn desired_nodes_prefix(&self) -> String {
        format!("{}desired/nodes/", self.root)
    }

    /// A node's hardware/software info.
    pub fn node_info(&self, node: &str) -> String {
        format!("{}actual/nodes/{node}/info", self.root)
    }

    /// A node's heartbeat record (bound to the agent's lease). Under a prefix of their own, as Kubernetes keeps
    /// node leases apart from nodes: every agent lists them (for its peers), which must not read every node's
    /// instances too.
    pub fn node_status(&self, node: &str) -> String {
        format!("{}actual/heartbeats/{node}", self.root)
    }

    /// Every node's heartbeat record.
    pub fn node_statuses_prefix(&self) -> String {
        format!("{}actual/heartbeats/", self.root)
    }

    /// Everything actual of every node.
    pub fn actual_nodes_prefix(&self) -> String {
        format!("{}actual/nodes/", self.root)
    }

    /// A plugin's actual state on a node.
    pub fn actual_node_plugin(&self, node: &str, plugin: &str) -> String {
        format!("{}actual/nodes/{node}/plugins/{plugin}", self.root)
    }

    /// An actual instance record.
    pub fn actual_instance(&self, node: &str, id: &InstanceId) -> String {
        format!("{}actual/nodes/{node}/instances/{id}", self.root)
    }

    /// Every actual instance of a node.
    pub fn actual_instances_prefix(&self, node: &str) -> String {
        format!("{}actual/nodes/{node}/instances/", self.root)
    }

    /// A network's actual state on a node.
    pub fn actual_node_network(&self, node: &str, net: &str) -> String {
        format!("{}actual/nodes/{node}/networks/{net}", self.root)
    }

    /// An application's aggregated status.
    pub fn actual_app(&self, tenant: &str, app: &str) -> String {
        format!("{}actual/apps/{tenant}/{app}", self.root)
    }

    /// The key prefix of a leader election.
    pub fn election(&self, name: &str) -> String {
        format!("{}system/election/{name}", self.root)
    }

    /// A record kind kept under `system/<what>/` (tokens, tenants, secrets, bootstrap).
    pub fn system_prefix(&self, what: &str) -> String {
        format!("{}system/{what}/", self.root)
    }

    /// The event log prefix.
    pub fn events_prefix(&self) -> String {
        format!("{}system/events/", self.root)
    }

    /// A network's segment (VxLAN/VLAN id) as allocated.
    pub fn network_segment(&self, tenant: &str, net: &str) -> String {
        format!("{}{tenant}/{net}", self.network_segments_prefix())
    }

    /// Every network's segment.
    pub fn network_segments_prefix(&self) -> String {
        format!("{}system/segments/", self.root)
    }

    /// A VLAN id's allocation.
    pub fn vlan(&self, id: u16) -> String {
        format!("{}{id}", self.vlans_prefix())
    }

    /// Every VLAN id allocation.
    pub fn vlans_prefix(&self) -> String {
        format!("{}system/vlans/", self.root)
    }

    /// A VxLAN VNI's allocation.
    pub fn vni(&self, id: u32) -> String {
        format!("{}{id}", self.vnis_prefix())
    }

    /// Every VxLAN VNI allocation.
    pub fn vnis_prefix(&self) -> String {
        format!("{}system/vnis/", self.root)
    }

    /// An address allocation in a network.
    pub fn ipam_address(&self, tenant: &str, net: &str, ip: &str) -> String {
        format!("{}system/ipam/{tenant}/{net}/{ip}", self.root)
    }

    /// Every address allocation of a network.
    pub fn ipam_network_prefix(&self, tenant: &str, net: &str) -> String {
        format!("{}system/ipam/{tenant}/{net}/", self.root)
    }

    /// Every address allocation (all networks).
    pub fn ipam_prefix(&self) -> String {
        format!("{}system/ipam/", self.root)
    }

    /// Parses a key of this system into what it names, if it is one of the layout's keys.
    pub fn parse(&self, key: &str) -> Option<KeyRef> {
        let rest = key.strip_prefix(&self.root)?;
        let seg: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| s.parse::<InstanceId>().ok();
        Some(match seg.as_slice() {
            ["desired", "apps", t, a] => KeyRef::DesiredApp { tenant: t.to_string(), app: a.to_string() },
            ["desired", "networks", t, n] => KeyRef::DesiredNetwork { tenant: t.to_string(), net: n.to_string() },
            ["desired", "images", i] => KeyRef::DesiredImage { image: i.to_string() },
            ["desired", "nodes", n, "plugins", p] => {
                KeyRef::DesiredPlugin { node: n.to_string(), plugin: p.to_string() }
            }
            ["desired", "nodes", n, "instances", i] => KeyRef::DesiredInstance { node: n.to_string(), id: id(i)? },
            ["actual", "nodes", n, "info"] => KeyRef::NodeInfo { node: n.to_string() },
            ["actual", "heartbeats", n] => KeyRef::NodeStatus { node: n.to_string() },
            ["actual", "nodes", n, "plugins", p] => KeyRef::ActualPlugin { node: n.to_string(), plugin: p.to_string() },
            ["actual", "nodes", n, "instances", i] => KeyRef::ActualInstance { node: n.to_string(), id: id(i)? },
            ["actual", "nodes", n, "networks", x] => KeyRef::ActualNetwork { node: n.to_string(), net: x.to_string() },
            ["actual", "apps", t, a] => KeyRef::ActualApp { tenant: t.to_string(), app: a.to_string() },
            _ => return None,
        })
    }
}

/// What a key of the layout names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// `desired/apps/<tenant>/<app>`.
    DesiredApp {
        /// Tenant.
        tenant: String,
        /// Application.
        app: String,
    },
    /// `desired/networks/<tenant>/<net>`.
    DesiredNetwork {
        /// Tenant.
        tenant: String,
        /// Network.
        net: String,
    },
    /// `desired/images/<image>`.
    DesiredImage {
        /// Image.
        image: String,
    },
    /// `desired/nodes/<node>/plugins/<plugin>`.
    DesiredPlugin {
        /// Node.
        node: String,
        /// Plugin.
        plugin: String,
    },
    /// `desired/nodes/<node>/instances/<id>`.
    DesiredInstance {
        /// Node.
        node: String,
        /// Instance.
        id: InstanceId,
    },
    /// `actual/nodes/<node>/info`.
    NodeInfo {
        /// Node.
        node: String,
    },
    /// `actual/heartbeats/<node>`.
    NodeStatus {
        /// Node.
        node: String,
    },
    /// `actual/nodes/<node>/plugins/<plugin>`.
    ActualPlugin {
        /// Node.
        node: String,
        /// Plugin.
        plugin: String,
    },
    /// `actual/nodes/<node>/instances/<id>`.
    ActualInstance {
        /// Node.
        node: String,
        /// Instance.
        id: InstanceId,
    },
    /// `actual/nodes/<node>/networks/<net>`.
    ActualNetwork {
        /// Node.
        node: String,
        /// Network.
        net: String,
    },
    /// `actual/apps/<tenant>/<app>`.
    ActualApp {
        /// Tenant.
        tenant: String,
        /// Application.
        app: String,
    },
}

/// A URI that is not a valid store URI.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UriError {
    /// The scheme is neither `afos` nor `dfos`.
    #[error("`{0}`: a store URI starts with afos:// (actual) or dfos:// (desired)")]
    Scheme(String),
    /// No system id after the scheme.
    #[error("`{0}`: missing the system id after the scheme (e.g. dfos://0/apps/**)")]
    System(String),
    /// A segment is empty, `.`/`..`, or mixes `*` with other characters.
    #[error("`{uri}`: bad segment `{segment}` (segments are names, `*` or `**`)")]
    Segment {
        /// The URI.
        uri: String,
        /// The bad segment.
        segment: String,
    },
    /// The URI is longer, or has more segments, than [`crate::limits`] allows.
    #[error("{0}")]
    TooLong(String),
}

/// Which half of the store a URI addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// `dfos://`.
    Desired,
    /// `afos://`.
    Actual,
}

/// One segment of a URI pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Exactly this text.
    Literal(String),
    /// `*`: any one segment.
    One,
    /// `**`: any number of segments, including none.
    Many,
}

/// A parsed `afos://` / `dfos://` URI: a key prefix to list, and a matcher for the keys listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUri {
    /// Desired or actual.
    pub space: Space,
    /// The system id.
    pub system: String,
    /// The pattern below `/fos/<sys>/<space>/`.
    pub segments: Vec<Segment>,
}

impl StoreUri {
    /// Parses `afos://<sys>/<path>` or `dfos://<sys>/<path>`.
    pub fn parse(uri: &str) -> Result<StoreUri, UriError> {
        if uri.len() > crate::limits::MAX_URI_BYTES {
            return Err(UriError::TooLong(format!(
                "the URI is {} bytes, over the limit of {} bytes",
                uri.len(),
                crate::limits::MAX_URI_BYTES
            )));
        }
        let (space, rest) = if let Some(r) = uri.strip_prefix("afos://") {
            (Space::Actual, r)
        } else if let Some(r) = uri.strip_prefix("dfos://") {
            (Space::Desired, r)
        } else {
            return Err(UriError::Scheme(uri.to_string()));
        };
        let mut parts = rest.split('/');
        let system = parts.next().filter(|s| !s.is_empty()).ok_or_else(|| UriError::System(uri.to_string()))?;
        if system.contains('*') || system == "." || system == ".." {
            return Err(UriError::System(uri.to_string()));
        }
        let mut segments = Vec::new();
        let rest: Vec<&str> = parts.collect();
        let n = rest.len();
        if n > crate::limits::MAX_URI_SEGMENTS {
            return Err(UriError::TooLong(format!(
                "the URI has {n} segments, over the limit of {}",
                crate::limits::MAX_URI_SEGMENTS
            )));
        }
        for (i, s) in rest.into_iter().enumerate() {
            let seg = match s {
                "" if i + 1 == n => continue,
                "*" => Segment::One,
                "**" => Segment::Many,
                "" | "." | ".." => return Err(UriError::Segment { uri: uri.to_string(), segment: s.to_string() }),
                s if s.contains('*') => return Err(UriError::Segment { uri: uri.to_string(), segment: s.to_string() }),
                s => Segment::Literal(s.to_string()),
            };
            segments.push(seg);
        }
        Ok(StoreUri { space, system: system.to_string(), segments })
    }

    /// `/fos/<sys>/desired/` or `/fos/<sys>/actual/`.
    pub fn base(&self) -> String {
        let space = match self.space {
            Space::Desired => "desired",
            Space::Actual => "actual",
        };
        format!("/fos/{}/{space}/", self.system)
    }

    /// The longest key prefix every matching key starts with (what to `list`).
    pub fn prefix(&self) -> String {
        let mut p = self.base();
        let literals: Vec<&str> = self
            .segments
            .iter()
            .map_while(|s| match s {
                Segment::Literal(l) => Some(l.as_str()),
                _ => None,
            })
            .collect();
        let all_literal = literals.len() == self.segments.len();
        p.push_str(&literals.join("/"));
        if !all_literal && !literals.is_empty() {
            p.push('/');
        }
        p
    }

    /// Whether `key` matches the pattern exactly (a URI without wildcards matches only its own key).
    pub fn matches(&self, key: &str) -> bool {
        let Some(rest) = key.strip_prefix(&self.base()) else {
            return false;
        };
        let parts: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
        match_segments(&self.segments, &parts)
    }
}

/// Whether `key` matches `pat`, by walking the pattern as a set of states (positions in the pattern) over the key's
/// segments: `O(segments × pattern)` steps and no backtracking, whatever the `**`s (a backtracking matcher takes
/// exponential time on `**/**/…/x`).
pub fn match_segments(pat: &[Segment], key: &[&str]) -> bool {
    let m = pat.len();
    // states[i]: the first i pattern segments match the key segments read so far.
    let mut states = vec![false; m + 1];
    let mut next = vec![false; m + 1];
    states[0] = true;
    close(pat, &mut states);
    for k in key {
        next.iter_mut().for_each(|s| *s = false);
        let mut any = false;
        for i in 0..m {
            if !states[i] {
                continue;
            }
            match &pat[i] {
                Segment::Many => {
                    next[i] = true;
                    any = true;
                }
                Segment::One => {
                    next[i + 1] = true;
                    any = true;
                }
                Segment::Literal(l) if l == k => {
                    next[i + 1] = true;
                    any = true;
                }
                Segment::Literal(_) => {}
            }
        }
        if !any {
            return false;
        }
        close(pat, &mut next);
        std::mem::swap(&mut states, &mut next);
    }
    states[m]
}

/// Adds to `states` what `**` (matching no segment) reaches from them.
fn close(pat: &[Segment], states: &mut [bool]) {
    for i in 0..pat.len() {
        if states[i] && pat[i] == Segment::Many {
            states[i + 1] = true;
        }
    }
}

impl fmt::Display for StoreUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.space {
            Space::Desired => "dfos",
            Space::Actual => "afos",
        };
        write!(f, "{scheme}://{}", self.system)?;
        for s in &self.segments {
            match s {
                Segment::Literal(l) => write!(f, "/{l}")?,
                Segment::One => f.write_str("/*")?,
                Segment::Many => f.write_str("/**")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_layout_and_parse_back() {
        let k = Keys::default();
        let id = InstanceId::new("default", "wp", "db", 0);
        assert_eq!(k.desired_app("default", "wp"), "/fos/0/desired/apps/default/wp");
        assert_eq!(k.desired_instance("n1", &id), "/fos/0/desired/nodes/n1/instances/db-0.wp.default");
        assert_eq!(k.node_status("n1"), "/fos/0/actual/heartbeats/n1");
        assert_eq!(
            k.parse(&k.actual_instance("n1", &id)),
            Some(KeyRef::ActualInstance { node: "n1".into(), id: id.clone() })
        );
        assert_eq!(k.parse(&k.node_info("n2")), Some(KeyRef::NodeInfo { node: "n2".into() }));
        assert_eq!(k.parse("/fos/1/desired/apps/default/wp"), None, "other system");
        assert_eq!(k.parse("/fos/0/desired/apps/default"), None);
        assert_eq!(Keys::new("7").actual_app("t", "a"), "/fos/7/actual/apps/t/a");
        assert_eq!(k.ipam_address("t", "n", "10.0.0.2"), "/fos/0/system/ipam/t/n/10.0.0.2");
        assert!(k.ipam_address("t", "n", "10.0.0.2").starts_with(&k.ipam_network_prefix("t", "n")));
        assert_eq!(k.vlan(100), "/fos/0/system/vlans/100");
        assert_eq!(k.vni(5), "/fos/0/system/vnis/5");
        assert_eq!(k.network_segment("t", "n"), "/fos/0/system/segments/t/n");
    }

    #[test]
    fn uris_map_to_prefix_and_matcher() {
        let u = StoreUri::parse("afos://0/nodes/*/instances/**").unwrap();
        assert_eq!(u.prefix(), "/fos/0/actual/nodes/");
        assert!(u.matches("/fos/0/actual/nodes/n1/instances/db-0.wp.default"));
        assert!(u.matches("/fos/0/actual/nodes/n1/instances"), "** matches zero segments");
        assert!(!u.matches("/fos/0/actual/nodes/n1/info"));
        assert!(!u.matches("/fos/0/desired/nodes/n1/instances/x"));

        let u = StoreUri::parse("dfos://0/apps/*").unwrap();
        assert_eq!(u.prefix(), "/fos/0/desired/apps/");
        assert!(u.matches("/fos/0/desired/apps/default"));
        assert!(!u.matches("/fos/0/desired/apps/default/wp"), "* is one segment only");

        let u = StoreUri::parse("dfos://0/apps/default/wp").unwrap();
        assert_eq!(u.prefix(), "/fos/0/desired/apps/default/wp");
        assert!(u.matches("/fos/0/desired/apps/default/wp"));
        assert!(!u.matches("/fos/0/desired/apps/default/wp2"));

        let u = StoreUri::parse("afos://0/**").unwrap();
        assert_eq!(u.prefix(), "/fos/0/actual/");
        assert!(u.matches("/fos/0/actual/apps/t/a"));
        assert_eq!(u.to_string(), "afos://0/**");
    }

    #[test]
    fn bad_uris_are_refused() {
        assert!(matches!(StoreUri::parse("http://0/x"), Err(UriError::Scheme(_))));
        assert!(matches!(StoreUri::parse("afos:///x"), Err(UriError::System(_))));
        assert!(matches!(StoreUri::parse("afos://*/x"), Err(UriError::System(_))));
        assert!(matches!(StoreUri::parse("afos://0/a/../b"), Err(UriError::Segment { .. })));
        assert!(matches!(StoreUri::parse("afos://0/a//b"), Err(UriError::Segment { .. })));
        assert!(matches!(StoreUri::parse("afos://0/a*b"), Err(UriError::Segment { .. })));
    }
}
