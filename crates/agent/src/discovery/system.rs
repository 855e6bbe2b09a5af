//! Discovery of the machine itself: uname (arch, kernel, host name), `/etc/os-release`, processors from
//! `/proc/cpuinfo` and cpufreq, memory from `/proc/meminfo`, and mounted disks from `/proc/mounts` + statvfs.

use std::ffi::{CStr, CString};
use std::fs;
use std::path::Path;

use fos_api::manifest::Arch;
use fos_api::node::{CpuInfo, DiskInfo};
use fos_api::quantity::ByteSize;

/// What uname(2) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uname {
    /// `sysname` (`Linux`).
    pub sysname: String,
    /// `nodename`, the host name.
    pub nodename: String,
    /// `release`, the kernel release.
    pub release: String,
    /// `machine` (`x86_64`).
    pub machine: String,
}

/// Calls uname(2).
pub fn uname() -> Uname {
    // SAFETY: utsname is plain data; uname fills it with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid utsname to write to.
    unsafe { libc::uname(&mut u) };
    // SAFETY: every field is NUL-terminated after a successful uname (and zeroed otherwise).
    let s = |f: &[libc::c_char]| unsafe { CStr::from_ptr(f.as_ptr()) }.to_string_lossy().into_owned();
    Uname { sysname: s(&u.sysname), nodename: s(&u.nodename), release: s(&u.release), machine: s(&u.machine) }
}

/// The fos architecture of a uname `machine`.
pub fn arch_of(machine: &str) -> Option<Arch> {
    Some(match machine {
        "x86_64" | "amd64" => Arch::X86_64,
        "aarch64" | "arm64" | "armv8l" => Arch::Aarch64,
        m if m.starts_with("armv7") => Arch::Armv7,
        "riscv64" => Arch::Riscv64,
        _ => return None,
    })
}

/// `PRETTY_NAME` from `/etc/os-release` (or `/usr/lib/os-release`).
pub fn os_release() -> Option<String> {
    let text = fs::read_to_string("/etc/os-release").or_else(|_| fs::read_to_string("/usr/lib/os-release")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// Processors: model from `/proc/cpuinfo`, count of online cpus, nominal frequency from cpufreq (else cpuinfo).
pub fn cpu() -> CpuInfo {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |names: &[&str]| {
        info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            names.contains(&k.trim()).then(|| v.trim().to_string()).filter(|v| !v.is_empty())
        })
    };
    let model = field(&["model name", "Model", "Hardware", "cpu model", "uarch"]).unwrap_or_default();
    let count = info.lines().filter(|l| l.split(':').next().map(str::trim) == Some("processor")).count() as u32;
    // SAFETY: sysconf has no memory-safety preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let count = if online > 0 { online as u32 } else { count.max(1) };
    let cpufreq = fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|khz| (khz / 1000) as u32);
    let frequency_mhz = cpufreq.or_else(|| field(&["cpu MHz"]).and_then(|v| v.parse::<f64>().ok()).map(|f| f as u32));
    CpuInfo { model, count, frequency_mhz }
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn memory_total() -> u64 {
    meminfo_field(&fs::read_to_string("/proc/meminfo").unwrap_or_default(), "MemTotal").unwrap_or(0)
}

/// A `/proc/meminfo` field (`MemTotal`) in bytes.
pub fn meminfo_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// (total, available) bytes of the file system holding `path`.
pub fn statvfs(path: &Path) -> Option<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs is plain data filled by the call.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `s` a valid statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    Some((s.f_blocks as u64 * frsize, s.f_bavail as u64 * frsize))
}

/// Mounted block devices (`/dev/...` in `/proc/mounts`), one entry per device (its first mount point).
pub fn disks() -> Vec<DiskInfo> {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut out: Vec<DiskInfo> = Vec::new();
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(device), Some(mount), Some(fstype)) = (f.next(), f.next(), f.next()) else { continue };
        if !device.starts_with("/dev/") || out.iter().any(|d| d.device == device) {
            continue;
        }
        let mount = unescape_mount(mount);
        let Some((total, available)) = statvfs(Path::new(&mount)) else { continue };
        out.push(DiskInfo {
            device: device.to_string(),
            mount_point: mount,
            filesystem: fstype.to_string(),
            total: ByteSize::from_bytes(total),
            available: ByteSize::from_bytes(available),
        });
    }
    out
}

/// `/proc/mounts` escapes space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_map_to_fos_arches() {
        assert_eq!(arch_of("x86_64"), Some(Arch::X86_64));
        assert_eq!(arch_of("aarch64"), Some(Arch::Aarch64));
        assert_eq!(arch_of("armv7l"), Some(Arch::Armv7));
        assert_eq!(arch_of("mips"), None);
    }

    #[test]
    fn meminfo_fields_are_read_in_bytes() {
        assert_eq!(meminfo_field("MemTotal:       1024 kB\nMemFree: 1 kB\n", "MemTotal"), Some(1 << 20));
        assert_eq!(meminfo_field("MemFree: 1 kB\n", "MemTotal"), None);
        assert_eq!(unescape_mount("/mnt/a\\040b"), "/mnt/a b");
    }
}
