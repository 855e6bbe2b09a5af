//! Migration between real `fosd` on the cluster harness (`fos_e2e::cluster`): a native entity appending a counter
//! to a file in its volume every 50 ms is moved cold from one node to the other and carries on from where it was;
//! a checker sampling every process of the machine sees one copy at every sample. Nodes are killed (`fosd` and
//! every process of their namespace, SIGKILL) at each phase. Each test prints its figures (`figure:` lines).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fos_e2e::cluster::{instance_processes, Cluster};
use fos_e2e::migrate::*;

/// `--node-lost-after` of the first test (a destination killed at Landing is declared lost).
const LOST_AFTER: Duration = Duration::from_secs(6);

#[test]
fn a_counter_migrated_cold_carries_on_from_its_volume_with_one_copy_at_every_sample() {
    let mut cluster = Cluster::start(2, LOST_AFTER);
    let name = "mig-cold";
    let run = cluster.apply(0, name, &counter(name));
    assert!(run.code == 0, "apply: {}", run.stderr);
    let source = running_node(&cluster, name, Duration::from_secs(60));
    let (s, d) = (index(&cluster, &source), 1 - index(&cluster, &source));
    let destination = cluster.nodes[d].name.clone();
    let checker = cluster.checker(&[name]);
    counts_on(&cluster, s, name, 20);

    // A destination that is not a node is refused, saying so; so is the node it runs on.
    let bad = cluster.fosctl(0, &["migrate", &instance(name), "--to", "nowhere"]);
    assert!(bad.code != 0 && bad.stderr.contains("node nowhere not found"), "{}", bad.stderr);
    let same = cluster.fosctl(0, &["migrate", &instance(name), "--to", &source]);
    assert!(same.code != 0 && same.stderr.contains("runs there already"), "{}", same.stderr);

    let started = Instant::now();
    let run = cluster.fosctl(0, &["migrate", &instance(name), "--to", &destination, "--wait", "--timeout", "90s"]);
    let total = started.elapsed();
    assert!(run.code == 0, "migrate: {}\n{}\n{}\n{}", run.stdout, run.stderr, cluster.log(s), cluster.log(d));
    assert_eq!(running_node(&cluster, name, Duration::from_secs(30)), destination);
    let all = counts_on(&cluster, d, name, 20);
    let m = migration(&cluster, name);
    assert_eq!(m["phase"], "Completed", "{m}");
    assert_eq!(m["source"], source.as_str());
    assert_eq!(m["destination"], destination.as_str());
    let downtime_ms = millis(&m["finished"]) - millis(&m["stoppedAt"]);
    assert!(downtime_ms > 0, "{m}");
    let switch = all.windows(2).find(|w| w[0].2 == source && w[1].2 == destination).expect("a switch of node");
    let gap_ms = ((switch[1].1 - switch[0].1) / 1_000_000) as i64;
    let others = all.windows(2).filter(|w| w[0].2 == w[1].2).map(|w| ((w[1].1 - w[0].1) / 1_000_000) as i64);
    let longest_other = others.max().unwrap_or(0);
    // The writes stop before the source is stopped and start as soon as the destination runs, which the controller
    // sees within a poll: the gap seen in the file is at most the recorded downtime and a write period.
    assert!(gap_ms <= downtime_ms + 200, "gap {gap_ms} ms, downtime {downtime_ms} ms");
    // The source kept its volume until the destination ran the instance; then it goes.
    let kept = counter_file(&cluster, s, name);
    eventually("the source's volume is removed once the migration completed", Duration::from_secs(10), || {
        !kept.exists()
    });
    println!(
        "figure: cold migration of a counter: total {} ms, downtime {downtime_ms} ms, gap in the file {gap_ms} ms \
         (longest gap elsewhere {longest_other} ms), {} values, {} bytes moved",
        total.as_millis(),
        all.len(),
        m["bytesMoved"]
    );

    // A drain of its node migrates it (its entity says `migration: cold`) rather than starting it afresh.
    let run = cluster.fosctl(0, &["node", "drain", &destination]);
    assert!(run.code == 0, "drain: {}", run.stderr);
    let deadline = Instant::now() + Duration::from_secs(90);
    let m = loop {
        let m = migration(&cluster, name);
        if m["requestedBy"] == "drain" && m["phase"] == "Completed" {
            break m;
        }
        assert!(Instant::now() < deadline, "the drain does not migrate it: {m}\n{}", cluster.log(0));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(m["destination"], source.as_str(), "{m}");
    assert_eq!(running_node(&cluster, name, Duration::from_secs(30)), source);
    let all = counts_on(&cluster, s, name, 10);
    assert!(all.iter().any(|l| l.2 == destination), "the values written on {destination} came back with the volume");
    let run = cluster.fosctl(0, &["node", "uncordon", &destination]);
    assert!(run.code == 0, "uncordon: {}", run.stderr);

    // The destination dies at Landing (it has the volumes, the instance is its own), before it runs it: once it is
    // declared lost the migration fails and the source, which kept the volume, runs it again; the destination, back,
    // holds nothing of it.
    let before = lines(&counter_file(&cluster, s, name)).len();
    let m = kill_at(&mut cluster, name, &destination, "Landing", d);
    let end = wait_end(&cluster, name, LOST_AFTER + Duration::from_secs(60));
    assert_eq!(end["phase"], "Failed", "{end}\n{}", cluster.log(s));
    assert!(end["message"].as_str().unwrap_or("").contains("lost at Landing"), "{end}");
    assert_eq!(running_node(&cluster, name, Duration::from_secs(60)), source);
    let all = counts_on(&cluster, s, name, 10);
    assert!(all.len() > before, "the source carries on from its kept volume");
    cluster.start_node(d);
    cluster.wait_ready(&[0, 1], Duration::from_secs(60));
    let there = cluster.nodes[d].data.join("volumes").join(instance(name));
    let inbox = cluster.nodes[d].data.join("migrations").join("in");
    eventually("the destination back holds nothing of it", Duration::from_secs(30), || {
        !there.exists() && entries(&inbox).is_empty()
    });
    let (twice, samples) = checker.finish();
    assert!(twice.is_empty(), "ran twice: {twice:?}");
    assert!(samples > 100, "only {samples} samples");
    println!(
        "figure: destination killed at {} ({} of {} bytes): migration {} after {} ms ({}), the source runs it on its \
         kept volume, {} values without a gap or repeat, {samples} samples, never twice",
        m["phase"],
        m["bytesMoved"],
        m["bytesTotal"],
        end["phase"],
        millis(&end["finished"]) - millis(&end["started"]),
        end["message"],
        all.len()
    );
}

#[test]
fn a_needed_component_on_a_virtual_network_migrates_without_restarting_its_dependent() {
    let cluster = Cluster::start(2, LOST_AFTER);
    need_on_a_virtual_network(&cluster);
}

/// A component that another needs, on a virtual network, is migrated: the dependent does not restart (same pid)
/// and reaches it at the same address all along (after the downtime).
fn need_on_a_virtual_network(cluster: &Cluster) {
    let app = "mig-need";
    let marks = cluster.marks();
    let manifest = format!(
        r#"apiVersion: fos/v1
kind: Application
metadata: {{name: {app}}}
spec:
  networks:
    - {{name: mlan, type: vxlan, ipRange: 10.86.0.0/24}}
  components:
    - name: db
      entity:
        kind: native
        migration: cold
        networks: [{{network: mlan}}]
        volumes: [{{name: data}}]
        readiness: {{tcp: 7000}}
        command:
          - python3
          - -c
          - |
            import os, socket
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", 7000))
            s.listen()
            while True:
                c, _ = s.accept()
                c.sendall(("db on " + os.environ["FOS_NODE"]).encode())
                c.close()
    - name: web
      need: [db]
      entity:
        kind: native
        networks: [{{network: mlan}}]
        command:
          - python3
          - -c
          - |
            import os, socket, time
            host, port = os.environ["FOS_NEED_DB_HOST"], int(os.environ["FOS_NEED_DB_PORT"])
            log = open("{marks}/web.log", "a", buffering=1)
            while True:
                try:
                    c = socket.create_connection((host, port), timeout=1)
                    log.write("%d %s %s\n" % (os.getpid(), host, c.recv(100).decode()))
                    c.close()
                except OSError as e:
                    log.write("%d %s ERR %s\n" % (os.getpid(), host, e))
                time.sleep(0.1)
"#,
        marks = marks.display()
    );
    let run = cluster.apply(0, app, &manifest);
    assert!(run.code == 0, "apply: {}", run.stderr);
    let (db, web) = (format!("db-0.{app}.default"), format!("web-0.{app}.default"));
    let from = running_node_of(cluster, &db, Duration::from_secs(90));
    let web_node = running_node_of(cluster, &web, Duration::from_secs(90));
    let to = cluster.nodes[1 - index(cluster, &from)].name.clone();
    let log = marks.join("web.log");
    let answers = |on: &str| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().filter(|l| l.ends_with(&format!("db on {on}"))).map(str::to_string).collect::<Vec<_>>()
    };
    eventually("web reaches db", Duration::from_secs(30), || !answers(&from).is_empty());
    let pid_of = |id: &str| {
        let procs = instance_processes(&BTreeSet::from([app.to_string()]));
        procs.get(id).and_then(|n| n.get(&web_node)).and_then(|p| p.iter().min().copied())
    };
    let pid = pid_of(&web).expect("web's process");
    let before = answers(&from).last().cloned().expect("an answer");

    let run = cluster.fosctl(0, &["migrate", &db, "--to", &to, "--wait", "--timeout", "90s"]);
    assert!(run.code == 0, "migrate: {}\n{}", run.stderr, cluster.log(0));
    assert_eq!(running_node_of(cluster, &db, Duration::from_secs(30)), to);
    eventually(&format!("web reaches db on {to}"), Duration::from_secs(30), || !answers(&to).is_empty());
    let after = answers(&to).last().cloned().expect("an answer");
    assert_eq!(pid_of(&web), Some(pid), "web was not restarted");
    let words = |l: &str| l.split_whitespace().take(2).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(&before), words(&after), "the same process reaches db at the same address");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let errors = text.lines().filter(|l| l.contains(" ERR ")).count();
    println!(
        "figure: db (needed by web, vxlan network) migrated {from} → {to}: web kept pid {pid} and address {}, \
         {errors} failed connections (every 100 ms) during the move",
        words(&after)[1]
    );
}

