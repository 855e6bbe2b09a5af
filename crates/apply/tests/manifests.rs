//! File-driven tests over `manifests/`: every file under `valid/` and `seeds/` (and the examples) checks clean;
//! every file under `invalid/` yields exactly the errors it states, as `# expect: LINE:COL: message` comment lines
//! (in a `FILE.expect` beside JSON files, which have no comments).

use std::path::{Path, PathBuf};

use fos_apply::load::{expand_paths, load_paths};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &str) -> Vec<String> {
    let files = expand_paths(&[root().join(dir).display().to_string()]).unwrap();
    assert!(!files.is_empty(), "no manifests under {dir}");
    files
}

fn diagnostics(file: &str) -> Vec<String> {
    let loaded = load_paths(&[file.to_string()]).unwrap();
    let mut d = loaded.all_diagnostics();
    d.sort_by_key(|d| d.position.offset);
    d.iter().map(|d| format!("{}:{}: {}", d.position.line, d.position.column, d.message)).collect()
}

#[test]
fn the_seed_examples_check_clean_as_one_apply() {
    // The sensor application names a Network of another seed file, as one `fosctl manifest check manifests/seeds`.
    let dir = root().join("manifests/seeds").display().to_string();
    let loaded = load_paths(&[dir]).unwrap();
    let d: Vec<String> = loaded.all_diagnostics().iter().map(ToString::to_string).collect();
    assert_eq!(d, Vec::<String>::new());
    assert_eq!(
        loaded.objects.len(),
        13,
        "cirros (+ bridge), alpine container, vxlan, plugin, three applications, sensor entity; fog05 0.2: three \
         FDUs, a virtual network (the flavor names no object)"
    );
    assert!(loaded.objects.iter().all(|o| o.converted));
}

#[test]
fn valid_manifests_and_examples_check_clean_file_by_file() {
    for dir in ["manifests/valid", "examples"] {
        for file in files(dir) {
            let loaded = load_paths(std::slice::from_ref(&file)).unwrap();
            assert!(!loaded.objects.is_empty(), "{file}: no objects");
            assert_eq!(diagnostics(&file), Vec::<String>::new(), "{file}");
        }
    }
}

#[test]
fn invalid_manifests_yield_exactly_their_expected_errors() {
    let mut checked = 0;
    for file in files("manifests/invalid") {
        let text = std::fs::read_to_string(&file).unwrap();
        let sidecar = std::fs::read_to_string(format!("{file}.expect")).unwrap_or_default();
        let expected: Vec<&str> =
            text.lines().chain(sidecar.lines()).filter_map(|l| l.strip_prefix("# expect: ")).collect();
        assert!(!expected.is_empty(), "{file} states no expected error");
        let got = diagnostics(&file);
        assert_eq!(got.len(), expected.len(), "{file}: got {got:#?}, expected {expected:#?}");
        for (g, e) in got.iter().zip(&expected) {
            assert!(g.starts_with(e), "{file}: got `{g}`, expected `{e}`");
        }
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} invalid samples");
}
