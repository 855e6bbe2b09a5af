//! The etcd endpoints and failover: one client per endpoint, requests go to the current one and move on to the next
//! when an endpoint is unreachable or has no leader, until the retry budget is spent.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::EtcdConfig;
use crate::StoreError;

/// Clients of every endpoint, the one in use, and counters of what failover did.
pub struct Endpoints {
    urls: Vec<String>,
    options: ConnectOptions,
    clients: Vec<OnceCell<Arc<Client>>>,
    current: AtomicUsize,
    retry_for: Duration,
    request_timeout: Duration,
    retries: AtomicU64,
    failovers: AtomicU64,
}

/// What went wrong with one attempt: whether trying again (elsewhere) may help.
pub enum Attempt {
    /// The endpoint is unreachable, lost its leader, or timed out: retry on the next one.
    Retry(String),
    /// Any other error: final.
    Fail(StoreError),
}

impl From<StoreError> for Attempt {
    fn from(e: StoreError) -> Self {
        Attempt::Fail(e)
    }
}

/// Classifies a client error: transport failures and unavailability are retried, the rest map to store errors.
pub fn classify(e: etcd_client::Error) -> Attempt {
    use etcd_client::Error;
    match e {
        Error::TransportError(e) => Attempt::Retry(e.to_string()),
        Error::IoError(e) => Attempt::Retry(e.to_string()),
        Error::GRpcStatus(status) => match status.code() {
            tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
            | tonic::Code::Aborted => Attempt::Retry(status.to_string()),
            _ if status.message().contains("compacted") => {
                Attempt::Fail(StoreError::Compacted { requested: 0, compacted: 0 })
            }
            _ => Attempt::Fail(StoreError::Other(format!("etcd: {}", status.message()))),
        },
        Error::LeaseKeepAliveError(e) | Error::WatchError(e) => Attempt::Retry(e),
        other => Attempt::Fail(StoreError::Other(format!("etcd: {other}"))),
    }
}

/// Whether a client error says the lease does not exist.
pub fn is_lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message().contains("lease not found"),
        etcd_client::Error::LeaseKeepAliveError(m) => m.contains("lease not found"),
        _ => false,
    }
}

impl Endpoints {
    /// The endpoints of `config` (no connection is made yet).
    pub fn new(config: &EtcdConfig) -> Result<Endpoints, StoreError> {
        if config.endpoints.is_empty() {
            return Err(StoreError::Other("no etcd endpoint given".into()));
        }
        let mut options = ConnectOptions::new()
            .with_require_leader(true)
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(auth) = &config.auth {
            options = options.with_user(auth.user.clone(), auth.password.clone());
        }
        if let Some(tls) = &config.tls {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| StoreError::Other(format!("reading {}: {e}", p.display())))
            };
            let mut t = TlsOptions::new();
            if let Some(ca) = &tls.ca {
                t = t.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            match (&tls.cert, &tls.key) {
                (Some(cert), Some(key)) => t = t.identity(Identity::from_pem(read(cert)?, read(key)?)),
                (None, None) => {}
                _ => return Err(StoreError::Other("a client certificate needs both cert and key".into())),
            }
            if let Some(domain) = &tls.domain {
                t = t.domain_name(domain.clone());
            }
            options = options.with_tls(t);
        }
        let urls: Vec<String> = config.endpoints.clone();
        let clients = urls.iter().map(|_| OnceCell::new()).collect();
        Ok(Endpoints {
            urls,
            options,
            clients,
            current: AtomicUsize::new(0),
            retry_for: config.retry_for,
            request_timeout: config.request_timeout,
            retries: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
        })
    }

    /// How many attempts were retried, and how many times the endpoint in use changed.
    pub fn counters(&self) -> (u64, u64) {
        (self.retries.load(Ordering::Relaxed), self.failovers.load(Ordering::Relaxed))
    }

    /// The endpoint in use.
    pub fn current_url(&self) -> &str {
        &self.urls[self.current.load(Ordering::Relaxed) % self.urls.len()]
    }

    async fn client(&self, index: usize) -> Result<Arc<Client>, Attempt> {
        let url = &self.urls[index];
        self.clients[index]
            .get_or_try_init(|| async {
                Client::connect([url.as_str()], Some(self.options.clone())).await.map(Arc::new)
            })
            .await
            .cloned()
            .map_err(classify)
    }

    /// Moves on from endpoint `from` to the next one (unless another request already did).
    fn fail_over(&self, from: usize) {
        let next = (from + 1) % self.urls.len();
        if self.current.compare_exchange(from, next, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.failovers.fetch_add(1, Ordering::Relaxed);
            tracing::info!(from = %self.urls[from], to = %self.urls[next], "etcd endpoint failover");
        }
    }

    /// Runs `op` against the current endpoint, failing over and retrying while it is retryable and the budget lasts.
    pub async fn call<T, F, Fut>(&self, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Attempt>>,
    {
        let deadline = Instant::now() + self.retry_for;
        let mut attempt = 0u32;
        loop {
            let index = self.current.load(Ordering::Relaxed) % self.urls.len();
            // A dead endpoint can leave a request waiting for a connection: bound every attempt.
            let attempt_once = async {
                match self.client(index).await {
                    Ok(client) => op(client).await,
                    Err(e) => Err(e),
                }
            };
            let outcome = match tokio::time::timeout(self.request_timeout, attempt_once).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Attempt::Retry(format!("no answer within {:?}", self.request_timeout))),
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry(reason)) => {
                    if Instant::now() >= deadline {
                        return Err(StoreError::Unavailable(format!("no etcd endpoint answered: {reason}")));
                    }
                    tracing::debug!(endpoint = %self.urls[index], %reason, "etcd request failed, retrying");
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    self.fail_over(index);
                    attempt += 1;
                    // A full round over the endpoints without success: back off before the next.
                    if (attempt as usize).is_multiple_of(self.urls.len()) {
                        let pause = Duration::from_millis(50 * u64::from(attempt.min(20)));
                        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
                    }
                }
            }
        }
    }
}
