//! What fos leaves on the machine, through the real `fosd` and `fosctl` inside a network namespace the test makes:
//! two `fosd` on one machine (same node name, each its own data directory) run the same application side by side
//! without taking over each other's links, namespaces or cgroups; and a `fosd` started with `--cleanup` removes
//! everything it made when it stops, application still applied: the links, the named namespaces and the cgroup
//! tree are as they were before.

use std::time::{Duration, Instant};

use fos_e2e::host::{cgroups, named_namespaces, TestNamespace};
use fos_e2e::{alive, Fos};

/// A server and a client needing it on the network `net` (`kind`, `range`): the client writes where it reached the
/// server and the server's answer to `<marks>/client.answer`.
fn manifest(app: &str, kind: &str, range: &str, marks: &std::path::Path) -> String {
    let m = marks.display();
    format!(
        r#"apiVersion: fos/v1
kind: Application
metadata: {{name: {app}}}
spec:
  networks:
    - {{name: {app}-net, type: {kind}, ipRange: {range}}}
  components:
    - name: server
      entity:
        kind: native
        networks: [{{network: {app}-net}}]
        command:
          - /usr/bin/python3
          - -c
          - |
            import socket
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", 7000))
            s.listen()
            while True:
                c, peer = s.accept()
                c.recv(100)
                c.sendall(b"pong to " + peer[0].encode())
                c.close()
        readiness: {{tcp: 7000}}
    - name: client
      need: [server]
      entity:
        kind: native
        networks: [{{network: {app}-net}}]
        command:
          - /usr/bin/python3
          - -c
          - |
            import os, socket, time
            host, port = os.environ["FOS_NEED_SERVER_HOST"], int(os.environ["FOS_NEED_SERVER_PORT"])
            c = socket.create_connection((host, port), timeout=5)
            c.sendall(b"ping")
            answer = c.recv(100).decode()
            open("{m}/client.answer", "w").write(host + " " + answer)
            while True:
                time.sleep(1000)
"#
    )
}

/// Applies `app` to `fos` and waits until its client has talked to its server; returns the client's answer.
fn run_app(fos: &Fos, app: &str, kind: &str, range: &str) -> String {
    let file = fos.file(&format!("{app}.yaml"), &manifest(app, kind, range, &fos.marks()));
    let run = fos.fosctl(&["apply", "-f", &file, "--wait", "--timeout", "120s"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
    let answer_file = fos.marks().join("client.answer");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answer_file.exists() {
        assert!(Instant::now() < deadline, "the client never got an answer\n{}", fos.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(&answer_file).unwrap_or_default()
}

/// The agent scopes (`<id>@<scope>`) of the cgroups of `app`'s instances.
fn cgroup_scopes(app: &str) -> std::collections::BTreeSet<String> {
    cgroups(&format!(".{app}."))
        .iter()
        .filter_map(|p| Some(p.file_name()?.to_str()?.rsplit_once('@')?.1.to_string()))
        .collect()
}

#[test]
fn two_fosd_on_one_machine_run_the_same_application_without_collisions() {
    let ns = TestNamespace::new(&format!("fos-e2e-two-{}", std::process::id()));
    let links_before = ns.links();
    assert!(named_namespaces(".pair.").is_empty());
    {
        let a = Fos::start_in(Some(ns.path()));
        let b = Fos::start_in(Some(ns.path()));
        let answer_a = run_app(&a, "pair", "bridge", "10.89.0.0/24");
        let answer_b = run_app(&b, "pair", "bridge", "10.89.0.0/24");
        for answer in [&answer_a, &answer_b] {
            assert!(answer.contains(" pong to 10.89.0."), "each client reached its own server: {answer}");
        }
        let links = ns.links();
        let bridges: Vec<&String> =
            links.iter().filter(|l| l.starts_with("fos") && l.chars().nth(7) == Some('b')).collect();
        assert_eq!(bridges.len(), 2, "a bridge each: {links:?}");
        let veths = links.iter().filter(|l| l.starts_with("fos") && l.chars().nth(7) == Some('v')).count();
        assert_eq!(veths, 4, "a veth per instance of each: {links:?}");
        let namespaces = named_namespaces(".pair.");
        assert_eq!(namespaces.len(), 4, "a namespace per instance of each: {namespaces:?}");
        assert_eq!(cgroup_scopes("pair").len(), 2, "cgroups of two agents: {:?}", cgroups(".pair."));
        // Both still answer: neither agent took the other's objects over.
        for fos in [&a, &b] {
            let get = fos.fosctl(&["get", "apps"]);
            assert!(get.stdout.contains("Running"), "{get:?}\n{}", fos.log());
            assert_eq!(fos.pids().len(), 2);
            assert!(fos.pids().iter().all(|(_, pid)| alive(*pid)));
        }
        for fos in [&a, &b] {
            let run = fos.fosctl(&["delete", "pair", "--wait", "--timeout", "60s"]);
            assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
        }
    }
    assert_eq!(ns.links(), links_before, "no stray links");
    assert_eq!(named_namespaces(".pair."), Vec::<String>::new(), "no stray namespaces");
    assert!(cgroups(".pair.").is_empty(), "no stray cgroups: {:?}", cgroups(".pair."));
}

#[test]
fn fosd_with_cleanup_removes_everything_it_made_when_it_stops() {
    let ns = TestNamespace::new(&format!("fos-e2e-clean-{}", std::process::id()));
    let links_before = ns.links();
    assert!(named_namespaces(".left.").is_empty());
    let mut fos = Fos::start_with(Some(ns.path()), &["--cleanup"]);
    run_app(&fos, "left", "vxlan", "10.90.0.0/24");
    let pids: Vec<u32> = fos.pids().into_iter().map(|(_, pid)| pid).collect();
    assert_eq!(pids.len(), 2);
    let links = ns.links();
    assert!(links.len() >= links_before.len() + 4, "bridge, VxLAN link and two veths: {links:?}");
    assert_eq!(named_namespaces(".left.").len(), 2, "a namespace per instance");
    assert!(!cgroups(".left.").is_empty(), "the listing sees the instances' cgroups");

    // Stopped with the application still applied: everything it made goes.
    fos.terminate();
    assert!(pids.iter().all(|pid| !alive(*pid)), "every instance process is gone");
    assert_eq!(ns.links(), links_before, "no stray links\n{}", fos.log());
    assert_eq!(named_namespaces(".left."), Vec::<String>::new(), "no stray namespaces\n{}", fos.log());
    assert!(cgroups(".left.").is_empty(), "no stray cgroups: {:?}", cgroups(".left."));
}
