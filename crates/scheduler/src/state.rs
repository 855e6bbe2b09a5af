//! The working state of one scheduling run: free capacity as a copy-on-write overlay over the snapshot (so a run
//! over 5,000 nodes copies only the nodes it touches), device assignment, and where this application's instances
//! are. Cloning it is a cheap checkpoint for backtracking.

use std::collections::{BTreeMap, HashMap};

use fos_api::record::AssignedDevices;
use fos_api::InstanceId;

use crate::request::Needs;
use crate::snapshot::{Allocation, ClusterSnapshot, NodeFree, NodeIdx};

/// Free capacity and this application's placements during one run.
#[derive(Debug, Clone)]
pub struct Working<'s> {
    snapshot: &'s ClusterSnapshot,
    dirty: Vec<u64>,
    changed: HashMap<NodeIdx, NodeFree>,
    placed: BTreeMap<String, Vec<(u32, NodeIdx)>>,
}

impl<'s> Working<'s> {
    /// A fresh state: the snapshot's free capacity, nothing of the application placed.
    pub fn new(snapshot: &'s ClusterSnapshot) -> Self {
        Working {
            snapshot,
            dirty: vec![0; snapshot.len().div_ceil(64)],
            changed: HashMap::new(),
            placed: BTreeMap::new(),
        }
    }

    /// The snapshot this state overlays.
    pub fn snapshot(&self) -> &'s ClusterSnapshot {
        self.snapshot
    }

    /// What is free on node `n` now.
    #[inline]
    pub fn free(&self, n: NodeIdx) -> &NodeFree {
        if self.dirty[(n / 64) as usize] & (1 << (n % 64)) != 0 {
            if let Some(f) = self.changed.get(&n) {
                return f;
            }
        }
        self.snapshot.free(n)
    }

    fn free_mut(&mut self, n: NodeIdx) -> &mut NodeFree {
        self.dirty[(n / 64) as usize] |= 1 << (n % 64);
        let snapshot = self.snapshot;
        self.changed.entry(n).or_insert_with(|| snapshot.free(n).clone())
    }

    /// Reserves what `needs` asks on node `n` and assigns specific devices: the first free ones of each type, in
    /// the node's order. The caller has checked the node passes the filters.
    pub fn allocate(&mut self, n: NodeIdx, needs: &Needs) -> AssignedDevices {
        let node = self.snapshot.node(n);
        let mut devices = AssignedDevices::default();
        let free = self.free_mut(n);
        for (kind, number) in &needs.io {
            let mut left = *number;
            for (i, (k, name)) in node.io.iter().enumerate() {
                if left == 0 {
                    break;
                }
                if k == kind && !free.io_taken[i] {
                    devices.io.push(name.clone());
                    left -= 1;
                }
            }
        }
        for (kind, number) in &needs.accelerators {
            let mut left = *number;
            for (i, (k, name)) in node.accelerators.iter().enumerate() {
                if left == 0 {
                    break;
                }
                if k == kind && !free.accelerators_taken[i] {
                    devices.accelerators.push(name.clone());
                    left -= 1;
                }
            }
        }
        free.take(node, needs.cpu_millis, needs.memory_bytes, needs.disk_bytes, &devices);
        devices
    }

    /// Takes what an allocation holds (an existing instance the snapshot does not know yet).
    pub fn take(&mut self, a: &Allocation) {
        if let Some(n) = self.snapshot.index_of(&a.node) {
            let node = self.snapshot.node(n);
            self.free_mut(n).take(node, a.cpu_millis, a.memory_bytes, a.disk_bytes, &a.devices);
        }
    }

    /// Gives back what an allocation holds (an instance being moved away).
    pub fn give_back(&mut self, a: &Allocation) {
        if let Some(n) = self.snapshot.index_of(&a.node) {
            let node = self.snapshot.node(n);
            self.free_mut(n).give_back(node, a.cpu_millis, a.memory_bytes, a.disk_bytes, &a.devices);
        }
    }

    /// Records that instance `id` of this application is on node `n`.
    pub fn record(&mut self, id: &InstanceId, n: NodeIdx) {
        let list = self.placed.entry(id.component.clone()).or_default();
        list.retain(|(r, _)| *r != id.replica);
        list.push((id.replica, n));
        list.sort_unstable();
    }

    /// Forgets where instance `id` is.
    pub fn unrecord(&mut self, id: &InstanceId) {
        if let Some(list) = self.placed.get_mut(&id.component) {
            list.retain(|(r, _)| *r != id.replica);
        }
    }

    /// Placed instances of `component` (replica, node), by replica.
    pub fn placed(&self, component: &str) -> &[(u32, NodeIdx)] {
        self.placed.get(component).map(Vec::as_slice).unwrap_or(&[])
    }

    /// How many instances of `component` are on node `n`.
    pub fn count_on(&self, component: &str, n: NodeIdx) -> usize {
        self.placed(component).iter().filter(|(_, m)| *m == n).count()
    }
}
