//! Follows every node's actual instance records through one watch and keeps, per instance, the node it last
//! reached Running (and ready) on and when it first did.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fos_api::lifecycle::State;
use fos_api::record::InstanceId;
use fos_store::records::ActualInstances;
use fos_store::{EventKind, Records, Revision};
use futures::StreamExt;
use tokio::sync::Notify;

/// What the tracker has seen.
#[derive(Default)]
pub struct Seen {
    /// Per instance: the node it runs on now (None once it stopped running there) and when it first ran.
    pub running: HashMap<InstanceId, (Option<String>, Instant)>,
}

impl Seen {
    /// How many instances run on a node not in `dead`.
    pub fn running_outside(&self, dead: &HashSet<String>) -> usize {
        self.running.values().filter(|(node, _)| node.as_ref().is_some_and(|n| !dead.contains(n))).count()
    }
}

/// A running tracker.
#[derive(Clone)]
pub struct Tracker {
    /// What was seen so far.
    pub seen: Arc<Mutex<Seen>>,
    /// Notified on every change.
    pub changed: Arc<Notify>,
}

impl Tracker {
    /// Starts following the actual instance records written after `revision`.
    pub async fn start(records: Records, revision: Revision) -> anyhow::Result<Tracker> {
        let prefix = records.keys().actual_nodes_prefix();
        let mut stream = records.store().watch(&prefix, revision + 1).await?;
        let tracker = Tracker { seen: Arc::default(), changed: Arc::new(Notify::new()) };
        let t = tracker.clone();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                let Ok(event) = event else {
                    tracing::warn!("the tracker's watch failed");
                    return;
                };
                if event.kind != EventKind::Put {
                    continue;
                }
                let Some(Ok((_, entry))) = records.decode::<ActualInstances>(&event.kv) else { continue };
                let actual = entry.value;
                let running = actual.state() == Some(State::Running) && actual.ready;
                if let Ok(mut seen) = t.seen.lock() {
                    let now = Instant::now();
                    let slot = seen.running.entry(actual.id.clone());
                    match (running, slot) {
                        (true, std::collections::hash_map::Entry::Occupied(mut o)) => o.get_mut().0 = Some(actual.node),
                        (true, std::collections::hash_map::Entry::Vacant(v)) => {
                            v.insert((Some(actual.node), now));
                        }
                        (false, std::collections::hash_map::Entry::Occupied(mut o)) => {
                            if o.get().0.as_deref() == Some(actual.node.as_str()) {
                                o.get_mut().0 = None;
                            }
                        }
                        (false, std::collections::hash_map::Entry::Vacant(_)) => {}
                    }
                }
                t.changed.notify_waiters();
            }
        });
        Ok(tracker)
    }

    /// Waits until `done` holds of what was seen, or `deadline`; whether it held.
    pub async fn wait_for(&self, deadline: Instant, done: impl Fn(&Seen) -> bool) -> bool {
        loop {
            let notified = self.changed.notified();
            if self.seen.lock().map(|s| done(&s)).unwrap_or(false) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(std::time::Duration::from_millis(200)), notified).await;
        }
    }
}
