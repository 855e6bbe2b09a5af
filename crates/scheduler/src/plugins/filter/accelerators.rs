//! Accelerator filter: enough *free* accelerators of each requested type (cuda, opencl, fpga, tpu, npu, gpu);
//! each accelerator is allocated to one instance.

use super::{Context, FilterPlugin};
use crate::snapshot::NodeIdx;
use fos_api::plan::Rejection;

/// Refuses nodes with too few free accelerators of a requested type.
#[derive(Debug, Clone, Copy)]
pub struct Accelerators;

impl FilterPlugin for Accelerators {
    fn name(&self) -> &'static str {
        "accelerators"
    }

    fn passes(&self, cx: &Context<'_>, n: NodeIdx) -> bool {
        let needs = &cx.request.needs.accelerators;
        needs.is_empty() || {
            let free = cx.state.free(n);
            needs.iter().all(|(k, want)| u32::from(free.accelerators[*k as usize]) >= *want)
        }
    }

    fn explain(&self, cx: &Context<'_>, n: NodeIdx) -> Option<Rejection> {
        let (free, node) = (cx.state.free(n), cx.snapshot.node(n));
        cx.request.needs.accelerators.iter().find_map(|(kind, needs)| {
            let f = u32::from(free.accelerators[*kind as usize]);
            (f < *needs).then(|| Rejection::Accelerators {
                kind: *kind,
                needs: *needs,
                free: f,
                total: u32::from(node.accelerators_total[*kind as usize]),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use fos_api::manifest::{Accelerator, DeviceRequest};

    #[test]
    fn a_gpu_in_use_is_not_free() {
        let mut c = component("c");
        c.constraints.accelerators = vec![DeviceRequest { kind: Accelerator::Cuda, number: 1 }];
        let mut t = Fixture::new(vec![with_accelerators("gpu", &[(Accelerator::Cuda, "gpu0")]), node("cpu")], c);
        assert_eq!(t.explain(&Accelerators, "gpu"), None);
        assert_eq!(t.explain(&Accelerators, "cpu").unwrap().to_string(), "needs 1 cuda, has none");
        t.allocate_devices("gpu", &[], &["gpu0"]);
        assert_eq!(
            t.explain(&Accelerators, "gpu"),
            Some(Rejection::Accelerators { kind: Accelerator::Cuda, needs: 1, free: 0, total: 1 })
        );
        t.assert_consistent(&Accelerators);
    }
}
