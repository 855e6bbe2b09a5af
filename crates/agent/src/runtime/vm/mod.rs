//! The VM runtime (`kind: vm`): every instance is a libvirt domain, driven through the `virt` crate.
//!
//! | fos step | libvirt |
//! |---|---|
//! | define | checks the entity, writes the instance's state file |
//! | configure | resolves `image`/`kernel`/`initrd` ([`crate::images::Images`]), makes the disk a qcow2 overlay over the image (`<dir>/disk.qcow2`), each volume's disk ([`volumes`]) and the cloud-init seed ([`seed`]), writes the domain XML ([`domain`]) and `define_xml` |
//! | run | `create` (start) |
//! | pause / resume | `suspend` / `resume` |
//! | stop | `shutdown` (ACPI), `destroy` after the stop grace |
//! | clean | `undefine`, the overlay and seed removed |
//! | undefine | the instance's directory removed |
//!
//! Domains are named `fos-<scope>-<instance>` (the agent's scope: two agents on one machine never touch each other's
//! domains). Each fos network of the entity is a tap on that network's bridge, named like the node end of a native
//! instance's veth and carrying the MAC and address the network manager reserved for it; a directly booted guest gets
//! its address on the kernel command line (`fos.ip=`, `fos.gw=`), others by DHCP. The serial console goes to the
//! instance's stdout log, so `fosctl logs` shows it. Readiness probes (tcp, http) are made against the guest's first
//! address. After an agent restart, [`Runtime::recover`] adopts the domains still running.
//!
//! The domain type is `kvm` when `/dev/kvm` opens and the CPU has hardware virtualisation (`vmx`/`svm`), else
//! `qemu` (TCG); the node configuration's `runtimes.vm.config.accel` (`auto`, `kvm`, `tcg`) overrides it.

pub mod accel;
pub mod domain;
pub mod libvirt;
pub mod migrate;
pub mod seed;
pub mod settings;
mod state;
pub mod volumes;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use fos_api::lifecycle::State;
use fos_api::manifest::{EntityKind, ImageFormat, Probe};
use fos_api::record::{DesiredInstance, InstanceId};
use ipnet::Ipv4Net;
use tokio::sync::watch;

use self::domain::{Accel, DirectBoot, Disk, DomainSpec, Nic};
use self::libvirt::{DomainState, Libvirt};
pub use self::settings::VmSettings;
use self::state::StateFile;
use crate::images::{ImageError, Images};
use crate::network::names;
use crate::runtime::{
    probe, Destination, InstanceContext, MigrationTicket, NodeLayout, Recovered, RunState, Runtime, RuntimeEnv,
    RuntimeError,
};
use fos_api::migration::MigrationMode;

/// Memory of a guest whose entity does not say (MiB).
const DEFAULT_MEMORY_MIB: u64 = 256;

/// How often a running domain's state is checked (a guest that powers off or crashes is seen within this).
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Builds the node's VM runtime (its registration in [`crate::runtime::RuntimeRegistry::builtin`]).
pub fn factory(env: &RuntimeEnv) -> Result<Arc<dyn Runtime>, RuntimeError> {
    let settings: VmSettings = if env.config.is_null() {
        VmSettings::default()
    } else {
        serde_json::from_value(env.config.clone())
            .map_err(|e| RuntimeError::Invalid(format!("runtimes.vm.config: {e}")))?
    };
    Ok(Arc::new(VmRuntime::new(settings, env)?) as Arc<dyn Runtime>)
}

/// One VM instance as the runtime holds it.
struct Vm {
    desired: DesiredInstance,
    run: watch::Sender<RunState>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(task) = self.watcher.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// The libvirt runtime.
pub struct VmRuntime {
    settings: VmSettings,
    accel: Accel,
    layout: NodeLayout,
    images: Images,
    stop_grace: Duration,
    libvirt: Libvirt,
    instances: Mutex<HashMap<InstanceId, Arc<Vm>>>,
}

impl VmRuntime {
    /// A runtime talking to the libvirt of `settings.uri`, keeping its instances under `<data>/vm`.
    pub fn new(settings: VmSettings, env: &RuntimeEnv) -> Result<Self, RuntimeError> {
        let root = env.layout.runtime_dir(EntityKind::Vm);
        std::fs::create_dir_all(&root).map_err(|e| RuntimeError::io(&root, e))?;
        Ok(VmRuntime {
            accel: accel::choose(settings.accel),
            libvirt: Libvirt::new(settings.uri.clone()),
            settings,
            layout: env.layout.clone(),
            images: env.images.clone(),
            stop_grace: env.stop_grace,
            instances: Mutex::new(HashMap::new()),
        })
    }

