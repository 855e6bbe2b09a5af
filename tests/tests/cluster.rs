//! Many nodes and real faults, with the cluster harness (`fos_e2e::cluster`): three `fosd` in their own network
//! namespaces on a 3-member etcd. Each test prints the figures it measures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use fos_e2e::cluster::{instance_processes, Cluster};

/// `--node-lost-after` of the fault tests.
const LOST_AFTER: Duration = Duration::from_secs(6);

/// A component running as long as it is asked to, appending `<instance> <node> <nanos>` to `<marks>/starts` when it
/// starts and `… stop` when asked to stop.
fn component(name: &str, replicas: u32, need: &[&str], extra: &str, marks: &Path) -> String {
    let m = marks.display();
    let need = if need.is_empty() { String::new() } else { format!("\n      need: [{}]", need.join(", ")) };
    format!(
        r#"    - name: {name}
      replicas: {replicas}{need}{extra}
      entity:
        kind: native
        command: [sh, -c, 'echo "$FOS_INSTANCE runs on $FOS_NODE"; echo "$FOS_INSTANCE $FOS_NODE $(date +%s%N) start" >> {m}/starts; trap "echo \"$FOS_INSTANCE $FOS_NODE $(date +%s%N) stop\" >> {m}/starts; exit 0" TERM; sleep 1000 & wait']
"#
    )
}

fn application(name: &str, components: &[String]) -> String {
    format!(
        "apiVersion: fos/v1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  components:\n{}",
        components.concat()
    )
}

/// The lines of `<marks>/starts`: (instance short name, node, nanos, start?).
fn marks(marks: &Path) -> Vec<(String, String, u128, bool)> {
    let text = std::fs::read_to_string(marks.join("starts")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let short = f.first()?.split('.').next()?.to_string();
            Some((short, f.get(1)?.to_string(), f.get(2)?.parse().ok()?, *f.get(3)? == "start"))
        })
        .collect()
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// Instance short name → node, for instances Running.
fn running_on(cluster: &Cluster, via: usize, app: &str) -> BTreeMap<String, String> {
    cluster
        .entities(via, app)
        .iter()
        .filter(|e| e["actual"]["lifecycle"]["state"] == "Running" || e["actual"]["state"] == "Running")
        .filter(|e| e["unknown"] != true)
        .filter_map(|e| {
            let short = e["id"].as_str()?.split('.').next()?.to_string();
            Some((short, e["actual"]["node"].as_str()?.to_string()))
        })
        .collect()
}

fn phase(cluster: &Cluster, via: usize, app: &str) -> String {
    cluster.app(via, app)["status"]["phase"].as_str().unwrap_or("-").to_string()
}

