//! Discovery of I/O devices (GPIO chips with their line counts, serial ports backed by real hardware, I2C and SPI
//! buses) and accelerators (NVIDIA GPUs, DRM render nodes, FPGA managers, OpenCL ICDs).

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;

use fos_api::manifest::{Accelerator, IoType};
use fos_api::node::{AcceleratorDevice, IoDevice};

/// `struct gpiochip_info` of `<linux/gpio.h>`.
#[repr(C)]
struct GpioChipInfo {
    name: [u8; 32],
    label: [u8; 32],
    lines: u32,
}

/// `GPIO_GET_CHIPINFO_IOCTL` = `_IOR(0xB4, 0x01, struct gpiochip_info)`.
const GPIO_GET_CHIPINFO_IOCTL: u64 = (2 << 30) | ((std::mem::size_of::<GpioChipInfo>() as u64) << 16) | (0xB4 << 8) | 1;

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Names in `dir` starting with `prefix`, sorted.
fn names_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|it| it.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.retain(|n| n.starts_with(prefix));
    v.sort();
    v
}

/// The number of lines of a GPIO chip: the chip info ioctl, else the sysfs `ngpio` of the legacy interface.
pub fn gpio_lines(chip: &str) -> Option<u32> {
    if let Ok(f) = fs::File::open(Path::new("/dev").join(chip)) {
        // SAFETY: GpioChipInfo is plain data the ioctl fills.
        let mut info: GpioChipInfo = unsafe { std::mem::zeroed() };
        // SAFETY: the request matches the struct passed, and the fd is open.
        if unsafe { libc::ioctl(f.as_raw_fd(), GPIO_GET_CHIPINFO_IOCTL as _, &mut info) } == 0 {
            return Some(info.lines);
        }
    }
    // Legacy sysfs: /sys/class/gpio/gpiochip<base>/device/<chip> identifies the chip.
    for base in names_with_prefix(Path::new("/sys/class/gpio"), "gpiochip") {
        let dir = Path::new("/sys/class/gpio").join(base);
        if dir.join("device").join(chip).exists() {
            return read(&dir.join("ngpio")).and_then(|n| n.parse().ok());
        }
    }
    None
}

/// Whether serial port `name` is backed by hardware: USB/ACM ports always; `ttyS*` only when its UART type is known
/// (`/sys/class/tty/ttyS*/type` ≠ 0: PORT_UNKNOWN means no UART answers at that address).
pub fn is_real_serial(name: &str) -> bool {
    let sys = Path::new("/sys/class/tty").join(name);
    if !sys.join("device").exists() || !Path::new("/dev").join(name).exists() {
        return false;
    }
    if name.starts_with("ttyS") {
        return read(&sys.join("type")).and_then(|t| t.parse::<u32>().ok()).is_some_and(|t| t != 0);
    }
    true
}

/// GPIO chips, serial ports, I2C buses and SPI devices found in `/dev`.
pub fn io_devices() -> Vec<IoDevice> {
    let dev = Path::new("/dev");
    let mut out = Vec::new();
    let mut device = |kind, name: String, lines| {
        let path = Some(format!("/dev/{name}"));
        out.push(IoDevice { kind, name, path, lines });
    };
    for chip in names_with_prefix(dev, "gpiochip") {
        let lines = gpio_lines(&chip);
        device(IoType::Gpio, chip, lines);
    }
    for prefix in ["ttyS", "ttyUSB", "ttyACM", "ttyAMA"] {
        for name in names_with_prefix(Path::new("/sys/class/tty"), prefix) {
            if is_real_serial(&name) {
                device(IoType::Com, name, None);
            }
        }
    }
    for name in names_with_prefix(dev, "i2c-") {
        device(IoType::I2c, name, None);
    }
    for name in names_with_prefix(dev, "spidev") {
        device(IoType::Spi, name, None);
    }
    out
}

/// NVIDIA GPUs (`/proc/driver/nvidia/gpus/*/information`, else `nvidia-smi -L`), DRM render nodes, FPGA managers
/// and OpenCL ICDs.
pub fn accelerators() -> Vec<AcceleratorDevice> {
    let mut out = nvidia();
    for name in names_with_prefix(Path::new("/dev/dri"), "renderD") {
        let sys = Path::new("/sys/class/drm").join(&name).join("device");
        let driver = fs::read_link(sys.join("driver"))
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
        let ids = read(&sys.join("vendor")).zip(read(&sys.join("device"))).map(|(v, d)| format!("{v}:{d}"));
        let model = match (driver, ids) {
            (Some(d), Some(i)) => Some(format!("{d} ({i})")),
            (d, i) => d.or(i),
        };
        out.push(AcceleratorDevice { kind: Accelerator::Gpu, path: Some(format!("/dev/dri/{name}")), name, model });
    }
    for name in names_with_prefix(Path::new("/sys/class/fpga_manager"), "") {
        let model = read(&Path::new("/sys/class/fpga_manager").join(&name).join("name"));
        out.push(AcceleratorDevice { kind: Accelerator::Fpga, name, model, path: None });
    }
    for file in names_with_prefix(Path::new("/etc/OpenCL/vendors"), "") {
        let Some(stem) = file.strip_suffix(".icd") else { continue };
        let library = read(&Path::new("/etc/OpenCL/vendors").join(&file));
        out.push(AcceleratorDevice {
            kind: Accelerator::Opencl,
            name: format!("opencl-{stem}"),
            model: library,
            path: None,
        });
    }
    out
}

fn nvidia() -> Vec<AcceleratorDevice> {
    let root = Path::new("/proc/driver/nvidia/gpus");
    let mut out: Vec<AcceleratorDevice> = names_with_prefix(root, "")
        .into_iter()
        .enumerate()
        .map(|(n, bus)| {
            let info = read(&root.join(&bus).join("information")).unwrap_or_default();
            let model = info.lines().find_map(|l| l.strip_prefix("Model:")).map(|m| m.trim().to_string());
            let minor = info.lines().find_map(|l| l.strip_prefix("Device Minor:")).map(|m| m.trim().to_string());
            let path = minor.map(|m| format!("/dev/nvidia{m}"));
            AcceleratorDevice { kind: Accelerator::Cuda, name: format!("gpu{n}"), model, path }
        })
        .collect();
    if out.is_empty() {
        // `nvidia-smi -L`: "GPU 0: NVIDIA A100 (UUID: GPU-…)".
        if let Ok(o) = std::process::Command::new("nvidia-smi").arg("-L").output() {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                let Some(rest) = line.strip_prefix("GPU ") else { continue };
                let Some((n, model)) = rest.split_once(':') else { continue };
                let model = model.split(" (UUID").next().map(|m| m.trim().to_string());
                let path = Some(format!("/dev/nvidia{}", n.trim()));
                out.push(AcceleratorDevice { kind: Accelerator::Cuda, name: format!("gpu{}", n.trim()), model, path });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chip_info_ioctl_number_matches_the_kernel_header() {
        // _IOR(0xB4, 0x01, struct gpiochip_info) with sizeof = 68.
        assert_eq!(GPIO_GET_CHIPINFO_IOCTL, 0x8044_B401);
    }
}
