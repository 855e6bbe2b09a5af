//! Registry credentials end to end: the real `fosd`, Debian's `docker-registry` asking for a user and password
//! (htpasswd) in the test's network namespace, real `runc`. A container whose entity names no `imagePullSecret` is
//! refused with a clear error, one whose Secret holds a wrong password too, one whose Secret (a `.dockerconfigjson`
//! as kubectl makes it) holds the right ones runs; another tenant naming the same image, now held by the node, does
//! not get it without credentials of its own; the password appears in no answer of the API, in no log and in no
//! file of the node.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use fos_e2e::host::TestNamespace;
use fos_e2e::oci::{busybox_image, entity_of, http_get, in_netns, node_config, wait_until, Registry};
use fos_e2e::Fos;

const PAGE: &str = "served from a private registry";
const PASSWORD: &str = "correct-horse-7f3a9c";
const WRONG: &str = "battery-staple-2b8e";

fn apply(fos: &Fos, name: &str, text: &str) {
    let file = fos.file(name, text);
    let run = fos.fosctl(&["apply", "-f", &file]);
    assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
}

fn container(name: &str, tenant: &str, image: &str, port: u16, secret: Option<&str>) -> String {
    let secret = secret.map(|s| format!("  imagePullSecret: {s}\n")).unwrap_or_default();
    format!(
        "apiVersion: fos/v1\nkind: Entity\nmetadata: {{name: {name}, tenant: {tenant}}}\nspec:\n  kind: container\n  \
         image: {image}\n{secret}  command: [/bin/busybox, httpd, -f, -p, '{port}', -h, /www]\n  \
         ports: [{{port: {port}}}]\n  readiness: {{tcp: {port}}}\n"
    )
}

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() && meta.len() < 256 << 20 {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(e.path().display().to_string());
                }
            }
        }
    }
    found
}

#[test]
fn a_private_registry_serves_the_tenant_whose_secret_holds_its_credentials_and_no_one_else() {
    let ns = TestNamespace::new(&format!("fos-e2e-cta-{}", std::process::id()));
    let registry = Registry::start_with_auth(Some(&ns.path()), "puller", PASSWORD);
    registry.push("private:1", &busybox_image(8080, PAGE, 0));
    let image = format!("{}/private:1", registry.addr);
    let config_dir = tempfile::tempdir().unwrap();
    let config = node_config(config_dir.path(), &registry.addr);
    let fos = Fos::start_with(Some(ns.path()), &["--config", &config]);
    let ports: Vec<u16> = (0..4).map(|_| in_netns(Some(&ns.path()), fos_e2e::free_port)).collect();

    // The Secrets of tenant alpha: kubectl's docker-registry shape (auth = base64(user:password)), and a wrong one.
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("puller:{PASSWORD}"));
    let docker_config = serde_json::json!({"auths": {registry.addr.clone(): {"auth": auth}}}).to_string();
    let secrets = format!(
        "apiVersion: fos/v1\nkind: Secret\nmetadata: {{name: registry, tenant: alpha}}\nspec:\n  data: {{.dockerconfigjson: {}}}\n\
         ---\napiVersion: fos/v1\nkind: Secret\nmetadata: {{name: stale, tenant: alpha}}\nspec:\n  data: {{username: puller, password: {WRONG}}}\n",
        serde_json::to_string(&docker_config).unwrap()
    );
    apply(&fos, "secrets.yaml", &secrets);

    // No Secret: refused, saying what to do; nothing runs.
    apply(&fos, "anon.yaml", &container("anon", "alpha", &image, ports[0], None));
    wait_until("anon refused", &fos, Duration::from_secs(60), || {
        entity_of(&fos, "alpha", "anon-0")["actual"]["error"].as_str().is_some_and(|e| e.contains("refused"))
    });
    let e = entity_of(&fos, "alpha", "anon-0");
    let error = e["actual"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("without credentials") && error.contains("imagePullSecret"), "{error}");
    assert!(e["actual"]["pid"].is_null(), "nothing runs: {e}");

    // A wrong password: refused, naming the Secret.
    apply(&fos, "stale.yaml", &container("stale", "alpha", &image, ports[1], Some("stale")));
    wait_until("stale refused", &fos, Duration::from_secs(60), || {
        entity_of(&fos, "alpha", "stale-0")["actual"]["error"].as_str().is_some_and(|e| e.contains("refused"))
    });
    let e = entity_of(&fos, "alpha", "stale-0");
    let error = e["actual"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("credentials of secret stale"), "{error}");
    assert!(e["actual"]["pid"].is_null(), "nothing runs: {e}");

    // The right Secret: pulled and serving.
    let file = fos.file("good.yaml", &container("good", "alpha", &image, ports[2], Some("registry")));
    let run = fos.fosctl(&["apply", "-f", &file, "--wait", "--timeout", "90s"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
    let page = http_get(&ns.path(), &format!("127.0.0.1:{}", ports[2])).unwrap_or_default();
    assert!(page.ends_with(PAGE), "{page:?}");

    // Tenant beta names the same image, held by the node now, without credentials: still refused by the registry.
    apply(&fos, "other.yaml", &container("other", "beta", &image, ports[3], None));
    wait_until("beta refused", &fos, Duration::from_secs(60), || {
        entity_of(&fos, "beta", "other-0")["actual"]["error"].as_str().is_some_and(|e| e.contains("refused"))
    });
    let e = entity_of(&fos, "beta", "other-0");
    assert!(e["actual"]["error"].as_str().unwrap_or_default().contains("without credentials"), "{e}");
    assert!(e["actual"]["pid"].is_null(), "nothing runs for beta: {e}");
    // Beta cannot name alpha's Secret either.
    apply(&fos, "other.yaml", &container("other", "beta", &image, ports[3], Some("registry")));
    wait_until("beta's Secret missing", &fos, Duration::from_secs(60), || {
        entity_of(&fos, "beta", "other-0")["actual"]["error"].as_str().is_some_and(|e| e.contains("no secret registry"))
    });

    // The password is nowhere to be read: API answers, logs, the node's files.
    for args in [
        vec!["--tenant", "alpha", "get", "entities", "-o", "json"],
        vec!["--tenant", "alpha", "get", "secrets", "-o", "json"],
        vec!["--tenant", "alpha", "describe", "good"],
        vec!["--tenant", "alpha", "logs", "good-0.good.alpha"],
    ] {
        let run = fos.fosctl(&args);
        for secret in [PASSWORD, WRONG, &auth] {
            assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "{args:?} shows it: {run:?}");
        }
    }
    for secret in [PASSWORD, WRONG, &auth] {
        assert!(!fos.log().contains(secret), "fosd's log holds a credential");
        assert_eq!(
            files_holding(&fos.dir.path().join("data"), secret.as_bytes()),
            Vec::<String>::new(),
            "files holding it"
        );
    }
}
