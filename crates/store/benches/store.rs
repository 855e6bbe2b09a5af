//! Store benchmark: puts/s (sequential and 32 concurrent writers) and put-to-watch-event latency (p50/p99) for the
//! embedded backend and the etcd backend, and beside them a bare `etcd-client` loop against the same etcd in the
//! same run. Prints a table. Run with `cargo bench -p fos-store` (`FOS_BENCH_SCALE=0.2` for a quick run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use fos_store::testing::EtcdServer;
use fos_store::{Durability, EmbeddedConfig, EmbeddedStore, EtcdConfig, EtcdStore, Store};
use futures::StreamExt;

const WRITERS: usize = 32;
/// Rounds of the etcd measurements (ours and the bare client alternate).
const ROUNDS: usize = 3;

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("FOS_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(WRITERS)
}

/// What one subject can do: put a key, and watch a prefix for put events (their keys).
#[async_trait::async_trait]
trait Subject: Send + Sync + 'static {
    async fn put(&self, key: String, value: Vec<u8>);
    async fn watch_keys(&self, prefix: &str) -> futures::stream::BoxStream<'static, String>;
}

struct OurStore(Arc<dyn Store>);

#[async_trait::async_trait]
impl Subject for OurStore {
    async fn put(&self, key: String, value: Vec<u8>) {
        self.0.put(&key, value, None).await.expect("put");
    }
    async fn watch_keys(&self, prefix: &str) -> futures::stream::BoxStream<'static, String> {
        self.0.watch(prefix, 0).await.expect("watch").map(|e| e.expect("event").kv.key).boxed()
    }
}

struct BareClient(etcd_client::Client);

#[async_trait::async_trait]
impl Subject for BareClient {
    async fn put(&self, key: String, value: Vec<u8>) {
        self.0.kv_client().put(key, value, None).await.expect("bare put");
    }
    async fn watch_keys(&self, prefix: &str) -> futures::stream::BoxStream<'static, String> {
        let options = etcd_client::WatchOptions::new().with_prefix();
        let stream = self.0.watch_client().watch(prefix, Some(options)).await.expect("bare watch");
        let (_requests, mut responses) = stream.split();
        // The first response confirms the creation.
        responses.message().await.expect("bare watch created");
        futures::stream::unfold((responses, _requests), |(mut r, q)| async move {
            let msg = r.message().await.ok()??;
            let keys: Vec<String> =
                msg.events().iter().filter_map(|e| e.kv()).map(|kv| String::from_utf8_lossy(kv.key()).into()).collect();
            Some((futures::stream::iter(keys), (r, q)))
        })
        .flatten()
        .boxed()
    }
}

struct Row {
    name: String,
    sequential: f64,
    concurrent: f64,
    p50: Duration,
    p99: Duration,
}

async fn sequential(subject: &Arc<dyn Subject>, tag: &str, n: usize) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        subject.put(format!("/bench/{tag}/seq/{i:08}"), vec![b'x'; 128]).await;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn concurrent(subject: &Arc<dyn Subject>, tag: &str, n: usize) -> f64 {
    let per = n / WRITERS;
    let start = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let subject = subject.clone();
            let tag = tag.to_string();
            tokio::spawn(async move {
                for i in 0..per {
                    subject.put(format!("/bench/{tag}/con/{w:02}/{i:08}"), vec![b'x'; 128]).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    (per * WRITERS) as f64 / start.elapsed().as_secs_f64()
}

/// Put-to-event latency: each put is timed from its start to the watcher receiving its event.
async fn watch_latency(subject: &Arc<dyn Subject>, tag: &str, n: usize) -> (Duration, Duration) {
    let prefix = format!("/bench/{tag}/watch/");
    let mut events = subject.watch_keys(&prefix).await;
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("{prefix}{i:08}");
        let start = Instant::now();
        subject.put(key.clone(), vec![b'x'; 128]).await;
        loop {
            let got = events.next().await.expect("watch event");
            if got == key {
                break;
            }
        }
        latencies.push(start.elapsed());
    }
    latencies.sort();
    (latencies[n / 2], latencies[(n * 99) / 100])
}

async fn measure(name: &str, subject: Arc<dyn Subject>, tag: &str, n_seq: usize, n_con: usize) -> Row {
    sequential(&subject, &format!("{tag}-warm"), n_seq / 10).await;
    let sequential = sequential(&subject, tag, n_seq).await;
    let concurrent = concurrent(&subject, tag, n_con).await;
    let (p50, p99) = watch_latency(&subject, tag, scaled(1000)).await;
    let row = Row { name: name.to_string(), sequential, concurrent, p50, p99 };
    print_row(&row);
    row
}

fn print_row(r: &Row) {
    println!(
        "| {:<44} | {:>12.0} | {:>16.0} | {:>9.2} | {:>9.2} |",
        r.name,
        r.sequential,
        r.concurrent,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3
    );
}

async fn embedded(durability: Durability, name: &str, tag: &str) -> Row {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = EmbeddedConfig::new(dir.path());
    config.durability = durability;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(config).expect("open embedded"));
    let n = if durability == Durability::PowerLoss { scaled(2000) } else { scaled(20000) };
    measure(name, Arc::new(OurStore(store)), tag, n, n).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "| {:<44} | {:>12} | {:>16} | {:>9} | {:>9} |",
        "subject", "seq puts/s", "32 writers puts/s", "watch p50", "watch p99"
    );
    println!("| {:-<44} | {:->12} | {:->16} | {:->9} | {:->9} |", "", "", "", "", "");
    println!("| (watch latency in ms, put start to event)");
    embedded(Durability::Process, "embedded (SQLite WAL, synchronous=NORMAL)", "emb").await;
    embedded(Durability::PowerLoss, "embedded (SQLite WAL, synchronous=FULL)", "embf").await;

    let server = EtcdServer::start().await.expect("start etcd");
    let endpoint = server.endpoint(0).to_string();
    let n_seq = scaled(2000);
    let n_con = scaled(10000);
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    // Alternate which goes first, so that neither always meets the larger database or the busier moment.
    for round in 0..ROUNDS {
        for ours_first in [round % 2 == 1, round % 2 == 0] {
            if ours_first {
                let store: Arc<dyn Store> =
                    Arc::new(EtcdStore::connect(EtcdConfig::new([endpoint.clone()])).await.expect("etcd store"));
                let subject = Arc::new(OurStore(store));
                ours.push(measure("etcd 3.4, fos EtcdStore", subject, &format!("ours{round}"), n_seq, n_con).await);
            } else {
                let client = etcd_client::Client::connect([endpoint.as_str()], None).await.expect("bare client");
                let subject = Arc::new(BareClient(client));
                bare.push(measure("etcd 3.4, bare etcd-client", subject, &format!("bare{round}"), n_seq, n_con).await);
            }
        }
    }
    let best = |rows: &[Row], f: fn(&Row) -> f64| rows.iter().map(f).fold(0.0, f64::max);
    println!();
    println!(
        "fos EtcdStore / bare etcd-client (best of {} rounds each): sequential {:.2}, 32 writers {:.2}",
        ROUNDS,
        best(&ours, |r| r.sequential) / best(&bare, |r| r.sequential),
        best(&ours, |r| r.concurrent) / best(&bare, |r| r.concurrent)
    );
}
