//! The container runtime (`kind: container`): an OCI image (pulled from a registry, or an OCI layout archive on the
//! node) held in the node's image store ([`crate::oci`]), a root filesystem mounted as an overlay over its cached
//! layers (a copy where the kernel refuses), an OCI runtime spec made with `oci-spec`, and `runc` to run it.
//!
//! The lifecycle on runc: configure gets the image, mounts the root and writes the bundle; run is `runc run` (create
//! and start in one process that stays the agent's child, so the container's exit status is known); stop is `runc
//! kill` TERM, then KILL to every process after the grace time, then `runc delete`; pause and resume are `runc pause`
//! and `runc resume`; clean unmounts the root and removes the groups. A restarted agent adopts the containers `runc
//! state` reports running or paused. The container's cgroup is runc's `fos/<instance group>/c`, under the instance's
//! group, which holds the reservations as limits and counts OOM kills. Live migration is `runc checkpoint` and
//! `runc restore` with CRIU ([`live`]).

mod instance;
mod live;
pub mod runc;
pub mod spec;

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use fos_api::lifecycle::State;
use fos_api::manifest::{EntityKind, Probe};
use fos_api::record::{DesiredInstance, InstanceId};
use serde::Deserialize;
use tokio::sync::watch;

use self::instance::Container;
use self::runc::Runc;
use crate::images::Images;
use crate::network::netns;
use crate::oci::pull::{self, PullOptions};
use crate::oci::{gc, layout, unpack, Image, ImageStore, OciError};
use crate::runtime::{probe, InstanceContext, NodeLayout, Recovered, RunState, Runtime, RuntimeEnv, RuntimeError};

/// Where cgroup hierarchies are mounted (runc makes its groups there).
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How often a starting container's pid file is looked for (a file read: cheap next to runc's own start).
const PID_FILE_POLL: Duration = Duration::from_millis(2);

/// How long runc may take to start (or restore) a container.
const LAUNCH_PATIENCE: Duration = Duration::from_secs(30);

/// The container runtime's section of the node configuration (`runtimes: {container: {config: {…}}}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSettings {
    /// The runc binary (default `runc` on the PATH).
    #[serde(default)]
    pub runc: Option<PathBuf>,
    /// Registries (`host:port`) this node reaches over plain HTTP; every other one over HTTPS.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Who containers run as when neither the entity nor the image names a user other than root (`user[:group]`,
    /// default `65534:65534`).
    #[serde(default)]
    pub run_as: Option<String>,
    /// How long an image no instance uses stays in the store, in seconds (default 3600).
    #[serde(default)]
    pub image_retention_secs: Option<u64>,
}

/// Settings of the container runtime.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// The runc binary.
    pub runc: PathBuf,
    /// Registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// The default user.
    pub run_as: String,
    /// How long unused images are kept.
    pub image_retention: Duration,
    /// Time between SIGTERM and SIGKILL at stop.
    pub stop_grace: Duration,
    /// Addresses reported for containers sharing the node's network.
    pub addresses: Vec<String>,
}

/// Builds the node's container runtime (its registration in [`crate::runtime::RuntimeRegistry::builtin`]).
pub fn factory(env: &RuntimeEnv) -> Result<Arc<dyn Runtime>, RuntimeError> {
    let settings: ContainerSettings = if env.config.is_null() {
        ContainerSettings::default()
    } else {
        serde_json::from_value(env.config.clone())
            .map_err(|e| RuntimeError::Invalid(format!("runtimes.container.config: {e}")))?
    };
    let config = ContainerConfig {
        runc: settings.runc.unwrap_or_else(|| PathBuf::from("runc")),
        insecure_registries: settings.insecure_registries,
        run_as: settings.run_as.unwrap_or_else(|| "65534:65534".to_string()),
        image_retention: Duration::from_secs(settings.image_retention_secs.unwrap_or(3600)),
        stop_grace: env.stop_grace,
        addresses: env.addresses.clone(),
    };
    Ok(ContainerRuntime::new(config, env.layout.clone(), env.images.clone())? as Arc<dyn Runtime>)
}

/// The runc container runtime.
pub struct ContainerRuntime {
    config: ContainerConfig,
    layout: NodeLayout,
    images: ImageStore,
    /// The node's Image objects made local (an uploaded OCI layout archive referenced by name).
    uploads: Images,
    runc: Runc,
    instances: Mutex<HashMap<InstanceId, Arc<Container>>>,
}

