//! KVM or TCG: whether this node's guests can use hardware virtualisation. `/dev/kvm` alone does not say: a kernel
//! may offer KVM without the CPU's virtualisation extensions (a paravirtual back end such as PVM, which boots only
//! guests built for it), and ordinary guests then hang. So KVM is chosen when `/dev/kvm` opens for reading and
//! writing, answers `KVM_GET_API_VERSION` with 12, and the CPU has `vmx` or `svm`; TCG otherwise.

use std::os::fd::AsRawFd;

use serde::Deserialize;

use super::domain::Accel;

/// The node configuration's choice (`runtimes.vm.config.accel`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelSetting {
    /// Detect at start.
    #[default]
    Auto,
    /// KVM whatever the detection says.
    Kvm,
    /// TCG.
    Tcg,
}

/// `KVM_GET_API_VERSION`: `_IO(0xAE, 0x00)`.
const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;

/// The accelerator guests use on this node.
pub fn choose(setting: AccelSetting) -> Accel {
    match setting {
        AccelSetting::Kvm => Accel::Kvm,
        AccelSetting::Tcg => Accel::Tcg,
        AccelSetting::Auto if kvm_works() => Accel::Kvm,
        AccelSetting::Auto => Accel::Tcg,
    }
}

/// Whether `/dev/kvm` answers and the CPU has hardware virtualisation.
pub fn kvm_works() -> bool {
    let Ok(dev) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") else { return false };
    // SAFETY: an ioctl without argument on a file descriptor we own.
    let version = unsafe { libc::ioctl(dev.as_raw_fd(), KVM_GET_API_VERSION as _, 0) };
    version == 12 && cpu_has_virtualisation(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
}

/// Whether `/proc/cpuinfo`'s flags hold `vmx` (Intel VT-x) or `svm` (AMD-V).
pub fn cpu_has_virtualisation(cpuinfo: &str) -> bool {
    cpuinfo.lines().filter(|l| l.starts_with("flags")).any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtualisation_is_read_from_the_cpu_flags() {
        assert!(cpu_has_virtualisation("processor : 0\nflags\t\t: fpu vme svm lm\n"));
        assert!(cpu_has_virtualisation("flags : fpu vmx\n"));
        assert!(!cpu_has_virtualisation("flags : fpu hypervisor lm\nvmx_flags : x\n"));
        assert_eq!(choose(AccelSetting::Tcg), Accel::Tcg);
        assert_eq!(choose(AccelSetting::Kvm), Accel::Kvm);
    }
}
