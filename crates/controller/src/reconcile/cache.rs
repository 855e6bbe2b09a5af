//! The controller's cache (kube-runtime's reflector): a [`ClusterView`] read once when leadership starts, then kept
//! current by the watch of the system's keys, so a pass reads memory instead of the whole store.
//!
//! The controller's own writes go into the cache as soon as they are decided ([`Cache::apply_ahead`]), before their
//! transaction is in, so the next object reconciled sees them (an application placed right after another sees the
//! capacity the first one took) while both commits are in flight together. A commit that went in is confirmed with
//! its revision ([`Cache::confirm`]); one that did not is undone by reading its keys again ([`Cache::reload`]). The
//! watch delivers the writes again later; an event at or below the revision the cache already holds for its key
//! is skipped, so a late event never takes the cache back.

use std::collections::HashMap;

use fos_api::keys::KeyRef;
use fos_store::records::{
    ActualInstances, Addresses, AppStatuses, Apps, Cordons, DesiredInstances, Migrations, NodeLosses,
};
use fos_store::{Event, EventKind, Records, Revision, StoreError};

use super::Write;
use crate::view::{ClusterView, Touched};

/// A cluster view kept current from the watch.
pub struct Cache {
    records: Records,
    view: ClusterView,
    /// Keys written by the controller whose watch event has not arrived yet, with the revision written.
    ahead: HashMap<String, Revision>,
    /// What the controller's own removals touched, for the other reconcilers to look at (their watch events are
    /// skipped as already seen).
    touched: Vec<Touched>,
}

impl Cache {
    /// A cache starting from `view`.
    pub fn new(records: Records, view: ClusterView) -> Self {
        Cache { records, view, ahead: HashMap::new(), touched: Vec::new() }
    }

    /// The cached view.
    pub fn view(&self) -> &ClusterView {
        &self.view
    }

    /// Brings the scheduler's snapshot up to date with the nodes (after a node changed what placement looks at, or
    /// always when `resync`).
    pub fn prepare(&mut self, resync: bool) {
        self.view.refresh_snapshot_if(resync);
    }

    /// Applies a watch event; what it touched (nothing for an event the cache is already past).
    pub fn on_event(&mut self, event: &Event) -> Touched {
        let key = &event.kv.key;
        if let Some(&written) = self.ahead.get(key) {
            if event.kv.mod_revision >= written {
                self.ahead.remove(key);
            }
            if event.kv.mod_revision <= written {
                return Touched::Nothing;
            }
        }
        match event.kind {
            EventKind::Put => self.view.put(&self.records, &event.kv),
            EventKind::Delete => self.view.delete(&self.records, key),
        }
    }

    /// Records that `writes` (applied ahead) went in at `revision`: their watch events, up to it, are skipped.
    pub fn confirm(&mut self, writes: &[Write], revision: Revision) {
        // An application record rewritten is not in the view yet: its watch event is not skipped.
        for w in writes.iter().filter(|w| !matches!(w, Write::PutApp(..))) {
            self.ahead.insert(self.key_of(w), revision);
        }
    }

    /// Undoes `writes` (applied ahead, whose transaction did not go in, or only in part): each key is read again from
    /// the store and the view takes what is there now.
    pub async fn reload(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        for w in writes {
            let key = self.key_of(w);
            let touched = match self.records.store().get(&key).await? {
                Some(kv) => {
                    self.ahead.insert(key, kv.mod_revision);
                    self.view.put(&self.records, &kv)
                }
                None => self.view.delete(&self.records, &key),
            };
            if touched != Touched::Nothing {
                self.touched.push(touched);
            }
        }
        Ok(())
    }

    /// The store key a write goes to.
    fn key_of(&self, w: &Write) -> String {
        match w {
            Write::PutDesired(d) => self.records.key::<DesiredInstances>(&(d.node.clone(), d.id.clone())),
            Write::DeleteDesired { node, id } => self.records.key::<DesiredInstances>(&(node.clone(), id.clone())),
            Write::DeleteActual { node, id } => self.records.key::<ActualInstances>(&(node.clone(), id.clone())),
            Write::PutLoss(node, _) | Write::DeleteLoss(node) => self.records.key::<NodeLosses>(node),
            Write::PutStatus(app, _) | Write::DeleteStatus(app) => self.records.key::<AppStatuses>(app),
            Write::DeleteApp(app) | Write::PutApp(app, _) => self.records.key::<Apps>(app),
            Write::PutMigration(m) => self.records.key::<Migrations>(&m.instance),
            Write::TakeAddress { network, ip, .. } | Write::ReleaseAddress { network, ip } => {
                self.records.key::<Addresses>(&(network.clone(), *ip))
            }
        }
    }

    /// Applies the controller's own writes to the view before they are committed (what they touched is kept for
    /// [`Cache::take_touched`]).
    pub fn apply_ahead(&mut self, writes: &[Write]) {
        for w in writes {
            match w {
                Write::PutDesired(d) => {
                    self.view.put_desired((**d).clone());
                }
                Write::DeleteDesired { id, .. } => {
                    self.view.remove_desired(id);
                    self.touched.push(Touched::Desired(id.clone()));
                }
                Write::DeleteActual { node, id } => {
                    if self.view.actual.get(id).is_some_and(|a| &a.node == node) {
                        self.view.actual.remove(id);
                    }
                    self.touched.push(Touched::Actual(id.clone()));
                }
                Write::PutLoss(node, loss) => {
                    self.view.set_loss(node, Some(loss.clone()));
                    self.touched.push(Touched::NodeMark(node.clone()));
                }
                Write::DeleteLoss(node) => {
                    self.view.set_loss(node, None);
                    self.touched.push(Touched::NodeMark(node.clone()));
                }
                Write::PutStatus(app, status) => {
                    self.view.statuses.insert(app.clone(), (**status).clone());
                }
                Write::DeleteStatus(app) => {
                    self.view.statuses.remove(app);
                }
                Write::DeleteApp(app) => {
                    self.view.apps.remove(app);
                }
                // Its revision is known once it is in: the watch brings it (see `confirm`).
                Write::PutApp(..) => {}
                Write::PutMigration(m) => {
                    self.view.migrations.insert(m.instance.clone(), (**m).clone());
                }
                Write::TakeAddress { network, ip, holder } => {
                    self.view.addresses.insert((network.clone(), *ip), holder.clone());
                }
                Write::ReleaseAddress { network, ip } => {
                    self.view.addresses.remove(&(network.clone(), *ip));
                }
            }
        }
    }

    /// What the controller's own removals touched since the last call.
    pub fn take_touched(&mut self) -> Vec<Touched> {
        std::mem::take(&mut self.touched)
    }

    /// Whether `key` is one of the control plane's keys (the others never touch the view).
    pub fn is_relevant(&self, key: &str) -> bool {
        if self.records.parse::<Cordons>(key).is_some()
            || self.records.parse::<NodeLosses>(key).is_some()
            || self.records.parse::<Migrations>(key).is_some()
        {
            return true;
        }
        self.records.parse::<Addresses>(key).is_some()
            || !matches!(self.records.keys().parse(key), None | Some(KeyRef::ActualNetwork { .. }))
    }
}
