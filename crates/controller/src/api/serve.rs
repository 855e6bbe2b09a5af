//! Serving the API: HTTPS (rustls) or, behind `--insecure-plaintext` on loopback only, plain HTTP/1.1, with the
//! limits that keep one client from taking the API down: a TLS handshake and the request headers must arrive in
//! time, and the number of open connections is capped below the process's file limit. When the cap is reached, a
//! new connection closes the oldest one that has not sent a request yet (a half-open or idle one), so a crowd of
//! connections that never finish cannot lock out a client that does, and `/healthz` keeps answering.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How the API is served.
#[derive(Clone)]
pub struct ServeOptions {
    /// TLS (none: plain HTTP, for `--insecure-plaintext` and in-process tests).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time for a request's headers to arrive (and for an idle connection to send its next request).
    pub header_timeout: Duration,
}

impl ServeOptions {
    /// The defaults: 10 s for the handshake and for headers, at most `max_connections` open.
    pub fn new(tls: Option<Arc<rustls::ServerConfig>>, max_connections: usize) -> ServeOptions {
        ServeOptions {
            tls,
            max_connections: max_connections.max(16),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// The connection cap for this process: its open-file limit less room for the store, the agent and logs.
pub fn connection_cap() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid out-pointer for the call's duration.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur } else { 1024 };
    (soft.saturating_sub(256) as usize).clamp(64, 4096)
}

/// Connections that have not sent a request yet, oldest first, each with the way to close it.
#[derive(Default)]
struct Waiting {
    queue: Mutex<VecDeque<(u64, oneshot::Sender<()>)>>,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, oneshot::Sender<()>)>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remove(&self, id: u64) {
        self.lock().retain(|(i, _)| *i != id);
    }

    /// Closes the oldest waiting connection; `false` when none waits.
    fn evict_oldest(&self) -> bool {
        match self.lock().pop_front() {
            Some((_, close)) => {
                let _ = close.send(());
                true
            }
            None => false,
        }
    }
}

/// Decrements the open-connection count when a connection ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish (up to 10 s).
pub async fn serve(
    app: Router,
    listener: TcpListener,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let waiting = Arc::new(Waiting::default());
    let open = Arc::new(AtomicUsize::new(0));
    let ids = AtomicU64::new(0);
    let acceptor = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (tcp, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors (or a connection reset before accept): wait a little, go on.
                    tracing::debug!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.load(Ordering::Relaxed) >= opts.max_connections && !waiting.evict_oldest() {
            // Every connection is busy with a request: refuse this one.
            drop(tcp);
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let (close_tx, close_rx) = oneshot::channel();
        waiting.lock().push_back((id, close_tx));
        open.fetch_add(1, Ordering::Relaxed);
        let guard = Open(open.clone());
        let (waiting, watcher, app, acceptor, opts) =
            (waiting.clone(), graceful.watcher(), app.clone(), acceptor.clone(), opts.clone());
        tokio::spawn(async move {
            let _guard = guard;
            let conn = async {
                match acceptor {
                    Some(acceptor) => {
                        let Ok(Ok(tls)) = tokio::time::timeout(opts.handshake_timeout, acceptor.accept(tcp)).await
                        else {
                            return;
                        };
                        connection(tls, id, app, &waiting, watcher, &opts).await
                    }
                    None => connection(tcp, id, app, &waiting, watcher, &opts).await,
                }
            };
            tokio::select! {
                _ = conn => {}
                // Dropping the sender (the connection began its first request) is not a request to close.
                Ok(()) = close_rx => tracing::debug!(connection = id, "closed to make room for a new connection"),
            }
            waiting.remove(id);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still open 10 s after shutdown began: closing them");
    }
    Ok(())
}

/// Serves HTTP/1.1 on one connection; it leaves the waiting queue with its first request.
async fn connection<I>(
    io: I,
    id: u64,
    app: Router,
    waiting: &Arc<Waiting>,
    watcher: hyper_util::server::graceful::Watcher,
    opts: &ServeOptions,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = TowerToHyperService::new(app);
    let waiting = waiting.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        waiting.remove(id);
        hyper::service::Service::call(&svc, req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(opts.header_timeout).keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(connection = id, "connection: {e}");
    }
}