impl ContainerRuntime {
    /// A runtime keeping its instances in `<data>/container`, runc's state in `<data>/container/.runc` and images
    /// in `<data>/oci`.
    pub fn new(config: ContainerConfig, layout: NodeLayout, uploads: Images) -> Result<Arc<Self>, RuntimeError> {
        let root = layout.runtime_dir(EntityKind::Container);
        let runc_root = root.join(".runc");
        std::fs::create_dir_all(&runc_root).map_err(|e| RuntimeError::io(&runc_root, e))?;
        let images = ImageStore::open(layout.data_dir().join("oci")).map_err(oci_error)?;
        let runc = Runc::new(&config.runc, runc_root);
        Ok(Arc::new(ContainerRuntime { config, layout, images, uploads, runc, instances: Mutex::new(HashMap::new()) }))
    }

    /// The node's image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    fn root(&self) -> PathBuf {
        self.layout.runtime_dir(EntityKind::Container)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Arc<Container>>> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &InstanceId) -> Result<Arc<Container>, RuntimeError> {
        self.map().get(id).cloned().ok_or_else(|| RuntimeError::NotDefined(id.clone()))
    }

    fn runc_id(&self, id: &InstanceId) -> String {
        format!("{}-{}", id, self.layout.names().scope())
    }

    /// The image of `desired`, from the store or fetched: a registry reference is pulled, an absolute path is an OCI
    /// layout archive on the node, another name an Image object (an OCI layout archive uploaded with `fosctl image
    /// upload`), made local by the node's image cache (fetched from a node holding it, checked by its sha256).
    /// A registry pull carries the credentials of the entity's `imagePullSecret` for the image's registry.
    async fn image(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<Image, RuntimeError> {
        let reference = desired.entity.image.clone().ok_or_else(|| RuntimeError::Invalid("no `image`".into()))?;
        let image = if pull::is_registry_reference(&reference) {
            let registry = pull::parse_reference(&reference).map_err(oci_error)?.resolve_registry().to_string();
            let credentials = match &cx.pull_secret {
                Some(secret) => Some(
                    secret
                        .credentials_for(&registry)
                        .map_err(|reason| oci_error(OciError::Credentials { image: reference.clone(), reason }))?,
                ),
                None => None,
            };
            let options = PullOptions {
                insecure: self.config.insecure_registries.clone(),
                credentials,
                tenant: Some(cx.id.tenant.clone()),
            };
            pull::ensure(&self.images, &reference, &options).await
        } else if reference.starts_with('/') {
            match self.images.get(&reference) {
                Some(image) => Ok(image),
                None => {
                    let store = self.images.clone();
                    let r = reference.clone();
                    tokio::task::spawn_blocking(move || layout::load(&store, Path::new(&r), &r))
                        .await
                        .map_err(|e| RuntimeError::Failed(e.to_string()))?
                }
            }
        } else {
            match self.images.get(&reference) {
                Some(image) => Ok(image),
                None => {
                    let local = self.uploads.ensure(&reference).await.map_err(|e| {
                        let message = format!("image {reference}: {e}");
                        if e.is_transient() {
                            RuntimeError::Failed(message)
                        } else {
                            RuntimeError::Invalid(message)
                        }
                    })?;
                    let store = self.images.clone();
                    let r = reference.clone();
                    tokio::task::spawn_blocking(move || layout::load(&store, &local.path, &r))
                        .await
                        .map_err(|e| RuntimeError::Failed(e.to_string()))?
                }
            }
        };
        let image = image.map_err(oci_error)?;
        let _ = self.images.touch(&reference);
        Ok(image)
    }

    /// Writes the bundle's `config.json` (mode 0600: it holds the Secret values of the environment).
    fn write_spec(
        &self,
        c: &Container,
        cx: &InstanceContext,
        desired: &DesiredInstance,
        image: &Image,
    ) -> Result<(), RuntimeError> {
        let bundle = c.bundle();
        let ids = spec::ids(desired, &image.config, &self.config.run_as, &bundle.join("rootfs"))?;
        let cgroups_path = Path::new("/").join(cx.cgroup.relative_path()).join("c");
        let input = spec::SpecInput { desired, image: &image.config, cx, ids, cgroups_path };
        let spec = spec::build(&input)?;
        let json = serde_json::to_vec_pretty(&spec).map_err(|e| RuntimeError::Failed(e.to_string()))?;
        let path = bundle.join("config.json");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| RuntimeError::io(&path, e))?;
        std::io::Write::write_all(&mut file, &json).map_err(|e| RuntimeError::io(&path, e))
    }

    /// Starts the container's runc process (`spawn`, handed the pid file and the output files: `runc run` or
    /// `runc restore`), watches it, and waits until runc wrote the container's init pid (Running then); an early end
    /// is reported as an exit.
    async fn launch(
        &self,
        c: &Arc<Container>,
        cx: &InstanceContext,
        what: &str,
        spawn: impl FnOnce(&Path, std::fs::File, std::fs::File) -> Result<tokio::process::Child, RuntimeError>,
    ) -> Result<(), RuntimeError> {
        c.stopping.store(false, Ordering::SeqCst);
        // The end of the run before (a crash) is history now: Running is set once this one has started.
        c.run.send_if_modified(|r| std::mem::replace(r, RunState::Idle) != RunState::Idle);
        let oom = cx.cgroup.watch_oom();
        let pid_file = c.pid_file();
        if let Err(e) = std::fs::remove_file(&pid_file) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(RuntimeError::io(&pid_file, e));
            }
        }
        let (stdout, stderr) = (open_log(&cx.logs.stdout)?, open_log(&cx.logs.stderr)?);
        let child = spawn(&pid_file, stdout, stderr)?;
        c.watch_child(child, oom);
        let mut rx = c.run.subscribe();
        // Running once runc writes the pid file (the container's user process is then started or restored).
        let deadline = tokio::time::Instant::now() + LAUNCH_PATIENCE;
        loop {
            if !matches!(*rx.borrow_and_update(), RunState::Idle) {
                return Ok(());
            }
            let pid = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<u32>().ok());
            if let Some(pid) = pid.filter(|p| *p > 0) {
                c.run.send_if_modified(|r| {
                    let idle = matches!(r, RunState::Idle);
                    if idle {
                        *r = RunState::Running { pid, started_at: Utc::now() };
                    }
                    idle
                });
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                self.stop_container(c).await?;
                let secs = LAUNCH_PATIENCE.as_secs();
                return Err(RuntimeError::Failed(format!("{what}: the container did not start within {secs}s")));
            }
            let _ = tokio::time::timeout(PID_FILE_POLL, rx.changed()).await;
        }
    }

    /// Stops the container: TERM, KILL to every process after the grace time, then `runc delete`.
    async fn stop_container(&self, c: &Container) -> Result<(), RuntimeError> {
        c.stopping.store(true, Ordering::SeqCst);
        let mut rx = c.run.subscribe();
        if let Some(state) = self.runc.state(&c.runc_id).await? {
            if state.status == "paused" {
                let _ = self.runc.resume(&c.runc_id).await;
            }
            if matches!(state.status.as_str(), "running" | "paused" | "created") {
                let _ = self.runc.kill(&c.runc_id, "TERM", false).await;
                let ended = tokio::time::timeout(
                    self.config.stop_grace,
                    rx.wait_for(|s| !matches!(s, RunState::Running { .. })),
                );
                if ended.await.is_err() {
                    let _ = self.runc.kill(&c.runc_id, "KILL", true).await;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        rx.wait_for(|s| !matches!(s, RunState::Running { .. })),
                    )
                    .await;
                }
            }
            self.runc.delete(&c.runc_id).await?;
        }
        c.run.send_replace(RunState::Idle);
        Ok(())
    }

    /// Drops the images no instance uses and not used within the retention time, and the blobs and layers they
    /// alone held.
    fn collect_images(&self) {
        let in_use: BTreeSet<String> = self.map().values().filter_map(|c| c.image()).collect();
        match gc::collect(&self.images, &in_use, self.config.image_retention) {
            Ok(done) if !done.images.is_empty() => {
                tracing::info!(images = ?done.images, blobs = done.blobs, layers = done.layers, "image store collected")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
        }
    }
}

