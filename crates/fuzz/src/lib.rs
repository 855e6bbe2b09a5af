//! What the fuzz targets share: the seed corpus (every manifest under `manifests/` and `examples/`), mutations of
//! text (bytes flipped, cut, repeated, YAML and JSON tokens spliced in) and of JSON values (fields replaced, removed
//! or added with hostile values), and the number of cases to run (`FOS_FUZZ_CASES`, default
//! [`DEFAULT_CASES`]: the bounded run of `make test`; `make fuzz` runs many more).
//!
//! The targets are the tests of this crate, one file each: `manifest_loader`, `fog05`, `store_uri` and
//! `api_requests`.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;

/// Cases per target in `make test`.
pub const DEFAULT_CASES: u32 = 1000;

/// Cases per target: `FOS_FUZZ_CASES`, else [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var("FOS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES)
}

/// A proptest configuration running [`cases`] cases, without a persistence file in the source tree.
pub fn config() -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..proptest::test_runner::Config::default()
    }
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(p);
        }
    }
}

/// The seed corpus: `(file name, text)` of every manifest under `manifests/` and `examples/`.
pub fn seeds() -> Vec<(String, String)> {
    let mut paths = Vec::new();
    walk(&repo_root().join("manifests"), &mut paths);
    walk(&repo_root().join("examples"), &mut paths);
    let seeds: Vec<(String, String)> = paths
        .iter()
        .filter_map(|p| Some((p.file_name()?.to_string_lossy().into_owned(), std::fs::read_to_string(p).ok()?)))
        .collect();
    assert!(seeds.len() >= 20, "the seed corpus is missing: {} files", seeds.len());
    seeds
}

/// The JSON seeds: the fog05 manifests (`*.json`).
pub fn json_seeds() -> Vec<(String, Value)> {
    seeds()
        .into_iter()
        .filter(|(name, _)| name.ends_with(".json"))
        .filter_map(|(name, text)| Some((name, serde_json::from_str(&text).ok()?)))
        .collect()
}

/// The fos/v1 objects of the YAML seeds that read as YAML, as JSON values (what an API client sends).
pub fn object_seeds() -> Vec<Value> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (name, text) in seeds() {
        if name.ends_with(".json") {
            continue;
        }
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            // After a syntax error the reader repeats it forever: the file's other documents are not read.
            let Ok(v) = Value::deserialize(doc) else { break };
            if v.get("apiVersion").is_some() {
                out.push(v);
            }
        }
    }
    assert!(!out.is_empty(), "no fos/v1 object among the seeds");
    out
}

/// Tokens spliced into text: YAML and JSON syntax, anchors and aliases, tags, odd scalars and hostile values.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ": ",
    "- ",
    ",",
    "\n",
    "\n  ",
    "\t",
    "---\n",
    "...\n",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!str ",
    "? ",
    "|\n",
    ">-\n",
    "\"",
    "'",
    "#",
    "%YAML 1.2\n",
    "null",
    "~",
    "true",
    "0x1F",
    "1e999",
    "-0",
    ".nan",
    "99999999999999999999999",
    "\u{0}",
    "\u{feff}",
    "\u{202e}",
    "é",
    "🦀",
    "\\u0000",
    "\\ud800",
    "**",
    "../..",
    "secretRef: ",
    "runAs: root",
    "replicas: 4294967296",
    "apiVersion: fos/v1\n",
    "kind: Application\n",
];

/// One change to a text.
#[derive(Debug, Clone)]
pub enum TextEdit {
    /// Flip bits of the byte at (position modulo length).
    Flip(usize, u8),
    /// Remove `len` bytes at a position.
    Cut(usize, usize),
    /// Repeat `len` bytes at a position `times` times.
    Repeat(usize, usize, usize),
    /// Insert a token at a position.
    Token(usize, usize),
    /// Insert arbitrary bytes at a position.
    Bytes(usize, Vec<u8>),
    /// Keep only the first bytes (a truncated file).
    Truncate(usize),
}

/// Strategy for one text edit.
pub fn text_edit() -> impl Strategy<Value = TextEdit> {
    prop_oneof![
        3 => (any::<usize>(), 1u8..=255).prop_map(|(p, b)| TextEdit::Flip(p, b)),
        2 => (any::<usize>(), 1usize..64).prop_map(|(p, l)| TextEdit::Cut(p, l)),
        1 => (any::<usize>(), 1usize..32, 1usize..64).prop_map(|(p, l, t)| TextEdit::Repeat(p, l, t)),
        4 => (any::<usize>(), 0..TOKENS.len()).prop_map(|(p, t)| TextEdit::Token(p, t)),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(p, b)| TextEdit::Bytes(p, b)),
        1 => any::<usize>().prop_map(TextEdit::Truncate),
    ]
}

