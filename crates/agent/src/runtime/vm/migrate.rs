//! Live migration of a VM by libvirt, between the libvirt daemons of two nodes.
//!
//! 1. **Prepare** (destination, asked by the source before anything stops): the instance's images made local, its
//!    disk overlay, its volumes' disks (empty, of the same size) and its seed made here as configure makes them, and
//!    the domain's definition with this node's paths written; the answer ([`Landing`]) says how the source's libvirt
//!    reaches this node's (`runtimes.vm.config.migrationUri`, default `uri`), where QEMU sends the data
//!    (`migrationAddress`, default the host name libvirt knows), the domain's name here and that definition.
//! 2. **Move** (source): libvirt's peer-to-peer live migration to that daemon with that definition (the domain's
//!    UUID kept): memory, and the top of each writable disk (the overlay and the volumes' disks; base images are on
//!    the destination already) are copied while the guest runs, then the guest is paused for the switch-over (at
//!    most `migrationMaxDowntimeMs`, default 50 ms; a guest dirtying memory faster than it moves is slowed down
//!    until it fits; libvirt's reported downtime goes in the ticket) and runs on the destination. The domain here is shut off, its
//!    definition kept until the departure cleans it. Nothing is streamed after: the ticket starts with
//!    [`MOVED_BY_RUNTIME`].
//! 3. **Adopt** (destination, once its desired record arrived and configure defined the domain): the running
//!    domain is followed like one found after a restart. Were it not there, the instance starts on its disks.
//!
//! A move that fails leaves the guest running on the source (libvirt resumes it there); the migration is given up
//! or tried again, and [`VmRuntime::back_after_abort`] follows the guest again where it runs.

use chrono::Utc;
use fos_api::migration::{moved_by_runtime, MOVED_BY_RUNTIME};
use fos_api::record::DesiredInstance;
use serde::{Deserialize, Serialize};

use super::libvirt::{DomainState, MigrateTo};
use super::{check_vm, domain, VmRuntime};
use crate::runtime::{Destination, InstanceContext, MigrationTicket, RunState, Runtime, RuntimeError};
use fos_api::lifecycle::State;

/// What a destination prepared for an incoming VM answers the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Landing {
    /// The destination's libvirt daemon, as the source's reaches it.
    pub uri: String,
    /// Where QEMU sends the migration's data (default: libvirt's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The domain's name there.
    pub name: String,
    /// The domain's definition there.
    pub xml: String,
}

impl VmRuntime {
    /// Destination: makes ready what the incoming instance needs here and answers the [`Landing`] (JSON).
    pub(super) async fn prepare_incoming(
        &self,
        cx: &InstanceContext,
        desired: &DesiredInstance,
    ) -> Result<String, RuntimeError> {
        check_vm(desired)?;
        std::fs::create_dir_all(&cx.logs.dir).map_err(|e| RuntimeError::io(&cx.logs.dir, e))?;
        let spec = self.domain_spec(cx, desired).await?;
        let xml = spec.to_xml();
        let path = cx.dir.join("domain.xml");
        std::fs::write(&path, &xml).map_err(|e| RuntimeError::io(&path, e))?;
        let landing = Landing {
            uri: self.settings.migration_uri.clone().unwrap_or_else(|| self.libvirt.uri().to_string()),
            address: self.settings.migration_address.clone(),
            name: spec.name,
            xml,
        };
        serde_json::to_string(&landing).map_err(|e| RuntimeError::Failed(format!("the landing answer: {e}")))
    }

    /// Source: moves the running guest to the prepared destination `to` with libvirt.
    pub(super) async fn move_live(
        &self,
        cx: &InstanceContext,
        to: &Destination,
    ) -> Result<MigrationTicket, RuntimeError> {
        let prepared = to.prepared.as_deref().ok_or_else(|| {
            RuntimeError::Failed(format!("{} did not prepare the VM's arrival (needed to move it live)", to.node))
        })?;
        let landing: Landing = serde_json::from_str(prepared)
            .map_err(|e| RuntimeError::Failed(format!("{}'s answer to the preparation: {e}", to.node)))?;
        let vm = self.get(&cx.id)?;
        let name = self.domain_name(&cx.id);
        let uuid = self
            .libvirt
            .uuid(&name)
            .await?
            .ok_or_else(|| RuntimeError::Failed(format!("domain {name} is not defined here")))?;
        // libvirt wants the definition under the source's name and UUID, the name there given apart.
        let xml = domain::renamed(&landing.xml, &landing.name, &name, &uuid);
        let max_downtime_ms = Some(self.settings.migration_max_downtime_ms);
        let target = MigrateTo { uri: landing.uri, address: landing.address, name: landing.name, xml, max_downtime_ms };
        // The guest stops being followed here: the domain shut off by the move is not an exit.
        let before = vm.run.send_replace(RunState::Idle);
        match self.libvirt.migrate(&name, target.clone()).await {
            Ok(stats) => {
                tracing::info!(instance = %cx.id, domain = %name, destination = %to.node,
                    downtime_ms = ?stats.downtime_ms, elapsed_ms = ?stats.elapsed_ms,
                    memory_bytes = ?stats.memory_bytes, disk_bytes = ?stats.disk_bytes, "moved live by libvirt");
                self.save(cx, &vm.desired, State::Configured)?;
                let mut location = format!("{MOVED_BY_RUNTIME}libvirt");
                for (key, value) in [
                    ("downtimeMs", stats.downtime_ms),
                    ("elapsedMs", stats.elapsed_ms),
                    ("diskBytes", stats.disk_bytes),
                ] {
                    if let Some(v) = value {
                        location.push_str(&format!(" {key}={v}"));
                    }
                }
                Ok(MigrationTicket { location })
            }
            Err(e) => {
                // libvirt resumed the guest here: followed again.
                if matches!(self.libvirt.state(&name).await, Ok(DomainState::Running | DomainState::Paused)) {
                    vm.run.send_replace(before);
                    self.watch(&vm);
                }
                Err(e)
            }
        }
    }

    /// Destination: follows the guest the move brought here (else starts the instance on its disks).
    pub(super) async fn adopt_moved(
        &self,
        cx: &InstanceContext,
        desired: &DesiredInstance,
        ticket: &MigrationTicket,
    ) -> Result<(), RuntimeError> {
        if !moved_by_runtime(Some(&ticket.location)) {
            return Err(RuntimeError::Unsupported("restoring a VM from a checkpoint"));
        }
        self.follow_or_run(cx, desired, "arrived by live migration").await
    }

    /// Source, the migration given up: follows the guest where it still runs, else starts it again.
    pub(super) async fn back_after_abort(
        &self,
        cx: &InstanceContext,
        desired: &DesiredInstance,
    ) -> Result<(), RuntimeError> {
        self.follow_or_run(cx, desired, "still running after a given-up migration").await
    }

    async fn follow_or_run(
        &self,
        cx: &InstanceContext,
        desired: &DesiredInstance,
        why: &str,
    ) -> Result<(), RuntimeError> {
        let name = self.domain_name(&desired.id);
        match self.libvirt.state(&name).await? {
            DomainState::Running | DomainState::Paused => {
                self.libvirt.resume(&name).await?;
                let vm = self.get(&desired.id)?;
                vm.run.send_replace(RunState::Running { pid: 0, started_at: Utc::now() });
                self.watch(&vm);
                tracing::info!(instance = %desired.id, domain = %name, "guest {why}: followed");
                self.save(cx, desired, State::Running)
            }
            _ => {
                tracing::warn!(instance = %desired.id, domain = %name, "no guest {why}: started on its disks");
                self.run(cx, desired).await
            }
        }
    }
}
