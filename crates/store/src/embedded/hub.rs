//! The watch hub: one thread takes every committed revision from the writer and hands each watcher only the
//! changes under its prefix, found by looking up each prefix of a changed key (cost per change independent of the
//! number of watchers). A watcher whose queue is full is marked lagged and catches up from the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{broadcast, mpsc};

use super::writer::Committed;

/// How many revisions with changes under its prefix a watcher may have queued before it is marked lagged.
const QUEUE: usize = 1024;

/// What a watcher receives: a committed revision's changes under its prefix, or `None`: "you may have missed some;
/// catch up from the log".
pub type Delivery = Option<Arc<Committed>>;

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Delivery>,
    lagged: Arc<AtomicBool>,
}

/// The watchers of one store, by prefix.
#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    by_prefix: Mutex<HashMap<String, Vec<Subscriber>>>,
}

/// One watcher's end: its queue and lag flag; dropping it unregisters the watcher.
pub struct Subscription {
    hub: Arc<Hub>,
    prefix: String,
    id: u64,
    /// The deliveries, in revision order.
    pub rx: mpsc::Receiver<Delivery>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// Whether deliveries were dropped since the last call (the watcher must catch up from the log).
    pub fn take_lagged(&self) -> bool {
        self.lagged.swap(false, Ordering::AcqRel)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = self.hub.by_prefix.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(subs) = map.get_mut(&self.prefix) {
            subs.retain(|s| s.id != self.id);
            if subs.is_empty() {
                map.remove(&self.prefix);
            }
        }
    }
}

impl Hub {
    /// Registers a watcher of `prefix`: every revision dispatched from now on with a change under it is delivered.
    pub fn subscribe(self: &Arc<Self>, prefix: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let lagged = Arc::new(AtomicBool::new(false));
        let sub = Subscriber { id, tx, lagged: lagged.clone() };
        self.by_prefix.lock().unwrap_or_else(PoisonError::into_inner).entry(prefix.to_string()).or_default().push(sub);
        Subscription { hub: self.clone(), prefix: prefix.to_string(), id, rx, lagged }
    }

    /// Dispatches the writer's revisions until the writer is gone (then every watcher's queue closes).
    pub fn run(self: Arc<Self>, mut published: broadcast::Receiver<Arc<Committed>>) {
        loop {
            match published.blocking_recv() {
                Ok(committed) => self.dispatch(&committed),
                Err(broadcast::error::RecvError::Lagged(_)) => self.mark_all_lagged(),
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        self.by_prefix.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    fn dispatch(&self, committed: &Arc<Committed>) {
        let map = self.by_prefix.lock().unwrap_or_else(PoisonError::into_inner);
        if map.is_empty() {
            return;
        }
        // Per watcher (by prefix and position), the indexes of its changes.
        let mut matched: HashMap<(&str, usize), Vec<usize>> = HashMap::new();
        for (i, event) in committed.events.iter().enumerate() {
            let key = &event.kv.key;
            for end in (0..=key.len()).filter(|&end| key.is_char_boundary(end)) {
                if let Some((prefix, subs)) = map.get_key_value(&key[..end]) {
                    for n in 0..subs.len() {
                        matched.entry((prefix.as_str(), n)).or_default().push(i);
                    }
                }
            }
        }
        for ((prefix, n), indexes) in matched {
            let Some(sub) = map.get(prefix).and_then(|subs| subs.get(n)) else { continue };
            let delivery = if indexes.len() == committed.events.len() {
                committed.clone()
            } else {
                let events = indexes.iter().map(|&i| committed.events[i].clone()).collect();
                Arc::new(Committed { revision: committed.revision, events })
            };
            if sub.tx.try_send(Some(delivery)).is_err() {
                sub.lagged.store(true, Ordering::Release);
            }
        }
    }

    fn mark_all_lagged(&self) {
        let map = self.by_prefix.lock().unwrap_or_else(PoisonError::into_inner);
        for sub in map.values().flatten() {
            sub.lagged.store(true, Ordering::Release);
            let _ = sub.tx.try_send(None);
        }
    }
}
