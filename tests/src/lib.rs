//! Harness of the end-to-end tests: builds (if needed) and starts a real `fosd` (all roles, embedded store in a
//! temp dir, HTTPS API on a free loopback port), runs the real `fosctl` against it with the client configuration
//! `fosd` wrote (`<data>/fosctl.yaml`: the cluster CA and an administrator token), and on drop deletes what was
//! applied and stops `fosd`, so no process outlives a test, even a failed one.

pub mod browser;
pub mod cluster;
pub mod fog05;
pub mod host;
pub mod libvirt;
pub mod live;
pub mod migrate;
pub mod oci;
pub mod processes;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Where `fosd` and `fosctl` are: `FOS_BIN_DIR` when set (used as is), else the workspace's debug build.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FOS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| manifest.join("../target"));
    target.join("debug")
}

static BUILD: Once = Once::new();

/// Builds `fosd` and `fosctl` once per test process (a no-op when they are current, or when `FOS_BIN_DIR` names
/// prebuilt ones). The whole workspace's binaries, as `make test` builds them: building only these two packages
/// would resolve their dependencies' features differently and rebuild them.
pub(crate) fn build() {
    if std::env::var_os("FOS_BIN_DIR").is_some() {
        return;
    }
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "--workspace", "--bins"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building fosd and fosctl failed");
    });
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The result of one `fosctl` run.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A running one-node fos.
pub struct Fos {
    /// The temp dir holding the data directory and test files.
    pub dir: tempfile::TempDir,
    /// The API address.
    pub server: String,
    /// The `fosd` process.
    pub fosd: Child,
    /// The network namespace `fosd` and `fosctl` run in (`None`: the caller's).
    pub netns: Option<PathBuf>,
    /// Whether the API is plain HTTP (`--insecure-plaintext`, loopback only).
    pub plaintext: bool,
    /// A tmpfs mounted on the data directory (unmounted once `fosd` stopped).
    tmpfs: Option<PathBuf>,
}

/// How to start `fosd`, beyond the defaults.
#[derive(Debug, Default, Clone)]
pub struct Start<'a> {
    /// The network namespace to run it in.
    pub netns: Option<PathBuf>,
    /// Extra arguments.
    pub extra: &'a [&'a str],
    /// Its open-file limit (soft and hard), when not the test process's.
    pub nofile: Option<u64>,
    /// A tmpfs of this many MiB mounted on its data directory (a small disk that can be filled).
    pub tmpfs_mib: Option<u64>,
}

