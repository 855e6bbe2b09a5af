//! The etcd backend: the [`Store`] trait over an etcd cluster through `etcd-client`, with endpoint failover,
//! optional TLS and user/password, watches that reconnect and resume from the last revision seen, and lease
//! keep-alives that go to whichever member answers.

mod endpoints;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Compare as EtcdCompare, CompareOp, DeleteOptions, GetOptions, PutOptions, TxnOpResponse};

use crate::{
    Compare, CompareTarget, KeyValue, LeaseId, ListResult, Revision, Store, StoreError, Txn, TxnOp, TxnResult,
    WatchStream,
};
use endpoints::{classify, is_lease_not_found, Attempt, Endpoints};

/// TLS settings for etcd (endpoints are then `https://` or bare `host:port`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA certificate (PEM) the servers' certificates are checked against.
    pub ca: Option<PathBuf>,
    /// The client certificate (PEM), for client-certificate authentication.
    pub cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    pub key: Option<PathBuf>,
    /// The name the servers' certificates must carry, when not the endpoint's host.
    pub domain: Option<String>,
}

/// User/password authentication for etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdAuth {
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
}

/// How to reach an etcd cluster.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// The members' client URLs (`http://10.0.0.1:2379`); requests fail over between them.
    pub endpoints: Vec<String>,
    /// TLS, if the cluster uses it.
    pub tls: Option<EtcdTls>,
    /// User/password, if the cluster has authentication enabled.
    pub auth: Option<EtcdAuth>,
    /// How long one attempt on one endpoint may take.
    pub request_timeout: Duration,
    /// How long connecting to one endpoint may take.
    pub connect_timeout: Duration,
    /// How long a request keeps being retried over the endpoints before failing with `Unavailable`.
    pub retry_for: Duration,
}

impl EtcdConfig {
    /// The defaults for `endpoints`: no TLS, no authentication, 5 s per attempt, 2 s to connect, 30 s of retries.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls: None,
            auth: None,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            retry_for: Duration::from_secs(30),
        }
    }
}

/// What failover did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdStats {
    /// Attempts that failed on one endpoint and were retried.
    pub retries: u64,
    /// Times the endpoint in use changed.
    pub failovers: u64,
}

/// The etcd store.
pub struct EtcdStore {
    endpoints: Arc<Endpoints>,
}

impl EtcdStore {
    /// Connects to the cluster of `config`: fails when no endpoint answers within the retry budget.
    pub async fn connect(config: EtcdConfig) -> Result<EtcdStore, StoreError> {
        let store = EtcdStore { endpoints: Arc::new(Endpoints::new(&config)?) };
        store.revision().await?;
        Ok(store)
    }

    /// What failover did so far.
    pub fn stats(&self) -> EtcdStats {
        let (retries, failovers) = self.endpoints.counters();
        EtcdStats { retries, failovers }
    }

    /// The endpoint requests currently go to.
    pub fn current_endpoint(&self) -> String {
        self.endpoints.current_url().to_string()
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision())
}

/// Converts an etcd key-value.
pub(crate) fn key_value(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: kv.lease(),
    }
}

fn compare(c: &Compare) -> EtcdCompare {
    match &c.target {
        CompareTarget::ModRevision(r) => EtcdCompare::mod_revision(c.key.as_bytes(), CompareOp::Equal, *r),
        CompareTarget::CreateRevision(r) => EtcdCompare::create_revision(c.key.as_bytes(), CompareOp::Equal, *r),
        CompareTarget::Value(v) => EtcdCompare::value(c.key.as_bytes(), CompareOp::Equal, v.clone()),
    }
}

fn txn_op(op: &TxnOp) -> etcd_client::TxnOp {
    match op {
        TxnOp::Put { key, value, lease } => {
            let options = lease.filter(|l| *l != 0).map(|l| PutOptions::new().with_lease(l));
            etcd_client::TxnOp::put(key.as_bytes(), value.clone(), options)
        }
        TxnOp::Delete { key } => etcd_client::TxnOp::delete(key.as_bytes(), None),
        TxnOp::DeletePrefix { prefix } => etcd_client::TxnOp::delete(prefix.as_bytes(), Some(prefix_delete(prefix))),
        TxnOp::Get { key } => etcd_client::TxnOp::get(key.as_bytes(), None),
    }
}

fn prefix_delete(prefix: &str) -> DeleteOptions {
    if prefix.is_empty() {
        DeleteOptions::new().with_all_keys()
    } else {
        DeleteOptions::new().with_prefix()
    }
}

/// Keys per page of a list.
const LIST_PAGE: i64 = 2000;

/// The largest answer the client decodes (a page of large values, a watch response carrying a big transaction).
const MAX_MESSAGE: usize = 64 << 20;

/// The end of `prefix`'s key range (exclusive) as etcd takes it: `\0` for every key when the prefix is empty.
fn schema_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn prefix_get(prefix: &str) -> GetOptions {
    if prefix.is_empty() {
        GetOptions::new().with_all_keys()
    } else {
        GetOptions::new().with_prefix()
    }
}

