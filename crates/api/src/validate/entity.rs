//! Rules for an entity spec: fields of one kind refused on the others, what each kind requires, quantities that
//! parse (with a hint for sizes that are surely meant in MiB), network attachments, ports, probes, migration.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::net::{parse_cidr, parse_mac};
use super::{Report, Scope};
use crate::manifest::{EntityKind, EntitySpec, NetworkSpec, Probe, MAX_NETWORKS};
use crate::quantity::ByteSize;

const MIB: u64 = 1 << 20;

/// Checks the entity at `at` run by `replicas` instances; `declared` holds the networks the application declares
/// (with their spec when known).
pub(crate) fn check(
    spec: &EntitySpec,
    at: &str,
    replicas: u32,
    scope: &Scope<'_>,
    declared: &BTreeMap<String, Option<NetworkSpec>>,
    report: &mut Report<'_>,
) {
    check_kind_fields(spec, at, report);
    check_quantities(spec, at, report);
    check_networks(spec, at, replicas, scope, declared, report);
    check_ports_and_probe(spec, at, report);
    check_volumes(spec, at, report);
}

fn check_kind_fields(spec: &EntitySpec, at: &str, report: &mut Report<'_>) {
    use EntityKind::{Container, Native, Vm};
    let kind = spec.kind;
    let fields: [(&str, bool, &[EntityKind]); 15] = [
        ("command", !spec.command.is_empty(), &[Native, Container]),
        ("env", !spec.env.is_empty(), &[Native, Container]),
        ("runAs", spec.run_as.is_some(), &[Native, Container]),
        ("workingDir", spec.working_dir.is_some(), &[Native, Container]),
        ("setup", !spec.setup.is_empty(), &[Native]),
        ("image", spec.image.is_some(), &[Vm, Container]),
        ("imagePullSecret", spec.image_pull_secret.is_some(), &[Container]),
        ("cpu", spec.cpu.is_some(), &[Vm]),
        ("memory", spec.memory.is_some(), &[Vm]),
        ("disk", spec.disk.is_some(), &[Vm]),
        ("userData", spec.user_data.is_some(), &[Vm]),
        ("sshKey", spec.ssh_key.is_some(), &[Vm]),
        ("kernel", spec.kernel.is_some(), &[Vm]),
        ("initrd", spec.initrd.is_some(), &[Vm]),
        ("cmdline", spec.cmdline.is_some(), &[Vm]),
    ];
    for (field, present, kinds) in fields {
        if present && !kinds.contains(&kind) {
            let owners = kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" and ");
            let message = format!("`{field}` is a field of {owners} entities, not of {kind} ones");
            match field {
                "cpu" | "memory" | "disk" => {
                    report.hint(format!("{at}.{field}"), message, format!("use `resources.{field}`"))
                }
                _ => report.push(format!("{at}.{field}"), message),
            }
        }
    }
    match kind {
        Native if spec.command.is_empty() => report.push(at, "a native entity needs a `command` (an argv list)"),
        Container if spec.image.is_none() => report.push(at, "a container entity needs an `image`"),
        Vm if spec.image.is_none() && spec.kernel.is_none() => {
            report.push(at, "a vm entity needs an `image` (or a `kernel` to boot directly)")
        }
        _ => {}
    }
    if spec.command.first().is_some_and(|c| c.trim().is_empty()) {
        report.push(format!("{at}.command[0]"), "the program to run must not be empty");
    }
    for (i, argv) in spec.setup.iter().enumerate() {
        if argv.first().is_none_or(|c| c.trim().is_empty()) {
            report.push(format!("{at}.setup[{i}]"), "a setup command needs a program to run");
        }
    }
    if spec.initrd.is_some() && spec.kernel.is_none() {
        report.push(format!("{at}.initrd"), "an `initrd` needs a `kernel`");
    }
    if spec.cmdline.is_some() && spec.kernel.is_none() {
        report.push(format!("{at}.cmdline"), "a `cmdline` needs a `kernel`");
    }
    if spec.cpu == Some(0) {
        report.push(format!("{at}.cpu"), "a vm needs at least 1 cpu");
    }
    if let (Some(dir), Container) = (&spec.working_dir, kind) {
        if !dir.starts_with('/') {
            report.push(
                format!("{at}.workingDir"),
                format!("workingDir `{dir}` of a container must be an absolute path inside its root"),
            );
        }
    } else if let Some(dir) = &spec.working_dir {
        if dir.starts_with('/') || dir.split('/').any(|s| s == "..") {
            report.push(
                format!("{at}.workingDir"),
                format!("workingDir `{dir}` must be a relative path inside the instance's directory"),
            );
        }
    }
    for (key, value) in &spec.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            report.push(format!("{at}.env"), format!("`{key}` is not an environment variable name"));
        }
        match value {
            crate::manifest::EnvValue::Plain(v) if v.contains('\0') => {
                report.push(format!("{at}.env.{key}"), "an environment value cannot hold a NUL byte")
            }
            crate::manifest::EnvValue::Secret(r) if crate::validate_name(&r.secret).is_err() => {
                report.push(format!("{at}.env.{key}.secretRef"), format!("`{}` is not a secret name", r.secret))
            }
            _ => {}
        }
    }
    if let Some(name) = spec.image_pull_secret.as_deref().filter(|n| crate::validate_name(n).is_err()) {
        report.push(format!("{at}.imagePullSecret"), format!("`{name}` is not a secret name"));
    }
    if let Some(run_as) = &spec.run_as {
        let user_ok = |s: &str| !s.is_empty() && s.len() <= 32 && !s.contains([':', '/', '\0', '\n']);
        if !user_ok(run_as.user()) || run_as.group().is_some_and(|g| !user_ok(g)) {
            report.push(format!("{at}.runAs"), "runAs needs a user (and group) name or number");
        }
    }
}

