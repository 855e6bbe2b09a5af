//! The web view in headless Chromium: `fosd` (in a network namespace of the test's, so the WordPress example's ports
//! 8080 and 8443 stay inside it) runs the WordPress example, which answers over HTTPS through its front; the page at
//! `/ui/` opened with the administrator's token shows the node, the application's three components on it, the `need`
//! edges between them, and updates through the watch stream, without a reload, when one of them is stopped (its
//! process killed: its node restarts it). A screenshot goes to `target/tmp/ui.png` (`docs/ui.png` is one).

use std::time::{Duration, Instant};

use fos_e2e::browser::{chromium, Browser};
use fos_e2e::host::TestNamespace;
use fos_e2e::Fos;
use serde_json::Value;

/// What the page shows, read from its DOM.
const READ: &str = r#"JSON.stringify({
  live: document.getElementById('live')?.textContent,
  nodes: [...document.querySelectorAll('#nodes tbody tr')].map(r => r.dataset.node),
  apps: [...document.querySelectorAll('.app')].map(a => ({name: a.dataset.app, phase: a.dataset.phase})),
  clusters: [...document.querySelectorAll('.cluster')].map(c => c.dataset.node),
  instances: [...document.querySelectorAll('.instance')].map(i => ({id: i.dataset.id, component: i.dataset.component,
    state: i.dataset.state, restarts: Number(i.dataset.restarts),
    cluster: (() => { let c = i.getBoundingClientRect(); return [...document.querySelectorAll('.cluster rect')]
      .map(r => [r.parentNode.dataset.node, r.getBoundingClientRect()])
      .find(([n, b]) => c.left >= b.left && c.right <= b.right && c.top >= b.top && c.bottom <= b.bottom)?.[0]; })()})),
  edges: [...document.querySelectorAll('.edge.need')].map(e => e.dataset.from + '->' + e.dataset.to),
  marker: window.fosMarker || null,
})"#;

fn read(b: &mut Browser) -> Value {
    serde_json::from_str(b.eval(READ).as_str().unwrap_or("{}")).unwrap_or_default()
}

fn until(b: &mut Browser, what: &str, secs: u64, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = read(b);
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "the page never showed {what}: {v}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn instance<'a>(v: &'a Value, component: &str) -> Option<&'a Value> {
    v["instances"].as_array()?.iter().find(|i| i["component"] == component)
}

#[test]
fn the_web_view_draws_wordpress_and_follows_it_live() {
    assert!(chromium().is_some(), "Debian's chromium is needed: make deps");
    let ns = TestNamespace::new(&format!("fos-ui-{}", std::process::id()));
    let fos = Fos::start_in(Some(ns.path()));
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/wordpress");
    let run = fos.fosctl(&["apply", "-f", example, "--wait", "--timeout", "300s"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
    https_front_answers(&ns, &fos);

    // The page holds no data without a token: it asks for one.
    let mut anonymous = Browser::open(Some(&ns.path()), &format!("{}/ui/", fos.url()), 1280, 900);
    let form = "document.getElementById('login')?.hidden === false && document.getElementById('main').hidden";
    let deadline = Instant::now() + Duration::from_secs(30);
    while anonymous.eval(form) != Value::Bool(true) {
        assert!(Instant::now() < deadline, "no token form: {}", read(&mut anonymous));
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(anonymous);

    let url = format!("{}/ui/#token={}", fos.url(), fos.admin_token());
    let mut page = Browser::open(Some(&ns.path()), &url, 1280, 900);
    let shown = until(&mut page, "WordPress running on the node", 60, |v| {
        let running = |c| instance(v, c).is_some_and(|i| i["state"] == "Running");
        v["live"] == "live" && running("db") && running("web")
    });
    assert_eq!(shown["nodes"], serde_json::json!(["e2e"]), "{shown}");
    assert_eq!(shown["apps"][0]["name"], "wordpress", "{shown}");
    assert_eq!(shown["clusters"], serde_json::json!(["e2e"]), "one node cluster: {shown}");
    for c in ["db", "web"] {
        assert_eq!(instance(&shown, c).expect("the component")["cluster"], "e2e", "{c} drawn in its node: {shown}");
    }
    let mut edges: Vec<&str> = shown["edges"].as_array().into_iter().flatten().filter_map(|e| e.as_str()).collect();
    edges.sort_unstable();
    assert_eq!(edges, ["front->web", "web->db"], "the need edges: {shown}");
    let png = page.screenshot();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui.png");
    std::fs::write(&out, &png).expect("writing the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");

    // Stop web: its process is killed; the page follows through the watch stream (the marker shows no reload).
    page.eval("window.fosMarker = 'same page'");
    let before = instance(&shown, "web").and_then(|i| i["restarts"].as_u64()).unwrap_or(0);
    let pid = fos.pids().into_iter().find(|(n, _)| n == "web-0").map(|(_, p)| p).expect("web's pid");
    // SAFETY: signalling a process of the test's own fosd.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let after = until(&mut page, "web stopped and restarted", 60, |v| {
        instance(v, "web").is_some_and(|i| i["restarts"].as_u64() > Some(before) && i["state"] == "Running")
    });
    assert_eq!(after["marker"], "same page", "updated in place, not reloaded: {after}");
}

/// WordPress answers over HTTPS on the node's port 8443, its certificate checked against the one the front made.
fn https_front_answers(ns: &TestNamespace, fos: &Fos) {
    let data = fos.config().parent().expect("the data directory").to_path_buf();
    let found = std::process::Command::new("find")
        .arg(&data)
        .args(["-path", "*front-0.wordpress.*", "-name", "wordpress-front.pem"])
        .output()
        .expect("running find");
    let pem = String::from_utf8_lossy(&found.stdout).lines().next().map(str::to_string);
    let pem = pem.unwrap_or_else(|| panic!("the front's certificate under {}", data.display()));
    let page = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .args(["--", "curl", "-sf", "--max-time", "20", "--cacert", &pem])
        .arg("https://127.0.0.1:8443/wp-admin/install.php")
        .output()
        .expect("running curl");
    let body = String::from_utf8_lossy(&page.stdout);
    assert!(page.status.success() && body.contains("WordPress"), "over HTTPS: {page:?}\n{}", fos.log());
}
