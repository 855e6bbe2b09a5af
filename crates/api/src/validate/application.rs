//! Rules for an application spec: its networks, its components (names, counts, constraints, entities), the
//! `need` and `proximity` targets, and the `need` graph, which must be acyclic (a cycle is reported as its path,
//! at the `need` entry that closes it).

use std::collections::BTreeMap;

use super::{check_selector, entity, network, repeats, Report, Scope};
use crate::graph::NeedGraph;
use crate::manifest::{ApplicationSpec, Component, Constraints, NetworkRef, NetworkSpec, Within};

/// Checks an application spec.
pub(crate) fn check(spec: &ApplicationSpec, scope: &Scope<'_>, report: &mut Report<'_>) {
    let declared = check_networks(spec, scope, report);
    if spec.components.is_empty() {
        report.push("spec.components", "an application needs at least one component");
    }
    for (i, name) in repeats(spec.components.iter().map(|c| c.name.as_str())) {
        report.push(format!("spec.components[{i}].name"), format!("duplicate component name `{name}`"));
    }
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in spec.components.iter().enumerate() {
        index.entry(c.name.as_str()).or_insert(i);
    }
    for (i, c) in spec.components.iter().enumerate() {
        let at = format!("spec.components[{i}]");
        check_component(c, &at, &index, report);
        entity::check(&c.entity, &format!("{at}.entity"), c.replicas, scope, &declared, report);
    }
    check_cycles(spec, report);
}

/// Checks `spec.networks` and returns the networks the application declares, with their spec when known.
fn check_networks(
    spec: &ApplicationSpec,
    scope: &Scope<'_>,
    report: &mut Report<'_>,
) -> BTreeMap<String, Option<NetworkSpec>> {
    let mut declared = BTreeMap::new();
    for (i, net) in spec.networks.iter().enumerate() {
        let at = format!("spec.networks[{i}]");
        match net {
            NetworkRef::Name(name) => {
                report.name(&at, "network", name);
                let known = scope.network(name).cloned();
                if known.is_none() {
                    report.hint(
                        &at,
                        format!("network `{name}` is not a Network object of this apply"),
                        "define it inline ({name: ..., type: vxlan, ...}) or apply a Network object with this name",
                    );
                }
                declared.entry(name.clone()).or_insert(known);
            }
            NetworkRef::Inline { name, spec } => {
                report.name(format!("{at}.name"), "network", name);
                network::check(spec, &at, report);
                declared.entry(name.clone()).or_insert(Some(spec.clone()));
            }
        }
    }
    for (i, name) in repeats(spec.networks.iter().map(NetworkRef::name)) {
        report.push(format!("spec.networks[{i}]"), format!("network `{name}` is declared twice"));
    }
    declared
}

fn check_component(c: &Component, at: &str, index: &BTreeMap<&str, usize>, report: &mut Report<'_>) {
    report.name(format!("{at}.name"), "component", &c.name);
    if c.replicas == 0 {
        report.push(format!("{at}.replicas"), "replicas must be at least 1");
    }
    if c.max_unavailable == 0 {
        report.push(format!("{at}.maxUnavailable"), "maxUnavailable must be at least 1 (a drain must move something)");
    }
    for (j, need) in c.need.iter().enumerate() {
        let path = format!("{at}.need[{j}]");
        if *need == c.name {
            report.push(path, format!("component `{need}` needs itself"));
        } else if !index.contains_key(need.as_str()) {
            report.hint(path, format!("`{need}` is not a component of this application"), known(index, need));
        }
    }
    for (j, need) in repeats(c.need.iter().map(String::as_str)) {
        report.push(format!("{at}.need[{j}]"), format!("`{need}` is listed twice"));
    }
    for (j, p) in c.proximity.iter().enumerate() {
        let path = format!("{at}.proximity[{j}]");
        if p.to == c.name {
            report.push(format!("{path}.to"), format!("component `{}` cannot be near itself", p.to));
        } else if !index.contains_key(p.to.as_str()) {
            report.hint(
                format!("{path}.to"),
                format!("`{}` is not a component of this application", p.to),
                known(index, &p.to),
            );
        }
        match &p.within {
            Within::LatencyMs(ms) if *ms <= 0.0 => {
                report.push(format!("{path}.within"), "a latency bound must be more than 0")
            }
            Within::DistanceM(m) if *m <= 0.0 => {
                report.push(format!("{path}.within"), "a distance bound must be more than 0")
            }
            _ => {}
        }
    }
    check_constraints(&c.constraints, &format!("{at}.constraints"), report);
}

fn known(index: &BTreeMap<&str, usize>, wrong: &str) -> String {
    let closest = index.keys().map(|k| (strsim::levenshtein(k, wrong), *k)).filter(|(d, _)| *d <= 2).min();
    match closest {
        Some((_, k)) => format!("did you mean `{k}`?"),
        None => format!("components: {}", index.keys().copied().collect::<Vec<_>>().join(", ")),
    }
}

fn check_constraints(c: &Constraints, at: &str, report: &mut Report<'_>) {
    let counts = c.io.iter().map(|d| ("io", d.number)).chain(c.networks.iter().map(|d| ("networks", d.number)));
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (list, number) in counts.chain(c.accelerators.iter().map(|d| ("accelerators", d.number))) {
        let j = seen.entry(list).or_insert(0);
        if number == 0 {
            report.push(format!("{at}.{list}[{j}].number"), "number must be at least 1");
        }
        *j += 1;
    }
    for (j, n) in c.nodes.iter().enumerate() {
        report.name(format!("{at}.nodes[{j}]"), "node", n);
    }
    check_selector(&c.node_selector, &format!("{at}.nodeSelector"), report);
}

/// Reports every cycle of the `need` graph ([`NeedGraph`]) at the `need` entry that closes it.
fn check_cycles(spec: &ApplicationSpec, report: &mut Report<'_>) {
    for cycle in NeedGraph::build(spec).cycles {
        let names: Vec<&str> = cycle.path.iter().map(|&i| spec.components[i].name.as_str()).collect();
        report.hint(
            format!("spec.components[{}].need[{}]", cycle.closing_component, cycle.closing_need),
            format!("dependency cycle: {}", names.join(" -> ")),
            format!(
                "`{}` needs `{}`, which closes the cycle; remove one of these needs",
                names[names.len() - 2],
                names[0]
            ),
        );
    }
}