/// Waits until `app` is Running with `count` instances running, none on `avoid`; returns the placement.
fn wait_running(
    cluster: &Cluster,
    via: usize,
    app: &str,
    count: usize,
    avoid: Option<&str>,
    timeout: Duration,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let on = running_on(cluster, via, app);
        if on.len() == count
            && avoid.is_none_or(|n| on.values().all(|v| v != n))
            && phase(cluster, via, app) == "Running"
        {
            return on;
        }
        assert!(
            Instant::now() < deadline,
            "{app} not running ({count} instances, avoiding {avoid:?}): {on:?}, phase {}\n{}",
            phase(cluster, via, app),
            cluster.log(via)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn killing_a_node_places_its_instances_again_in_need_order() {
    if !root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let mut cluster = Cluster::start(3, LOST_AFTER);
    let m = cluster.marks();
    let app = "tiers";
    let manifest = application(
        app,
        &[component("db", 1, &[], "", &m), component("api", 2, &["db"], "", &m), component("web", 2, &["api"], "", &m)],
    );
    let run = cluster.apply(0, app, &manifest);
    assert_eq!(run.code, 0, "{run:?}");
    let placed = wait_running(&cluster, 0, app, 5, None, Duration::from_secs(60));
    let nodes = cluster.nodes_json(0);
    for n in &nodes {
        let address = n["status"]["address"].as_str().unwrap_or("");
        assert!(address.starts_with("10.77.0."), "get nodes shows each node's address: {n}");
    }
    let list = cluster.fosctl(1, &["get", "nodes"]);
    assert!(list.stdout.contains("10.77.0.11:7887") && list.stdout.contains("Ready"), "{}", list.stdout);

    // Kill the node running db (the root of the need chain).
    let victim_name = placed["db-0"].clone();
    let victim: usize = victim_name.trim_start_matches('n').parse().expect("node index");
    let via = (victim + 1) % 3;
    let moved: Vec<String> = placed.iter().filter(|(_, n)| **n == victim_name).map(|(i, _)| i.clone()).collect();
    let checker = cluster.checker(&[app]);
    let t0 = Instant::now();
    let t0_nanos = now_nanos();
    cluster.kill_node(victim);

    let mut phases: Vec<(f64, String)> = Vec::new();
    let mut unknown_seen = false;
    let deadline = t0 + LOST_AFTER + Duration::from_secs(30);
    let back = loop {
        let p = phase(&cluster, via, app);
        if phases.last().is_none_or(|(_, last)| *last != p) {
            phases.push((t0.elapsed().as_secs_f64(), p.clone()));
        }
        let list = cluster.fosctl(via, &["get", "entities"]);
        unknown_seen |= list.stdout.contains("Unknown");
        let on = running_on(&cluster, via, app);
        if p == "Running" && on.len() == 5 && on.values().all(|n| *n != victim_name) {
            break t0.elapsed();
        }
        assert!(Instant::now() < deadline, "not running again: {on:?} phases {phases:?}\n{}", cluster.log(via));
        std::thread::sleep(Duration::from_millis(100));
    };
    let (twice, samples) = checker.finish();
    println!("{}", cluster.fosctl(via, &["events", "--limit", "40"]).stdout);
    println!(
        "kill -9 {victim_name} (held {moved:?}): every instance Running on the others after {:.2} s \
         (--node-lost-after {:?}); phases {phases:?}; checker: {samples} samples",
        back.as_secs_f64(),
        LOST_AFTER
    );
    assert!(back <= LOST_AFTER + Duration::from_secs(5), "took {back:?}");
    assert!(twice.is_empty(), "ran twice: {twice:?}");
    assert!(unknown_seen, "instances of the dead node showed Unknown before it was lost");
    assert!(phases.iter().any(|(_, p)| p == "Degraded"), "the application was Degraded: {phases:?}");

    // Need order after the kill: every api start after every db start, every web start after every api start.
    let after: Vec<_> = marks(&m).into_iter().filter(|(_, _, t, start)| *start && *t > t0_nanos).collect();
    let starts = |c: &str| {
        after.iter().filter(|(s, _, _, _)| s.starts_with(&format!("{c}-"))).map(|(_, _, t, _)| *t).collect::<Vec<_>>()
    };
    let (db, api, web) = (starts("db"), starts("api"), starts("web"));
    assert!(!db.is_empty(), "db started again: {after:?}");
    if let (Some(db_last), Some(api_first)) = (db.iter().max(), api.iter().min()) {
        assert!(api_first >= db_last, "api started before db: {after:?}");
    }
    if let (Some(api_last), Some(web_first)) = (api.iter().max(), web.iter().min()) {
        assert!(web_first >= api_last, "web started before api: {after:?}");
    }
    let lost = cluster.fosctl(via, &["get", "nodes"]);
    assert!(lost.stdout.contains("Lost"), "the killed node shows Lost:\n{}", lost.stdout);
}

#[test]
fn a_partitioned_node_stops_its_instances_before_they_start_elsewhere() {
    if !root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let cluster = Cluster::start(3, LOST_AFTER);
    let m = cluster.marks();
    let (app, kept) = ("parted", "kept");
    assert_eq!(cluster.apply(0, app, &application(app, &[component("svc", 2, &[], "", &m)])).code, 0);
    let keep = application(kept, &[component("edge", 1, &[], "\n      onNodeLoss: keep", &m)]);
    assert_eq!(cluster.apply(0, kept, &keep).code, 0);
    let placed = wait_running(&cluster, 0, app, 2, None, Duration::from_secs(60));
    let kept_on = wait_running(&cluster, 0, kept, 1, None, Duration::from_secs(60));
    // Cut off the node of svc-0.
    let victim_name = placed["svc-0"].clone();
    let victim: usize = victim_name.trim_start_matches('n').parse().expect("node index");
    let via = (victim + 1) % 3;
    let checker = cluster.checker(&[app, kept]);
    let t0 = Instant::now();
    cluster.partition(victim, true);
    let on = wait_running(&cluster, via, app, 2, Some(&victim_name), LOST_AFTER + Duration::from_secs(30));
    let moved_after = t0.elapsed();
    // Held for 60 s in all.
    let partition = Duration::from_secs(60);
    let mut kept_alive = true;
    while t0.elapsed() < partition {
        let procs = instance_processes(&BTreeSet::from([kept.to_string()]));
        kept_alive &= procs.values().any(|nodes| nodes.contains_key(&kept_on["edge-0"]));
        std::thread::sleep(Duration::from_millis(500));
    }
    let kept_elsewhere = cluster.entities(via, kept).iter().any(|e| e["node"] != kept_on["edge-0"].as_str());
    cluster.partition(victim, false);
    let healed = Instant::now();
    cluster.wait_ready(&[via, victim], Duration::from_secs(30));
    let ready_after = healed.elapsed();
    // Nothing of `app` left on the returning node.
    let deadline = Instant::now() + Duration::from_secs(30);
    while instance_processes(&BTreeSet::from([app.to_string()])).values().any(|n| n.contains_key(&victim_name)) {
        assert!(Instant::now() < deadline, "the returning node kept its copies");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    // Stopped on the isolated node before it started elsewhere, as the checker saw the processes.
    let id = format!("svc-0.{app}.default");
    let there = checker.seen(&id, &victim_name).map(|(_, last)| last.duration_since(t0));
    let elsewhere =
        on.get("svc-0").and_then(|n| checker.seen(&id, n)).map(|(first, _)| first.saturating_duration_since(t0));
    let (twice, samples) = checker.finish();
    println!(
        "partition of {victim_name} for {partition:?}: svc Running elsewhere after {:.2} s; svc-0 last seen on \
         {victim_name} at +{:?}, first seen elsewhere at +{:?}; node Ready {:.2} s after healing; checker: {samples} \
         samples, {} twice",
        moved_after.as_secs_f64(),
        there,
        elsewhere,
        ready_after.as_secs_f64(),
        twice.len()
    );
    assert!(twice.is_empty(), "ran twice: {twice:?}");
    let (there, elsewhere) = (there.expect("svc-0 ran on the isolated node"), elsewhere.expect("svc-0 ran elsewhere"));
    assert!(there < elsewhere, "stopped there ({there:?}) before it started elsewhere ({elsewhere:?})");
    assert!(on.values().all(|n| *n != victim_name));
    assert!(kept_alive, "onNodeLoss: keep ran on the isolated node throughout");
    assert!(!kept_elsewhere, "onNodeLoss: keep was not placed elsewhere");

    // The node takes work again.
    let pinned = application(
        "pinned",
        &[component("p", 1, &[], &format!("\n      constraints: {{nodes: [{victim_name}]}}"), &m)],
    );
    assert_eq!(cluster.apply(via, "pinned", &pinned).code, 0);
    let p = wait_running(&cluster, via, "pinned", 1, None, Duration::from_secs(30));
    assert_eq!(p["p-0"], victim_name);
}

#[test]
fn an_etcd_member_stopped_during_500_applies_loses_none() {
    if !root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let mut cluster = Cluster::start(1, Duration::from_secs(20));
    let (mut retries, mut failed_for_good) = (0, 0);
    let started = Instant::now();
    for k in 0..500 {
        if k == 100 {
            cluster.stop_member(1);
        }
        if k == 350 {
            cluster.start_member(1, false);
        }
        let net = format!("apiVersion: fos/v1\nkind: Network\nmetadata: {{name: net-{k}}}\nspec: {{type: vxlan, ipRange: 10.99.{}.0/24}}\n", k % 250);
        let path = cluster.dir.path().join("net.yaml");
        std::fs::write(&path, net).expect("manifest");
        let mut ok = false;
        for _ in 0..5 {
            if cluster.fosctl(0, &["apply", "-f", &path.display().to_string()]).code == 0 {
                ok = true;
                break;
            }
            retries += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        failed_for_good += usize::from(!ok);
    }
    let took = started.elapsed();
    let list = cluster.fosctl(0, &["get", "networks", "-o", "json"]);
    let nets = fos_e2e::cluster::json_items(&list.stdout);
    let names: BTreeSet<String> =
        nets.iter().filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string)).collect();
    println!("500 applies with etcd member e1 stopped from the 100th to the 350th: {took:?}, {retries} retries, {failed_for_good} failed for good, {} stored", names.len());
    assert_eq!(failed_for_good, 0);
    for k in 0..500 {
        assert!(names.contains(&format!("net-{k}")), "net-{k} acknowledged but lost");
    }
    for k in 0..500 {
        cluster.fosctl(0, &["delete", &format!("net-{k}")]);
    }
}

#[test]
fn with_etcd_unreachable_instances_keep_running_and_crashes_restart_locally() {
    if !root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let cluster = Cluster::start(2, LOST_AFTER);
    let m = cluster.marks();
    let app = "autonomous";
    assert_eq!(cluster.apply(0, app, &application(app, &[component("svc", 2, &[], "", &m)])).code, 0);
    wait_running(&cluster, 0, app, 2, None, Duration::from_secs(60));
    let apps = BTreeSet::from([app.to_string()]);
    // A node that knows no peer cannot tell its own isolation from the store's failure and fences itself.
    cluster.wait_peers_known(Duration::from_secs(30));
    let before = instance_processes(&apps);
    cluster.pause_etcd(true);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    // Crash one instance: every process of svc-0.
    let (crashed, nodes) = before.iter().next().map(|(i, n)| (i.clone(), n.clone())).expect("an instance");
    let (crash_node, pids) = nodes.into_iter().next().expect("a node");
    for pid in &pids {
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    let crashed_at = Instant::now();
    let mut restarted_after = None;
    let mut all_alive = true;
    while t0.elapsed() < Duration::from_secs(60) {
        let now = instance_processes(&apps);
        for (i, n) in &before {
            if *i != crashed && all_alive && !n.values().flatten().all(|p| fos_e2e::alive(*p)) {
                all_alive = false;
                println!(
                    "{i} lost its process {:.1} s after etcd was paused; now {:?}",
                    t0.elapsed().as_secs_f64(),
                    now.get(i)
                );
            }
        }
        if restarted_after.is_none()
            && now.get(&crashed).and_then(|n| n.get(&crash_node)).is_some_and(|p| p.iter().any(|x| !pids.contains(x)))
        {
            restarted_after = Some(crashed_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster.pause_etcd(false);
    let back = Instant::now();
    wait_running(&cluster, 0, app, 2, None, Duration::from_secs(60));
    println!(
        "etcd unreachable for 60 s: the other instances kept running: {all_alive}; {crashed} crashed at +20 s and \
         was restarted on {crash_node} after {restarted_after:?}; Running in the API {:.2} s after etcd came back",
        back.elapsed().as_secs_f64()
    );
    assert!(all_alive, "every instance kept running");
    assert!(restarted_after.is_some(), "the crashed instance was restarted locally");
}

#[test]
fn draining_a_node_moves_a_need_chain_in_order_and_empties_it() {
    if !root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let cluster = Cluster::start(3, LOST_AFTER);
    let m = cluster.marks();
    let app = "chain";
    let pin = "\n      constraints: {nodes: [n0, n1]}";
    let manifest = application(
        app,
        &[component("a", 1, &[], pin, &m), component("b", 1, &["a"], pin, &m), component("c", 1, &["b"], pin, &m)],
    );
    assert_eq!(cluster.apply(0, app, &manifest).code, 0);
    let placed = wait_running(&cluster, 0, app, 3, None, Duration::from_secs(60));
    let target = placed["a-0"].clone();
    // Every node shows each node's address, and serves the log of an instance wherever it runs.
    let addresses: Vec<String> = cluster.nodes_json(2).iter().map(|n| n["status"]["address"].to_string()).collect();
    assert!(addresses.len() == 3 && addresses.iter().all(|a| a.contains(":7887")), "addresses: {addresses:?}");
    for via in 0..3 {
        let logs = cluster.fosctl(via, &["logs", &format!("a-0.{app}.default")]);
        assert_eq!(logs.code, 0, "logs of a-0 through n{via}: {logs:?}");
        assert!(logs.stdout.contains(&format!("a-0.{app}.default runs on {target}")), "through n{via}: {logs:?}");
    }
    let t0 = now_nanos();
    let started = Instant::now();
    let run = cluster.fosctl(2, &["node", "drain", &target, "--wait", "--timeout", "60s"]);
    let drained = started.elapsed();
    assert_eq!(run.code, 0, "{run:?}");
    let on = wait_running(&cluster, 2, app, 3, Some(&target), Duration::from_secs(30));
    let lines: Vec<_> = marks(&m).into_iter().filter(|l| l.2 > t0).collect();
    let at = |short: &str, start: bool, on_target: bool| {
        lines.iter().filter(|l| l.0 == short && l.3 == start && (l.1 == target) == on_target).map(|l| l.2).min()
    };
    println!("drain of {target} holding {placed:?}: {drained:?}; now {on:?}; {}", run.stdout.trim());
    // Reverse need order off the node: c stops there before b, b before a.
    let stops: Vec<Option<u128>> = ["c-0", "b-0", "a-0"].iter().map(|s| at(s, false, true)).collect();
    let stopped: Vec<u128> = stops.iter().flatten().copied().collect();
    assert!(stopped.windows(2).all(|w| w[0] <= w[1]), "stopped in reverse need order: {stops:?}");
    // The chain's order elsewhere: a before b before c (those that started again).
    let starts: Vec<u128> = ["a-0", "b-0", "c-0"].iter().filter_map(|s| at(s, true, false)).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "started in need order: {starts:?}");
    assert!(cluster.entities(2, app).iter().all(|e| e["node"] != target.as_str()), "the node is left empty");
    let nodes = cluster.fosctl(2, &["get", "nodes"]);
    assert!(nodes.stdout.contains("Draining"), "{}", nodes.stdout);
    assert_eq!(cluster.fosctl(2, &["node", "uncordon", &target]).code, 0);
}

#[test]
fn a_delete_with_a_node_down_completes_and_the_node_cleans_up_when_back() {
    if !root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let mut cluster = Cluster::start(3, LOST_AFTER);
    let m = cluster.marks();
    let app = "orphaned";
    assert_eq!(cluster.apply(0, app, &application(app, &[component("svc", 3, &[], "", &m)])).code, 0);
    let placed = wait_running(&cluster, 0, app, 3, None, Duration::from_secs(60));
    let victim_name = placed["svc-0"].clone();
    let victim: usize = victim_name.trim_start_matches('n').parse().expect("node index");
    let via = (victim + 1) % 3;
    // The node's agent dies; its instances keep running (the machine is up).
    if let Some(mut c) = cluster.nodes[victim].fosd.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let started = Instant::now();
    let run = cluster.fosctl(via, &["delete", app, "--wait", "--timeout", "60s"]);
    let took = started.elapsed();
    assert_eq!(run.code, 0, "{run:?}");
    let left = instance_processes(&BTreeSet::from([app.to_string()]));
    assert!(
        left.values().all(|n| n.keys().all(|k| *k == victim_name)),
        "only the down node still runs copies: {left:?}"
    );
    cluster.start_node(victim);
    let back = Instant::now();
    let deadline = back + Duration::from_secs(30);
    while !instance_processes(&BTreeSet::from([app.to_string()])).is_empty() {
        assert!(Instant::now() < deadline, "the node did not clean its copies:\n{}", cluster.log(victim));
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "delete with {victim_name} down completed in {:.2} s; the node cleaned its copies {:.2} s after it came back",
        took.as_secs_f64(),
        back.elapsed().as_secs_f64()
    );
}

#[test]
fn a_lost_node_gives_up_its_network_gateway_and_its_instances_keep_talking_elsewhere() {
    if !root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let mut cluster = Cluster::start(2, LOST_AFTER);
    let m = cluster.marks();
    let app = "netted";
    let on_net = "\n      entity:\n        kind: native\n        networks: [{network: lan}]";
    let svc = component("svc", 2, &[], "", &m).replacen("\n      entity:\n        kind: native", on_net, 1);
    let manifest = application(app, &[svc]).replacen(
        "spec:\n",
        "spec:\n  networks:\n    - {name: lan, type: vxlan, ipRange: 10.89.0.0/24, gateway: 10.89.0.1}\n",
        1,
    );
    let run = cluster.apply(0, app, &manifest);
    assert_eq!(run.code, 0, "{run:?}");
    wait_running(&cluster, 0, app, 2, None, Duration::from_secs(60));
    // The node that holds the gateway, as `get networks` shows the nodes' states of the network.
    let gateway_on = |cluster: &Cluster, via: usize| {
        let run = cluster.fosctl(via, &["get", "networks"]);
        let row = run.stdout.lines().find(|l| l.starts_with("lan.") && l.contains("(gateway)")).map(str::to_string);
        row.and_then(|r| r.split_whitespace().nth(1).map(str::to_string))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder = loop {
        if let Some(n) = gateway_on(&cluster, 0) {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no node holds the gateway:\n{}",
            cluster.fosctl(0, &["get", "networks"]).stdout
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let victim: usize = holder.trim_start_matches('n').parse().expect("node index");
    let via = 1 - victim;
    let survivor = format!("n{via}");
    let t0 = Instant::now();
    cluster.kill_node(victim);
    let on = wait_running(&cluster, via, app, 2, Some(&holder), LOST_AFTER + Duration::from_secs(30));
    let moved = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(20);
    while gateway_on(&cluster, via).as_deref() != Some(survivor.as_str()) {
        assert!(
            Instant::now() < deadline,
            "the gateway stayed with the lost node:\n{}",
            cluster.fosctl(via, &["get", "networks"]).stdout
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let taken = t0.elapsed();
    // Every instance has an address on the network there, and the gateway answers them.
    let procs = instance_processes(&BTreeSet::from([app.to_string()]));
    for id in on.keys() {
        let pid = procs.get(&format!("{id}.{app}.default")).and_then(|n| n.get(&survivor)).and_then(|p| p.first());
        let pid = pid.unwrap_or_else(|| panic!("{id} runs on {survivor}: {procs:?}"));
        assert!(echo_answered(*pid, "10.89.0.1"), "{id} reaches the gateway, now on {survivor}");
    }
    println!(
        "kill -9 of {holder} (gateway of lan): instances Running on {survivor} after {:.2} s, gateway taken over \
         after {:.2} s",
        moved.as_secs_f64(),
        taken.as_secs_f64()
    );
}

/// Whether `ip` answers an ICMP echo sent from the network namespace of process `pid`.
fn echo_answered(pid: u32, ip: &str) -> bool {
    let script = r#"
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(3)
body = struct.pack("!BBHHH", 8, 0, 0, 0x4f53, 1) + b"fos-test"
body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
s.sendto(body, (sys.argv[1], 0))
while True:
    data, (src, _) = s.recvfrom(1500)
    if src == sys.argv[1] and data[20] == 0:
        sys.exit(0)
"#;
    let pid = pid.to_string();
    std::process::Command::new("nsenter")
        .args(["-t", &pid, "-n", "python3", "-c", script, ip])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn when_fosd_alone_dies_its_guard_stops_the_instances_before_they_start_elsewhere() {
    if !root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let mut cluster = Cluster::start(2, LOST_AFTER);
    let m = cluster.marks();
    let (app, kept) = ("orphaned", "kept");
    assert_eq!(cluster.apply(0, app, &application(app, &[component("svc", 2, &[], "", &m)])).code, 0);
    let placed = wait_running(&cluster, 0, app, 2, None, Duration::from_secs(60));
    let victim_name = placed["svc-0"].clone();
    let victim: usize = victim_name.trim_start_matches('n').parse().expect("node index");
    let via = 1 - victim;
    let pin = format!("\n      onNodeLoss: keep\n      constraints: {{nodes: [{victim_name}]}}");
    assert_eq!(cluster.apply(0, kept, &application(kept, &[component("edge", 1, &[], &pin, &m)])).code, 0);
    wait_running(&cluster, 0, kept, 1, None, Duration::from_secs(60));
    cluster.wait_peers_known(Duration::from_secs(30));
    let checker = cluster.checker(&[app]);
    let t0 = Instant::now();
    // The daemon dies; its instances do not die with it.
    cluster.kill_fosd(victim);
    let on = wait_running(&cluster, via, app, 2, Some(&victim_name), LOST_AFTER + Duration::from_secs(30));
    let moved = t0.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let id = format!("svc-0.{app}.default");
    let there = checker.seen(&id, &victim_name).map(|(_, last)| last.duration_since(t0));
    let elsewhere =
        on.get("svc-0").and_then(|n| checker.seen(&id, n)).map(|(first, _)| first.saturating_duration_since(t0));
    let (twice, samples) = checker.finish();
    let edge = instance_processes(&BTreeSet::from([kept.to_string()]));
    println!(
        "kill -9 of {victim_name}'s fosd alone: svc Running on the other node after {:.2} s; svc-0 last seen on \
         {victim_name} at +{there:?}, first seen elsewhere at +{elsewhere:?}; checker: {samples} samples, {} twice",
        moved.as_secs_f64(),
        twice.len()
    );
    assert!(twice.is_empty(), "ran twice: {twice:?}");
    let (there, elsewhere) = (there.expect("svc-0 ran on its node"), elsewhere.expect("svc-0 ran elsewhere"));
    assert!(there < elsewhere, "stopped there ({there:?}) before it started elsewhere ({elsewhere:?})");
    assert!(
        edge.values().any(|nodes| nodes.contains_key(&victim_name)),
        "onNodeLoss: keep kept running without its fosd: {edge:?}"
    );
}
