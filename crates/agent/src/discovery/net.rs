//! Discovery of network interfaces from `/sys/class/net` (type, MAC, speed) and getifaddrs(3) (addresses);
//! CAN interfaces are I/O devices, not network interfaces, and are reported as such.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use fos_api::manifest::{InterfaceType, IoType};
use fos_api::node::{InterfaceInfo, IoDevice};

/// ARPHRD_LOOPBACK.
const ARPHRD_LOOPBACK: u32 = 772;
/// ARPHRD_CAN.
const ARPHRD_CAN: u32 = 280;

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The type of interface `name` from its sysfs directory.
pub fn interface_type(dir: &Path) -> InterfaceType {
    let arphrd: u32 = read(&dir.join("type")).and_then(|t| t.parse().ok()).unwrap_or(1);
    if arphrd == ARPHRD_LOOPBACK {
        InterfaceType::Loopback
    } else if dir.join("wireless").exists() || dir.join("phy80211").exists() {
        InterfaceType::Wlan
    } else if dir.join("bridge").exists() {
        InterfaceType::Bridge
    } else if !dir.join("device").exists() {
        // No backing device: veth, tun/tap, vxlan, dummy, ifb, bond…
        InterfaceType::Virtual
    } else {
        let uevent = read(&dir.join("uevent")).unwrap_or_default();
        if uevent.lines().any(|l| l == "DEVTYPE=wwan") {
            InterfaceType::Cellular
        } else {
            InterfaceType::Eth
        }
    }
}

/// Addresses of every interface, as `ip/prefix`, from getifaddrs(3).
pub fn addresses() -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: non-null names are NUL-terminated strings in the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
        // SAFETY: sockaddr pointers from getifaddrs point at a sockaddr of the family they declare.
        let (addr, prefix) = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)));
                    let mask = if ifa.ifa_netmask.is_null() {
                        32
                    } else {
                        u32::from_be((*(ifa.ifa_netmask as *const libc::sockaddr_in)).sin_addr.s_addr).count_ones()
                    };
                    (ip, mask)
                }
                libc::AF_INET6 => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let ip = IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr));
                    let mask = if ifa.ifa_netmask.is_null() {
                        128
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        m.sin6_addr.s6_addr.iter().map(|b| b.count_ones()).sum()
                    };
                    (ip, mask)
                }
                _ => continue,
            }
        };
        out.entry(name).or_default().push(format!("{addr}/{prefix}"));
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Network interfaces and CAN buses, from `/sys/class/net`.
pub fn interfaces() -> (Vec<InterfaceInfo>, Vec<IoDevice>) {
    let addrs = addresses();
    let mut ifaces = Vec::new();
    let mut can = Vec::new();
    let Ok(entries) = fs::read_dir("/sys/class/net") else { return (ifaces, can) };
    let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in names {
        let dir = Path::new("/sys/class/net").join(&name);
        if !dir.join("type").exists() {
            continue; // bonding_masters and other files
        }
        let arphrd: u32 = read(&dir.join("type")).and_then(|t| t.parse().ok()).unwrap_or(1);
        if arphrd == ARPHRD_CAN {
            can.push(IoDevice { kind: IoType::Can, name, path: None, lines: None });
            continue;
        }
        let kind = interface_type(&dir);
        let mac = read(&dir.join("address")).filter(|m| !m.is_empty() && m != "00:00:00:00:00:00");
        let speed_mbps =
            read(&dir.join("speed")).and_then(|s| s.parse::<i64>().ok()).filter(|s| *s > 0).map(|s| s as u32);
        let addresses = addrs.get(&name).cloned().unwrap_or_default();
        ifaces.push(InterfaceInfo { name, kind, mac, speed_mbps, addresses });
    }
    (ifaces, can)
}

/// The node's own addresses (without prefix): non-loopback IPv4 first, then non-link-local IPv6.
pub fn node_ips(interfaces: &[InterfaceInfo]) -> Vec<IpAddr> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for i in interfaces.iter().filter(|i| i.kind != InterfaceType::Loopback) {
        for a in &i.addresses {
            match a.split('/').next().and_then(|s| s.parse::<IpAddr>().ok()) {
                Some(IpAddr::V4(ip)) if !ip.is_loopback() => v4.push(IpAddr::V4(ip)),
                Some(IpAddr::V6(ip)) if !ip.is_loopback() && (ip.segments()[0] & 0xffc0) != 0xfe80 => {
                    v6.push(IpAddr::V6(ip))
                }
                _ => {}
            }
        }
    }
    v4.extend(v6);
    v4
}
