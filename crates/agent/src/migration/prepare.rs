//! The destination's first step of a live migration whose runtime moves the running instance itself (a VM by
//! libvirt): before the source takes anything off, the source asks this node (over the node API) to prepare the
//! incoming instance: it is attached to its networks here (the driver's networking: bridges, its reserved addresses),
//! and the runtime of its kind makes ready what it needs — its volumes' directories, disks and images — and answers
//! what the source's runtime needs to send it there. Nothing runs yet: the instance's desired record comes here only
//! once the source reports the move done.

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
        if !desired.entity.networks.is_empty() {
            // Its networks here (bridges, its reserved addresses) before anything moves; configure, once it lands,
            // finds them attached.
            let networking = self.networking.as_ref().ok_or_else(|| InboxError::Attach("no network manager".into()))?;
            networking.attach(desired).await.map_err(|e| InboxError::Attach(e.to_string()))?;
        }
        tracing::info!(instance = %desired.id, %migration, "preparing an incoming live migration");
        runtime.migrate_prepare(&cx, desired).await.map_err(InboxError::Prepare)
    }
}
