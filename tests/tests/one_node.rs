//! fos on one node, end to end, through the real `fosd` and `fosctl`: dependency order, idempotent apply, restart
//! of only what changed, reverse-order teardown, manifest errors, unschedulable applications, instance logs.

use fos_e2e::{alive, two_tier, Fos};

fn pid_of(pids: &[(String, u32)], short: &str) -> u32 {
    pids.iter().find(|(n, _)| n == short).map(|(_, p)| *p).unwrap_or_else(|| panic!("no pid for {short}: {pids:?}"))
}

#[test]
fn apply_runs_in_dependency_order_and_applying_again_changes_nothing() {
    let fos = Fos::start();
    let manifest = fos.file("shop.yaml", &two_tier("order", &fos.marks(), "1"));
    let run = fos.fosctl(&["apply", "-f", &manifest, "--wait", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
    assert!(run.stdout.contains("application/order created"), "{run:?}");
    let (db_ready, web_start) =
        (fos.mark("db.ready").expect("db ready mark"), fos.mark("web.start").expect("web start"));
    assert!(web_start >= db_ready, "web started before db was ready");
    let env = std::fs::read_to_string(fos.marks().join("web.env")).unwrap_or_default();
    assert_eq!(env.trim(), "127.0.0.1:5432", "web finds db through the injected environment");

    let before = fos.pids();
    let again = fos.fosctl(&["apply", "-f", &manifest, "--wait", "--timeout", "60s"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("application/order unchanged"), "{again:?}");
    assert_eq!(fos.pids(), before, "nothing restarted");
    let get = fos.fosctl(&["get", "apps"]);
    assert!(get.stdout.contains("Running"), "{get:?}");
}

#[test]
fn editing_one_component_restarts_only_it() {
    let fos = Fos::start();
    let manifest = fos.file("shop.yaml", &two_tier("edit", &fos.marks(), "1"));
    assert_eq!(fos.fosctl(&["apply", "-f", &manifest, "--wait", "--timeout", "60s"]).code, 0, "{}", fos.log());
    let before = fos.pids();
    let edited = fos.file("shop.yaml", &two_tier("edit", &fos.marks(), "2"));
    let run = fos.fosctl(&["apply", "-f", &edited, "--wait", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("application/edit updated"), "{run:?}");
    let mut after = fos.pids();
    for _ in 0..100 {
        if pid_of(&after, "web-0") != pid_of(&before, "web-0") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        after = fos.pids();
    }
    assert_eq!(pid_of(&after, "db-0"), pid_of(&before, "db-0"), "db untouched");
    assert_ne!(pid_of(&after, "web-0"), pid_of(&before, "web-0"), "web restarted");
    assert!(!alive(pid_of(&before, "web-0")), "the old web process is gone");
}

#[test]
fn delete_stops_every_process_in_reverse_order() {
    let fos = Fos::start();
    let manifest = fos.file("shop.yaml", &two_tier("teardown", &fos.marks(), "1"));
    assert_eq!(fos.fosctl(&["apply", "-f", &manifest, "--wait", "--timeout", "60s"]).code, 0, "{}", fos.log());
    let pids = fos.pids();
    assert_eq!(pids.len(), 2, "{pids:?}");
    let run = fos.fosctl(&["delete", "teardown", "--wait", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "{run:?}");
    for (name, pid) in &pids {
        assert!(!alive(*pid), "{name} (pid {pid}) still runs");
    }
    let (web_stop, db_stop) =
        (fos.mark("web.stop").expect("web stop mark"), fos.mark("db.stop").expect("db stop mark"));
    assert!(db_stop >= web_stop, "db stopped before web");
    assert!(fos.items(&["get", "entities"]).is_empty());
}

#[test]
fn a_manifest_error_fails_with_its_position_and_stores_nothing() {
    let fos = Fos::start();
    let bad = two_tier("broken", &fos.marks(), "1").replace("need: [db]", "need: [dbb]");
    let manifest = fos.file("bad.yaml", &bad);
    let run = fos.fosctl(&["apply", "-f", &manifest]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("bad.yaml:"), "names the file: {run:?}");
    assert!(run.stderr.contains("dbb"), "says what is wrong: {run:?}");
    assert!(fos.items(&["get", "apps"]).is_empty(), "nothing stored");
}

#[test]
fn an_unschedulable_application_exits_3_with_the_reason() {
    let fos = Fos::start();
    let text = two_tier("mars", &fos.marks(), "1")
        .replace("    - name: db\n", "    - name: db\n      constraints: {nodeSelector: {site: mars}}\n");
    let manifest = fos.file("mars.yaml", &text);
    let run = fos.fosctl(&["apply", "-f", &manifest, "--wait", "--timeout", "30s"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("cannot place db"), "{run:?}");
    assert!(run.stderr.contains("site"), "the scheduler's reason: {run:?}");
}

#[test]
fn logs_are_read_through_the_nodes_agent() {
    let fos = Fos::start();
    let text = "apiVersion: fos/v1\nkind: Entity\nmetadata: {name: talker}\nspec:\n  kind: native\n  \
                command: [sh, -c, 'echo hello from talker; echo warning >&2; exec sleep 1000']\n";
    let manifest = fos.file("talker.yaml", text);
    assert_eq!(fos.fosctl(&["apply", "-f", &manifest, "--wait", "--timeout", "60s"]).code, 0, "{}", fos.log());
    let mut run = fos.fosctl(&["logs", "talker"]);
    for _ in 0..50 {
        if run.stdout.contains("warning") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        run = fos.fosctl(&["logs", "talker"]);
    }
    assert_eq!(run.stdout, "hello from talker\nwarning\n", "{run:?}");
    let tail = fos.fosctl(&["logs", "talker", "--tail-bytes", "8"]);
    assert_eq!(tail.stdout, " talker\nwarning\n", "{tail:?}");
    let missing = fos.fosctl(&["logs", "nobody"]);
    assert_ne!(missing.code, 0, "{missing:?}");
}

#[test]
fn a_request_below_the_kernels_granularity_runs_rounded_up_and_describe_says_so() {
    let fos = Fos::start();
    let text = "apiVersion: fos/v1\nkind: Entity\nmetadata: {name: tiny}\nspec:\n  kind: native\n  \
                command: [sleep, '1000']\n  resources: {cpu: 1m, memory: '1048577'}\n";
    let manifest = fos.file("tiny.yaml", text);
    let run = fos.fosctl(&["apply", "-f", &manifest, "--wait", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "runs, no cfs_quota error: {run:?}\n{}", fos.log());
    let describe = fos.fosctl(&["describe", "apps", "tiny"]);
    assert_eq!(describe.code, 0, "{describe:?}");
    assert!(
        describe.stdout.contains("cpu 1m rounded up to 10m (the kernel's smallest cpu quota is 1ms per 100ms period)"),
        "{describe:?}"
    );
    assert!(describe.stdout.contains("rounded up to 1028Ki (memory limits are whole 4Ki pages)"), "{describe:?}");
}
