//! OCI images on a node, against a real registry (Debian's `docker-registry` on a loopback port) and images built
//! from Debian's busybox: a pull checks and keeps every blob, a second one contacts nothing, a layer whose content
//! is not its digest is refused and nothing of it kept, an OCI layout archive loads (and a tampered one is refused),
//! a manifest list resolves to this node's platform, and garbage collection removes only what no kept image names.
//! A registry asking for credentials (htpasswd) refuses a pull without them or with a wrong password, clearly, and
//! serves one with a Secret's; a private image held by the node reaches another tenant only with its own credentials.

use std::collections::BTreeSet;
use std::time::Duration;

use fos_agent::oci::auth::PullSecret;
use fos_agent::oci::pull::{self, PullOptions};
use fos_agent::oci::{self, gc, layout, unpack, Digest, ImageStore, OciError};
use fos_e2e::oci::{busybox_image, write_layout_tar, Registry};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn insecure(registry: &Registry) -> PullOptions {
    PullOptions { insecure: vec![registry.addr.clone()], ..Default::default() }
}

#[test]
fn a_pull_checks_and_keeps_every_blob_and_a_second_one_uses_the_cache() {
    let registry = Registry::start(None);
    let image = busybox_image(8080, "hello", 1);
    let manifest = registry.push("web:1", &image);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let reference = format!("{}/web:1", registry.addr);

    let pulled = rt().block_on(pull::pull(&store, &reference, &insecure(&registry))).expect("pulled");
    assert_eq!(pulled.manifest.as_str(), manifest);
    let layers: Vec<String> = pulled.layers.iter().map(|l| l.digest.to_string()).collect();
    assert_eq!(layers, image.layer_digests());
    assert_eq!(pulled.config.user.as_deref(), Some("www"));
    assert_eq!(pulled.config.entrypoint, Some(vec!["/bin/busybox".to_string()]));
    for l in &pulled.layers {
        assert_eq!(
            std::fs::read(store.blob_path(&l.digest)).unwrap().len(),
            image.layers[layers.iter().position(|d| *d == l.digest.to_string()).unwrap()].len()
        );
    }

    // By digest too, and from the cache once the registry is gone.
    let by_digest = format!("{}/web@{manifest}", registry.addr);
    rt().block_on(pull::pull(&store, &by_digest, &insecure(&registry))).expect("pulled by digest");
    drop(registry);
    let cached = rt().block_on(pull::ensure(&store, &reference, &PullOptions::default())).expect("from the cache");
    assert_eq!(cached.manifest, pulled.manifest);

    // Unpacked once, then an overlay root (or a copy) holding busybox.
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let kind = unpack::make_rootfs(&store, &cached, &bundle).expect("a root");
    assert!(bundle.join("rootfs/bin/busybox").exists(), "{kind:?}");
    assert!(bundle.join("rootfs/payload").exists(), "the second layer is there");
    unpack::remove_rootfs(&bundle).unwrap();
    assert!(!unpack::is_mount_point(&bundle.join("rootfs")));
    assert!(!bundle.join("rootfs").exists());
}

#[test]
fn a_layer_whose_content_is_not_its_digest_is_refused_and_nothing_is_kept() {
    let registry = Registry::start(None);
    let image = busybox_image(8080, "hello", 0);
    registry.push("bad:1", &image);
    // The registry's copy of the layer is altered behind its back.
    let layer = image.layer_digests()[0].clone();
    let path = registry.blob_path(&layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let reference = format!("{}/bad:1", registry.addr);
    let err = rt().block_on(pull::pull(&store, &reference, &insecure(&registry))).unwrap_err();
    assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&layer) && text.contains("digest mismatch") && text.contains("refused"), "{text}");
    assert!(err.is_permanent());
    assert!(store.get(&reference).is_none(), "no image recorded");
    assert!(!store.blob_path(&Digest::parse(&layer).unwrap()).exists(), "the layer is not kept");
    assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0, "no partial download left");
}

#[test]
fn plain_http_is_used_only_for_registries_marked_insecure() {
    let registry = Registry::start(None);
    registry.push("web:1", &busybox_image(8080, "hello", 0));
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let reference = format!("{}/web:1", registry.addr);
    let err = rt().block_on(pull::pull(&store, &reference, &PullOptions::default())).unwrap_err();
    assert!(matches!(err, OciError::Registry { .. }), "HTTPS to a plain HTTP registry fails: {err}");
    assert!(!err.is_permanent(), "retried");
}

#[test]
fn an_oci_layout_archive_loads_and_a_tampered_one_is_refused() {
    let image = busybox_image(8080, "hello", 0);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("store")).unwrap();
    let archive = dir.path().join("web.tar");
    write_layout_tar(&image, &archive);
    let loaded = layout::load(&store, &archive, "web").expect("loaded");
    assert_eq!(loaded.manifest.as_str(), image.manifest_digest());
    assert_eq!(loaded.config.cmd.as_ref().map(|c| c[0].as_str()), Some("httpd"));

    let mut tampered = image.clone();
    let last = tampered.layers[0].len() - 1;
    tampered.layers[0][last] ^= 0xff;
    let mut bytes = std::fs::read(&archive).unwrap();
    // Same names (the original digests), altered content.
    let original = &image.layers[0];
    let at = bytes.windows(original.len()).position(|w| w == &original[..]).expect("the layer in the tar");
    bytes[at + last] ^= 0xff;
    let bad = dir.path().join("bad.tar");
    std::fs::write(&bad, bytes).unwrap();
    let other = ImageStore::open(dir.path().join("other")).unwrap();
    let err = layout::load(&other, &bad, "bad").unwrap_err();
    assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
    assert!(other.get("bad").is_none());
}