/// The most volumes one entity has.
pub const MAX_VOLUMES: usize = 32;

fn check_volumes(spec: &EntitySpec, at: &str, report: &mut Report<'_>) {
    if spec.volumes.len() > MAX_VOLUMES {
        let n = spec.volumes.len();
        report.push(format!("{at}.volumes"), format!("{n} volumes: an entity has at most {MAX_VOLUMES}"));
    }
    let mut names = BTreeSet::new();
    let mut variables = BTreeSet::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let path = format!("{at}.volumes[{i}]");
        if let Err(e) = crate::validate_name(&v.name) {
            report.push(format!("{path}.name"), format!("`{}` is not a volume name: {e}", v.name));
        } else if !names.insert(v.name.as_str()) {
            report.push(format!("{path}.name"), format!("volume `{}` is declared twice", v.name));
        } else if !variables.insert(v.env_name()) {
            report.push(
                format!("{path}.name"),
                format!("volume `{}` gives the same {} as another", v.name, v.env_name()),
            );
        }
        if let Some(size) = &v.size {
            check_size(size, format!("{path}.size"), "a volume's size", report);
        }
        if spec.kind == EntityKind::Vm && v.size.is_none() {
            report.push(format!("{path}.size"), "a vm's volume is a disk: it needs a `size`");
        }
        match (&v.mount_path, spec.kind) {
            (Some(_), EntityKind::Native | EntityKind::Vm) => report.hint(
                format!("{path}.mountPath"),
                format!("`mountPath` is for container entities, not {} ones", spec.kind),
                match spec.kind {
                    EntityKind::Native => "a native entity finds its volume at $FOS_VOLUME_<NAME>",
                    _ => "a vm gets each volume as a disk",
                },
            ),
            (Some(m), EntityKind::Container) if !m.starts_with('/') || m.split('/').any(|s| s == "..") => report
                .push(format!("{path}.mountPath"), format!("mountPath `{m}` must be an absolute path without `..`")),
            (None, EntityKind::Container) => {
                report.push(format!("{path}.mountPath"), "a container's volume needs a `mountPath`")
            }
            _ => {}
        }
    }
}

fn check_size(size: &ByteSize, path: String, what: &str, report: &mut Report<'_>) {
    match size.bytes() {
        Err(e) => report.push(path, e.to_string()),
        Ok(0) => report.push(path, format!("{what} must be more than 0")),
        Ok(n) if n < MIB => {
            report.hint(path, format!("{what} `{size}` is {n} bytes, less than 1Mi"), format!("did you mean {n}Mi?"))
        }
        Ok(_) => {}
    }
}

