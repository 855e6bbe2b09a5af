//! Time to match store keys against hostile URIs (hundreds of `**`): the figure behind "a store view request with
//! 200 `**` segments is answered in well under 10 ms".

use criterion::{criterion_group, criterion_main, Criterion};
use fos_api::StoreUri;

fn bench(c: &mut Criterion) {
    let uri = StoreUri::parse(&format!("afos://0/{}x", "**/".repeat(200))).expect("parses");
    let keys: Vec<String> =
        (0..1000).map(|i| format!("/fos/0/actual/nodes/n{i}/instances/c-{i}.app.default/extra/depth")).collect();
    c.bench_function("match 1000 keys against 200 `**`", |b| {
        b.iter(|| keys.iter().filter(|k| uri.matches(k)).count());
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
