//! Garbage collection of the node's image content over a real embedded store: content of deleted Images goes (with
//! this node's copy record), unless a VM of the node still uses it or it just arrived; with a cap, the least
//! recently used content the node can fetch again goes until the cache fits, never the only copy of an upload.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use fos_agent::image_gc::ImageGc;
use fos_api::image::{ImageCopy, UPLOADED_URI_PREFIX};
use fos_api::manifest::{ImageFormat, ImageSpec, Metadata, Object, Typed};
use fos_api::Keys;
use fos_store::records::{ImageCopies, Images};
use fos_store::{EmbeddedConfig, EmbeddedStore, Records, Store};
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes content `bytes` into the cache, last used `age` ago, recorded as held by `nodes`; its sha256.
async fn content(records: &Records, data: &Path, bytes: &[u8], age: Duration, nodes: &[&str]) -> String {
    let h = hex(bytes);
    let path = data.join("images/sha256").join(&h);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let file = std::fs::File::options().append(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
    for node in nodes {
        let copy = ImageCopy { size: bytes.len() as u64, since: Utc::now() };
        records.put::<ImageCopies>(&(h.clone(), node.to_string()), &copy, None).await.unwrap();
    }
    h
}

async fn image(records: &Records, name: &str, uri: &str, h: &str) {
    let spec = ImageSpec { uri: uri.into(), checksum: h.into(), format: ImageFormat::Raw };
    let object = Object::Image(Typed { metadata: Metadata { name: name.into(), ..Default::default() }, spec });
    records.put::<Images>(&name.to_string(), &object, None).await.unwrap();
}

#[tokio::test]
async fn deleted_images_content_goes_unless_used_and_the_cap_takes_only_what_can_be_fetched_again() {
    let store_dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(store_dir.path())).unwrap());
    let records = Records::new(store, Keys::new("0"));
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let hour = Duration::from_secs(3600);
    let kib = |n: usize, fill: u8| vec![fill; n << 10];

    // Live: an upload only this node holds, an upload another node holds too, an image with an http URI.
    let only = content(&records, d, &kib(40, 1), 3 * hour, &["n1"]).await;
    image(&records, "only", &format!("{UPLOADED_URI_PREFIX}{only}"), &only).await;
    let shared = content(&records, d, &kib(30, 2), 2 * hour, &["n1", "n2"]).await;
    image(&records, "shared", &format!("{UPLOADED_URI_PREFIX}{shared}"), &shared).await;
    let web = content(&records, d, &kib(20, 3), hour, &["n1"]).await;
    image(&records, "web", "http://images.example/web.raw", &web).await;
    // Deleted: unused; used by a VM of this node (its kernel in the domain XML; its disk as an overlay's backing
    // file); just arrived.
    let gone = content(&records, d, &kib(10, 4), hour, &["n1", "n2"]).await;
    let kernel = content(&records, d, &kib(10, 5), hour, &["n1"]).await;
    let backing = content(&records, d, &kib(10, 6), hour, &["n1"]).await;
    let fresh = content(&records, d, &kib(10, 7), Duration::ZERO, &["n1"]).await;
    let vm = d.join("vm/guest-0.app.default");
    std::fs::create_dir_all(&vm).unwrap();
    let sha = d.join("images/sha256");
    let xml = format!("<domain><os><kernel>{}</kernel></os></domain>", sha.join(&kernel).display());
    std::fs::write(vm.join("domain.xml"), xml).unwrap();
    let overlay = vm.join("disk.qcow2");
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(sha.join(&backing))
        .arg(&overlay)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let done = ImageGc::new(d, records.clone(), "n1", None).collect().await.unwrap();
    assert_eq!(done.removed, vec![gone.clone()], "only the unused content of a deleted Image");
    assert_eq!(done.freed, 10 << 10);
    assert!(!sha.join(&gone).exists());
    for kept in [&only, &shared, &web, &kernel, &backing, &fresh] {
        assert!(sha.join(kept).exists(), "{kept} kept");
    }
    assert!(records.get::<ImageCopies>(&(gone.clone(), "n1".into())).await.unwrap().is_none(), "copy record gone");
    assert!(records.get::<ImageCopies>(&(gone.clone(), "n2".into())).await.unwrap().is_some(), "n2's is n2's");

    // A cap of 75 KiB (130 KiB held): the least recently used content that can be fetched again goes first
    // (shared, 2 h), then web (1 h); the only copy of an upload and what the VM uses stay.
    let capped = ImageGc::new(d, records.clone(), "n1", Some(75 << 10)).collect().await.unwrap();
    assert_eq!(capped.removed, vec![shared.clone(), web.clone()]);
    for kept in [&only, &kernel, &backing, &fresh] {
        assert!(sha.join(kept).exists(), "{kept} kept under the cap");
    }
    // A use makes content recent again: with room for one of the two, the one used last stays.
    let web_again = content(&records, d, &kib(20, 3), Duration::ZERO, &[]).await;
    let shared_again = content(&records, d, &kib(30, 2), hour, &[]).await;
    let done = ImageGc::new(d, records.clone(), "n1", Some(95 << 10)).collect().await.unwrap();
    assert_eq!(done.removed, vec![shared_again]);
    assert!(sha.join(&web_again).exists());
}
