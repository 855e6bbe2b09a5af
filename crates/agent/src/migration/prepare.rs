//! The destination's first step of a live migration whose runtime asks for it (a VM, which libvirt moves running; a
//! container, whose image is fetched ahead): before the source takes anything off, the source asks this node (over
//! the node API) to prepare the incoming instance. A VM is attached to its networks here (the driver's networking:
//! bridges, its reserved addresses), and the runtime of its kind makes ready what it needs — its volumes'
//! directories, disks and images — and answers what the source's runtime needs to send it there. Nothing runs yet:
//! the instance's desired record comes here only once the source reports the move done.

use fos_api::record::DesiredInstance;

use super::{Inbox, InboxError};

impl Inbox {
    /// Prepares the incoming instance `desired` of `migration` with its kind's runtime; answers what that runtime
    /// said, for the source.
    pub async fn prepare(&self, migration: &str, desired: &DesiredInstance) -> Result<String, InboxError> {
        Self::check(migration)?;
        let kind = desired.entity.kind;
        let runtime = self.runtimes.get(&kind).cloned().ok_or(InboxError::NoRuntime(kind))?;
        let cx = self.layout.context(desired);
        for dir in cx.volumes.values() {
            std::fs::create_dir_all(dir).map_err(|source| InboxError::Io { path: dir.clone(), source })?;
        }
        // A VM's networks here (bridges, its reserved addresses) before libvirt moves it onto them; configure, once
        // it lands, finds them attached. A process's or container's namespace would answer for its address while
        // the source still serves it: those are attached at Landing.
        if desired.entity.kind == fos_api::manifest::EntityKind::Vm && !desired.entity.networks.is_empty() {
            let networking = self.networking.as_ref().ok_or_else(|| InboxError::Attach("no network manager".into()))?;
            networking.attach(desired).await.map_err(|e| InboxError::Attach(e.to_string()))?;
        }
        tracing::info!(instance = %desired.id, %migration, "preparing an incoming live migration");
        runtime.migrate_prepare(&cx, desired).await.map_err(InboxError::Prepare)
    }
}