/// An image error as a step error: a bad reference, a bad image or a digest mismatch holds the instance until its
/// record changes; the rest (registry unreachable, disk) is retried.
fn oci_error(e: OciError) -> RuntimeError {
    if e.is_permanent() {
        RuntimeError::Invalid(e.to_string())
    } else {
        RuntimeError::Failed(e.to_string())
    }
}

fn check_container(desired: &DesiredInstance) -> Result<(), RuntimeError> {
    if desired.entity.kind != EntityKind::Container {
        return Err(RuntimeError::Invalid(format!("a {} entity cannot run as a container", desired.entity.kind)));
    }
    if desired.entity.image.is_none() {
        return Err(RuntimeError::Invalid("a container entity needs an `image`".into()));
    }
    let remapped = desired.entity.ports.iter().any(|p| p.host_port.is_some_and(|h| h != p.port));
    if desired.entity.networks.is_empty() && remapped {
        return Err(RuntimeError::Unsupported("exposing a container's port on another host port without networks"));
    }
    Ok(())
}

fn open_log(path: &Path) -> Result<std::fs::File, RuntimeError> {
    std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| RuntimeError::io(path, e))
}

/// Runs a tcp or http probe from inside the network namespace at `ns`.
async fn probe_in(p: Probe, ns: PathBuf) -> bool {
    let checked = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&ns).ok()?;
        netns::run_in(&file, || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            Some(rt.block_on(probe::check(&p, Path::new("/"))))
        })
        .ok()
        .flatten()
    })
    .await;
    matches!(checked, Ok(Some(true)))
}

mod steps;
