//! The node image cache over a real embedded store, with a downloader serving files from a directory (as another
//! node's API would): an uploaded image fetched from the node holding it and recorded as this node's copy, a fetch
//! cut short resumed from its partial file, a copy of the wrong content refused and discarded, and a fog05
//! `base_image` URI resolved to the Image of that uri.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fos_agent::image_store::{Download, ImageDownloader, NodeImageStore};
use fos_agent::images::{ImageError, ImageSource};
use fos_api::image::{ImageCopy, UPLOADED_URI_PREFIX};
use fos_api::manifest::{ImageFormat, ImageSpec, Metadata, Object, Typed};
use fos_api::node::NodeStatus;
use fos_api::Keys;
use fos_store::records::{ImageCopies, Images, NodeStatuses};
use fos_store::{EmbeddedConfig, EmbeddedStore, Records, Store};
use sha2::{Digest, Sha256};

/// Serves `served` for every download; the first call stops after `cut` bytes when set (a connection lost).
struct Files {
    served: Vec<u8>,
    cut: Mutex<Option<usize>>,
    calls: Mutex<Vec<(Download, u64)>>,
}

#[async_trait]
impl ImageDownloader for Files {
    async fn download(&self, from: &Download, offset: u64, out: &Path) -> Result<(), String> {
        self.calls.lock().unwrap().push((from.clone(), offset));
        let mut end = self.served.len();
        let cut = self.cut.lock().unwrap().take();
        if let Some(c) = cut {
            end = c;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(out).map_err(|e| e.to_string())?;
        std::io::Write::write_all(&mut file, &self.served[offset as usize..end]).map_err(|e| e.to_string())?;
        match cut {
            Some(_) => Err("connection reset".into()),
            None => Ok(()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

async fn put_image(records: &Records, name: &str, uri: &str, content: &[u8]) {
    let spec = ImageSpec { uri: uri.into(), checksum: hex(content), format: ImageFormat::Raw };
    let object = Object::Image(Typed { metadata: Metadata { name: name.into(), ..Default::default() }, spec });
    records.put::<Images>(&name.to_string(), &object, None).await.unwrap();
}

struct Env {
    records: Records,
    data: tempfile::TempDir,
    _store: tempfile::TempDir,
}

fn env() -> Env {
    let store_dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(store_dir.path())).unwrap());
    Env { records: Records::new(store, Keys::new("0")), data: tempfile::tempdir().unwrap(), _store: store_dir }
}

fn cache(env: &Env, files: Arc<Files>) -> NodeImageStore {
    NodeImageStore::new(env.data.path().join("images"), env.records.clone(), "n2", Some(files))
}

fn content() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn an_uploaded_image_is_fetched_from_the_node_holding_it_resumed_and_recorded() {
    let env = env();
    let bytes = content();
    let digest = hex(&bytes);
    put_image(&env.records, "disk", &format!("{UPLOADED_URI_PREFIX}{digest}"), &bytes).await;
    let copy = ImageCopy { size: bytes.len() as u64, since: chrono::Utc::now() };
    env.records.put::<ImageCopies>(&(digest.clone(), "n1".into()), &copy, None).await.unwrap();
    let status = NodeStatus { address: Some("10.0.0.1:7887".into()), ..Default::default() };
    env.records.put::<NodeStatuses>(&"n1".to_string(), &status, None).await.unwrap();

    let files = Arc::new(Files { served: bytes.clone(), cut: Mutex::new(Some(100_000)), calls: Mutex::default() });
    let store = cache(&env, files.clone());
    let first = store.ensure("disk").await.unwrap_err();
    assert!(matches!(first, ImageError::Fetch { .. }), "cut short: {first}");
    let local = store.ensure("disk").await.unwrap();
    assert_eq!(local.path, env.data.path().join("images/sha256").join(&digest));
    assert_eq!(std::fs::read(&local.path).unwrap(), bytes, "the whole content, checked");
    let node = Download::Node { node: "n1".into(), address: "10.0.0.1:7887".into(), name: "disk".into() };
    assert_eq!(*files.calls.lock().unwrap(), vec![(node.clone(), 0), (node, 100_000)], "resumed where it stopped");
    let mine = env.records.get::<ImageCopies>(&(digest.clone(), "n2".into())).await.unwrap();
    assert_eq!(mine.map(|c| c.value.size), Some(bytes.len() as u64), "this node holds a copy now");
    // Once local, nothing is fetched again.
    store.ensure("disk").await.unwrap();
    assert_eq!(files.calls.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn content_of_another_sha256_is_refused_and_discarded() {
    let env = env();
    let bytes = content();
    put_image(&env.records, "cirros", "http://images.example/cirros.img", &bytes).await;
    let mut wrong = bytes.clone();
    wrong[4242] ^= 1;
    let files = Arc::new(Files { served: wrong.clone(), cut: Mutex::new(None), calls: Mutex::default() });
    let store = cache(&env, files.clone());
    let err = store.ensure("cirros").await.unwrap_err();
    match &err {
        ImageError::Mismatch { expected, actual, .. } => {
            assert_eq!((expected.clone(), actual.clone()), (hex(&bytes), hex(&wrong)));
        }
        other => panic!("expected a mismatch, got {other}"),
    }
    assert!(!err.is_transient(), "not retried as if it could pass");
    let leftovers: Vec<PathBuf> = walk(&env.data.path().join("images"));
    assert!(leftovers.is_empty(), "nothing kept: {leftovers:?}");
    assert_eq!(*files.calls.lock().unwrap(), vec![(Download::Uri("http://images.example/cirros.img".into()), 0)]);
    let copies = env.records.list::<ImageCopies>().await.unwrap().0;
    assert!(copies.is_empty(), "no copy recorded");
}

#[tokio::test]
async fn a_fog05_base_image_uri_names_the_image_of_that_uri() {
    let env = env();
    let bytes = content();
    let uri = "http://192.168.1.142/virt-cirros-0.3.4-x86_64-disk.img";
    put_image(&env.records, "cirros", uri, &bytes).await;
    let files = Arc::new(Files { served: bytes.clone(), cut: Mutex::new(None), calls: Mutex::default() });
    let store = cache(&env, files);
    let local = store.ensure(uri).await.unwrap();
    assert_eq!(std::fs::read(local.path).unwrap(), bytes);
    let err = store.ensure("http://elsewhere/other.img").await.unwrap_err();
    assert!(err.to_string().contains("no Image object has this uri"), "{err}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
