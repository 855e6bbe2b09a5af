//! Containers end to end: the real `fosd`, a real registry (Debian's `docker-registry`, in the test's network
//! namespace) holding an image built from Debian's busybox, and real `runc`. A container serving HTTP is pulled,
//! started after the native entity it needs is ready, reached on its host port and over a fos VxLAN network, restarted
//! by its policy after a crash, adopted (the same process) after `fosd` is killed with SIGKILL, and deleted with
//! nothing left: no mount, cgroup, link, namespace or runc container. A standalone container is paused and resumed,
//! and an image whose layer is not its digest is refused with a clear error and nothing runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fos_e2e::host::{self, TestNamespace};
use fos_e2e::oci::{busybox_image, http_get, in_netns, Registry};
use fos_e2e::Fos;

const PAGE: &str = "hello from a fos container";

fn wait_until(what: &str, fos: &Fos, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}\n{}", fos.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The entity view of the instance whose id starts with `short` (`web-0`).
fn entity(fos: &Fos, short: &str) -> serde_json::Value {
    let prefix = format!("{short}.");
    fos.try_items(&["get", "entities"])
        .unwrap_or_default()
        .into_iter()
        .find(|e| e["id"].as_str().is_some_and(|id| id.starts_with(&prefix)))
        .unwrap_or_default()
}

