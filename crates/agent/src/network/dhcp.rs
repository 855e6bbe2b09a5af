//! DHCP for VMs: one `dnsmasq` (Debian `dnsmasq-base`) per network, on the node whose bridge holds the gateway,
//! bound to that bridge and handing out only the store's reservations (`--dhcp-range=<subnet>,static` with one
//! `<mac>,<ip>` file per reservation in a hosts directory it re-reads by itself). It runs as a daemon with a pid file
//! under the run directory, so a restarted agent finds it, and stopping it is a signal to that pid.

use std::fs::{self, File};
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{netns, NetworkError};

/// The `dnsmasq` binary.
const DNSMASQ: &str = "dnsmasq";

fn pid_file(run_dir: &Path, bridge: &str) -> PathBuf {
    run_dir.join(format!("dnsmasq-{bridge}.pid"))
}

fn hosts_dir(run_dir: &Path, bridge: &str) -> PathBuf {
    run_dir.join(format!("dhcp-hosts-{bridge}"))
}

fn lease_file(run_dir: &Path, bridge: &str) -> PathBuf {
    run_dir.join(format!("dnsmasq-{bridge}.leases"))
}

fn os(doing: impl Into<String>) -> impl FnOnce(io::Error) -> NetworkError {
    let doing = doing.into();
    move |source| NetworkError::Os { doing, source }
}

/// The pid of the `dnsmasq` serving `bridge`, if it is running.
pub fn running(run_dir: &Path, bridge: &str) -> Option<i32> {
    let pid: i32 = fs::read_to_string(pid_file(run_dir, bridge)).ok()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    (cmdline.contains(DNSMASQ) && cmdline.contains(&format!("--interface={bridge}\0"))).then_some(pid)
}

/// Starts `dnsmasq` on `bridge` (in the node's namespace `host_ns`) for the subnet of `gateway`, unless it runs.
pub fn ensure(run_dir: &Path, host_ns: &File, bridge: &str, gateway: Ipv4Net) -> Result<(), NetworkError> {
    if running(run_dir, bridge).is_some() {
        return Ok(());
    }
    let hosts = hosts_dir(run_dir, bridge);
    fs::create_dir_all(&hosts).map_err(os(format!("creating {}", hosts.display())))?;
    let subnet = gateway.trunc();
    let mut command = Command::new(DNSMASQ);
    command.args([
        "--conf-file=/dev/null",
        "--port=0",
        "--bind-interfaces",
        "--except-interface=lo",
        &format!("--interface={bridge}"),
        &format!("--dhcp-range={},static,{}", subnet.network(), subnet.netmask()),
        &format!("--dhcp-option=option:router,{}", gateway.addr()),
        &format!("--dhcp-hostsdir={}", hosts.display()),
        &format!("--dhcp-leasefile={}", lease_file(run_dir, bridge).display()),
        &format!("--pid-file={}", pid_file(run_dir, bridge).display()),
    ]);
    let doing = format!("starting dnsmasq on {bridge}");
    netns::enter_namespace_on_spawn(&mut command, host_ns.try_clone().map_err(os(doing.clone()))?);
    let output = command.output().map_err(os(doing.clone()))?;
    if !output.status.success() {
        let reason = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(NetworkError::Os { doing, source: io::Error::other(reason) });
    }
    Ok(())
}

/// Stops the `dnsmasq` serving `bridge`, if any, and waits for it to exit. Returns whether one was running.
pub fn stop(run_dir: &Path, bridge: &str) -> Result<bool, NetworkError> {
    let Some(pid) = running(run_dir, bridge) else {
        return Ok(false);
    };
    let pid = Pid::from_raw(pid);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while kill(pid, None).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if kill(pid, None).is_ok() {
        let _ = kill(pid, Signal::SIGKILL);
    }
    let _ = fs::remove_file(pid_file(run_dir, bridge));
    Ok(true)
}

/// Removes the reservations and lease file of `bridge`.
pub fn remove_state(run_dir: &Path, bridge: &str) -> Result<(), NetworkError> {
    let hosts = hosts_dir(run_dir, bridge);
    match fs::remove_dir_all(&hosts) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(os(format!("removing {}", hosts.display()))(e)),
    }
    let _ = fs::remove_file(lease_file(run_dir, bridge));
    Ok(())
}

/// Makes the reservations of `bridge` exactly `hosts` (MAC, address): one file per reservation.
pub fn write_hosts(run_dir: &Path, bridge: &str, hosts: &[(String, Ipv4Addr)]) -> Result<(), NetworkError> {
    let dir = hosts_dir(run_dir, bridge);
    fs::create_dir_all(&dir).map_err(os(format!("creating {}", dir.display())))?;
    let wanted: Vec<(String, String)> =
        hosts.iter().map(|(mac, ip)| (mac.replace(':', ""), format!("{mac},{ip}\n"))).collect();
    let entries = fs::read_dir(&dir).map_err(os(format!("listing {}", dir.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !wanted.iter().any(|(file, _)| *file == name) {
            let _ = fs::remove_file(entry.path());
        }
    }
    for (file, line) in wanted {
        let path = dir.join(file);
        if fs::read_to_string(&path).ok().as_deref() != Some(line.as_str()) {
            fs::write(&path, line).map_err(os(format!("writing {}", path.display())))?;
        }
    }
    Ok(())
}
