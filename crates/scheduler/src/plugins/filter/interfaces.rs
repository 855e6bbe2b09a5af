//! Network interface filter: the node has enough interfaces of each requested type (interfaces are shared, not
//! allocated).

use super::{Context, FilterPlugin};
use crate::snapshot::NodeIdx;
use fos_api::plan::Rejection;

/// Refuses nodes with too few interfaces of a requested type.
#[derive(Debug, Clone, Copy)]
pub struct Interfaces;

impl FilterPlugin for Interfaces {
    fn name(&self) -> &'static str {
        "interfaces"
    }

    fn passes(&self, cx: &Context<'_>, n: NodeIdx) -> bool {
        let node = cx.snapshot.node(n);
        cx.request.needs.interfaces.iter().all(|(k, want)| u32::from(node.interfaces[*k as usize]) >= *want)
    }

    fn explain(&self, cx: &Context<'_>, n: NodeIdx) -> Option<Rejection> {
        let node = cx.snapshot.node(n);
        cx.request.needs.interfaces.iter().find_map(|(kind, needs)| {
            let has = u32::from(node.interfaces[*kind as usize]);
            (has < *needs).then_some(Rejection::Interfaces { kind: *kind, needs: *needs, has })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use fos_api::manifest::{DeviceRequest, InterfaceType};

    #[test]
    fn counts_interfaces_by_type() {
        let mut c = component("c");
        c.constraints.networks = vec![DeviceRequest { kind: InterfaceType::Fieldbus, number: 1 }];
        let t = Fixture::new(vec![with_interfaces("plc", &[InterfaceType::Fieldbus]), node("plain")], c);
        assert_eq!(t.explain(&Interfaces, "plc"), None);
        let r = t.explain(&Interfaces, "plain").unwrap();
        assert_eq!(r, Rejection::Interfaces { kind: InterfaceType::Fieldbus, needs: 1, has: 0 });
        t.assert_consistent(&Interfaces);
    }
}