    /// KVM or TCG, as chosen at start.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The libvirt daemon the runtime drives.
    pub fn libvirt(&self) -> &Libvirt {
        &self.libvirt
    }

    /// The domain name of an instance: `fos-<scope>-<instance>`.
    pub fn domain_name(&self, id: &InstanceId) -> String {
        format!("{}{id}", self.domain_prefix())
    }

    fn domain_prefix(&self) -> String {
        format!("fos-{}-", self.layout.names().scope())
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Arc<Vm>>> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &InstanceId) -> Result<Arc<Vm>, RuntimeError> {
        self.map().get(id).cloned().ok_or_else(|| RuntimeError::NotDefined(id.clone()))
    }

    fn save(&self, cx: &InstanceContext, desired: &DesiredInstance, state: State) -> Result<(), RuntimeError> {
        let file = StateFile { desired: desired.clone(), state };
        state::save(&cx.dir, &file)
    }

    /// The guest's network interfaces: one tap per fos network on the network's bridge, with the MAC and address
    /// the network manager reserves for the instance.
    fn nics(&self, desired: &DesiredInstance) -> Result<Vec<Nic>, RuntimeError> {
        let id = &desired.id;
        let mut nics = Vec::new();
        for (index, a) in desired.entity.networks.iter().enumerate() {
            let net = crate::network::NetworkName::new(&id.tenant, &a.network);
            let spec = desired.networks.get(&a.network);
            let prefix = spec
                .and_then(|s| s.ip_range.as_deref())
                .and_then(|r| r.parse::<Ipv4Net>().ok())
                .map(|n| n.prefix_len());
            let ip = a.ip.as_ref().or_else(|| desired.addresses.get(&a.network));
            let address = match (ip, prefix) {
                (Some(ip), Some(prefix)) => {
                    let ip: Ipv4Addr =
                        ip.parse().map_err(|e| RuntimeError::Invalid(format!("address {ip} of {net}: {e}")))?;
                    Ipv4Net::new(ip, prefix).ok()
                }
                _ => None,
            };
            let mac = match &a.mac {
                Some(text) => names::parse_mac(text)
                    .ok_or_else(|| RuntimeError::Invalid(format!("MAC {text} is not six hex bytes")))?,
                None => names::instance_mac(id, index),
            };
            let bridge = self.layout.names().bridge(&net);
            let mtu = std::fs::read_to_string(format!("/sys/class/net/{bridge}/mtu"))
                .ok()
                .and_then(|m| m.trim().parse().ok());
            nics.push(Nic {
                tap: self.layout.names().host_veth(id, index),
                bridge,
                mac: names::format_mac(&mac),
                address,
                gateway: spec.and_then(|s| s.gateway.as_deref()).and_then(|g| g.parse().ok()),
                mtu,
            });
        }
        Ok(nics)
    }

