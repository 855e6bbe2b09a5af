//! Virtual networks end to end, through the real `fosd` and `fosctl`, run inside a network namespace the test makes
//! (with a veth pair as the data-plane interface and a default route), so everything the network manager builds stays out of
//! the machine's own namespace: two components on a VxLAN network talk over it (the client reaches the server at
//! the address fos injects), `fosctl get networks` shows the network on the node, and after the application is
//! deleted the namespace's links and the named namespaces are exactly as before.

use std::time::{Duration, Instant};

use fos_e2e::host::{self, TestNamespace};
use fos_e2e::Fos;

fn manifest(marks: &std::path::Path) -> String {
    let m = marks.display();
    format!(
        r#"apiVersion: fos/v1
kind: Application
metadata: {{name: talk}}
spec:
  networks:
    - {{name: talk-net, type: vxlan, ipRange: 10.88.0.0/24}}
  components:
    - name: server
      entity:
        kind: native
        networks: [{{network: talk-net}}]
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
                line = c.recv(100)
                if line.startswith(b"ping"):
                    c.sendall(b"pong from server, you are " + peer[0].encode())
                c.close()
        readiness: {{tcp: 7000}}
    - name: client
      need: [server]
      entity:
        kind: native
        networks: [{{network: talk-net}}]
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

#[test]
fn two_components_talk_over_a_vxlan_network_and_nothing_is_left_after_delete() {
    let ns = TestNamespace::new(&format!("fos-e2e-net-{}", std::process::id()));
    let links_before = ns.links();
    assert!(host::named_namespaces(".talk.").is_empty());
    {
        let fos = Fos::start_in(Some(ns.path()));
        let file = fos.file("talk.yaml", &manifest(&fos.marks()));
        let run = fos.fosctl(&["apply", "-f", &file, "--wait", "--timeout", "90s"]);
        assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());

        let answer_file = fos.marks().join("client.answer");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answer_file.exists() {
            assert!(Instant::now() < deadline, "the client never got an answer\n{}", fos.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        let answer = std::fs::read_to_string(&answer_file).unwrap_or_default();
        let (host, reply) = answer.split_once(' ').unwrap_or_default();
        assert!(host.starts_with("10.88.0."), "the client reached the server on the network: {answer}");
        assert!(reply.starts_with("pong from server, you are 10.88.0."), "over the network, not loopback: {answer}");

        let links_up = ns.links();
        // fos<scope>b<hash> and fos<scope>x<hash> (see the agent's network::names).
        let kind = |l: &String| if l.starts_with("fos") { l.chars().nth(7) } else { None };
        assert!(links_up.iter().any(|l| kind(l) == Some('b')), "a bridge was made: {links_up:?}");
        assert!(links_up.iter().any(|l| kind(l) == Some('x')), "a VxLAN device was made: {links_up:?}");
        assert_eq!(host::named_namespaces(".talk.").len(), 2, "one namespace per instance");

        let get = fos.fosctl(&["get", "networks"]);
        assert_eq!(get.code, 0, "{get:?}");
        assert!(get.stdout.contains("talk-net.default"), "{get:?}");
        assert!(get.stdout.contains("vxlan "), "shows the VNI: {get:?}");
        assert!(get.stdout.contains(host), "shows the server's address: {get:?}");

        let run = fos.fosctl(&["delete", "talk", "--wait", "--timeout", "60s"]);
        assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
    }
    assert_eq!(ns.links(), links_before, "no stray links in the node's namespace");
    assert_eq!(host::named_namespaces(".talk."), Vec::<String>::new(), "no stray instance namespaces");
}