/// The lease a write names, to report it when etcd does not know it.
fn write_lease(ops: &[TxnOp]) -> LeaseId {
    ops.iter().find_map(|op| if let TxnOp::Put { lease: Some(l), .. } = op { Some(*l) } else { None }).unwrap_or(0)
}

fn lease_error(lease: LeaseId) -> impl Fn(etcd_client::Error) -> Attempt {
    move |e| if is_lease_not_found(&e) { Attempt::Fail(StoreError::LeaseNotFound(lease)) } else { classify(e) }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.endpoints
            .call(|c| async move {
                let r = c
                    .kv_client()
                    .max_decoding_message_size(MAX_MESSAGE)
                    .get(key.as_bytes(), None)
                    .await
                    .map_err(classify)?;
                Ok(r.kvs().first().map(key_value))
            })
            .await
    }

    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError> {
        // In pages of LIST_PAGE keys, every page read at the first one's revision (one consistent snapshot), so no
        // answer outgrows the client's message size however large the cluster is.
        self.endpoints
            .call(|c| async move {
                let mut kv = c.kv_client().max_decoding_message_size(MAX_MESSAGE);
                let first = prefix_get(prefix).with_limit(LIST_PAGE);
                let r = kv.get(prefix.as_bytes(), Some(first)).await.map_err(classify)?;
                let revision = revision_of(r.header());
                let mut kvs: Vec<KeyValue> = r.kvs().iter().map(key_value).collect();
                let mut more = r.more();
                let end = schema_end(prefix);
                while more {
                    let Some(last) = kvs.last() else { break };
                    let mut from = last.key.clone().into_bytes();
                    from.push(0);
                    let page = GetOptions::new().with_range(end.clone()).with_limit(LIST_PAGE).with_revision(revision);
                    let r = kv.get(from, Some(page)).await.map_err(classify)?;
                    kvs.extend(r.kvs().iter().map(key_value));
                    more = r.more();
                }
                Ok(ListResult { kvs, revision })
            })
            .await
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision, StoreError> {
        let lease = lease.unwrap_or(0);
        self.endpoints
            .call(|c| {
                let value = value.clone();
                async move {
                    let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
                    let r = c.kv_client().put(key.as_bytes(), value, options).await.map_err(lease_error(lease))?;
                    Ok(revision_of(r.header()))
                }
            })
            .await
    }

    async fn delete(&self, key: &str) -> Result<(Revision, bool), StoreError> {
        self.endpoints
            .call(|c| async move {
                let r = c.kv_client().delete(key.as_bytes(), None).await.map_err(classify)?;
                Ok((revision_of(r.header()), r.deleted() > 0))
            })
            .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(Revision, u64), StoreError> {
        self.endpoints
            .call(|c| async move {
                let r = c.kv_client().delete(prefix.as_bytes(), Some(prefix_delete(prefix))).await.map_err(classify)?;
                Ok((revision_of(r.header()), r.deleted().max(0) as u64))
            })
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult, StoreError> {
        let lease = write_lease(&txn.success).max(write_lease(&txn.failure));
        let request = etcd_client::Txn::new()
            .when(txn.compare.iter().map(compare).collect::<Vec<_>>())
            .and_then(txn.success.iter().map(txn_op).collect::<Vec<_>>())
            .or_else(txn.failure.iter().map(txn_op).collect::<Vec<_>>());
        self.endpoints
            .call(|c| {
                let request = request.clone();
                async move {
                    let r = c
                        .kv_client()
                        .max_decoding_message_size(MAX_MESSAGE)
                        .txn(request)
                        .await
                        .map_err(lease_error(lease))?;
                    let gets = r
                        .op_responses()
                        .into_iter()
                        .filter_map(|op| match op {
                            TxnOpResponse::Get(g) => Some(g.kvs().first().map(key_value)),
                            _ => None,
                        })
                        .collect();
                    Ok(TxnResult { succeeded: r.succeeded(), revision: revision_of(r.header()), gets })
                }
            })
            .await
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        watch::start(self.endpoints.clone(), prefix.to_string(), from).await
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let seconds = ttl.as_millis().div_ceil(1000).max(1) as i64;
        self.endpoints
            .call(|c| async move { Ok(c.lease_client().grant(seconds, None).await.map_err(classify)?.id()) })
            .await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.endpoints
            .call(|c| async move {
                // Opening the keep-alive stream sends one refresh and waits for its answer (TTL 0: no lease).
                c.lease_client().keep_alive(lease).await.map_err(lease_error(lease))?;
                Ok(())
            })
            .await
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.endpoints
            .call(|c| async move {
                c.lease_client().revoke(lease).await.map_err(lease_error(lease))?;
                Ok(())
            })
            .await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.endpoints
            .call(|c| async move {
                match c.kv_client().compact(revision, None).await.map_err(classify) {
                    Ok(_) => Ok(()),
                    // At or below the current compaction point: nothing to do.
                    Err(Attempt::Fail(StoreError::Compacted { .. })) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.endpoints
            .call(|c| async move {
                let r = c.kv_client().get("\0", Some(GetOptions::new().with_count_only())).await.map_err(classify)?;
                Ok(revision_of(r.header()))
            })
            .await
    }
}