/// Applies `edits` to `text` (positions are taken modulo its length).
pub fn apply_edits(text: &str, edits: &[TextEdit]) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    for e in edits {
        let at = |p: usize, len: usize| if len == 0 { 0 } else { p % (len + 1) };
        match e {
            TextEdit::Flip(p, x) if !b.is_empty() => {
                let i = p % b.len();
                b[i] ^= x;
            }
            TextEdit::Flip(..) => {}
            TextEdit::Cut(p, l) => {
                let i = at(*p, b.len());
                let end = (i + l).min(b.len());
                b.drain(i..end);
            }
            TextEdit::Repeat(p, l, t) => {
                let i = at(*p, b.len());
                let end = (i + l).min(b.len());
                let piece = b[i..end].to_vec();
                for _ in 0..*t {
                    b.splice(end..end, piece.iter().copied());
                }
            }
            TextEdit::Token(p, t) => {
                let i = at(*p, b.len());
                b.splice(i..i, TOKENS[*t].bytes());
            }
            TextEdit::Bytes(p, bytes) => {
                let i = at(*p, b.len());
                b.splice(i..i, bytes.iter().copied());
            }
            TextEdit::Truncate(p) => {
                let i = at(*p, b.len());
                b.truncate(i);
            }
        }
    }
    b
}

/// Field names of fos/v1 and fog05 manifests, used as keys to add.
const FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "tenant",
    "labels",
    "spec",
    "components",
    "entity",
    "need",
    "replicas",
    "env",
    "secretRef",
    "runAs",
    "command",
    "setup",
    "resources",
    "cpu",
    "memory",
    "ports",
    "networks",
    "image",
    "readiness",
    "constraints",
    "nodeSelector",
    "data",
    "uuid",
    "entity_data",
    "type",
    "vxlan_id",
    "ip_range",
    "gateway",
    "br_name",
    "manifest",
    "objects",
    "dryRun",
    "pruneSource",
    "uri",
    "role",
    "ttlSeconds",
];

/// A hostile JSON value: odd scalars, deep or wide nesting, long strings.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(u64::MAX)),
        "\\PC{0,24}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "root",
            "*",
            "**",
            "../../etc/shadow",
            "a".repeat(300).leak() as &str,
            "0",
            "-1",
            "1e9",
            "64Gi",
            "fos/v1",
            "Application",
            "Entity",
            "Secret",
            "db/password",
            "x/y/z",
            "native",
            "vm",
            "container",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()).prop_map(String::from), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One change to a JSON value, at a path chosen by `at`.
#[derive(Debug, Clone)]
pub enum JsonEdit {
    /// Replace the value there.
    Replace(u64, Value),
    /// Remove it (a key of its mapping, an element of its array).
    Remove(u64),
    /// Add a field to the mapping there.
    Add(u64, usize, Value),
    /// Repeat the array there's first element `n` times.
    Grow(u64, usize),
}

/// Strategy for one JSON edit.
pub fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        4 => (any::<u64>(), json_value()).prop_map(|(a, v)| JsonEdit::Replace(a, v)),
        2 => any::<u64>().prop_map(JsonEdit::Remove),
        3 => (any::<u64>(), 0..FIELDS.len(), json_value()).prop_map(|(a, f, v)| JsonEdit::Add(a, f, v)),
        1 => (any::<u64>(), 1usize..200).prop_map(|(a, n)| JsonEdit::Grow(a, n)),
    ]
}

/// The value `choice` leads to: at each level, stop or step into one child, as the choice's next digits say.
fn pick(v: &mut Value, mut choice: u64) -> &mut Value {
    let stop = choice.is_multiple_of(4);
    choice /= 4;
    let n = match v {
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        _ => 0,
    };
    if stop || n == 0 {
        return v;
    }
    let i = (choice % n as u64) as usize;
    choice /= n as u64;
    match v {
        Value::Array(a) => pick(&mut a[i], choice),
        Value::Object(m) => {
            let (_, child) = m.iter_mut().nth(i).expect("an index below the length");
            pick(child, choice)
        }
        _ => unreachable!("leaves stop above"),
    }
}

/// Applies `edits` to `value`.
pub fn apply_json_edits(value: &mut Value, edits: &[JsonEdit]) {
    for e in edits {
        match e {
            JsonEdit::Replace(at, v) => *pick(value, *at) = v.clone(),
            JsonEdit::Remove(at) => match pick(value, *at) {
                Value::Object(m) if !m.is_empty() => {
                    let k = m.keys().nth((*at as usize) % m.len()).cloned().expect("a key");
                    m.remove(&k);
                }
                Value::Array(a) if !a.is_empty() => {
                    let i = (*at as usize) % a.len();
                    a.remove(i);
                }
                other => *other = Value::Null,
            },
            JsonEdit::Add(at, f, v) => {
                if let Value::Object(m) = pick(value, *at) {
                    m.insert(FIELDS[*f].to_string(), v.clone());
                }
            }
            JsonEdit::Grow(at, n) => {
                if let Value::Array(a) = pick(value, *at) {
                    if let Some(first) = a.first().cloned() {
                        a.extend(std::iter::repeat_n(first, *n));
                    }
                }
            }
        }
    }
}
