//! Typed access to the store: the JSON records of `fos_api` read and written by key, a compare-and-swap update
//! helper (read, modify, write, retry on conflict), and listing by `afos://` / `dfos://` URI.

use fos_api::StoreUri;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Compare, KeyValue, LeaseId, ListResult, Revision, Store, StoreError, Txn, TxnOp};

/// A decoded record with the revisions of its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The key.
    pub key: String,
    /// The record.
    pub value: T,
    /// The revision the key was created at.
    pub create_revision: Revision,
    /// The revision the key was last changed at (the CAS token).
    pub mod_revision: Revision,
}

/// Decodes a key-value's JSON value.
pub fn decode<T: DeserializeOwned>(kv: KeyValue) -> Result<Versioned<T>, StoreError> {
    let value = serde_json::from_slice(&kv.value)
        .map_err(|e| StoreError::Codec { key: kv.key.clone(), message: e.to_string() })?;
    Ok(Versioned { key: kv.key, value, create_revision: kv.create_revision, mod_revision: kv.mod_revision })
}

/// Encodes a record as JSON.
pub fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Codec { key: key.to_string(), message: e.to_string() })
}

/// The record at `key`, if any.
pub async fn get<T: DeserializeOwned>(store: &dyn Store, key: &str) -> Result<Option<Versioned<T>>, StoreError> {
    store.get(key).await?.map(decode).transpose()
}

/// Writes the record at `key` (on `lease` when given); returns the revision.
pub async fn put<T: Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
    lease: Option<LeaseId>,
) -> Result<Revision, StoreError> {
    store.put(key, encode(key, value)?, lease).await
}

/// Writes the record at `key` only if the key does not exist; whether it was written.
pub async fn create<T: Serialize>(store: &dyn Store, key: &str, value: &T) -> Result<bool, StoreError> {
    let txn = Txn {
        compare: vec![Compare::absent(key)],
        success: vec![TxnOp::Put { key: key.to_string(), value: encode(key, value)?, lease: None }],
        failure: vec![],
    };
    Ok(store.txn(txn).await?.succeeded)
}

/// Every record under `prefix`, in key order, and the revision they were read at (watch from it + 1).
pub async fn list<T: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
) -> Result<(Vec<Versioned<T>>, Revision), StoreError> {
    let list = store.list(prefix).await?;
    let records = list.kvs.into_iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    Ok((records, list.revision))
}

/// What an update decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Update<T> {
    /// Write this record.
    Put(T),
    /// Delete the key.
    Delete,
    /// Leave the key as it is.
    Keep,
}

/// Read-modify-write with compare-and-swap: `change` gets the current record (or `None`) and decides; when another
/// writer changed the key in between, it runs again on the new record. Returns the revision after the write (the
/// current revision for [`Update::Keep`]).
pub async fn update<T, F>(store: &dyn Store, key: &str, mut change: F) -> Result<Revision, StoreError>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<T>) -> Result<Update<T>, StoreError>,
{
    loop {
        let current = store.get(key).await?;
        let mod_revision = current.as_ref().map_or(0, |kv| kv.mod_revision);
        let record = current.map(decode::<T>).transpose()?.map(|v| v.value);
        let op = match change(record)? {
            Update::Put(value) => TxnOp::Put { key: key.to_string(), value: encode(key, &value)?, lease: None },
            Update::Delete => TxnOp::Delete { key: key.to_string() },
            Update::Keep => return store.revision().await,
        };
        let txn = Txn { compare: vec![Compare::mod_revision(key, mod_revision)], success: vec![op], failure: vec![] };
        let result = store.txn(txn).await?;
        if result.succeeded {
            return Ok(result.revision);
        }
        tracing::debug!(key, "update conflicted, retrying");
    }
}

/// The keys matching `uri` (`*` one segment, `**` a subtree), in key order, with the revision they were read at.
pub async fn list_uri(store: &dyn Store, uri: &StoreUri) -> Result<ListResult, StoreError> {
    let mut list = store.list(&uri.prefix()).await?;
    list.kvs.retain(|kv| uri.matches(&kv.key));
    Ok(list)
}
