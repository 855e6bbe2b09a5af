//! Resources filter: free cpu, memory and disk (capacity minus what placed instances reserve) cover the
//! instance's reservation.

use super::{Context, FilterPlugin};
use crate::snapshot::NodeIdx;
use fos_api::plan::Rejection;

/// Refuses nodes without enough free cpu, memory or disk.
#[derive(Debug, Clone, Copy)]
pub struct Resources;

impl FilterPlugin for Resources {
    fn name(&self) -> &'static str {
        "resources"
    }

    #[inline]
    fn passes(&self, cx: &Context<'_>, n: NodeIdx) -> bool {
        let (free, needs) = (cx.state.free(n), cx.request.needs);
        free.cpu_millis >= needs.cpu_millis
            && free.memory_bytes >= needs.memory_bytes
            && free.disk_bytes >= needs.disk_bytes
    }

    fn explain(&self, cx: &Context<'_>, n: NodeIdx) -> Option<Rejection> {
        let (free, needs, node) = (cx.state.free(n), cx.request.needs, cx.snapshot.node(n));
        if free.cpu_millis < needs.cpu_millis {
            return Some(Rejection::Cpu { needs: needs.cpu_millis, free: free.cpu_millis, total: node.cpu_millis });
        }
        if free.memory_bytes < needs.memory_bytes {
            return Some(Rejection::Memory {
                needs: needs.memory_bytes,
                free: free.memory_bytes,
                total: node.memory_bytes,
            });
        }
        if free.disk_bytes < needs.disk_bytes {
            return Some(Rejection::Disk { needs: needs.disk_bytes, free: free.disk_bytes, total: node.disk_bytes });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use fos_api::ByteSize;

    #[test]
    fn counts_what_is_already_allocated() {
        let mut c = component("c");
        c.entity.resources.cpu = Some("1500m".into());
        c.entity.resources.memory = Some(ByteSize::from("1Gi"));
        let mut t = Fixture::new(vec![sized("big", 4, "8Gi"), sized("small", 1, "8Gi"), sized("tight", 4, "2Gi")], c);
        t.allocate("tight", 0, 3 << 29);
        assert_eq!(t.explain(&Resources, "big"), None);
        assert_eq!(t.explain(&Resources, "small"), Some(Rejection::Cpu { needs: 1500, free: 1000, total: 1000 }));
        assert_eq!(t.explain(&Resources, "tight").unwrap().to_string(), "needs 1Gi memory, has 512Mi free of 2Gi");
        t.assert_consistent(&Resources);
    }
}
