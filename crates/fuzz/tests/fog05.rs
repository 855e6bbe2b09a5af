//! Fuzz target: the fog05 JSON converter (`fos_apply::fog05`) on the fog05 seeds (`manifests/seeds`, the invalid
//! ones too) with fields replaced, removed, added and repeated: every input converts into objects the fos/v1
//! reader accepts or rejects with a message, or is refused with errors naming a path; through the text loader as
//! well. None panics or takes long.

use std::time::{Duration, Instant};

use fos_fuzz::{apply_json_edits, config, json_edit, json_seeds};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

#[test]
fn fuzz_fog05_converter() {
    let seeds = json_seeds();
    assert!(seeds.len() >= 6, "fog05 seeds: {}", seeds.len());
    let mut runner = TestRunner::new(config());
    let strategy = (0..seeds.len(), prop::collection::vec(json_edit(), 1..6));
    runner
        .run(&strategy, |(i, edits)| {
            let (name, seed) = &seeds[i];
            let mut value = seed.clone();
            apply_json_edits(&mut value, &edits);
            let started = Instant::now();
            // A component manifest named by file resolves to another seed, or to nothing.
            let resolve = |file: &str| -> Result<serde_json::Value, String> {
                seeds.iter().find(|(n, _)| n == file).map(|(_, v)| v.clone()).ok_or_else(|| format!("no {file}"))
            };
            if fos_apply::fog05::is_fog05(&value) {
                match fos_apply::fog05::convert(&value, &resolve) {
                    Ok(objects) => {
                        for o in objects {
                            prop_assert!(o.value.get("apiVersion").is_some() && o.value.get("kind").is_some());
                            if let Err(e) = fos_api::Object::from_value(o.value) {
                                prop_assert!(!e.message.is_empty());
                            }
                        }
                    }
                    Err(errors) => {
                        prop_assert!(!errors.is_empty());
                        prop_assert!(errors.iter().all(|e| !e.message.is_empty()), "{:?}", errors);
                    }
                }
            }
            // And as text, through the loader with positions.
            let text = serde_json::to_string_pretty(&value).expect("JSON");
            if let Err(d) = fos_apply::source::load_str_with(name, &text, &resolve) {
                prop_assert!(!d.is_empty() && d.iter().all(|d| d.position.offset <= text.len()), "{:?}", d);
            }
            let took = started.elapsed();
            prop_assert!(took < Duration::from_secs(5), "{name} took {took:?}");
            Ok(())
        })
        .unwrap();
    eprintln!("fog05 converter: {} mutated fog05 manifests converted or refused", runner.config().cases);
}
