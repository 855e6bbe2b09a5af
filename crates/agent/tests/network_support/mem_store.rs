//! A small in-memory [`Store`] with etcd's transaction semantics, standing in for the embedded backend in these
//! tests until it lands (it has no watch and no lease expiry: the network manager uses neither).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use fos_store::{
    CompareTarget, KeyValue, LeaseId, ListResult, Revision, Store, StoreError, Txn, TxnOp, TxnResult, WatchStream,
};

#[derive(Default)]
struct Inner {
    revision: Revision,
    kvs: BTreeMap<String, KeyValue>,
}

/// The in-memory store.
#[derive(Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
}

impl Inner {
    fn put(&mut self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) {
        self.revision += 1;
        let create = self.kvs.get(key).map(|kv| kv.create_revision).unwrap_or(self.revision);
        self.kvs.insert(
            key.to_string(),
            KeyValue {
                key: key.into(),
                value,
                create_revision: create,
                mod_revision: self.revision,
                lease: lease.unwrap_or(0),
            },
        );
    }
    fn delete(&mut self, key: &str) -> bool {
        let existed = self.kvs.remove(key).is_some();
        if existed {
            self.revision += 1;
        }
        existed
    }
    fn delete_prefix(&mut self, prefix: &str) -> u64 {
        let keys: Vec<String> = self.kvs.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        for k in &keys {
            self.kvs.remove(k);
        }
        if !keys.is_empty() {
            self.revision += 1;
        }
        keys.len() as u64
    }
}

#[async_trait]
impl Store for MemStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.inner.lock().unwrap().kvs.get(key).cloned())
    }
    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError> {
        let inner = self.inner.lock().unwrap();
        let kvs = inner
            .kvs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        Ok(ListResult { kvs, revision: inner.revision })
    }
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision, StoreError> {
        let mut inner = self.inner.lock().unwrap();
        inner.put(key, value, lease);
        Ok(inner.revision)
    }
    async fn delete(&self, key: &str) -> Result<(Revision, bool), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        let existed = inner.delete(key);
        Ok((inner.revision, existed))
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<(Revision, u64), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        let n = inner.delete_prefix(prefix);
        Ok((inner.revision, n))
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResult, StoreError> {
        let mut inner = self.inner.lock().unwrap();
        let holds = txn.compare.iter().all(|c| {
            let kv = inner.kvs.get(&c.key);
            match &c.target {
                CompareTarget::ModRevision(r) => kv.map(|kv| kv.mod_revision).unwrap_or(0) == *r,
                CompareTarget::CreateRevision(r) => kv.map(|kv| kv.create_revision).unwrap_or(0) == *r,
                CompareTarget::Value(v) => kv.map(|kv| &kv.value) == Some(v),
            }
        });
        let ops = if holds { txn.success } else { txn.failure };
        let mut gets = Vec::new();
        for op in ops {
            match op {
                TxnOp::Put { key, value, lease } => inner.put(&key, value, lease),
                TxnOp::Delete { key } => {
                    inner.delete(&key);
                }
                TxnOp::DeletePrefix { prefix } => {
                    inner.delete_prefix(&prefix);
                }
                TxnOp::Get { key } => gets.push(inner.kvs.get(&key).cloned()),
            }
        }
        Ok(TxnResult { succeeded: holds, revision: inner.revision, gets })
    }
    async fn watch(&self, _prefix: &str, _from: Revision) -> Result<WatchStream, StoreError> {
        Err(StoreError::Other("the in-memory test store does not watch".into()))
    }
    async fn grant(&self, _ttl: Duration) -> Result<LeaseId, StoreError> {
        Ok(1)
    }
    async fn keep_alive(&self, _lease: LeaseId) -> Result<(), StoreError> {
        Ok(())
    }
    async fn revoke(&self, _lease: LeaseId) -> Result<(), StoreError> {
        Ok(())
    }
    async fn compact(&self, _revision: Revision) -> Result<(), StoreError> {
        Ok(())
    }
    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.inner.lock().unwrap().revision)
    }
}
