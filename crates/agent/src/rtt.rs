//! The round-trip-time probe: a small UDP echo on the agent's own port. The same socket answers other agents' pings
//! and sends this agent's pings, matching pongs to pings by a nonce.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const MAGIC: &[u8; 4] = b"FOSP";
const PING: u8 = 0;
/// A pong from an agent that reaches the store.
const PONG: u8 = 1;
/// A pong from an agent that cannot reach the store.
const PONG_STORE_DOWN: u8 = 2;
const PACKET: usize = 13;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<bool>>>>;

/// The probe endpoint: answers pings (saying whether this agent reaches the store), measures round trips.
pub struct RttProbe {
    socket: Arc<UdpSocket>,
    pending: Pending,
    store_ok: Arc<AtomicBool>,
    next: Mutex<u64>,
    server: JoinHandle<()>,
}

fn packet(kind: u8, nonce: u64) -> [u8; PACKET] {
    let mut p = [0u8; PACKET];
    p[..4].copy_from_slice(MAGIC);
    p[4] = kind;
    p[5..].copy_from_slice(&nonce.to_be_bytes());
    p
}

impl RttProbe {
    /// Binds the probe on `addr` (port 0: any free port) and starts answering.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let pending: Pending = Arc::default();
        let store_ok = Arc::new(AtomicBool::new(true));
        let server = tokio::spawn(serve(socket.clone(), pending.clone(), store_ok.clone()));
        let seed = std::process::id() as u64 ^ (Instant::now().elapsed().as_nanos() as u64);
        Ok(RttProbe { socket, pending, store_ok, next: Mutex::new(seed << 32), server })
    }

    /// Says in every answer from now on whether this agent reaches the store.
    pub fn set_store_ok(&self, ok: bool) {
        self.store_ok.store(ok, Ordering::Relaxed);
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// One round trip to `peer`, or `None` when no answer came within `timeout`.
    pub async fn measure(&self, peer: SocketAddr, timeout: Duration) -> Option<Duration> {
        self.ask(peer, timeout).await.map(|(rtt, _)| rtt)
    }

    /// One round trip to `peer` with whether it reaches the store, or `None` when no answer came within `timeout`.
    pub async fn ask(&self, peer: SocketAddr, timeout: Duration) -> Option<(Duration, bool)> {
        let nonce = {
            let mut n = self.next.lock().unwrap_or_else(|p| p.into_inner());
            *n = n.wrapping_add(1);
            *n
        };
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(nonce, tx);
        let start = Instant::now();
        let sent = self.socket.send_to(&packet(PING, nonce), peer).await.is_ok();
        let answer = if sent { tokio::time::timeout(timeout, rx).await.ok().and_then(Result::ok) } else { None };
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&nonce);
        answer.map(|store_ok| (start.elapsed(), store_ok))
    }
}

impl Drop for RttProbe {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(socket: Arc<UdpSocket>, pending: Pending, store_ok: Arc<AtomicBool>) {
    let mut buf = [0u8; 64];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else { continue };
        if n != PACKET || &buf[..4] != MAGIC {
            continue;
        }
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&buf[5..PACKET]);
        let nonce = u64::from_be_bytes(nonce);
        match buf[4] {
            PING => {
                let kind = if store_ok.load(Ordering::Relaxed) { PONG } else { PONG_STORE_DOWN };
                let _ = socket.send_to(&packet(kind, nonce), from).await;
            }
            kind @ (PONG | PONG_STORE_DOWN) => {
                if let Some(tx) = pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&nonce) {
                    let _ = tx.send(kind == PONG);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_probes_measure_each_other_and_silence_times_out() {
        let a = RttProbe::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let b = RttProbe::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert!(a.measure(b.local_addr().unwrap(), Duration::from_secs(2)).await.is_some());
        assert!(b.measure(a.local_addr().unwrap(), Duration::from_secs(2)).await.is_some());
        a.set_store_ok(false);
        let (_, store_ok) = b.ask(a.local_addr().unwrap(), Duration::from_secs(2)).await.expect("an answer");
        assert!(!store_ok, "a says it cannot reach the store");
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(a.measure(silent.local_addr().unwrap(), Duration::from_millis(100)).await.is_none());
    }
}
