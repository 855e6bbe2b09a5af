//! OCI images for the tests, made here from Debian's `busybox-static` (nothing can be downloaded): one layer (a
//! gzip tar of `/bin/busybox` with its applet links, `/etc/passwd`, `/etc/group` and a web root), its configuration
//! (busybox `httpd` serving `/www` on a port) and manifest, written as an OCI image layout (directory or tar) or
//! pushed with `oci-client` to a real registry: Debian's `docker-registry`, started on a free loopback port with
//! its storage in a temp dir, inside a test's network namespace when given, and stopped (its storage removed) on
//! drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// The media types the test images use.
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The configuration's media type.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The manifest's media type.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A test image: its layers (gzip tars), configuration and manifest, as bytes.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// The layers, bottom first (gzip-compressed tars).
    pub layers: Vec<Vec<u8>>,
    /// The configuration (JSON).
    pub config: Vec<u8>,
    /// The manifest (JSON).
    pub manifest: Vec<u8>,
}

impl TestImage {
    /// The manifest's digest.
    pub fn manifest_digest(&self) -> String {
        digest(&self.manifest)
    }

    /// The layers' digests.
    pub fn layer_digests(&self) -> Vec<String> {
        self.layers.iter().map(|l| digest(l)).collect()
    }
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, data).expect("tar entry");
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    tar.append_data(&mut h, path, std::io::empty()).expect("tar dir");
}

fn append_link(tar: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Symlink);
    tar.append_link(&mut h, path, target).expect("tar link");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

/// The busybox image: `httpd` serving `/www` (whose `index.html` says `page`) on `port` as user `www` (uid 1000),
/// plus `payload_mib` MiB of random bytes in a second layer (`/payload`) when not 0.
pub fn busybox_image(port: u16, page: &str, payload_mib: usize) -> TestImage {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static installed (/bin/busybox)");
    let mut tar = tar::Builder::new(Vec::new());
    for dir in ["bin", "etc", "www", "proc", "dev", "sys", "tmp", "run"] {
        append_dir(&mut tar, dir, 0o755);
    }
    append(&mut tar, "bin/busybox", 0o755, &busybox);
    for applet in ["sh", "httpd", "sleep", "cat", "echo", "wget", "nc", "ls", "id", "kill", "true", "false", "env"] {
        append_link(&mut tar, &format!("bin/{applet}"), "busybox");
    }
    let passwd =
        "root:x:0:0:root:/root:/bin/sh\nwww:x:1000:1000:www:/www:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    append(&mut tar, "etc/passwd", 0o644, passwd.as_bytes());
    append(&mut tar, "etc/group", 0o644, b"root:x:0:\nwww:x:1000:\nnogroup:x:65534:\n");
    append(&mut tar, "www/index.html", 0o644, page.as_bytes());
    let base = tar.into_inner().expect("tar");
    let mut tars = vec![base];
    if payload_mib > 0 {
        let mut payload = vec![0u8; payload_mib << 20];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for chunk in payload.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let mut tar = tar::Builder::new(Vec::new());
        append(&mut tar, "payload", 0o644, &payload);
        tars.push(tar.into_inner().expect("tar"));
    }
    let diff_ids: Vec<String> = tars.iter().map(|t| digest(t)).collect();
    let layers: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
    let arch = fos_agent::oci::this_architecture();
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "User": "www",
            "Entrypoint": ["/bin/busybox"],
            "Cmd": ["httpd", "-f", "-v", "-p", port.to_string(), "-h", "/www"],
            "Env": ["PATH=/bin", "GREETING=from the image"],
            "WorkingDir": "/www",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).expect("json");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": digest(&config), "size": config.len()},
        "layers": layers.iter().map(|l| serde_json::json!({"mediaType": LAYER_GZIP, "digest": digest(l), "size": l.len()})).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).expect("json");
    TestImage { layers, config, manifest }
}

/// `image` with its configuration's `User` set to `user` (the manifest made to refer to the new configuration).
pub fn with_user(image: TestImage, user: &str) -> TestImage {
    let mut config: serde_json::Value = serde_json::from_slice(&image.config).expect("the image's configuration");
    config["config"]["User"] = user.into();
    let config = serde_json::to_vec(&config).expect("json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&image.manifest).expect("the image's manifest");
    manifest["config"]["digest"] = digest(&config).into();
    manifest["config"]["size"] = config.len().into();
    let manifest = serde_json::to_vec(&manifest).expect("json");
    TestImage { layers: image.layers, config, manifest }
}

/// Writes `image` as an OCI image layout tar at `path`.
pub fn write_layout_tar(image: &TestImage, path: &Path) {
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, "oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": MANIFEST, "digest": image.manifest_digest(), "size": image.manifest.len()}],
    });
    append(&mut tar, "index.json", 0o644, &serde_json::to_vec(&index).expect("json"));
    append_dir(&mut tar, "blobs", 0o755);
    append_dir(&mut tar, "blobs/sha256", 0o755);
    let mut blobs = vec![image.manifest.clone(), image.config.clone()];
    blobs.extend(image.layers.iter().cloned());
    for blob in blobs {
        let name = format!("blobs/sha256/{}", &digest(&blob)["sha256:".len()..]);
        append(&mut tar, &name, 0o644, &blob);
    }
    std::fs::write(path, tar.into_inner().expect("tar")).expect("writing the layout tar");
}