#[test]
fn a_kill_9_of_either_end_at_each_phase_leaves_one_copy_with_its_volume_intact() {
    // Long enough that a node restarted at once is never declared lost meanwhile.
    let mut cluster = Cluster::start(2, Duration::from_secs(20));
    let name = "mig-kill";
    let run = cluster.apply(0, name, &counter_with_blob(name));
    assert!(run.code == 0, "apply: {}", run.stderr);
    let source = running_node(&cluster, name, Duration::from_secs(90));
    let (s, d) = (index(&cluster, &source), 1 - index(&cluster, &source));
    let destination = cluster.nodes[d].name.clone();
    counts_on(&cluster, s, name, 10);
    let blob = counter_file(&cluster, s, name).with_file_name("blob");
    let digest = sha256(&blob);
    let checker = cluster.checker(&[name]);

    // 1. The destination dies while the volume moves (over a slow link): the migration fails and the source runs
    // the instance again on its volume; the destination, back, holds nothing of it.
    cluster.throttle(d, Some("200mbit"));
    let m = kill_at(&mut cluster, name, &destination, "Transferring", d);
    cluster.throttle(d, None);
    let end = wait_end(&cluster, name, Duration::from_secs(60));
    assert_eq!(end["phase"], "Failed", "{end}");
    assert!(end["message"].as_str().unwrap_or("").contains("not ready"), "{end}");
    assert_eq!(running_node(&cluster, name, Duration::from_secs(60)), source);
    counts_on(&cluster, s, name, 10);
    assert_eq!(sha256(&blob), digest, "the volume is intact on the source");
    cluster.start_node(d);
    cluster.wait_ready(&[0, 1], Duration::from_secs(60));
    let inbox = cluster.nodes[d].data.join("migrations").join("in");
    let there = cluster.nodes[d].data.join("volumes").join(instance(name));
    eventually("what arrived of the given-up migration is removed", Duration::from_secs(30), || {
        entries(&inbox).is_empty() && !there.exists()
    });
    println!(
        "figure: destination killed at {} ({} of {} bytes): migration Failed, the source runs it again, what arrived \
         removed",
        m["phase"], m["bytesMoved"], m["bytesTotal"]
    );

    // 2. A clean migration of the 100 MiB volume, beside rsync of the same directory between the two data dirs.
    let volume = counter_file(&cluster, s, name).parent().expect("volume").to_path_buf();
    let reference = cluster.nodes[d].data.join("rsync-reference");
    let t = Instant::now();
    let rsync =
        std::process::Command::new("rsync").arg("-a").arg(format!("{}/", volume.display())).arg(&reference).status();
    let rsync_ms = t.elapsed().as_millis();
    assert!(rsync.is_ok_and(|s| s.success()), "rsync failed");
    std::fs::remove_dir_all(&reference).expect("removing the rsync copy");
    let t = Instant::now();
    let run = cluster.fosctl(0, &["migrate", &instance(name), "--to", &destination, "--wait", "--timeout", "120s"]);
    let total_ms = t.elapsed().as_millis();
    assert!(run.code == 0, "migrate: {}\n{}\n{}", run.stderr, cluster.log(s), cluster.log(d));
    let m = migration(&cluster, name);
    let downtime_ms = millis(&m["finished"]) - millis(&m["stoppedAt"]);
    let recorded_total = millis(&m["finished"]) - millis(&m["started"]);
    counts_on(&cluster, d, name, 10);
    let moved_blob = counter_file(&cluster, d, name).with_file_name("blob");
    assert_eq!(sha256(&moved_blob), digest, "the volume arrived intact");
    println!(
        "figure: cold migration of a 100 MiB volume: total {total_ms} ms (fosctl --wait; recorded {recorded_total} ms), \
         downtime {downtime_ms} ms, {} stream bytes; rsync -a of the same directory in the same run {rsync_ms} ms \
         (total/rsync {:.2})",
        m["bytesMoved"],
        total_ms as f64 / rsync_ms.max(1) as f64
    );

    // 3. Back to `source`; its sender (`destination` now) dies at each phase and starts again at once: the
    // migration completes, the volume intact, the counter consecutive.
    let (s, d) = (d, s);
    let (source, destination) = (destination, source);
    for phase in ["TakingOff", "Transferring", "Landing"] {
        let slow_stop = counter_file(&cluster, s, name).with_file_name("slow-stop");
        if phase == "TakingOff" {
            std::fs::write(&slow_stop, b"").expect("slow-stop mark");
        }
        if phase == "Transferring" {
            cluster.throttle(d, Some("200mbit"));
        }
        let m = kill_at(&mut cluster, name, &destination, phase, s);
        cluster.throttle(d, None);
        cluster.start_node(s);
        let end = wait_end(&cluster, name, Duration::from_secs(120));
        assert_eq!(end["phase"], "Completed", "{end}\n{}\n{}", cluster.log(s), cluster.log(d));
        assert_eq!(running_node(&cluster, name, Duration::from_secs(60)), destination);
        let all = counts_on(&cluster, d, name, 10);
        let here = counter_file(&cluster, d, name).with_file_name("blob");
        assert_eq!(sha256(&here), digest, "the volume arrived intact after a kill at {phase}");
        let _ = std::fs::remove_file(here.with_file_name("slow-stop"));
        cluster.wait_ready(&[0, 1], Duration::from_secs(60));
        let left = counter_file(&cluster, s, name).parent().expect("volume").to_path_buf();
        eventually(&format!("the sender, killed at {phase}, removes its copy"), Duration::from_secs(30), || {
            !left.exists()
        });
        println!(
            "figure: source killed at {phase} ({} of {} bytes) and restarted: migration Completed, {} values without \
             a gap or repeat",
            m["bytesMoved"],
            m["bytesTotal"],
            all.len()
        );
        // And back again for the next phase.
        let run = cluster.fosctl(d, &["migrate", &instance(name), "--to", &source, "--wait", "--timeout", "120s"]);
        assert!(run.code == 0, "migrate: {}\n{}", run.stderr, cluster.log(d));
        counts_on(&cluster, s, name, 5);
    }
    let (twice, samples) = checker.finish();
    assert!(twice.is_empty(), "ran twice: {twice:?}");
    println!("figure: kill -9 at each phase: {samples} samples of every process, never two copies");
}