fn node_config(fos_dir: &Path, registry: &Registry) -> String {
    let path = fos_dir.join(format!("node-{}.yaml", std::process::id()));
    let text = format!(
        "runtimes:\n  container:\n    config: {{insecureRegistries: ['{}'], imageRetentionSecs: 0}}\n",
        registry.addr
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn runc_containers(data: &Path) -> Vec<String> {
    let out = Command::new("runc").arg("--root").arg(data.join("container/.runc")).args(["list", "-q"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()).unwrap_or_default()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.display().to_string();
    table.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&dir)).map(str::to_string).collect()
}

fn shop(registry: &Registry, marks: &Path, db_port: u16, host_port: u16) -> String {
    let m = marks.display();
    format!(
        r#"apiVersion: fos/v1
kind: Application
metadata: {{name: shop}}
spec:
  networks:
    - {{name: shop-net, type: vxlan, ipRange: 10.89.0.0/24}}
  components:
    - name: db
      entity:
        kind: native
        command:
          - /usr/bin/python3
          - -c
          - |
            import socket, time
            time.sleep(1)
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", {db_port}))
            s.listen()
            while True:
                s.accept()[0].close()
        readiness: {{tcp: {db_port}}}
    - name: web
      need: [db]
      entity:
        kind: container
        image: {addr}/web:1
        networks: [{{network: shop-net}}]
        ports: [{{port: 8080, hostPort: {host_port}}}]
        readiness: {{http: {{port: 8080, path: /}}}}
    - name: client
      need: [web]
      entity:
        kind: native
        networks: [{{network: shop-net}}]
        command:
          - /usr/bin/python3
          - -c
          - |
            import os, time, urllib.request
            host, port = os.environ["FOS_NEED_WEB_HOST"], os.environ["FOS_NEED_WEB_PORT"]
            body = urllib.request.urlopen(f"http://{{host}}:{{port}}/", timeout=5).read().decode()
            open("{m}/client.answer", "w").write(host + " " + body)
            while True:
                time.sleep(1000)
"#,
        addr = registry.addr
    )
}

fn started_at(e: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    e["actual"]["startedAt"].as_str().and_then(|s| s.parse().ok()).expect("a start time")
}

#[test]
fn a_container_runs_in_need_order_is_reached_restarts_is_adopted_and_leaves_nothing() {
    let ns = TestNamespace::new(&format!("fos-e2e-ctr-{}", std::process::id()));
    let links_before = ns.links();
    let registry = Registry::start(Some(&ns.path()));
    registry.push("web:1", &busybox_image(8080, PAGE, 0));
    let config_dir = tempfile::tempdir().unwrap();
    let config = node_config(config_dir.path(), &registry);
    let (db_port, host_port) =
        (in_netns(Some(&ns.path()), fos_e2e::free_port), in_netns(Some(&ns.path()), fos_e2e::free_port));
    let data: PathBuf;
    {
        let mut fos = Fos::start_with(Some(ns.path()), &["--config", &config]);
        data = fos.dir.path().join("data");
        let node = fos.items(&["get", "nodes"]);
        assert!(node[0].to_string().contains("container"), "the node runs containers: {node:?}");
        let file = fos.file("shop.yaml", &shop(&registry, &fos.marks(), db_port, host_port));
        let run = fos.fosctl(&["apply", "-f", &file, "--wait", "--timeout", "120s"]);
        assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());

        // Need order: the container started once db listened (db waits a second before it does).
        let (db, web) = (entity(&fos, "db-0"), entity(&fos, "web-0"));
        assert!(started_at(&web) >= started_at(&db) + chrono::Duration::milliseconds(900), "{db}\n{web}");

        // Over the VxLAN network, at the address fos gave it, and on the node's host port.
        let answer = fos.marks().join("client.answer");
        wait_until("the client got the page", &fos, Duration::from_secs(30), || {
            answer.exists() || {
                eprintln!(
                    "client: {:?}\nweb: {}",
                    fos.fosctl(&["logs", "client-0.shop.default"]),
                    entity(&fos, "web-0")
                );
                false
            }
        });
        let answer = std::fs::read_to_string(&answer).unwrap();
        assert!(answer.starts_with("10.89.0.") && answer.ends_with(PAGE), "{answer}");
        let local = format!("127.0.0.1:{host_port}");
        let page = http_get(&ns.path(), &local).unwrap_or_default();
        assert!(page.starts_with("HTTP/1.") && page.ends_with(PAGE), "{page:?}");
        let logs = fos.fosctl(&["logs", "web-0.shop.default"]);
        assert!(logs.stdout.contains("response:200") || logs.stdout.contains("GET /"), "httpd's log: {logs:?}");

        // A crash: restarted by its policy (always), serving again.
        let pid = entity(&fos, "web-0")["actual"]["pid"].as_u64().expect("a pid") as i32;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        wait_until("web restarted", &fos, Duration::from_secs(60), || {
            let e = entity(&fos, "web-0");
            let ok = e["actual"]["restarts"].as_u64() >= Some(1) && e["actual"]["ready"] == true;
            if !ok {
                eprintln!("web: {e}\n{:?}", fos.fosctl(&["logs", "web-0.shop.default"]));
            }
            ok
        });
        let restarted = entity(&fos, "web-0");
        assert!(
            restarted["actual"]["exitStatus"].as_i64() == Some(137)
                || restarted["actual"]["restarts"].as_u64() >= Some(1)
        );
        wait_until("web serves again", &fos, Duration::from_secs(30), || {
            http_get(&ns.path(), &local).is_some_and(|p| p.ends_with(PAGE))
        });

        // fosd killed with SIGKILL and started again: the same container process is adopted.
        let pid = entity(&fos, "web-0")["actual"]["pid"].as_u64().expect("a pid");
        let restarts = entity(&fos, "web-0")["actual"]["restarts"].as_u64();
        fos.kill9_and_restart(&["--config", &config]);
        assert!(http_get(&ns.path(), &local).is_some_and(|p| p.ends_with(PAGE)), "served while fosd restarts");
        wait_until("web adopted and verified", &fos, Duration::from_secs(60), || {
            let e = entity(&fos, "web-0");
            e["actual"]["ready"] == true && e["actual"]["unverified"] != true
        });
        let adopted = entity(&fos, "web-0");
        assert_eq!(adopted["actual"]["pid"].as_u64(), Some(pid), "the same process: {adopted}");
        assert_eq!(adopted["actual"]["restarts"].as_u64(), restarts, "not restarted: {adopted}");
        assert_eq!(runc_containers(&data).len(), 1, "one container");

        let run = fos.fosctl(&["delete", "shop", "--wait", "--timeout", "90s"]);
        assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
        assert_eq!(runc_containers(&data), Vec::<String>::new(), "no runc container left");
        assert_eq!(mounts_under(&data), Vec::<String>::new(), "no mount left");
    }
    assert_eq!(host::cgroups(".shop."), Vec::<PathBuf>::new(), "no cgroup left");
    assert_eq!(ns.links(), links_before, "no stray links");
    assert_eq!(host::named_namespaces(".shop."), Vec::<String>::new(), "no stray namespaces");
}

