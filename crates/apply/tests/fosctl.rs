//! End-to-end tests of the real `fosctl` binary: exit codes (0 valid, 1 invalid, 2 usage) and output of
//! `manifest check` and `manifest convert`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fosctl(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fosctl"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    (status.code().unwrap(), String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

#[test]
fn version_and_help() {
    let (code, out, _) = fosctl(&["--version"], None);
    assert_eq!((code, out.trim()), (0, concat!("fosctl ", env!("CARGO_PKG_VERSION"))));
    let (code, out, _) = fosctl(&["manifest", "check", "--help"], None);
    assert_eq!(code, 0);
    assert!(out.contains("--network") && out.contains("--entity") && out.contains("--application"), "{out}");
    let (code, out, _) = fosctl(&["manifest", "convert", "--help"], None);
    assert!(code == 0 && out.contains("FILE"), "{out}");
}

#[test]
fn wordpress_example_checks_clean() {
    let (code, out, err) = fosctl(&["manifest", "check", "examples/wordpress"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ok: 2 objects in 1 file valid (1 Application, 1 Secret)\n");
}

#[test]
fn a_cycle_exits_1_with_the_cycle_at_the_offending_need() {
    let (code, out, err) = fosctl(&["manifest", "check", "manifests/invalid/need-cycle.yaml"], None);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(err.contains("manifests/invalid/need-cycle.yaml:15:11: dependency cycle: a -> b -> c -> a\n"), "{err}");
    assert!(err.contains("15 |         - a\n   |           ^\n"), "snippet: {err}");
    assert!(err.ends_with("1 error in 1 file\n"), "{err}");
}

#[test]
fn every_error_of_every_file_is_printed() {
    let (code, _, err) = fosctl(
        &["manifest", "check", "manifests/invalid/several-errors.yaml", "manifests/invalid/memory-units.yaml"],
        None,
    );
    assert_eq!(code, 1);
    let located = err.lines().filter(|l| l.starts_with("manifests/invalid/")).count();
    assert_eq!(located, 5, "{err}");
    assert!(err.contains("help: did you mean `command`?"), "{err}");
    assert!(err.contains("help: did you mean 512Mi?"), "{err}");
    assert!(err.ends_with("5 errors in 2 files\n"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(fosctl(&["manifest", "check"], None).0, 2);
    assert_eq!(fosctl(&["manifest", "check", "no/such/file.yaml"], None).0, 2);
    assert_eq!(fosctl(&["manifest", "check", "-n", "-e", "examples"], None).0, 2);
    assert_eq!(fosctl(&["manifest", "frobnicate"], None).0, 2);
    let (code, _, err) = fosctl(&["manifest", "check", "-", "-"], None);
    assert!(code == 2 && err.contains("only once"), "{err}");
}

#[test]
fn stdin_and_kind_filters() {
    let net = "apiVersion: fos/v1\nkind: Network\nmetadata: {name: n}\nspec: {type: vlan, vlanId: 9000}\n";
    let (code, _, err) = fosctl(&["manifest", "check", "-"], Some(net));
    assert_eq!(code, 1);
    assert!(err.contains("<stdin>:4:28: vlanId 9000 is out of range 1..4094"), "{err}");
    let (code, out, _) = fosctl(&["manifest", "check", "-n", "manifests/seeds/vxlan-network.json"], None);
    assert_eq!((code, out.as_str()), (0, "ok: 1 object in 1 file valid (1 Network)\n"));
    let (code, _, err) = fosctl(&["manifest", "check", "-n", "examples/wordpress/wordpress.yaml"], None);
    assert!(code == 1 && err.contains("expected Network manifests only, found Application `wordpress`"), "{err}");
    let (code, _, err) = fosctl(&["manifest", "check", "-e", "manifests/seeds/cirros-entity.json"], None);
    assert_eq!(code, 0, "the entity's bridge network comes with it: {err}");
}

#[test]
fn directories_are_searched_recursively_for_manifest_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    std::fs::write(
        dir.path().join("a/b/net.yml"),
        "apiVersion: fos/v1\nkind: Network\nmetadata: {name: n}\nspec: {type: bridge}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("a/notes.txt"), "not a manifest").unwrap();
    let (code, out, err) = fosctl(&["manifest", "check", dir.path().to_str().unwrap()], None);
    assert_eq!((code, out.as_str()), (0, "ok: 1 object in 1 file valid (1 Network)\n"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(fosctl(&["manifest", "check", empty.path().to_str().unwrap()], None).0, 2);
}

#[test]
fn convert_prints_fos_v1_yaml_that_checks_clean() {
    let (code, out, err) = fosctl(&["manifest", "convert", "manifests/seeds/cirros-entity.json"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("apiVersion: fos/v1\nkind: Network\nmetadata:\n  name: virbr0\n"), "{out}");
    assert!(out.contains("---\napiVersion: fos/v1\nkind: Entity\n") && out.contains("memory: 512Mi"), "{out}");
    let (code, _, err) = fosctl(&["manifest", "check", "-"], Some(&out));
    assert_eq!(code, 0, "converted output must check clean: {err}");
    let (code, out, _) = fosctl(&["manifest", "convert", "manifests/invalid/need-cycle.yaml"], None);
    assert_eq!((code, out.as_str()), (1, ""));
}
