//! I/O filter: enough *free* I/O devices of each requested type (GPIO, serial, I2C, SPI, CAN, USB). Devices are
//! allocated one instance each, so a device held by another instance does not count.

use super::{Context, FilterPlugin};
use crate::snapshot::NodeIdx;
use fos_api::plan::Rejection;

/// Refuses nodes with too few free I/O devices of a requested type.
#[derive(Debug, Clone, Copy)]
pub struct Io;

impl FilterPlugin for Io {
    fn name(&self) -> &'static str {
        "io"
    }

    fn passes(&self, cx: &Context<'_>, n: NodeIdx) -> bool {
        let needs = &cx.request.needs.io;
        needs.is_empty() || {
            let free = cx.state.free(n);
            needs.iter().all(|(k, want)| u32::from(free.io[*k as usize]) >= *want)
        }
    }

    fn explain(&self, cx: &Context<'_>, n: NodeIdx) -> Option<Rejection> {
        let (free, node) = (cx.state.free(n), cx.snapshot.node(n));
        cx.request.needs.io.iter().find_map(|(kind, needs)| {
            let f = u32::from(free.io[*kind as usize]);
            (f < *needs).then(|| Rejection::Io {
                kind: *kind,
                needs: *needs,
                free: f,
                total: u32::from(node.io_total[*kind as usize]),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use fos_api::manifest::{DeviceRequest, IoType};

    #[test]
    fn devices_held_by_others_do_not_count() {
        let mut c = component("c");
        c.constraints.io = vec![DeviceRequest { kind: IoType::Gpio, number: 2 }];
        let mut t = Fixture::new(
            vec![with_io("gw", &[(IoType::Gpio, "gpiochip0"), (IoType::Gpio, "gpiochip1")]), node("plain")],
            c,
        );
        assert_eq!(t.explain(&Io, "gw"), None);
        t.allocate_devices("gw", &["gpiochip1"], &[]);
        assert_eq!(t.explain(&Io, "gw").unwrap().to_string(), "needs 2 gpio, has 1 free of 2");
        assert_eq!(t.explain(&Io, "plain").unwrap().to_string(), "needs 2 gpio, has none");
        t.assert_consistent(&Io);
    }
}