#[test]
fn a_standalone_container_pauses_and_resumes_and_a_bad_layer_runs_nothing() {
    let ns = TestNamespace::new(&format!("fos-e2e-ctp-{}", std::process::id()));
    let registry = Registry::start(Some(&ns.path()));
    registry.push("web:1", &busybox_image(8080, PAGE, 0));
    let bad = busybox_image(8080, "never served", 0);
    registry.push("bad:1", &bad);
    let layer = bad.layer_digests()[0].clone();
    let path = registry.blob_path(&layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let config_dir = tempfile::tempdir().unwrap();
    let config = node_config(config_dir.path(), &registry);
    let port = in_netns(Some(&ns.path()), fos_e2e::free_port);
    let fos = Fos::start_with(Some(ns.path()), &["--config", &config]);
    let data = fos.dir.path().join("data");
    let text = format!(
        "apiVersion: fos/v1\nkind: Entity\nmetadata: {{name: solo}}\nspec:\n  kind: container\n  image: {}/web:1\n  \
         command: [/bin/busybox, httpd, -f, -p, '{port}', -h, /www]\n  ports: [{{port: {port}}}]\n  \
         readiness: {{tcp: {port}}}\n",
        registry.addr
    );
    let file = fos.file("solo.yaml", &text);
    let run = fos.fosctl(&["apply", "-f", &file, "--wait", "--timeout", "90s"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
    let addr = format!("127.0.0.1:{port}");
    assert!(http_get(&ns.path(), &addr).is_some_and(|p| p.ends_with(PAGE)), "on the node's network");

    let run = fos.fosctl(&["entity", "pause", "solo"]);
    assert_eq!(run.code, 0, "{run:?}");
    wait_until("solo paused", &fos, Duration::from_secs(30), || {
        let e = entity(&fos, "solo-0");
        eprintln!("{e}");
        e["actual"]["state"] == "Paused"
    });
    assert_eq!(http_get(&ns.path(), &addr), None, "a frozen container does not answer");
    let run = fos.fosctl(&["entity", "resume", "solo"]);
    assert_eq!(run.code, 0, "{run:?}");
    wait_until("solo answers again", &fos, Duration::from_secs(30), || {
        http_get(&ns.path(), &addr).is_some_and(|p| p.ends_with(PAGE))
    });

    let text = format!(
        "apiVersion: fos/v1\nkind: Entity\nmetadata: {{name: bad}}\nspec:\n  kind: container\n  image: {}/bad:1\n",
        registry.addr
    );
    let file = fos.file("bad.yaml", &text);
    let run = fos.fosctl(&["apply", "-f", &file]);
    assert_eq!(run.code, 0, "{run:?}");
    wait_until("the bad image refused", &fos, Duration::from_secs(60), || {
        entity(&fos, "bad-0")["actual"]["error"].as_str().is_some_and(|e| e.contains("digest mismatch"))
    });
    let e = entity(&fos, "bad-0");
    let error = e["actual"]["error"].as_str().unwrap_or_default();
    assert!(error.contains(&layer) && error.contains("held until"), "names the layer, not retried: {error}");
    assert!(e["actual"]["pid"].is_null(), "nothing runs: {e}");
    assert_eq!(runc_containers(&data).len(), 1, "only solo's container");
    assert_eq!(mounts_under(&data.join("container")).iter().filter(|m| m.contains("bad-0")).count(), 0);
    let store = fos_agent::oci::ImageStore::open(data.join("oci")).unwrap();
    assert!(!store.blob_path(&fos_agent::oci::Digest::parse(&layer).unwrap()).exists(), "the bad layer is not kept");
}

#[test]
fn an_uploaded_layout_archive_runs_by_name_with_its_volume_at_its_mount_path() {
    let ns = TestNamespace::new(&format!("fos-e2e-ctu-{}", std::process::id()));
    let fos = Fos::start_in(Some(ns.path()));
    let archive = fos.dir.path().join("web.tar");
    fos_e2e::oci::write_layout_tar(&busybox_image(8080, PAGE, 0), &archive);
    let archive = archive.display().to_string();
    let run = fos.fosctl(&["image", "upload", &archive, "--name", "web-archive", "--format", "tar.gz"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());

    let port = in_netns(Some(&ns.path()), fos_e2e::free_port);
    let text = format!(
        "apiVersion: fos/v1\nkind: Entity\nmetadata: {{name: up}}\nspec:\n  kind: container\n  image: web-archive\n  \
         command: [/bin/busybox, httpd, -f, -p, '{port}', -h, /www]\n  ports: [{{port: {port}}}]\n  \
         readiness: {{tcp: {port}}}\n  volumes: [{{name: state, mountPath: /var/state}}]\n"
    );
    let file = fos.file("up.yaml", &text);
    let run = fos.fosctl(&["apply", "-f", &file, "--wait", "--timeout", "90s"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
    let addr = format!("127.0.0.1:{port}");
    assert!(http_get(&ns.path(), &addr).is_some_and(|p| p.ends_with(PAGE)), "the uploaded image serves");

    // The volume is the container's /var/state: the node's directory of the volume, bind-mounted there.
    let e = entity(&fos, "up-0");
    let pid = e["actual"]["pid"].as_u64().expect("the container's pid");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let line = mounts.lines().find(|l| l.split_whitespace().nth(4) == Some("/var/state"));
    assert!(line.is_some_and(|l| l.contains("state")), "mounted at its mountPath: {mounts}");
    let volume = fos.dir.path().join("data/volumes/up-0.up.default/state");
    std::fs::write(volume.join("seen"), "from the node").expect("writing into the volume");
    let root = format!("/proc/{pid}/root/var/state/seen");
    assert_eq!(std::fs::read_to_string(&root).unwrap_or_default(), "from the node", "the same directory inside");
}