#[test]
fn garbage_collection_keeps_what_kept_images_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("store")).unwrap();
    let a = busybox_image(8080, "a", 0);
    let b = busybox_image(8080, "b", 0);
    for (name, image) in [("a", &a), ("b", &b)] {
        let archive = dir.path().join(format!("{name}.tar"));
        write_layout_tar(image, &archive);
        layout::load(&store, &archive, name).unwrap();
        let layer = store.get(name).unwrap().layers[0].clone();
        unpack::unpacked_layer(&store, &layer).unwrap();
    }
    let in_use: BTreeSet<String> = ["a".to_string()].into();
    let recent = gc::collect(&store, &in_use, Duration::from_secs(3600)).unwrap();
    assert!(recent.images.is_empty(), "b was used recently: kept");
    let done = gc::collect(&store, &in_use, Duration::ZERO).unwrap();
    assert_eq!(done.images, vec!["b".to_string()]);
    assert!(done.blobs >= 2 && done.layers == 1, "{done:?}");
    assert!(store.get("a").is_some(), "a is whole");
    assert!(store.layer_dir(&store.get("a").unwrap().layers[0].digest).exists());
    assert!(store.get("b").is_none());
}

fn as_tenant(registry: &Registry, tenant: &str, credentials: Option<(&str, &str)>) -> PullOptions {
    let secret = credentials.map(|(user, password)| PullSecret {
        name: format!("{tenant}-registry"),
        data: [("username".to_string(), user.to_string()), ("password".to_string(), password.to_string())].into(),
    });
    PullOptions {
        insecure: vec![registry.addr.clone()],
        credentials: secret.map(|s| s.credentials_for(&registry.addr).expect("credentials")),
        tenant: Some(tenant.to_string()),
    }
}

#[test]
fn a_registry_asking_for_credentials_gets_the_secrets_and_refuses_the_rest() {
    let registry = Registry::start_with_auth(None, "puller", "correct-horse");
    registry.push("private:1", &busybox_image(8080, "private", 0));
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let reference = format!("{}/private:1", registry.addr);

    // Without credentials: refused, saying what to do; nothing kept.
    let err = rt().block_on(pull::ensure(&store, &reference, &as_tenant(&registry, "alpha", None))).unwrap_err();
    assert!(matches!(err, OciError::Unauthorized { secret: None, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("without credentials") && text.contains("imagePullSecret"), "{text}");
    assert!(!err.is_permanent(), "retried: the Secret may come");
    assert!(store.images().is_empty());

    // A wrong password: refused, naming the Secret and never the password.
    let wrong = as_tenant(&registry, "alpha", Some(("puller", "wrong-staple")));
    let err = rt().block_on(pull::ensure(&store, &reference, &wrong)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, OciError::Unauthorized { secret: Some(_), .. }), "{err:?}");
    assert!(text.contains("alpha-registry") && !text.contains("wrong-staple"), "{text}");
    assert!(!format!("{wrong:?}").contains("wrong-staple"), "Debug hides the password");
    assert!(store.images().is_empty());

    // The right ones: pulled, private to the tenants the registry accepted.
    let right = as_tenant(&registry, "alpha", Some(("puller", "correct-horse")));
    let image = rt().block_on(pull::ensure(&store, &reference, &right)).expect("pulled with the credentials");
    assert!(image.private && image.tenants.contains("alpha"), "{image:?}");
    let record =
        std::fs::read_to_string(dir.path().join("images").join(format!("{}.json", oci::image_key(&reference))));
    assert!(!record.unwrap().contains("correct-horse"), "no password on disk");

    // Another tenant does not get the held copy without its own credentials, nor with wrong ones.
    let err = rt().block_on(pull::ensure(&store, &reference, &as_tenant(&registry, "beta", None))).unwrap_err();
    assert!(matches!(err, OciError::Unauthorized { secret: None, .. }), "{err:?}");
    let beta_wrong = as_tenant(&registry, "beta", Some(("puller", "guess")));
    assert!(matches!(rt().block_on(pull::ensure(&store, &reference, &beta_wrong)), Err(OciError::Unauthorized { .. })));
    let beta = as_tenant(&registry, "beta", Some(("puller", "correct-horse")));
    rt().block_on(pull::ensure(&store, &reference, &beta)).expect("beta's credentials accepted");
    assert!(store.get(&reference).unwrap().tenants.contains("beta"));

    // Registry gone: the tenants it accepted use the store; no other tenant gets the image.
    drop(registry);
    let offline = |tenant: &str| PullOptions { tenant: Some(tenant.to_string()), ..Default::default() };
    rt().block_on(pull::ensure(&store, &reference, &offline("alpha"))).expect("alpha from the store");
    rt().block_on(pull::ensure(&store, &reference, &offline("beta"))).expect("beta from the store");
    assert!(rt().block_on(pull::ensure(&store, &reference, &offline("gamma"))).is_err(), "gamma is not served");
}
