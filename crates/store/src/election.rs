//! Leader election on any [`Store`], in the style of etcd's `concurrency` package: each candidate puts a key under the
//! election prefix, bound to its lease; the candidate whose key has the lowest create revision leads, the others
//! wait for the key just before theirs to go (resigned, or its lease expired).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{Compare, EventKind, KeyValue, LeaseId, Revision, Store, StoreError, Txn, TxnOp};

/// One election: the candidates' keys live under `prefix`.
#[derive(Clone)]
pub struct Election {
    store: Arc<dyn Store>,
    prefix: String,
}

/// Won leadership: valid while the candidate's lease lives and it has not resigned.
pub struct Leadership {
    store: Arc<dyn Store>,
    key: String,
    lease: LeaseId,
    create_revision: Revision,
}

impl Election {
    /// The election whose candidates live under `prefix` (e.g. `Keys::election("controller")`).
    pub fn new(store: Arc<dyn Store>, prefix: impl Into<String>) -> Election {
        let mut prefix = prefix.into();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Election { store, prefix }
    }

    /// Stands as a candidate with `value` (e.g. the node's name) on `lease`, and waits until elected. Fails with
    /// [`StoreError::LeaseNotFound`] when the lease ends while waiting.
    pub async fn campaign(&self, lease: LeaseId, value: Vec<u8>) -> Result<Leadership, StoreError> {
        let key = format!("{}{lease:x}", self.prefix);
        let put = TxnOp::Put { key: key.clone(), value: value.clone(), lease: Some(lease) };
        let created = self
            .store
            .txn(Txn {
                compare: vec![Compare::absent(key.clone())],
                success: vec![put.clone()],
                failure: vec![TxnOp::Get { key: key.clone() }],
            })
            .await?;
        let create_revision = if created.succeeded {
            created.revision
        } else {
            // Already a candidate on this lease (e.g. campaigning again): keep the place in line, update the value.
            let existing = created.gets.into_iter().next().flatten().ok_or(StoreError::LeaseNotFound(lease))?;
            self.store.put(&key, value, Some(lease)).await?;
            existing.create_revision
        };
        loop {
            let list = self.store.list(&self.prefix).await?;
            if !list.kvs.iter().any(|kv| kv.key == key) {
                return Err(StoreError::LeaseNotFound(lease));
            }
            let ahead = list.kvs.iter().filter(|kv| kv.create_revision < create_revision).count();
            if ahead == 0 {
                return Ok(Leadership { store: self.store.clone(), key, lease, create_revision });
            }
            // Wait for any candidate to go, then look again.
            let mut changes = match self.store.watch(&self.prefix, list.revision + 1).await {
                Ok(w) => w,
                Err(StoreError::Compacted { .. }) => continue,
                Err(e) => return Err(e),
            };
            loop {
                match changes.next().await {
                    Some(Ok(event)) if event.kind == EventKind::Delete => break,
                    Some(Ok(_)) => {}
                    Some(Err(StoreError::Compacted { .. })) => break,
                    Some(Err(e)) => return Err(e),
                    None => return Err(StoreError::Unavailable("election watch ended".into())),
                }
            }
        }
    }

    /// The current leader's key-value (lowest create revision), if any.
    pub async fn leader(&self) -> Result<Option<KeyValue>, StoreError> {
        let list = self.store.list(&self.prefix).await?;
        Ok(list.kvs.into_iter().min_by_key(|kv| kv.create_revision))
    }

    /// The leader now and after every change of leader or of its value (`None`: no leader), until dropped.
    pub async fn observe(&self) -> Result<impl Stream<Item = Result<Option<KeyValue>, StoreError>> + Send, StoreError> {
        let (tx, rx) = mpsc::channel(16);
        let election = self.clone();
        let first = election.store.list(&election.prefix).await?;
        tokio::spawn(async move {
            let mut first = Some(first);
            let mut last: Option<Option<KeyValue>> = None;
            loop {
                let list = match first.take() {
                    Some(l) => l,
                    None => match election.store.list(&election.prefix).await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    },
                };
                let mut candidates: BTreeMap<String, KeyValue> =
                    list.kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
                let mut changes = match election.store.watch(&election.prefix, list.revision + 1).await {
                    Ok(w) => w,
                    Err(StoreError::Compacted { .. }) => continue,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                loop {
                    let leader = candidates.values().min_by_key(|kv| kv.create_revision).cloned();
                    let changed = last.as_ref().is_none_or(|l| {
                        l.as_ref().map(|kv| (&kv.key, &kv.value)) != leader.as_ref().map(|kv| (&kv.key, &kv.value))
                    });
                    if changed {
                        last = Some(leader.clone());
                        if tx.send(Ok(leader)).await.is_err() {
                            return;
                        }
                    }
                    let event = tokio::select! {
                        e = changes.next() => e,
                        () = tx.closed() => return,
                    };
                    match event {
                        Some(Ok(e)) if e.kind == EventKind::Delete => {
                            candidates.remove(&e.kv.key);
                        }
                        Some(Ok(e)) => {
                            candidates.insert(e.kv.key.clone(), e.kv);
                        }
                        Some(Err(StoreError::Compacted { .. })) => break,
                        Some(Err(e)) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        None => return,
                    }
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}

impl Leadership {
    /// The leader's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease leadership hangs on.
    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    /// Whether this candidate still leads (its key still exists with the same create revision).
    pub async fn is_leader(&self) -> Result<bool, StoreError> {
        Ok(self.store.get(&self.key).await?.is_some_and(|kv| kv.create_revision == self.create_revision))
    }

    /// Changes the value the leader announces, if it still leads.
    pub async fn proclaim(&self, value: Vec<u8>) -> Result<bool, StoreError> {
        let r = self
            .store
            .txn(Txn {
                compare: vec![Compare {
                    key: self.key.clone(),
                    target: crate::CompareTarget::CreateRevision(self.create_revision),
                }],
                success: vec![TxnOp::Put { key: self.key.clone(), value, lease: Some(self.lease) }],
                failure: vec![],
            })
            .await?;
        Ok(r.succeeded)
    }

    /// Gives up leadership (the next candidate takes over). The lease itself is left alone.
    pub async fn resign(self) -> Result<(), StoreError> {
        self.store
            .txn(Txn {
                compare: vec![Compare {
                    key: self.key.clone(),
                    target: crate::CompareTarget::CreateRevision(self.create_revision),
                }],
                success: vec![TxnOp::Delete { key: self.key.clone() }],
                failure: vec![],
            })
            .await?;
        Ok(())
    }
}