    /// The domain of an instance: its images made local, its disk an overlay of its own.
    async fn domain_spec(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<DomainSpec, RuntimeError> {
        let entity = &desired.entity;
        let nics = self.nics(desired)?;
        let boot = match &entity.kernel {
            Some(kernel) => Some(DirectBoot {
                kernel: self.images.ensure(kernel).await.map_err(image_error)?.path,
                initrd: match &entity.initrd {
                    Some(initrd) => Some(self.images.ensure(initrd).await.map_err(image_error)?.path),
                    None => None,
                },
                cmdline: domain::kernel_cmdline(entity.cmdline.as_deref(), &nics),
            }),
            None => None,
        };
        let mut disks = Vec::new();
        if let Some(image) = &entity.image {
            let local = self.images.ensure(image).await.map_err(image_error)?;
            disks.push(match local.format {
                ImageFormat::Iso => Disk { path: local.path, format: "raw".into(), cdrom: true },
                ImageFormat::Qcow2 | ImageFormat::Raw => {
                    let overlay = cx.dir.join("disk.qcow2");
                    self.overlay(&local.path, local.format, &overlay, entity.disk_bytes()).await?;
                    Disk { path: overlay, format: "qcow2".into(), cdrom: false }
                }
                ImageFormat::TarGz => {
                    return Err(RuntimeError::Invalid(format!("image {image} is a tarball, not a disk")));
                }
            });
        }
        disks.extend(volumes::disks(&self.settings.qemu_img, cx, entity).await?);
        disks.extend(seed::disk(&self.settings.genisoimage, cx, desired).await?);
        let vcpus = entity.cpu.unwrap_or_else(|| entity.cpu_millis().div_ceil(1000).max(1) as u32);
        let memory = entity.memory_bytes();
        Ok(DomainSpec {
            name: self.domain_name(&desired.id),
            accel: self.accel,
            vcpus,
            memory_mib: if memory == 0 { DEFAULT_MEMORY_MIB } else { memory.div_ceil(1 << 20) },
            boot,
            disks,
            nics,
            console: cx.logs.stdout.clone(),
        })
    }

    /// Makes `overlay` a qcow2 copy-on-write layer over `base` (grown to `size` bytes when larger), once.
    async fn overlay(
        &self,
        base: &std::path::Path,
        format: ImageFormat,
        overlay: &std::path::Path,
        size: u64,
    ) -> Result<(), RuntimeError> {
        if overlay.exists() {
            return Ok(());
        }
        let tmp = overlay.with_extension("qcow2.tmp");
        let mut cmd = tokio::process::Command::new(&self.settings.qemu_img);
        cmd.args(["create", "-q", "-f", "qcow2", "-F", format.as_str(), "-b"]).arg(base).arg(&tmp);
        if size > 0 {
            cmd.arg(size.to_string());
        }
        let out = cmd
            .output()
            .await
            .map_err(|source| RuntimeError::Spawn { command: self.settings.qemu_img.clone(), source })?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(RuntimeError::Failed(format!(
                "qemu-img create over {}: {}",
                base.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        std::fs::rename(&tmp, overlay).map_err(|e| RuntimeError::io(overlay, e))
    }

    /// Follows a running domain: when it stops by itself (powered off, crashed, destroyed by hand), the instance's
    /// run state says it exited.
    fn watch(&self, vm: &Arc<Vm>) {
        let libvirt = self.libvirt.clone();
        let name = self.domain_name(&vm.desired.id);
        let run = vm.run.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                if !matches!(*run.borrow(), RunState::Running { .. }) {
                    return;
                }
                match libvirt.state(&name).await {
                    Ok(DomainState::Running | DomainState::Paused) | Err(_) => continue,
                    Ok(_) => {
                        run.send_replace(RunState::Exited {
                            status: None,
                            signal: None,
                            oom_killed: false,
                            at: Utc::now(),
                        });
                        return;
                    }
                }
            }
        });
        if let Some(old) = vm.watcher.lock().unwrap_or_else(|e| e.into_inner()).replace(task) {
            old.abort();
        }
    }

    fn guest_address(&self, id: &InstanceId) -> Option<Ipv4Addr> {
        let vm = self.map().get(id).cloned()?;
        self.nics(&vm.desired).ok()?.iter().find_map(|n| n.address.map(|a| a.addr()))
    }
}

fn image_error(e: ImageError) -> RuntimeError {
    if e.is_transient() {
        RuntimeError::Failed(e.to_string())
    } else {
        RuntimeError::Invalid(e.to_string())
    }
}

fn check_vm(desired: &DesiredInstance) -> Result<(), RuntimeError> {
    let entity = &desired.entity;
    if entity.kind != EntityKind::Vm {
        return Err(RuntimeError::Invalid(format!("a {} entity cannot run as a VM", entity.kind)));
    }
    if entity.image.is_none() && entity.kernel.is_none() {
        return Err(RuntimeError::Invalid("a vm entity needs an image or a kernel".into()));
    }
    if matches!(entity.readiness, Some(Probe::Exec(_))) {
        return Err(RuntimeError::Unsupported("an exec readiness probe on a VM (use tcp or http)"));
    }
    if !entity.ports.is_empty() && entity.networks.is_empty() {
        return Err(RuntimeError::Unsupported("exposing a port of a VM without a fos network"));
    }
    Ok(())
}

#[async_trait]
impl Runtime for VmRuntime {
    fn kind(&self) -> EntityKind {
        EntityKind::Vm
    }

