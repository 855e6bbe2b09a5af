//! `fosctl` manners, end to end through the real `fosd` and `fosctl`: objects that round-trip through `get -o
//! yaml|json` into apply, diff and plan; field-level diffs with kubectl's exit codes; every kind deleted by name, in-use
//! networks refused; prune without generation bumps; a stopped entity's phase; `--wait` ending on an instance
//! failed for good; `--watch`; `-o dot`; quiet pipes and plain logs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fos_e2e::{bin_dir, two_tier, Fos};

fn apply_wait(fos: &Fos, path: &str) {
    let run = fos.fosctl(&["apply", "-f", path, "--wait", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
}

fn generation(fos: &Fos, app: &str) -> u64 {
    let apps = fos.items(&["get", "apps", app]);
    apps[0]["status"]["generation"].as_u64().unwrap_or_else(|| panic!("no generation: {apps:?}"))
}

fn labelled(app: &str, fos: &Fos) -> String {
    two_tier(app, &fos.marks(), "1")
        .replace(&format!("metadata: {{name: {app}}}"), &format!("metadata: {{name: {app}, labels: {{tier: shop}}}}"))
}

#[test]
fn get_output_goes_back_into_apply_diff_and_plan() {
    let fos = Fos::start();
    let manifest = fos.file("rt.yaml", &labelled("rt", &fos));
    apply_wait(&fos, &manifest);

    // Applications: YAML documents with status apart; applying them again changes nothing.
    let yaml = fos.fosctl(&["get", "apps", "-o", "yaml"]);
    assert_eq!(yaml.code, 0, "{yaml:?}");
    assert!(yaml.stdout.contains("kind: Application") && yaml.stdout.contains("status:"), "{yaml:?}");
    let back = fos.file("back.yaml", &yaml.stdout);
    let again = fos.fosctl(&["apply", "-f", &back]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("application/rt unchanged"), "{again:?}");
    let diff = fos.fosctl(&["diff", "-f", &back]);
    assert_eq!((diff.code, diff.stdout.as_str()), (0, ""), "{diff:?}");
    // JSON: one object by name, a List otherwise, both accepted.
    let one = fos.fosctl(&["get", "app", "rt", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&one.stdout).expect("JSON");
    assert_eq!((v["kind"].as_str(), v["status"]["phase"].as_str()), (Some("Application"), Some("Running")), "{v}");
    let list = fos.file("list.json", &fos.fosctl(&["get", "apps", "-o", "json"]).stdout);
    assert!(fos.fosctl(&["apply", "-f", &list]).stdout.contains("application/rt unchanged"));

    // Nodes: kind Node, accepted by plan --nodes.
    let nodes = fos.fosctl(&["get", "nodes", "-o", "yaml"]);
    assert!(nodes.stdout.contains("kind: Node"), "{nodes:?}");
    let nodes = fos.file("nodes.yaml", &nodes.stdout);
    let plan = fos.fosctl(&["plan", "-f", &manifest, "--nodes", &nodes]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("e2e"), "placed on the node read back: {plan:?}");
    let info = fos.fosctl(&["node", "info", "e2e", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&info.stdout).expect("node info JSON");
    assert_eq!(v["kind"], "Node");
    assert!(v["status"]["ready"].as_bool().unwrap_or(false), "{v}");
}

#[test]
fn reads_show_units_ages_selections_pictures_and_structured_output() {
    let fos = Fos::start();
    let manifest = fos.file("read.yaml", &labelled("reads", &fos));
    apply_wait(&fos, &manifest);

    let nodes = fos.fosctl(&["get", "nodes"]);
    let row = nodes.stdout.lines().nth(1).expect("a node row").to_string();
    let memory = row.split_whitespace().nth(4).expect("MEMORY");
    assert!(memory.ends_with("Gi") || memory.ends_with("Mi"), "human memory, not bytes: {row}");

    std::thread::sleep(Duration::from_secs(3));
    let apps = fos.fosctl(&["get", "apps"]);
    let row = apps.stdout.lines().find(|l| l.starts_with("reads")).expect("the app's row").to_string();
    let age = row.split_whitespace().nth(5).expect("AGE");
    let secs: u64 = age.trim_end_matches('s').parse().unwrap_or(0);
    assert!(age.ends_with('m') || secs >= 3, "age since creation, not since the last phase change: {row}");

    assert!(fos.fosctl(&["get", "apps", "-l", "tier=shop"]).stdout.contains("reads"));
    assert!(!fos.fosctl(&["get", "apps", "-l", "tier!=shop"]).stdout.contains("reads"));
    assert!(fos.fosctl(&["get", "entities", "--selector", "tier"]).stdout.contains("web-0"));
    assert!(!fos.fosctl(&["get", "entities", "--selector", "!tier"]).stdout.contains("web-0"));

    let dot = fos.fosctl(&["get", "app", "reads", "-o", "dot"]);
    assert_eq!(dot.code, 0, "{dot:?}");
    assert!(dot.stdout.starts_with("digraph \"reads\""), "{dot:?}");
    assert!(dot.stdout.contains("subgraph \"cluster_e2e\""), "the node as a cluster: {dot:?}");
    assert!(dot.stdout.contains("\"web-0\" -> \"db-0\" [label=\"need\"]"), "{dot:?}");
    assert!(dot.stdout.contains("fillcolor=palegreen"), "ready instances in green: {dot:?}");

    let described = fos.fosctl(&["describe", "app", "reads", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&described.stdout).expect("describe JSON");
    assert_eq!(v["object"]["metadata"]["name"], "reads");
    assert_eq!(v["instances"].as_array().map(Vec::len), Some(2), "{v}");
    let events = fos.fosctl(&["events", "-o", "json"]);
    assert_eq!(events.code, 0, "{events:?}");
    let reasons: Vec<String> = events
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one event per line")["reason"].to_string())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("Scheduled")), "{reasons:?}");

    // A closed pipe ends fosctl quietly; fosd's log holds no colour codes.
    let script = format!(
        "{} --config {} --server {} get nodes -o yaml 2>{}/err | true; echo ${{PIPESTATUS[0]}}",
        bin_dir().join("fosctl").display(),
        fos.config().display(),
        fos.server,
        fos.dir.path().display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().expect("bash");
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = std::fs::read_to_string(fos.dir.path().join("err")).unwrap_or_default();
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert!(status == "0" || status == "141", "ended by the closed pipe, not a panic: {status} {err}");
    assert!(!fos.log().contains('\x1b'), "no ANSI codes in a log file");
}

#[test]
fn diff_shows_fields_and_placements_with_kubectl_exit_codes() {
    let fos = Fos::start();
    let manifest = fos.file("d.yaml", &two_tier("differ", &fos.marks(), "1"));
    apply_wait(&fos, &manifest);
    let same = fos.fosctl(&["diff", "-f", &manifest]);
    assert_eq!((same.code, same.stdout.as_str()), (0, ""), "{same:?}");

    let scaled =
        two_tier("differ", &fos.marks(), "2").replace("    - name: web\n", "    - name: web\n      replicas: 3\n");
    let changed = fos.file("d2.yaml", &scaled);
    let diff = fos.fosctl(&["diff", "-f", &changed]);
    assert_eq!(diff.code, 1, "{diff:?}");
    assert!(diff.stdout.contains("--- live/application/differ\n+++ new/application/differ"), "{diff:?}");
    assert!(diff.stdout.lines().any(|l| l.starts_with('+') && l.contains("replicas: 3")), "{diff:?}");
    assert!(diff.stdout.lines().any(|l| l.starts_with('-') && l.contains("TAG: '1'")), "{diff:?}");
    assert!(diff.stdout.lines().any(|l| l.starts_with('+') && l.contains("TAG: '2'")), "{diff:?}");
    assert!(!diff.stdout.contains("\x1b["), "no colours in a pipe");
    assert!(diff.stdout.contains("placement of default/differ:"), "{diff:?}");
    assert!(diff.stdout.contains("+ web-1 → e2e") && diff.stdout.contains("+ web-2 → e2e"), "{diff:?}");
    assert_eq!(generation(&fos, "differ"), 1, "a diff stores nothing");

    let broken = fos.fosctl(&["diff", "-f", "/nonexistent/app.yaml"]);
    assert_eq!(broken.code, 2, "{broken:?}");
}

#[test]
fn every_kind_is_deleted_by_name_and_a_network_in_use_is_refused() {
    let fos = Fos::start();
    let objects = "apiVersion: fos/v1\nkind: Network\nmetadata: {name: lan}\nspec: {type: bridge}\n---\n\
apiVersion: fos/v1\nkind: Image\nmetadata: {name: cirros}\nspec:\n  uri: http://example.invalid/cirros.img\n  \
checksum: 7d6355852aeb6dbcd191bcda7cd74f1536cfe5cbf8a10495a7283a8396e4b75b\n  format: qcow2\n---\n\
apiVersion: fos/v1\nkind: Application\nmetadata: {name: user}\nspec:\n  networks: [lan]\n  components:\n    \
- name: c\n      entity: {kind: native, command: [sleep, '1000']}\n---\n\
apiVersion: fos/v1\nkind: Entity\nmetadata: {name: chain}\nspec: {kind: native, command: [sleep, '1000']}\n";
    let file = fos.file("objects.yaml", objects);
    let run = fos.fosctl(&["apply", "-f", &file]);
    assert_eq!(run.code, 0, "{run:?}");

    let refused = fos.fosctl(&["delete", "network", "lan"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("in use by application default/user"), "names the user: {refused:?}");
    assert!(fos.fosctl(&["get", "networks"]).stdout.contains("lan"), "still there");

    // `delete app chain` deletes chain (not an application named `app`).
    let chain = fos.fosctl(&["delete", "app", "chain", "--wait", "--timeout", "30s"]);
    assert_eq!(chain.code, 0, "{chain:?}");
    assert!(chain.stdout.contains("entity/chain deleting"), "{chain:?}");
    let user = fos.fosctl(&["delete", "user", "--wait", "--timeout", "30s"]);
    assert_eq!(user.code, 0, "{user:?}");
    let net = fos.fosctl(&["delete", "network", "lan"]);
    assert_eq!(net.code, 0, "{net:?}");
    assert!(net.stdout.contains("network/lan deleted"), "{net:?}");
    let image = fos.fosctl(&["delete", "image", "cirros"]);
    assert!(image.stdout.contains("image/cirros deleted"), "{image:?}");
    assert!(fos.items(&["get", "networks"]).is_empty());
    assert!(fos.items(&["get", "images"]).is_empty());
    let missing = fos.fosctl(&["delete", "network", "lan"]);
    assert!(missing.code == 1 && missing.stderr.contains("not found"), "{missing:?}");
}

#[test]
fn prune_deletes_every_kind_it_applied_and_never_bumps_what_is_unchanged() {
    let fos = Fos::start();
    let dir = fos.dir.path().join("site");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("app.yaml"), two_tier("pruned", &fos.marks(), "1")).expect("app");
    std::fs::write(
        dir.join("net.yaml"),
        "apiVersion: fos/v1\nkind: Network\nmetadata: {name: spare}\nspec: {type: bridge}\n",
    )
    .expect("net");
    let dir = dir.display().to_string();
    apply_wait(&fos, &dir);
    assert_eq!(generation(&fos, "pruned"), 1);
    let before = fos.pids();

    let first = fos.fosctl(&["apply", "-f", &dir, "--prune"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.stdout.contains("application/pruned unchanged"), "{first:?}");
    assert!(first.stdout.contains("network/spare unchanged"), "{first:?}");
    assert_eq!(generation(&fos, "pruned"), 1, "the first prune does not bump the generation");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fos.pids(), before, "nothing restarted");

    std::fs::remove_file(format!("{dir}/net.yaml")).expect("remove");
    let second = fos.fosctl(&["apply", "-f", &dir, "--prune"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(second.stdout.contains("network/spare deleted"), "{second:?}");
    assert!(fos.items(&["get", "networks"]).is_empty());
    assert_eq!(generation(&fos, "pruned"), 1);
}

#[test]
fn a_stopped_entity_shows_stopped() {
    let fos = Fos::start();
    let file = fos.file(
        "e.yaml",
        "apiVersion: fos/v1\nkind: Entity\nmetadata: {name: halt}\nspec: {kind: native, command: [sleep, '1000']}\n",
    );
    apply_wait(&fos, &file);
    let stop = fos.fosctl(&["entity", "stop", "halt"]);
    assert_eq!(stop.code, 0, "{stop:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = fos.fosctl(&["get", "apps"]).stdout;
        if row.lines().any(|l| l.starts_with("halt") && l.contains("Stopped")) {
            break;
        }
        assert!(Instant::now() < deadline, "never shown as Stopped: {row}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn wait_ends_at_once_when_an_instance_failed_past_its_restart_policy() {
    let fos = Fos::start();
    let file = fos.file(
        "f.yaml",
        "apiVersion: fos/v1\nkind: Entity\nmetadata: {name: doomed}\nspec:\n  kind: native\n  restart: never\n  \
command: [sh, -c, 'echo starting up; echo cannot open the database >&2; exit 3']\n",
    );
    let started = Instant::now();
    let run = fos.fosctl(&["apply", "-f", &file, "--wait", "--timeout", "120s"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(60), "did not wait for the timeout");
    assert!(run.stderr.contains("doomed-0") && run.stderr.contains("restart policy never"), "the reason: {run:?}");
    assert!(run.stderr.contains("cannot open the database"), "the last lines of its log: {run:?}");
}

#[test]
fn get_watch_prints_rows_as_they_change() {
    let fos = Fos::start();
    let mut child = Command::new(bin_dir().join("fosctl"))
        .arg("--config")
        .arg(fos.config())
        .args(["--server", &fos.server, "get", "apps", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fosctl get -w");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let manifest = fos.file("w.yaml", &two_tier("watched", &fos.marks(), "1"));
    apply_wait(&fos, &manifest);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.starts_with("watched") && l.contains("Running")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no Running row for the new application: {seen:?}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen[0].split_whitespace().next(), Some("NAME"), "the header first: {seen:?}");
}
