//! The libvirt domain of a VM instance: [`DomainSpec`] is what the runtime decided from the entity and the
//! instance's context (vcpus, memory, direct-boot kernel or a copy-on-write disk, one tap per fos network, serial
//! console to the instance's log), and [`DomainSpec::to_xml`] renders it as libvirt domain XML.
//!
//! ```text
//! <domain type='qemu|kvm'>  name fos-<scope>-<instance>, q35, vcpus, memory
//!   <os> kernel + initrd + cmdline (console=ttyS0, the entity's cmdline, fos.ip=/fos.gw= of the first network)
//!   <disk> the instance's qcow2 overlay over the image (virtio), then one per volume (its disk image)
//!   <interface type='bridge'> one per network: the network's bridge, tap fos<scope>v<hash><n>, the instance's MAC
//!   <serial type='file'> the instance's stdout.log
//! ```

use std::fmt::Write;
use std::path::PathBuf;

use ipnet::Ipv4Net;

/// Whether guests run on hardware virtualisation or are emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM (`<domain type='kvm'>`, the host's CPU).
    Kvm,
    /// QEMU's TCG (`<domain type='qemu'>`, a generic CPU model).
    Tcg,
}

impl Accel {
    /// The name the node publishes (`kvm`, `tcg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// A kernel booted directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBoot {
    /// The kernel image.
    pub kernel: PathBuf,
    /// Its initrd.
    pub initrd: Option<PathBuf>,
    /// The full command line.
    pub cmdline: String,
}

/// A disk of the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The file.
    pub path: PathBuf,
    /// Its format (`qcow2`, `raw`).
    pub format: String,
    /// Whether it is a CD-ROM (an ISO image), read-only.
    pub cdrom: bool,
}

/// A network interface of the guest: a tap on a fos network's bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The bridge of the network on this node.
    pub bridge: String,
    /// The tap's name (made by libvirt when the domain starts, removed when it stops).
    pub tap: String,
    /// The guest's MAC.
    pub mac: String,
    /// The guest's address, when the network has addresses.
    pub address: Option<Ipv4Net>,
    /// The network's gateway.
    pub gateway: Option<std::net::Ipv4Addr>,
    /// The network's MTU (the bridge's), when known.
    pub mtu: Option<u32>,
}

/// Everything the domain XML says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    /// The domain's name.
    pub name: String,
    /// KVM or TCG.
    pub accel: Accel,
    /// Virtual cpus.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// A kernel to boot directly.
    pub boot: Option<DirectBoot>,
    /// Disks, the first one the boot disk.
    pub disks: Vec<Disk>,
    /// Network interfaces.
    pub nics: Vec<Nic>,
    /// The file the serial console is written to.
    pub console: PathBuf,
}

/// The kernel command line of a directly booted guest: the serial console, the entity's own arguments, then the
/// address of its first network with one (`fos.ip=A.B.C.D/N`, `fos.gw=A.B.C.D`), which the guest's init reads.
pub fn kernel_cmdline(entity: Option<&str>, nics: &[Nic]) -> String {
    let mut line = String::from("console=ttyS0");
    if let Some(extra) = entity.map(str::trim).filter(|s| !s.is_empty()) {
        line.push(' ');
        line.push_str(extra);
    }
    if let Some(nic) = nics.iter().find(|n| n.address.is_some()) {
        if let Some(ip) = nic.address {
            let _ = write!(line, " fos.ip={ip}");
        }
        if let Some(gw) = nic.gateway {
            let _ = write!(line, " fos.gw={gw}");
        }
    }
    line
}

/// Escapes text for XML content and single- or double-quoted attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn path(p: &std::path::Path) -> String {
    esc(&p.to_string_lossy())
}

