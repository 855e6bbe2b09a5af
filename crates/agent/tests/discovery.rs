//! Discovery checked against this machine, read independently through the usual tools (uname, nproc, ip, df) and
//! files, plus the node configuration's declared and hidden devices.

use std::process::Command;

use fos_agent::config::NodeConfig;
use fos_agent::discovery::{apply_config, discover, node_name, node_record};
use fos_api::manifest::{InterfaceType, IoType};

fn sh(cmd: &str) -> String {
    let out = Command::new("/bin/sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn discovery_matches_this_machine() {
    let info = discover(std::path::Path::new("/tmp")).unwrap();
    assert_eq!(info.arch.as_str(), sh("uname -m").replace("amd64", "x86_64"));
    assert_eq!(info.os, "linux");
    assert_eq!(info.kernel.as_deref(), Some(sh("uname -r").as_str()));
    assert_eq!(info.hostname.as_deref(), Some(sh("uname -n").as_str()));
    assert_eq!(info.cpu.count.to_string(), sh("nproc"));
    let model = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-");
    assert_eq!(info.cpu.model, model.trim());
    let mem_kb: u64 = sh("awk '/^MemTotal:/ {print $2}' /proc/meminfo").parse().unwrap();
    assert_eq!(info.memory.bytes().unwrap(), mem_kb * 1024);
    let pretty = sh(". /etc/os-release && echo \"$PRETTY_NAME\"");
    assert_eq!(info.os_release.as_deref(), Some(pretty.as_str()));

    // Interfaces: the same names as `ip link` (CAN buses go to io), same MACs, same addresses as `ip addr`.
    let mut names: Vec<String> = info.interfaces.iter().map(|i| i.name.clone()).collect();
    names.extend(info.io.iter().filter(|d| d.kind == IoType::Can).map(|d| d.name.clone()));
    names.sort();
    let mut ip_names: Vec<String> =
        sh("ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1").lines().map(str::to_string).collect();
    ip_names.sort();
    assert_eq!(names, ip_names);
    for i in &info.interfaces {
        let mac = sh(&format!("cat /sys/class/net/{}/address", i.name));
        if mac != "00:00:00:00:00:00" && !mac.is_empty() {
            assert_eq!(i.mac.as_deref(), Some(mac.as_str()), "{}", i.name);
        }
        let mut want: Vec<String> =
            sh(&format!("ip -o addr show dev {} | awk '{{print $4}}'", i.name)).lines().map(str::to_string).collect();
        let mut have = i.addresses.clone();
        want.sort();
        have.sort();
        assert_eq!(have, want, "addresses of {}", i.name);
    }
    let lo = info.interfaces.iter().find(|i| i.name == "lo").unwrap();
    assert_eq!(lo.kind, InterfaceType::Loopback);
    for i in &info.interfaces {
        let virt = sh(&format!("readlink -f /sys/class/net/{}", i.name)).contains("/virtual/");
        if virt && i.kind != InterfaceType::Loopback {
            assert!(matches!(i.kind, InterfaceType::Virtual | InterfaceType::Bridge), "{}: {:?}", i.name, i.kind);
        }
    }

    // Disks: every /dev mount is listed once, with df's size.
    for d in &info.disks {
        let df_total: u64 = sh(&format!("df -B1 --output=size '{}' | tail -1", d.mount_point)).parse().unwrap();
        assert_eq!(d.total.bytes().unwrap(), df_total, "{}", d.mount_point);
    }
    let dev_mounts: std::collections::BTreeSet<String> =
        sh("awk '$1 ~ /^\\/dev\\// {print $1}' /proc/mounts").lines().map(str::to_string).collect();
    assert_eq!(info.disks.len(), dev_mounts.len());

    // Serial ports: exactly those with a device behind them (and, for ttyS, a known UART type).
    let serial: Vec<&str> = info.io.iter().filter(|d| d.kind == IoType::Com).map(|d| d.name.as_str()).collect();
    let expect =
        sh("for t in /sys/class/tty/ttyS* /sys/class/tty/ttyUSB* /sys/class/tty/ttyACM* /sys/class/tty/ttyAMA*; do \
                     [ -e \"$t/device\" ] || continue; n=$(basename $t); [ -e /dev/$n ] || continue; \
                     case $n in ttyS*) [ \"$(cat $t/type)\" != 0 ] || continue;; esac; echo $n; done");
    assert_eq!(serial, expect.lines().collect::<Vec<_>>());
    let gpio: Vec<&str> = info.io.iter().filter(|d| d.kind == IoType::Gpio).map(|d| d.name.as_str()).collect();
    assert_eq!(gpio, sh("ls /dev | grep '^gpiochip' || true").lines().collect::<Vec<_>>());
    let render = info.accelerators.iter().filter(|a| a.name.starts_with("renderD")).count();
    assert_eq!(render.to_string(), sh("ls /dev/dri 2>/dev/null | grep -c '^renderD' || true"));
}

#[test]
fn the_node_config_declares_and_hides_devices() {
    let mut info = discover(std::path::Path::new("/tmp")).unwrap();
    let first_iface = info.interfaces.iter().find(|i| i.name != "lo").map(|i| i.name.clone());
    let hide = first_iface.clone().unwrap_or_else(|| "none".into());
    let config = NodeConfig::parse(
        &format!(
            "name: edge-7\nlabels: {{site: plant-a}}\nposition: {{lat: 45.07, lon: 7.69}}\n\
             devices:\n  io: [{{type: gpio, name: header, lines: 4}}]\n  accelerators: [{{type: npu, name: npu0, model: hailo-8}}]\n\
             hide: [{hide}, ttyS0]\n"
        ),
        "node.yaml",
    )
    .unwrap();
    apply_config(&mut info, &config);
    let header = info.io.iter().find(|d| d.name == "header").unwrap();
    assert_eq!((header.kind, header.lines), (IoType::Gpio, Some(4)));
    assert!(info.accelerators.iter().any(|a| a.name == "npu0" && a.model.as_deref() == Some("hailo-8")));
    assert!(!info.io.iter().any(|d| d.name == "ttyS0"), "hidden serial port");
    if let Some(name) = first_iface {
        assert!(!info.interfaces.iter().any(|i| i.name == name), "hidden interface");
    }
    assert_eq!(info.position.map(|p| p.lat), Some(45.07));
    let node = node_record(&node_name(&config, &info), &config, info);
    assert_eq!(node.metadata.name, "edge-7");
    assert_eq!(node.metadata.labels["site"], "plant-a");
    // The record reads back as a Node (what the scheduler and `fosctl get nodes` use).
    let back: fos_api::Node = serde_json::from_value(serde_json::to_value(&node).unwrap()).unwrap();
    assert_eq!(back, node);
}
