//! Loading and validating manifests: the WordPress example, and a generated application of 500 components whose
//! `need` edges form a long chain with fan-in (the cycle check and reference checks dominate).

use std::fmt::Write;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fos_apply::source::{check, load_str};

fn generated(components: usize) -> String {
    let mut text = String::from("apiVersion: fos/v1\nkind: Application\nmetadata: {name: big}\nspec:\n  components:\n");
    for i in 0..components {
        let (need, near) = match i {
            0 => (String::new(), "[]"),
            1 => ("c0".to_string(), "c0"),
            _ => (format!("c{}, c{}", i - 1, (i - 1) / 2), "c0"),
        };
        let _ = writeln!(
            text,
            "    - {{name: c{i}, need: [{need}], proximity: {near}, entity: {{kind: native, command: [sleep, '1'], resources: {{cpu: 100m, memory: 64Mi}}}}}}"
        );
    }
    text
}

fn bench(c: &mut Criterion) {
    let wordpress = include_str!("../../../examples/wordpress/wordpress.yaml");
    c.bench_function("load+check wordpress.yaml", |b| {
        b.iter(|| {
            let loaded = load_str("wordpress.yaml", black_box(wordpress)).unwrap();
            assert!(check(&loaded).is_empty());
        })
    });
    let big = generated(500);
    c.bench_function("load+check 500 components", |b| {
        b.iter(|| {
            let loaded = load_str("big.yaml", black_box(&big)).unwrap();
            assert!(check(&loaded).is_empty());
        })
    });
    let loaded = load_str("big.yaml", &big).unwrap();
    let objects: Vec<_> = loaded.iter().map(|l| l.object.clone()).collect();
    c.bench_function("validate 500 components", |b| {
        b.iter(|| assert!(fos_api::validate(black_box(&objects)).is_empty()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
