//! Fuzz target: the manifest loader (`fos_apply::source`: YAML and JSON with positions, fog05 detection, structural
//! errors, then the validation the API runs) on the seed corpus mutated byte by byte and token by token. Every input
//! loads or is refused with diagnostics naming the file and a position inside the text; none panics or takes long.

use std::time::{Duration, Instant};

use fos_fuzz::{apply_edits, config, seeds, text_edit};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

/// Loads `text` as `name`; checks what comes back.
fn load(name: &str, text: &str) -> Result<(), TestCaseError> {
    let started = Instant::now();
    match fos_apply::source::load_str(name, text) {
        Ok(objects) => {
            for d in fos_apply::source::check(&objects) {
                prop_assert!(!d.message.is_empty());
                prop_assert!(d.position.offset <= text.len(), "{d:?} outside the text");
            }
        }
        Err(diagnostics) => {
            prop_assert!(!diagnostics.is_empty(), "refused without a reason");
            for d in &diagnostics {
                prop_assert!(!d.message.is_empty());
                prop_assert_eq!(&d.file, name);
                prop_assert!(d.position.offset <= text.len(), "{:?} outside the text", d);
                prop_assert!(d.position.line >= 1 && d.position.line <= text.lines().count().max(1) + 1, "{:?}", d);
            }
        }
    }
    let took = started.elapsed();
    prop_assert!(took < Duration::from_secs(5), "{name} took {took:?} to load");
    Ok(())
}

#[test]
fn fuzz_manifest_loader() {
    let seeds = seeds();
    let mut runner = TestRunner::new(config());
    let strategy = (0..seeds.len(), prop::collection::vec(text_edit(), 1..8));
    runner
        .run(&strategy, |(i, edits)| {
            let (name, text) = &seeds[i];
            let bytes = apply_edits(text, &edits);
            load(name, &String::from_utf8_lossy(&bytes))
        })
        .unwrap();
    eprintln!("manifest loader: {} mutated manifests loaded or refused with positions", runner.config().cases);
}

#[test]
fn every_seed_loads_or_is_refused_with_positions() {
    for (name, text) in seeds() {
        load(&name, &text).unwrap();
    }
}

#[test]
fn alias_bombs_and_deep_nesting_are_refused_or_bounded() {
    // A billion laughs: nine levels of nine aliases each.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"]) {
        bomb.push_str(&format!(
            "{next}: &{next} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    load("bomb.yaml", &bomb).unwrap();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    load("deep.yaml", &deep).unwrap();
    load("deep.json", &format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000))).unwrap();
}