    fn detail(&self) -> Option<String> {
        Some(format!("{} on {}", self.accel.as_str(), self.libvirt.uri()))
    }

    async fn probe(&self) -> Result<(), RuntimeError> {
        self.libvirt.capabilities().await.map(|_| ())
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        let root = self.layout.runtime_dir(EntityKind::Vm);
        let entries = std::fs::read_dir(&root).map_err(|e| RuntimeError::io(&root, e))?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let Ok(file) = state::load(&entry.path()) else { continue };
            let id = file.desired.id.clone();
            if self.map().contains_key(&id) {
                continue;
            }
            let name = self.domain_name(&id);
            let domain = self.libvirt.state(&name).await?;
            let state = match (file.state, domain) {
                (State::Running | State::Paused, DomainState::Running) => State::Running,
                (State::Running | State::Paused, DomainState::Paused) => State::Paused,
                (State::Running | State::Paused, _) => State::Configured,
                (State::Configured, DomainState::Absent) => State::Defined,
                (other, _) => other,
            };
            let (run, _) = watch::channel(RunState::Idle);
            let vm = Arc::new(Vm { desired: file.desired.clone(), run, watcher: Mutex::new(None) });
            let started_at = matches!(state, State::Running | State::Paused).then(Utc::now);
            if let Some(at) = started_at {
                vm.run.send_replace(RunState::Running { pid: 0, started_at: at });
                self.watch(&vm);
                tracing::info!(instance = %id, domain = %name, "adopted running domain");
            }
            if state != file.state {
                let cx = self.layout.context(&file.desired);
                self.save(&cx, &file.desired, state)?;
            }
            self.map().insert(id, vm);
            found.push(Recovered { desired: file.desired, state, pid: None, started_at });
        }
        Ok(found)
    }

    async fn define(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        check_vm(desired)?;
        std::fs::create_dir_all(&cx.logs.dir).map_err(|e| RuntimeError::io(&cx.logs.dir, e))?;
        self.save(cx, desired, State::Defined)?;
        let (run, _) = watch::channel(RunState::Idle);
        let vm = Arc::new(Vm { desired: desired.clone(), run, watcher: Mutex::new(None) });
        self.map().insert(desired.id.clone(), vm);
        Ok(())
    }

    async fn configure(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        check_vm(desired)?;
        self.get(&desired.id)?;
        std::fs::create_dir_all(&cx.logs.dir).map_err(|e| RuntimeError::io(&cx.logs.dir, e))?;
        let spec = self.domain_spec(cx, desired).await?;
        let xml = spec.to_xml();
        let path = cx.dir.join("domain.xml");
        std::fs::write(&path, &xml).map_err(|e| RuntimeError::io(&path, e))?;
        self.libvirt.define(&spec.name, xml).await?;
        let (run, _) = watch::channel(RunState::Idle);
        let vm = Arc::new(Vm { desired: desired.clone(), run, watcher: Mutex::new(None) });
        self.map().insert(desired.id.clone(), vm);
        self.save(cx, desired, State::Configured)
    }

    async fn run(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        let vm = self.get(&desired.id)?;
        let name = self.domain_name(&desired.id);
        if self.libvirt.state(&name).await? == DomainState::Absent {
            let path = cx.dir.join("domain.xml");
            let xml = std::fs::read_to_string(&path).map_err(|e| RuntimeError::io(&path, e))?;
            self.libvirt.define(&name, xml).await?;
        }
        self.libvirt.start(&name).await?;
        vm.run.send_replace(RunState::Running { pid: 0, started_at: Utc::now() });
        self.watch(&vm);
        self.save(cx, desired, State::Running)
    }

