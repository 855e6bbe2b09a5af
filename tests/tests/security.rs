//! Who gets in, with the real binaries: no credentials get 401 and nothing is stored or run; a view token cannot
//! apply; a tenant sees none of another tenant's objects (404, never 200, and absent from its lists); Secret values
//! reach the process and appear in no answer of the API nor in fosd's log; entities run as the node's
//! unprivileged user without capabilities (root only where an administrator allowed it); a plaintext API on a
//! public address is refused at start; a second node joins only with the join token and serves the same CA.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fos_e2e::{bin_dir, free_port, https_client, Fos};

const SECRET: &str = "hunter2-b9f4e1c07a";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

/// Makes a token with `fosctl token create` as the administrator.
fn token(fos: &Fos, tenant: &str, role: &str) -> String {
    let run = fos.fosctl(&["--tenant", tenant, "token", "create", "--role", role, "--description", "e2e"]);
    assert_eq!(run.code, 0, "token create: {run:?}");
    run.stdout.trim().to_string()
}

fn sha256(text: &str) -> String {
    let out = Command::new("sh").args(["-c", "printf %s \"$0\" | sha256sum", text]).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An application of tenant `alpha` reading a Secret, writing its uid, capabilities and the secret's digest.
fn secretive(marks: &std::path::Path) -> String {
    let m = marks.display();
    format!(
        r#"apiVersion: fos/v1
kind: Secret
metadata: {{name: db, tenant: alpha}}
spec:
  data: {{password: "{SECRET}"}}
---
apiVersion: fos/v1
kind: Application
metadata: {{name: secretive, tenant: alpha}}
spec:
  components:
    - name: app
      entity:
        kind: native
        env:
          DB_PASSWORD: {{secretRef: db/password}}
        command: [sh, -c, 'id -u > {m}/uid; grep CapEff /proc/self/status > {m}/caps; printf %s "$DB_PASSWORD" | sha256sum > {m}/pw; echo started; sleep 1000']
"#
    )
}

#[test]
fn tokens_roles_tenants_and_secrets_hold() {
    let fos = Fos::start();
    let marks = fos.marks();
    let rt = runtime();
    let url = fos.url();
    let anonymous = fos.http();
    let entity = serde_json::json!({
        "apiVersion": "fos/v1", "kind": "Entity", "metadata": {"name": "intruder"},
        "spec": {"kind": "native", "command": ["sh", "-c", format!("touch {}/pwned; sleep 100", marks.display())]}
    });
    let body = serde_json::json!({ "objects": [entity] });

    // No credentials, a malformed or unknown token: 401, nothing stored, nothing run.
    rt.block_on(async {
        let r = anonymous.post(format!("{url}/v1/apply")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
        for bad in ["fos.nope.nope", "garbage", "fos.0123456789ab.AAAA"] {
            let r = anonymous.post(format!("{url}/v1/apply")).bearer_auth(bad).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 401, "token {bad}");
        }
        assert_eq!(anonymous.get(format!("{url}/v1/apps")).send().await.unwrap().status(), 401);
        assert_eq!(anonymous.get(format!("{url}/metrics")).send().await.unwrap().status(), 401);
        assert_eq!(anonymous.get(format!("{url}/healthz")).send().await.unwrap().status(), 200);
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!marks.join("pwned").exists(), "nothing ran");
    let apps = fos.items(&["get", "apps"]);
    assert!(apps.is_empty(), "nothing stored: {apps:?}");

    // A view token reads its tenant and cannot apply.
    let view = token(&fos, "alpha", "view");
    let edit_alpha = token(&fos, "alpha", "edit");
    let edit_beta = token(&fos, "beta", "edit");
    rt.block_on(async {
        let as_view = https_client(&fos.ca(), Some(&view));
        let r = as_view.post(format!("{url}/v1/apply")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 403, "a view token cannot apply");
        assert_eq!(as_view.get(format!("{url}/v1/apps")).send().await.unwrap().status(), 200);
        assert_eq!(as_view.get(format!("{url}/v1/tokens")).send().await.unwrap().status(), 403);
    });

    // Tenant alpha applies an application reading a Secret; it runs as the unprivileged user.
    let file = fos.file("secretive.yaml", &secretive(&marks));
    let applied =
        fos.fosctl_as(&edit_alpha, &["--tenant", "alpha", "apply", "-f", &file, "--wait", "--timeout", "60s"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(!applied.stdout.contains(SECRET) && !applied.stderr.contains(SECRET));
    wait_for("the entity's marks", Duration::from_secs(20), || {
        marks.join("pw").exists() && marks.join("caps").exists()
    });
    let uid = std::fs::read_to_string(marks.join("uid")).unwrap().trim().to_string();
    let expected = Command::new("id").args(["-u", "fos-entity"]).output().unwrap();
    assert_eq!(uid, String::from_utf8_lossy(&expected.stdout).trim(), "runs as fos-entity");
    assert_ne!(uid, "0");
    let caps = std::fs::read_to_string(marks.join("caps")).unwrap();
    assert!(caps.trim().ends_with("0000000000000000"), "no capabilities: {caps}");
    let pw = std::fs::read_to_string(marks.join("pw")).unwrap();
    assert_eq!(pw.split_whitespace().next(), Some(sha256(SECRET).as_str()), "the process got the secret");

    // Tenant beta sees nothing of alpha's: 404 for the app, its logs, its verbs and its store keys; lists without it.
    let id = "app-0.secretive.alpha";
    rt.block_on(async {
        let beta = https_client(&fos.ca(), Some(&edit_beta));
        for (method, path) in [
            ("GET", "/v1/apps/alpha/secretive".to_string()),
            ("GET", format!("/v1/entities/{id}")),
            ("GET", format!("/v1/logs/{id}")),
            ("GET", "/v1/logs/secretive".to_string()),
            ("POST", "/v1/entities/alpha/secretive/stop".to_string()),
            ("DELETE", "/v1/apps/alpha/secretive".to_string()),
            ("GET", "/v1/store?uri=dfos://0/apps/alpha/secretive".to_string()),
            ("GET", "/v1/store?uri=afos://0/apps/alpha/secretive".to_string()),
        ] {
            let req = match method {
                "GET" => beta.get(format!("{url}{path}")),
                "POST" => beta.post(format!("{url}{path}")),
                _ => beta.delete(format!("{url}{path}")),
            };
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 404, "{method} {path}");
        }
        for path in ["/v1/apps", "/v1/entities", "/v1/events?limit=1000", "/v1/store?uri=dfos://0/**", "/v1/secrets"] {
            let text = beta.get(format!("{url}{path}")).send().await.unwrap().text().await.unwrap();
            assert!(!text.contains("secretive") && !text.contains("alpha"), "{path} shows alpha's objects: {text}");
        }
        // The view token of alpha sees it.
        let alpha = https_client(&fos.ca(), Some(&view));
        assert_eq!(alpha.get(format!("{url}/v1/apps/alpha/secretive")).send().await.unwrap().status(), 200);
    });
    let logs = fos.fosctl_as(&edit_beta, &["--tenant", "beta", "logs", id]);
    assert_ne!(logs.code, 0, "{logs:?}");
    assert!(logs.stderr.contains("not found"), "{logs:?}");

    // No answer of the API and no line of fosd's log holds the secret value.
    rt.block_on(async {
        let admin = fos.admin_http();
        let mut seen = String::new();
        for path in [
            "/v1/apps",
            "/v1/apps/alpha/secretive",
            "/v1/entities",
            &format!("/v1/entities/{id}"),
            "/v1/events?limit=1000",
            "/v1/secrets",
            "/v1/store?uri=dfos://0/**",
            "/v1/store?uri=afos://0/**",
        ] {
            let r = admin.get(format!("{url}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let text = r.text().await.unwrap();
            assert!(!text.contains(SECRET), "{path} shows the secret");
            seen.push_str(&text);
        }
        assert!(seen.contains("secretRef") && seen.contains("password"), "the reference and key are shown");
    });
    let described = fos.fosctl(&["--tenant", "alpha", "describe", "secretive"]);
    assert!(!described.stdout.contains(SECRET));
    for file in ["fos-store.db", "fos-store.db-wal"] {
        let stored = std::fs::read(fos.dir.path().join("data/store").join(file)).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&stored).contains(SECRET), "encrypted at rest ({file})");
    }
    assert!(!fos.log().contains(SECRET), "fosd's log holds the secret");

    // Root only where an administrator allows it, and even then without capabilities.
    let root = format!(
        "apiVersion: fos/v1\nkind: Entity\nmetadata: {{name: rooted, tenant: alpha}}\nspec:\n  kind: native\n  runAs: root\n  command: [sh, -c, 'id -u > {m}/root-uid; grep CapEff /proc/self/status > {m}/root-caps; sleep 1000']\n",
        m = marks.display()
    );
    let file = fos.file("root.yaml", &root);
    let refused = fos.fosctl_as(&edit_alpha, &["--tenant", "alpha", "apply", "-f", &file]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("may not run entities as root"), "{refused:?}");
    let allowed = fos.fosctl(&["tenant", "allow-root", "alpha"]);
    assert_eq!(allowed.code, 0, "{allowed:?}");
    let applied =
        fos.fosctl_as(&edit_alpha, &["--tenant", "alpha", "apply", "-f", &file, "--wait", "--timeout", "60s"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    wait_for("the root entity's marks", Duration::from_secs(20), || marks.join("root-caps").exists());
    assert_eq!(std::fs::read_to_string(marks.join("root-uid")).unwrap().trim(), "0");
    assert!(std::fs::read_to_string(marks.join("root-caps")).unwrap().trim().ends_with("0000000000000000"));

    // A revoked token stops working at once.
    let listed = fos.fosctl(&["token", "list"]);
    let view_id = view.split('.').nth(1).unwrap();
    assert!(listed.stdout.contains(view_id) && !listed.stdout.contains(&view), "{listed:?}");
    assert_eq!(fos.fosctl(&["token", "revoke", view_id]).code, 0);
    let after = fos.fosctl_as(&view, &["--tenant", "alpha", "get", "apps"]);
    assert_ne!(after.code, 0);
    assert!(after.stderr.contains("unknown or revoked token"), "{after:?}");
}

#[test]
fn a_plaintext_api_is_refused_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = Command::new(bin_dir().join("fosd"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--insecure-plaintext", "--listen", &format!("0.0.0.0:{port}"), "--node-name", "plain"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("running fosd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing --insecure-plaintext on 0.0.0.0"), "{err}");
    assert!(!dir.path().join("data/store").exists(), "refused before anything is made");
}

#[test]
fn a_plaintext_api_on_loopback_still_asks_for_tokens() {
    let fos = Fos::start_with(None, &["--insecure-plaintext"]);
    let rt = runtime();
    rt.block_on(async {
        let http = fos_e2e::plain_client(None);
        let base = format!("http://{}", fos.server);
        assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
        assert_eq!(http.get(format!("{base}/v1/apps")).send().await.unwrap().status(), 401);
        let ok = http.get(format!("{base}/v1/apps")).bearer_auth(fos.admin_token()).send().await.unwrap();
        assert_eq!(ok.status(), 200);
    });
}

#[test]
fn a_second_node_joins_with_the_join_token_and_serves_the_same_ca() {
    let rt = runtime();
    let etcd = rt.block_on(fos_store::testing::EtcdServer::start()).expect("etcd");
    let endpoint = etcd.endpoint(0).to_string();
    let first = Fos::start_with(None, &["--etcd", &endpoint]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let start = |extra: &[&str]| {
        Command::new(bin_dir().join("fosd"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--etcd", &endpoint, "--no-agent", "--no-controller", "--node-name", "second"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the second fosd")
    };
    // Without the token: refused.
    let out = start(&[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--join-token-file"), "{out:?}");
    // With a wrong one: refused.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "fosjoin.not-the-token").unwrap();
    let out = start(&["--join-token-file", wrong.to_str().unwrap()]).wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"), "{out:?}");
    // With the first node's token: it joins, serving a certificate of the same CA, and honours its tokens.
    let token_file = first.dir.path().join("data/join-token");
    let mut second = start(&["--join-token-file", token_file.to_str().unwrap()]);
    let server = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let run: fos_e2e::Run = Command::new(bin_dir().join("fosctl"))
            .arg("--config")
            .arg(first.config())
            .args(["--server", &server, "node", "list"])
            .output()
            .expect("fosctl")
            .into();
        if run.code == 0 || Instant::now() > deadline {
            break run;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(listed.code, 0, "the first node's CA and admin token work on the second: {listed:?}");
    let ca2 = std::fs::read_to_string(dir.path().join("data/tls/ca.pem")).unwrap();
    assert_eq!(ca2, first.ca(), "one cluster CA");
    let key2 = std::fs::read_to_string(dir.path().join("data/secrets.key")).unwrap();
    let key1 = std::fs::read_to_string(first.dir.path().join("data/secrets.key")).unwrap();
    assert_eq!(key1, key2, "one secrets key");
}
