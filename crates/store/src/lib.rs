//! The state store: one [`Store`] trait with etcd's semantics (revisions, prefix list, put/delete, compare-and-swap
//! transactions, watch from a revision, leases with TTL, leader election) so that everything above it runs
//! unchanged on the embedded backend (one node, nothing to install) or on an etcd cluster.

mod config;
pub mod election;
pub mod embedded;
pub mod etcd;
pub mod keepalive;
pub mod records;
pub mod seal;
#[cfg(feature = "testing")]
pub mod testing;
pub mod typed;
mod types;

pub use config::{open, StoreConfig};
pub use election::{Election, Leadership};
pub use embedded::{Durability, EmbeddedConfig, EmbeddedStore};
pub use etcd::{EtcdAuth, EtcdConfig, EtcdStats, EtcdStore, EtcdTls};
pub use keepalive::LeaseKeeper;
pub use records::{Kind, Records};

pub use types::{
    Compare, CompareTarget, Event, EventKind, KeyValue, LeaseId, ListResult, Revision, StoreError, Txn, TxnOp,
    TxnResult, WatchStream,
};

use std::time::Duration;

/// The most operations (compares plus writes) one transaction may hold: etcd's default `--max-txn-ops`. Writers
/// that may exceed it split their writes into guarded transactions of at most this many operations.
pub const MAX_TXN_OPS: usize = 128;

use async_trait::async_trait;

/// A key-value store with etcd's semantics. Keys are UTF-8 paths (`/fos/0/desired/...`), values are bytes (JSON
/// records in practice). Every change gets a new, strictly increasing store revision.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The value of `key`, if present.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Every key starting with `prefix`, in key order, with the revision the list was read at.
    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError>;

    /// Sets `key`, attached to `lease` when given (the key vanishes when the lease ends). Returns the new revision.
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision, StoreError>;

    /// Removes `key`. Returns the revision after the delete and whether the key existed.
    async fn delete(&self, key: &str) -> Result<(Revision, bool), StoreError>;

    /// Removes every key starting with `prefix`. Returns the revision after and how many keys were removed.
    async fn delete_prefix(&self, prefix: &str) -> Result<(Revision, u64), StoreError>;

    /// Runs `txn` atomically: if every compare holds, the success ops, else the failure ops.
    async fn txn(&self, txn: Txn) -> Result<TxnResult, StoreError>;

    /// Changes to keys under `prefix` from revision `from` (inclusive; 0 = from now on), in revision order.
    /// Fails with [`StoreError::Compacted`] when `from` is older than the retained history.
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError>;

    /// Grants a lease of `ttl`.
    async fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError>;

    /// Refreshes a lease for another TTL. Fails with [`StoreError::LeaseNotFound`] when it has expired.
    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError>;

    /// Ends a lease now, deleting its keys.
    async fn revoke(&self, lease: LeaseId) -> Result<(), StoreError>;

    /// Discards history older than `revision` (watches from an older revision then fail with
    /// [`StoreError::Compacted`]). At or below the current compaction point it does nothing; above the current
    /// revision it fails.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The current revision.
    async fn revision(&self) -> Result<Revision, StoreError>;
}
