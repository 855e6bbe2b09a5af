//! Platform filter: the node's cpu architecture and operating system match the component's constraints.

use super::{Context, FilterPlugin};
use crate::snapshot::NodeIdx;
use fos_api::plan::Rejection;

/// Refuses nodes of another architecture or operating system.
#[derive(Debug, Clone, Copy)]
pub struct Platform;

impl FilterPlugin for Platform {
    fn name(&self) -> &'static str {
        "platform"
    }

    fn passes(&self, cx: &Context<'_>, n: NodeIdx) -> bool {
        let (node, needs) = (cx.snapshot.node(n), cx.request.needs);
        needs.arch.is_none_or(|a| a == node.arch) && needs.os.as_ref().is_none_or(|os| *os == node.os)
    }

    fn explain(&self, cx: &Context<'_>, n: NodeIdx) -> Option<Rejection> {
        let (node, needs) = (cx.snapshot.node(n), cx.request.needs);
        if let Some(wanted) = needs.arch.filter(|a| *a != node.arch) {
            return Some(Rejection::Arch { wanted, has: node.arch });
        }
        if let Some(wanted) = needs.os.as_ref().filter(|os| **os != node.os) {
            return Some(Rejection::Os { wanted: wanted.clone(), has: node.os.clone() });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use fos_api::manifest::Arch;

    #[test]
    fn arch_then_os() {
        let mut arm = node("arm");
        arm.spec.arch = Arch::Aarch64;
        let mut bsd = node("bsd");
        bsd.spec.os = "freebsd".into();
        let mut c = component("c");
        c.constraints.arch = Some(Arch::X86_64);
        c.constraints.os = Some("linux".into());
        let t = Fixture::new(vec![node("x86"), arm, bsd], c);
        assert_eq!(t.explain(&Platform, "x86"), None);
        assert_eq!(t.explain(&Platform, "arm"), Some(Rejection::Arch { wanted: Arch::X86_64, has: Arch::Aarch64 }));
        assert_eq!(t.explain(&Platform, "bsd"), Some(Rejection::Os { wanted: "linux".into(), has: "freebsd".into() }));
        t.assert_consistent(&Platform);
    }

    #[test]
    fn no_constraint_takes_any_platform() {
        let mut arm = node("arm");
        arm.spec.arch = Arch::Riscv64;
        let t = Fixture::new(vec![arm], component("c"));
        assert_eq!(t.explain(&Platform, "arm"), None);
    }
}
