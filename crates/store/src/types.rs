//! The values the [`crate::Store`] trait speaks in: key-values with revisions, transactions, watch events, leases
//! and the store's errors.

use std::pin::Pin;

use futures::Stream;
use thiserror::Error;

/// A store revision: increases by one with every change.
pub type Revision = i64;

/// A lease id.
pub type LeaseId = i64;

/// A key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// Revision of the key's creation.
    pub create_revision: Revision,
    /// Revision of the key's last change.
    pub mod_revision: Revision,
    /// The lease the key is attached to (0: none).
    pub lease: LeaseId,
}

/// The result of a `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// The keys found, in key order.
    pub kvs: Vec<KeyValue>,
    /// The store revision the list was read at; watch from `revision + 1` to miss nothing.
    pub revision: Revision,
}

/// What a transaction compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's mod revision equals this (0: the key does not exist).
    ModRevision(Revision),
    /// The key's create revision equals this (0: the key does not exist).
    CreateRevision(Revision),
    /// The key's value equals this.
    Value(Vec<u8>),
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The key compared.
    pub key: String,
    /// What must hold.
    pub target: CompareTarget,
}

impl Compare {
    /// `key` does not exist.
    pub fn absent(key: impl Into<String>) -> Self {
        Compare { key: key.into(), target: CompareTarget::CreateRevision(0) }
    }

    /// `key` was last changed at `rev`.
    pub fn mod_revision(key: impl Into<String>, rev: Revision) -> Self {
        Compare { key: key.into(), target: CompareTarget::ModRevision(rev) }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Set a key (optionally on a lease).
    Put {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// Lease, if any.
        lease: Option<LeaseId>,
    },
    /// Delete a key.
    Delete {
        /// Key.
        key: String,
    },
    /// Delete every key under a prefix.
    DeletePrefix {
        /// Prefix.
        prefix: String,
    },
    /// Read a key (its value is returned in the result).
    Get {
        /// Key.
        key: String,
    },
}

/// A compare-and-swap transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions, all of which must hold.
    pub compare: Vec<Compare>,
    /// Operations when they hold.
    pub success: Vec<TxnOp>,
    /// Operations when they do not.
    pub failure: Vec<TxnOp>,
}

/// The result of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether the compares held (and the success ops ran).
    pub succeeded: bool,
    /// The store revision after the transaction.
    pub revision: Revision,
    /// The values read by `Get` ops, in order (`None`: key absent).
    pub gets: Vec<Option<KeyValue>>,
}

/// Whether a watch event is a put or a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or changed.
    Put,
    /// The key was deleted (explicitly or by lease expiry).
    Delete,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change (for a delete: the key, an empty value, `mod_revision` = the delete's revision).
    pub kv: KeyValue,
}

/// A stream of watch events, ending only on error or when dropped.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event, StoreError>> + Send>>;

/// What can go wrong talking to a store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The requested revision was compacted away; re-list and watch from the list's revision + 1.
    #[error("revision {requested} has been compacted (oldest retained: {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compaction revision.
        compacted: Revision,
    },
    /// The lease does not exist (expired or revoked).
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    /// The store could not be reached or failed on every endpoint.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The embedded database failed.
    #[error("embedded store: {0}")]
    Database(String),
    /// A record could not be encoded or decoded.
    #[error("record at {key}: {message}")]
    Codec {
        /// The key.
        key: String,
        /// What failed.
        message: String,
    },
    /// A compare-and-swap update kept losing to other writers.
    #[error("{0}")]
    Conflict(String),
    /// Another process owns the embedded store's file.
    #[error("the store at {0} is in use by another process")]
    Locked(String),
    /// Any other backend failure.
    #[error("{0}")]
    Other(String),
}