    async fn stop(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let vm = self.get(&cx.id)?;
        let name = self.domain_name(&cx.id);
        vm.run.send_replace(RunState::Idle);
        // A paused guest cannot hear the power button.
        if self.libvirt.state(&name).await? == DomainState::Paused {
            self.libvirt.resume(&name).await?;
        }
        self.libvirt.shutdown(&name).await?;
        let deadline = tokio::time::Instant::now() + self.stop_grace;
        while matches!(self.libvirt.state(&name).await?, DomainState::Running | DomainState::Paused) {
            if tokio::time::Instant::now() >= deadline {
                tracing::info!(instance = %cx.id, "guest did not power off within the grace period: destroyed");
                self.libvirt.destroy(&name).await?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.save(cx, &vm.desired, State::Configured)
    }

    async fn pause(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let vm = self.get(&cx.id)?;
        self.libvirt.suspend(&self.domain_name(&cx.id)).await?;
        self.save(cx, &vm.desired, State::Paused)
    }

    async fn resume(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let vm = self.get(&cx.id)?;
        self.libvirt.resume(&self.domain_name(&cx.id)).await?;
        self.save(cx, &vm.desired, State::Running)
    }

    async fn clean(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let vm = self.get(&cx.id)?;
        vm.run.send_replace(RunState::Idle);
        self.libvirt.undefine(&self.domain_name(&cx.id)).await?;
        seed::remove(&cx.dir);
        for file in ["disk.qcow2", "disk.qcow2.tmp", "domain.xml"] {
            let path = cx.dir.join(file);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(RuntimeError::io(&path, e)),
                _ => {}
            }
        }
        self.save(cx, &vm.desired, State::Defined)
    }

    async fn undefine(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        // Whatever is left (a domain defined by a step that failed half-way) goes too.
        self.libvirt.undefine(&self.domain_name(&cx.id)).await?;
        match std::fs::remove_dir_all(&cx.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(RuntimeError::io(&cx.dir, e)),
            _ => {}
        }
        self.map().remove(&cx.id);
        Ok(())
    }

    async fn status(&self, id: &InstanceId) -> Result<RunState, RuntimeError> {
        Ok(self.get(id)?.run.borrow().clone())
    }

    fn subscribe(&self, id: &InstanceId) -> Option<watch::Receiver<RunState>> {
        self.map().get(id).map(|vm| vm.run.subscribe())
    }

    async fn ready(&self, cx: &InstanceContext, desired: &DesiredInstance) -> bool {
        let running =
            self.map().get(&desired.id).is_some_and(|vm| matches!(*vm.run.borrow(), RunState::Running { .. }));
        match (&desired.entity.readiness, running) {
            (_, false) => false,
            (None, true) => true,
            (Some(p), true) => match self.guest_address(&desired.id) {
                Some(ip) => probe::check_at(p, IpAddr::V4(ip), &cx.dir).await,
                None => false,
            },
        }
    }

    fn addresses(&self, id: &InstanceId) -> Vec<String> {
        self.guest_address(id).map(|a| a.to_string()).into_iter().collect()
    }

    fn log_files(&self, cx: &InstanceContext) -> Vec<PathBuf> {
        vec![cx.logs.stdout.clone()]
    }

    fn prepares_destination(&self) -> bool {
        true
    }

    async fn migrate_prepare(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<String, RuntimeError> {
        self.prepare_incoming(cx, desired).await
    }

    /// Cold: stops the guest. Live: libvirt moves it, running, to the prepared destination ([`migrate`]).
    async fn migrate_out(
        &self,
        cx: &InstanceContext,
        to: &Destination,
        mode: MigrationMode,
    ) -> Result<MigrationTicket, RuntimeError> {
        match mode {
            MigrationMode::Cold => crate::runtime::depart_cold(self, cx).await,
            MigrationMode::Live => self.move_live(cx, to).await,
        }
    }

    async fn migrate_in(
        &self,
        cx: &InstanceContext,
        desired: &DesiredInstance,
        ticket: &MigrationTicket,
    ) -> Result<(), RuntimeError> {
        match ticket.location.is_empty() {
            true => self.run(cx, desired).await,
            false => self.adopt_moved(cx, desired, ticket).await,
        }
    }

    async fn migrate_abort(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        self.back_after_abort(cx, desired).await
    }
}

#[cfg(test)]
mod tests;
