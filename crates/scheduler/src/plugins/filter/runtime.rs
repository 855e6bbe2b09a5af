//! Runtime filter: the node has a working runtime for the entity's kind (native, vm, container).

use super::{Context, FilterPlugin};
use crate::snapshot::NodeIdx;
use fos_api::plan::Rejection;

/// Refuses nodes that cannot run the entity's kind.
#[derive(Debug, Clone, Copy)]
pub struct Runtime;

impl FilterPlugin for Runtime {
    fn name(&self) -> &'static str {
        "runtime"
    }

    fn passes(&self, cx: &Context<'_>, n: NodeIdx) -> bool {
        cx.snapshot.node(n).runs(cx.request.needs.kind)
    }

    fn explain(&self, cx: &Context<'_>, n: NodeIdx) -> Option<Rejection> {
        let node = cx.snapshot.node(n);
        let kind = cx.request.needs.kind;
        (!node.runs(kind)).then(|| Rejection::Runtime { kind, has: node.runtime_list() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use fos_api::manifest::EntityKind;

    #[test]
    fn needs_the_entity_kind_runtime() {
        let mut natives = node("natives");
        natives.spec.runtimes = vec![EntityKind::Native];
        let mut c = component("c");
        c.entity.kind = EntityKind::Container;
        let t = Fixture::new(vec![node("all"), natives], c);
        assert_eq!(t.explain(&Runtime, "all"), None);
        let r = t.explain(&Runtime, "natives").unwrap();
        assert_eq!(r, Rejection::Runtime { kind: EntityKind::Container, has: vec![EntityKind::Native] });
        assert_eq!(r.to_string(), "no container runtime (runs native)");
        t.assert_consistent(&Runtime);
    }
}
