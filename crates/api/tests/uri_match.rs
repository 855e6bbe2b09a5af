//! The store URI matcher against a naive backtracking one (the definition of `*` and `**`), on random patterns and
//! keys; and the hostile pattern that made the backtracking matcher hang (hundreds of `**` before a literal that
//! never comes).

use fos_api::keys::{match_segments, Segment};
use fos_api::StoreUri;
use proptest::prelude::*;

/// The definition: `**` matches any number of segments, `*` exactly one, a literal itself.
fn naive(pat: &[Segment], key: &[&str]) -> bool {
    match pat.split_first() {
        None => key.is_empty(),
        Some((Segment::Many, rest)) => (0..=key.len()).any(|skip| naive(rest, &key[skip..])),
        Some((seg, rest)) => match key.split_first() {
            None => false,
            Some((k, krest)) => {
                let ok = match seg {
                    Segment::Literal(l) => l == k,
                    _ => true,
                };
                ok && naive(rest, krest)
            }
        },
    }
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        3 => prop::sample::select(vec!["a", "b", "c"]).prop_map(|s| Segment::Literal(s.to_string())),
        1 => Just(Segment::One),
        2 => Just(Segment::Many),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn agrees_with_the_definition(
        pat in prop::collection::vec(segment(), 0..8),
        key in prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..10),
    ) {
        prop_assert_eq!(match_segments(&pat, &key), naive(&pat, &key), "pattern {:?} key {:?}", pat, key);
    }
}

#[test]
fn hundreds_of_double_stars_are_linear() {
    // 200 `**` then a literal no key has: the backtracking matcher tries every way to split the key among the
    // `**`s (exponential); the state walk does 200 × 40 steps.
    let uri = format!("afos://0/{}x", "**/".repeat(200));
    let parsed = StoreUri::parse(&uri).expect("parses");
    let key = format!("/fos/0/actual/{}", vec!["n"; 40].join("/"));
    for _ in 0..1000 {
        assert!(!parsed.matches(&key));
    }
    let hit = format!("/fos/0/actual/{}/x", vec!["n"; 40].join("/"));
    assert!(parsed.matches(&hit));
}

#[test]
fn uris_over_the_limits_are_refused_with_the_limit() {
    let long = format!("afos://0/{}", "a/".repeat(300));
    let e = StoreUri::parse(&long).unwrap_err().to_string();
    assert!(e.contains("over the limit of 256"), "{e}");
    let huge = format!("afos://0/{}", "a".repeat(5000));
    let e = StoreUri::parse(&huge).unwrap_err().to_string();
    assert!(e.contains("over the limit of 4096 bytes"), "{e}");
}