fn check_quantities(spec: &EntitySpec, at: &str, report: &mut Report<'_>) {
    if let Some(m) = &spec.memory {
        check_size(m, format!("{at}.memory"), "memory", report);
    }
    if let Some(d) = &spec.disk {
        check_size(d, format!("{at}.disk"), "disk", report);
    }
    if let Some(m) = &spec.resources.memory {
        check_size(m, format!("{at}.resources.memory"), "memory", report);
    }
    if let Some(d) = &spec.resources.disk {
        check_size(d, format!("{at}.resources.disk"), "disk", report);
    }
    if let Some(c) = &spec.resources.cpu {
        match c.millis() {
            Err(e) => report.push(format!("{at}.resources.cpu"), e.to_string()),
            Ok(0) => report.push(format!("{at}.resources.cpu"), "cpu must be more than 0"),
            Ok(_) => {}
        }
    }
}

fn check_networks(
    spec: &EntitySpec,
    at: &str,
    replicas: u32,
    scope: &Scope<'_>,
    declared: &BTreeMap<String, Option<NetworkSpec>>,
    report: &mut Report<'_>,
) {
    if spec.networks.len() > MAX_NETWORKS {
        let n = spec.networks.len();
        report.push(format!("{at}.networks"), format!("{n} networks: an entity attaches to at most {MAX_NETWORKS}"));
    }
    let mut attached = BTreeSet::new();
    for (i, att) in spec.networks.iter().enumerate() {
        let path = format!("{at}.networks[{i}]");
        if !attached.insert(att.network.as_str()) {
            report.push(format!("{path}.network"), format!("network `{}` is attached twice", att.network));
        }
        let net = match declared.get(&att.network) {
            Some(known) => Some(known.as_ref()),
            None => scope.network(&att.network).map(Some),
        };
        if net.is_none() {
            let msg = if declared.is_empty() {
                format!("network `{}` is not a Network object of this apply", att.network)
            } else {
                format!("network `{}` is not in the application's `networks` nor a Network object", att.network)
            };
            report.hint(format!("{path}.network"), msg, "declare it under spec.networks or as a Network object");
        }
        if let Some(ip) = &att.ip {
            match ip.parse::<IpAddr>() {
                Err(_) => report.push(format!("{path}.ip"), format!("`{ip}` is not an IP address")),
                Ok(addr) => {
                    if replicas > 1 {
                        report
                            .push(format!("{path}.ip"), format!("a fixed ip cannot be shared by {replicas} replicas"));
                    }
                    let range = net.flatten().and_then(|n| n.ip_range.as_deref()).and_then(|r| parse_cidr(r).ok());
                    if let Some(c) = range {
                        if !c.contains(addr) {
                            report.push(
                                format!("{path}.ip"),
                                format!("ip {addr} is outside network `{}`'s ipRange {c}", att.network),
                            );
                        }
                    }
                }
            }
        }
        if let Some(mac) = &att.mac {
            match parse_mac(mac) {
                Err(e) => report.push(format!("{path}.mac"), e),
                Ok(m) if m[0] & 1 == 1 => {
                    report.push(format!("{path}.mac"), format!("`{mac}` is a multicast MAC address"))
                }
                Ok(_) if replicas > 1 => report.push(
                    format!("{path}.mac"),
                    format!("a fixed MAC address cannot be shared by {replicas} replicas"),
                ),
                Ok(_) => {}
            }
        }
    }
}

fn check_ports_and_probe(spec: &EntitySpec, at: &str, report: &mut Report<'_>) {
    let mut host_ports = BTreeSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        if p.port == 0 {
            report.push(format!("{at}.ports[{i}].port"), "port 0 is not a port");
        }
        if p.host_port == Some(0) {
            report.push(format!("{at}.ports[{i}].hostPort"), "port 0 is not a port");
        }
        let host = p.host_port.unwrap_or(p.port);
        if !host_ports.insert((host, p.protocol)) {
            report.push(format!("{at}.ports[{i}]"), format!("node port {host}/{} is exposed twice", p.protocol));
        }
    }
    let path = format!("{at}.readiness");
    match &spec.readiness {
        Some(Probe::Tcp(0)) => report.push(format!("{path}.tcp"), "port 0 is not a port"),
        Some(Probe::Http(h)) => {
            if h.port == 0 {
                report.push(format!("{path}.http.port"), "port 0 is not a port");
            }
            if !h.path.starts_with('/') {
                report.hint(
                    format!("{path}.http.path"),
                    format!("path `{}` is not absolute", h.path),
                    "start it with `/`",
                );
            }
        }
        Some(Probe::Exec(argv)) if argv.first().is_none_or(|c| c.trim().is_empty()) => {
            report.push(format!("{path}.exec"), "an exec probe needs a program to run")
        }
        _ => {}
    }
}