/// A command running `program`, inside the network namespace `netns` when given (through `nsenter`, which leaves
/// the mounts alone, so the namespaces the agent names under `/run/netns` are the host's).
fn command_in(netns: Option<&Path>, program: PathBuf) -> Command {
    match netns {
        Some(ns) => {
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!("--net={}", ns.display())).arg("--").arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// Starts `fosd` on the data directory under `dir`, serving `server`, its log appended to `dir/fosd.log`.
fn spawn_fosd(dir: &Path, server: &str, opts: &Start<'_>) -> Child {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("fosd.log")).expect("log file");
    let mut cmd = command_in(opts.netns.as_deref(), bin_dir().join("fosd"));
    cmd.args(["--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen", server, "--node-name", "e2e", "--log", "info"])
        .args(opts.extra)
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(n) = opts.nofile {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn().expect("starting fosd")
}

impl Fos {
    /// Starts `fosd` and waits for its API.
    pub fn start() -> Fos {
        Fos::start_in(None)
    }

    /// Starts `fosd` inside the network namespace `netns` (when given) and waits for its API.
    pub fn start_in(netns: Option<PathBuf>) -> Fos {
        Fos::start_with(netns, &[])
    }

    /// Starts `fosd` with extra arguments (inside `netns` when given) and waits for its API.
    pub fn start_with(netns: Option<PathBuf>, extra: &[&str]) -> Fos {
        Fos::start_opts(Start { netns, extra, ..Start::default() })
    }

    /// Starts `fosd` as `opts` say and waits for its API.
    pub fn start_opts(opts: Start<'_>) -> Fos {
        use std::os::unix::fs::PermissionsExt;
        build();
        let dir = tempfile::tempdir().expect("temp dir");
        // Entities run as the node's unprivileged user: they must reach their working directories and the marks.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("temp dir mode");
        let data = dir.path().join("data");
        let tmpfs = opts.tmpfs_mib.map(|mib| {
            std::fs::create_dir_all(&data).expect("data dir");
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0755"), "fos-e2e"])
                .arg(&data)
                .status()
                .expect("running mount");
            assert!(status.success(), "mounting a tmpfs on {}", data.display());
            data.clone()
        });
        let port = free_port();
        let server = format!("127.0.0.1:{port}");
        let fosd = spawn_fosd(dir.path(), &server, &opts);
        let plaintext = opts.extra.contains(&"--insecure-plaintext");
        let fos = Fos { dir, server, fosd, netns: opts.netns, plaintext, tmpfs };
        fos.wait_up();
        fos
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.fosctl(&["node", "list"]).code != 0 || !self.fosctl(&["node", "list"]).stdout.contains("e2e") {
            assert!(Instant::now() < deadline, "fosd did not come up:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills `fosd` with SIGKILL (what it started keeps running), then starts it again on the same data directory
    /// and address with `extra` arguments, and waits for its API.
    pub fn kill9_and_restart(&mut self, extra: &[&str]) {
        let _ = self.fosd.kill();
        let _ = self.fosd.wait();
        let opts = Start { netns: self.netns.clone(), extra, ..Start::default() };
        self.fosd = spawn_fosd(self.dir.path(), &self.server, &opts);
        self.wait_up();
    }

    /// Runs `fosctl` with `args` against this fos, as its administrator (the configuration `fosd` wrote).
    pub fn fosctl(&self, args: &[&str]) -> Run {
        command_in(self.netns.as_deref(), bin_dir().join("fosctl"))
            .arg("--config")
            .arg(self.config())
            .args(["--server", &self.url()])
            .args(args)
            .output()
            .expect("running fosctl")
            .into()
    }

    /// Runs `fosctl` with `args` as the holder of `token` (the cluster CA; a configuration naming nothing else).
    pub fn fosctl_as(&self, token: &str, args: &[&str]) -> Run {
        let empty = self.file("empty-config.yaml", "{}\n");
        command_in(self.netns.as_deref(), bin_dir().join("fosctl"))
            .arg("--ca")
            .arg(self.dir.path().join("data/tls/ca.pem"))
            .args(["--config", &empty, "--server", &self.url(), "--token", token])
            .args(args)
            .output()
            .expect("running fosctl")
            .into()
    }

    /// The client configuration `fosd` wrote for its administrator.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("data/fosctl.yaml")
    }

    /// The API's base URL (`https://`, or `http://` for a plaintext API).
    pub fn url(&self) -> String {
        let scheme = if self.plaintext { "http" } else { "https" };
        format!("{scheme}://{}", self.server)
    }

    /// The administrator's token.
    pub fn admin_token(&self) -> String {
        let text = std::fs::read_to_string(self.config()).expect("the client configuration");
        let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
        config["token"].as_str().expect("a token").to_string()
    }

    /// The cluster CA (PEM).
    pub fn ca(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/tls/ca.pem")).expect("the CA")
    }

    /// An HTTPS client trusting the cluster CA, sending no credentials.
    pub fn http(&self) -> reqwest::Client {
        https_client(&self.ca(), None)
    }

    /// An HTTPS client trusting the cluster CA, sending the administrator's token.
    pub fn admin_http(&self) -> reqwest::Client {
        https_client(&self.ca(), Some(&self.admin_token()))
    }

    /// Stops `fosd` with SIGTERM and waits (up to 60 s) until it has exited.
    pub fn terminate(&mut self) {
        let pid = self.fosd.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(self.fosd.try_wait(), Ok(Some(_))) {
            assert!(Instant::now() < deadline, "fosd did not stop within 60 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes `text` to `name` in the temp dir; returns its path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("writing a test file");
        path.display().to_string()
    }

    /// A directory for the marks test entities write (writable by the unprivileged user they run as).
    pub fn marks(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join("marks");
        std::fs::create_dir_all(&p).expect("marks dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).expect("marks dir mode");
        p
    }

    /// The nanosecond timestamp an entity wrote to `marks/<name>`.
    pub fn mark(&self, name: &str) -> Option<u128> {
        std::fs::read_to_string(self.marks().join(name)).ok()?.trim().parse().ok()
    }

    /// `fosd`'s log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fosd.log")).unwrap_or_default()
    }

    /// The objects `fosctl ARGS -o json` prints (a `kind: List`'s items, or the one object); panics when it fails.
    pub fn items(&self, args: &[&str]) -> Vec<serde_json::Value> {
        self.try_items(args).unwrap_or_else(|| panic!("fosctl {args:?} -o json failed"))
    }

    /// [`Fos::items`], `None` when `fosctl` fails or prints no JSON object.
    pub fn try_items(&self, args: &[&str]) -> Option<Vec<serde_json::Value>> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let run = self.fosctl(&all);
        let v: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
        match v.get("kind").and_then(|k| k.as_str()) {
            Some("List") => v["items"].as_array().cloned(),
            Some(_) => Some(vec![v]),
            None => None,
        }
    }

    /// The pids of the running instances, by short name (`db-0`).
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for e in self.try_items(&["get", "entities"]).unwrap_or_default() {
            let id = e["id"].as_str().unwrap_or("");
            let short = id.split('.').next().unwrap_or("").to_string();
            if let Some(pid) = e["actual"]["pid"].as_u64() {
                out.push((short, pid as u32));
            }
        }
        out
    }
}

/// An HTTPS client trusting only `ca_pem`, sending `token` as its bearer token when given.
pub fn https_client(ca_pem: &str, token: Option<&str>) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("a PEM certificate")).expect("a CA certificate");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).expect("a header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder().tls_backend_preconfigured(tls).default_headers(headers).build().expect("a client")
}

/// A client for a plaintext API (`--insecure-plaintext`), sending `token` as its bearer token when given.
pub fn plain_client(token: Option<&str>) -> reqwest::Client {
    https_client("", token)
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

impl Drop for Fos {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.fosd.try_wait() {
            return;
        }
        // Every tenant's applications, from the store's keys (`/…/desired/apps/<tenant>/<app> (rev N)`).
        let listed = self.fosctl(&["store", "get", "dfos://0/apps/**"]).stdout;
        let apps: Vec<(String, String)> = listed
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.split_once("/desired/apps/"))
            .filter_map(|(_, rest)| rest.split_once('/').map(|(t, a)| (t.to_string(), a.to_string())))
            .collect();
        for (tenant, name) in apps {
            self.fosctl(&["--tenant", &tenant, "delete", &name, "--wait", "--timeout", "30s"]);
        }
        self.stop();
        if let Some(path) = self.tmpfs.take() {
            let _ = Command::new("umount").arg(&path).status();
        }
    }
}

impl Fos {
    /// Stops `fosd`: SIGTERM, then SIGKILL if it lingers.
    fn stop(&mut self) {
        let pid = self.fosd.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.fosd.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.fosd.kill();
        let _ = self.fosd.wait();
    }
}

/// A two-component application `app` (names differ between tests: instances of the same name would share a
/// cgroup across the tests' agents): `db` becomes ready a little after it starts, `web` needs it. Both write
/// `<marks>/<component>.start` when they start and `<component>.stop` when asked to stop; `web_tag` is passed
/// to web's environment (change it to change web alone).
pub fn two_tier(app: &str, marks: &Path, web_tag: &str) -> String {
    let m = marks.display();
    format!(
        r#"apiVersion: fos/v1
kind: Application
metadata: {{name: {app}}}
spec:
  components:
    - name: web
      need: [db]
      entity:
        kind: native
        env: {{TAG: "{web_tag}"}}
        command: [sh, -c, 'date +%s%N > {m}/web.start; echo "$FOS_NEED_DB_HOST:$FOS_NEED_DB_PORT" > {m}/web.env; trap "date +%s%N > {m}/web.stop; exit 0" TERM; sleep 1000 & wait']
    - name: db
      entity:
        kind: native
        ports: [{{port: 5432}}]
        command: [sh, -c, 'date +%s%N > {m}/db.start; sleep 0.3; date +%s%N > {m}/db.ready; touch {m}/db.ok; trap "date +%s%N > {m}/db.stop; exit 0" TERM; sleep 1000 & wait']
        readiness: {{exec: [test, -f, {m}/db.ok]}}
"#
    )
}