impl DomainSpec {
    /// The domain XML.
    pub fn to_xml(&self) -> String {
        let mut x = String::new();
        let kind = match self.accel {
            Accel::Kvm => "kvm",
            Accel::Tcg => "qemu",
        };
        let _ = writeln!(x, "<domain type='{kind}'>");
        let _ = writeln!(x, "  <name>{}</name>", esc(&self.name));
        let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", self.memory_mib);
        let _ = writeln!(x, "  <vcpu>{}</vcpu>", self.vcpus);
        x.push_str("  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n");
        if let Some(boot) = &self.boot {
            let _ = writeln!(x, "    <kernel>{}</kernel>", path(&boot.kernel));
            if let Some(initrd) = &boot.initrd {
                let _ = writeln!(x, "    <initrd>{}</initrd>", path(initrd));
            }
            let _ = writeln!(x, "    <cmdline>{}</cmdline>", esc(&boot.cmdline));
        } else {
            x.push_str("    <boot dev='hd'/>\n");
        }
        x.push_str("  </os>\n");
        match self.accel {
            Accel::Kvm => x.push_str("  <cpu mode='host-passthrough'/>\n"),
            Accel::Tcg => {
                x.push_str("  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>\n")
            }
        }
        x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n");
        x.push_str("  <on_crash>destroy</on_crash>\n  <devices>\n");
        for (i, disk) in self.disks.iter().enumerate() {
            let (device, bus, dev) = if disk.cdrom {
                ("cdrom", "sata", format!("sd{}", (b'a' + i as u8) as char))
            } else {
                ("disk", "virtio", format!("vd{}", (b'a' + i as u8) as char))
            };
            let _ = writeln!(x, "    <disk type='file' device='{device}'>");
            let _ = writeln!(x, "      <driver name='qemu' type='{}'/>", esc(&disk.format));
            let _ = writeln!(x, "      <source file='{}'/>", path(&disk.path));
            let _ = writeln!(x, "      <target dev='{dev}' bus='{bus}'/>");
            if disk.cdrom {
                x.push_str("      <readonly/>\n");
            }
            x.push_str("    </disk>\n");
        }
        for nic in &self.nics {
            x.push_str("    <interface type='bridge'>\n");
            let _ = writeln!(x, "      <source bridge='{}'/>", esc(&nic.bridge));
            let _ = writeln!(x, "      <target dev='{}'/>", esc(&nic.tap));
            let _ = writeln!(x, "      <mac address='{}'/>", esc(&nic.mac));
            if let Some(mtu) = nic.mtu {
                let _ = writeln!(x, "      <mtu size='{mtu}'/>");
            }
            x.push_str("      <model type='virtio'/>\n    </interface>\n");
        }
        let console = path(&self.console);
        let _ =
            writeln!(x, "    <serial type='file'><source path='{console}' append='on'/><target port='0'/></serial>");
        let _ = writeln!(
            x,
            "    <console type='file'><source path='{console}' append='on'/><target type='serial'/></console>"
        );
        x.push_str("  </devices>\n</domain>\n");
        x
    }
}

/// `xml` (a domain definition named `name`, without a UUID) with `uuid` given it.
pub fn with_uuid(xml: &str, name: &str, uuid: &str) -> String {
    renamed(xml, name, name, uuid)
}