/// Runs `f` on a thread inside the network namespace at `netns` (when given).
pub fn in_netns<T: Send + 'static>(netns: Option<&Path>, f: impl FnOnce() -> T + Send + 'static) -> T {
    let netns = netns.map(Path::to_path_buf);
    std::thread::spawn(move || {
        if let Some(ns) = netns {
            let file = std::fs::File::open(&ns).expect("the namespace");
            // SAFETY: setns on this thread only, with a descriptor we own.
            let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .expect("the namespace thread")
}

/// A `docker-registry` on a free loopback port, stopped and its storage removed on drop.
pub struct Registry {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Its storage directory (blobs under `docker/registry/v2/blobs`).
    pub storage: PathBuf,
    /// The namespace it listens in.
    pub netns: Option<PathBuf>,
    /// The user and password it asks for, if any.
    pub auth: Option<(String, String)>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry (inside `netns` when given) and waits until it answers.
    pub fn start(netns: Option<&Path>) -> Registry {
        Self::start_opts(netns, None)
    }

    /// Starts a registry that serves only `user` with `password` (HTTP Basic, an htpasswd file made with Apache's
    /// `htpasswd -B`); pushes to it use them.
    pub fn start_with_auth(netns: Option<&Path>, user: &str, password: &str) -> Registry {
        Self::start_opts(netns, Some((user.to_string(), password.to_string())))
    }

    fn start_opts(netns: Option<&Path>, auth: Option<(String, String)>) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut auth_section = String::new();
        if let Some((user, password)) = &auth {
            let out =
                Command::new("htpasswd").args(["-nbB", user, password]).output().expect("htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd: {out:?}");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).expect("htpasswd file");
            auth_section = format!("auth:\n  htpasswd: {{realm: fos-test, path: {}}}\n", file.display());
        }
        let port = in_netns(netns, crate::free_port);
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: {addr}\n{auth_section}",
                storage.display()
            ),
        )
        .expect("registry configuration");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).args(["--", "docker-registry"]);
                c
            }
            None => Command::new("docker-registry"),
        };
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child =
            cmd.arg("serve").arg(&config).stdout(Stdio::null()).stderr(log).spawn().expect("docker-registry installed");
        let registry =
            Registry { addr: addr.clone(), storage, netns: netns.map(Path::to_path_buf), auth, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !in_netns(netns, {
            let addr = addr.clone();
            move || v2_answers(&addr)
        }) {
            assert!(Instant::now() < deadline, "docker-registry did not come up on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// Pushes `image` as `<addr>/<name>` (`repo:tag`) with oci-client; the manifest digest the registry holds.
    pub fn push(&self, name: &str, image: &TestImage) -> String {
        let reference = format!("{}/{name}", self.addr);
        let (addr, image, auth) = (self.addr.clone(), image.clone(), self.auth.clone());
        in_netns(self.netns.as_deref(), move || push_as(&addr, &reference, &image, auth))
    }

    /// Where the registry keeps blob `digest`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage.join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

fn v2_answers(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    // 401: up, and asking for credentials.
    s.read_exact(&mut head).is_ok() && (head.ends_with(b"200") || head.ends_with(b"401"))
}

/// Pushes `image` as `reference` to the registry at `addr` (plain HTTP); its manifest digest.
pub fn push_to(addr: &str, reference: &str, image: &TestImage) -> String {
    push_as(addr, reference, image, None)
}

/// Pushes `image` as `reference` to the registry at `addr` (plain HTTP) as `auth` (user, password) when given.
pub fn push_as(addr: &str, reference: &str, image: &TestImage, auth: Option<(String, String)>) -> String {
    use oci_client::client::{ClientConfig, ClientProtocol};
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(vec![addr.to_string()]),
            ..Default::default()
        });
        let reference: oci_client::Reference = reference.parse().expect("a reference");
        let auth = match auth {
            Some((user, password)) => oci_client::secrets::RegistryAuth::Basic(user, password),
            None => oci_client::secrets::RegistryAuth::Anonymous,
        };
        client.auth(&reference, &auth, oci_client::RegistryOperation::Push).await.expect("registry authentication");
        let mut blobs = vec![image.config.clone()];
        blobs.extend(image.layers.iter().cloned());
        for blob in blobs {
            let d = digest(&blob);
            client.push_blob(&reference, blob, &d).await.expect("push a blob to the registry");
        }
        // The manifest exactly as built, so its digest is the one the tests expect.
        let content_type = oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.parse().expect("a header value");
        client.push_manifest_raw(&reference, image.manifest.clone(), content_type).await.expect("push the manifest");
        image.manifest_digest()
    })
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /` on `addr` from inside `ns`: the whole answer, `None` when it does not come within a second.
pub fn http_get(ns: &Path, addr: &str) -> Option<String> {
    let addr = addr.to_string();
    in_netns(Some(ns), move || {
        let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })
}

/// The entity view (`fosctl --tenant TENANT get entities`) of the instance whose id starts with `short` (`web-0`);
/// `null` when there is none.
pub fn entity_of(fos: &crate::Fos, tenant: &str, short: &str) -> serde_json::Value {
    let prefix = format!("{short}.");
    fos.try_items(&["--tenant", tenant, "get", "entities"])
        .unwrap_or_default()
        .into_iter()
        .find(|e| e["id"].as_str().is_some_and(|id| id.starts_with(&prefix)))
        .unwrap_or_default()
}

/// A node configuration file in `dir` for containers: `registry` reached over plain HTTP, images collected at once.
pub fn node_config(dir: &Path, registry: &str) -> String {
    let path = dir.join(format!("node-{}.yaml", std::process::id()));
    let text =
        format!("runtimes:\n  container:\n    config: {{insecureRegistries: ['{registry}'], imageRetentionSecs: 0}}\n");
    std::fs::write(&path, text).expect("node configuration");
    path.display().to_string()
}

/// Waits until `f` holds, printing fosd's log when it does not within `timeout`.
pub fn wait_until(what: &str, fos: &crate::Fos, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}\n{}", fos.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}
