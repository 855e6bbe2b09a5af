//! Fuzz target: the store URI parser (`fos_api::StoreUri`) on arbitrary text and on URIs built from hostile
//! segments (hundreds of `**`, `*`, dots, percent signs, empty segments): each parses or is refused with a message,
//! and a parsed URI matches keys in time linear in its length.

use std::time::{Duration, Instant};

use fos_api::StoreUri;
use fos_fuzz::config;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

fn uri() -> impl Strategy<Value = String> {
    // Well-formed URIs of hostile shape (hundreds of `**` and `*` between names), and ill-formed ones.
    let good = prop_oneof![3 => Just("**".to_string()), 2 => Just("*".to_string()), 4 => "[a-z0-9]{1,6}"];
    let bad = prop_oneof![
        3 => Just("**".to_string()),
        4 => "[a-z0-9]{1,6}",
        1 => Just(String::new()),
        1 => "[.%*a\\-_~ ]{1,4}",
        1 => "\\PC{1,6}",
    ];
    let scheme = prop::sample::select(vec!["afos://", "dfos://", "fos://", "afos:/", ""]);
    let system = prop::sample::select(vec!["0", "", "1", "sys", "*", "**"]);
    prop_oneof![
        6 => (prop::sample::select(vec!["afos://0/", "dfos://0/"]), prop::collection::vec(good, 0..256))
            .prop_map(|(s, segs)| format!("{s}{}", segs.join("/"))),
        3 => (scheme, system, prop::collection::vec(bad, 0..300))
            .prop_map(|(s, sys, segs)| format!("{s}{sys}/{}", segs.join("/"))),
        1 => "\\PC{0,300}",
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

#[test]
fn fuzz_store_uri_parser() {
    let keys: Vec<String> = (0..40)
        .map(|i| format!("/fos/0/actual/nodes/n{i}/instances/c-{i}.app.default{}", "/x".repeat(i % 7)))
        .collect();
    let mut runner = TestRunner::new(config());
    let parsed = std::cell::Cell::new(0u32);
    runner
        .run(&uri(), |text| {
            let started = Instant::now();
            match StoreUri::parse(&text) {
                Ok(uri) => {
                    parsed.set(parsed.get() + 1);
                    for k in &keys {
                        let _ = uri.matches(k);
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            let took = started.elapsed();
            prop_assert!(took < Duration::from_secs(1), "{text:?} took {took:?}");
            Ok(())
        })
        .unwrap();
    eprintln!("store URI parser: {} URIs ({} parsed, the rest refused)", runner.config().cases, parsed.get());
}