/// `xml` (a domain definition named `name`, without a UUID) named `to` instead, with `uuid` given it.
pub fn renamed(xml: &str, name: &str, to: &str, uuid: &str) -> String {
    let tag = format!("<name>{}</name>", esc(name));
    xml.replacen(&tag, &format!("<name>{}</name>\n  <uuid>{uuid}</uuid>", esc(to)), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(address: Option<&str>) -> Nic {
        Nic {
            bridge: "fosabcdb1234567".into(),
            tap: "fosabcdv1234560".into(),
            mac: "02:fo:00:00:00:01".replace("fo", "f0"),
            address: address.map(|a| a.parse().unwrap()),
            gateway: address.map(|_| "10.1.0.1".parse().unwrap()),
            mtu: Some(1450),
        }
    }

    #[test]
    fn the_command_line_carries_the_console_the_entity_and_the_first_address() {
        assert_eq!(kernel_cmdline(None, &[]), "console=ttyS0");
        let nics = [nic(None), nic(Some("10.1.0.5/24"))];
        assert_eq!(kernel_cmdline(Some(" quiet "), &nics), "console=ttyS0 quiet fos.ip=10.1.0.5/24 fos.gw=10.1.0.1");
    }

    #[test]
    fn a_direct_boot_domain_names_kernel_initrd_taps_and_console() {
        let spec = DomainSpec {
            name: "fos-abcd-vm-0.app.default".into(),
            accel: Accel::Tcg,
            vcpus: 2,
            memory_mib: 256,
            boot: Some(DirectBoot {
                kernel: "/img/vmlinuz".into(),
                initrd: Some("/img/initrd.img".into()),
                cmdline: "console=ttyS0 a=<b&c>".into(),
            }),
            disks: vec![Disk { path: "/d/it's.qcow2".into(), format: "qcow2".into(), cdrom: false }],
            nics: vec![nic(Some("10.1.0.5/24"))],
            console: "/data/vm/x/logs/stdout.log".into(),
        };
        let xml = spec.to_xml();
        assert!(xml.starts_with("<domain type='qemu'>"), "{xml}");
        for part in [
            "<name>fos-abcd-vm-0.app.default</name>",
            "<memory unit='MiB'>256</memory>",
            "<vcpu>2</vcpu>",
            "<kernel>/img/vmlinuz</kernel>",
            "<initrd>/img/initrd.img</initrd>",
            "<cmdline>console=ttyS0 a=&lt;b&amp;c&gt;</cmdline>",
            "<model fallback='allow'>qemu64</model>",
            "<source file='/d/it&apos;s.qcow2'/>",
            "<target dev='vda' bus='virtio'/>",
            "<source bridge='fosabcdb1234567'/>",
            "<target dev='fosabcdv1234560'/>",
            "<mac address='02:f0:00:00:00:01'/>",
            "<mtu size='1450'/>",
            "<serial type='file'><source path='/data/vm/x/logs/stdout.log' append='on'/>",
        ] {
            assert!(xml.contains(part), "missing {part} in\n{xml}");
        }
        assert!(!xml.contains("<boot dev"), "a direct boot has no boot device");
    }

    #[test]
    fn a_disk_domain_on_kvm_boots_from_its_disk_with_the_host_cpu() {
        let spec = DomainSpec {
            name: "d".into(),
            accel: Accel::Kvm,
            vcpus: 1,
            memory_mib: 64,
            boot: None,
            disks: vec![Disk { path: "/o.qcow2".into(), format: "qcow2".into(), cdrom: false }],
            nics: Vec::new(),
            console: "/c.log".into(),
        };
        let xml = spec.to_xml();
        assert!(xml.starts_with("<domain type='kvm'>"));
        assert!(xml.contains("<boot dev='hd'/>") && xml.contains("host-passthrough"), "{xml}");
        assert!(!xml.contains("<interface"), "no network, no interface");
    }

    #[test]
    fn a_definition_is_renamed_with_the_uuid_it_keeps_and_nothing_else_changes() {
        let xml = "<domain type='qemu'>\n  <name>fos-n1-vm-0.app.default</name>\n  <memory unit='MiB'>128</memory>\n</domain>\n";
        let uuid = "6f1c9a3e-0b5d-4c1e-9f43-2a7d0c5e8b11";
        let moved = renamed(xml, "fos-n1-vm-0.app.default", "fos-n0-vm-0.app.default", uuid);
        assert_eq!(
            moved,
            format!("<domain type='qemu'>\n  <name>fos-n0-vm-0.app.default</name>\n  <uuid>{uuid}</uuid>\n  <memory unit='MiB'>128</memory>\n</domain>\n")
        );
        assert_eq!(with_uuid(xml, "fos-n1-vm-0.app.default", uuid).matches("<uuid>").count(), 1);
        // A name the definition does not hold leaves it as it is (libvirt then refuses the move, saying why).
        assert_eq!(renamed(xml, "another", "fos-n0-vm-0.app.default", uuid), xml);
    }
}
