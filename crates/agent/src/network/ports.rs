//! `entity.ports` exposed on the node by a small proxy in the agent: a listener in the node's namespace on
//! `hostPort` (all addresses), and for every TCP connection (or UDP peer) an upstream socket opened inside the
//! instance's namespace to `127.0.0.1:<port>`. The proxy lives as long as its [`PortProxy`] value.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use fos_api::manifest::{PortMapping, Protocol};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::{netns, NetworkError};

/// How long a UDP peer's upstream socket lives without traffic.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// The running proxies of one instance; dropping it stops them.
pub struct PortProxy {
    ports: Vec<PortMapping>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PortProxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn os(doing: String) -> impl FnOnce(io::Error) -> NetworkError {
    move |source| NetworkError::Os { doing, source }
}

impl PortProxy {
    /// Listens on every mapping's host port in `host_ns` and forwards to the instance in `instance_ns`.
    pub async fn start(host_ns: &File, instance_ns: &File, ports: &[PortMapping]) -> Result<PortProxy, NetworkError> {
        Self::start_to(host_ns, instance_ns, Ipv4Addr::LOCALHOST, ports).await
    }

    /// Listens on every mapping's host port in `host_ns` and forwards to `target:<port>`, connecting from inside
    /// `upstream_ns` (a native instance: its namespace and its loopback; a VM: the node's namespace and the guest's
    /// address).
    pub async fn start_to(
        host_ns: &File,
        upstream_ns: &File,
        target: Ipv4Addr,
        ports: &[PortMapping],
    ) -> Result<PortProxy, NetworkError> {
        let instance_ns = Arc::new(upstream_ns.try_clone().map_err(os("duplicating a namespace handle".into()))?);
        let mut proxy = PortProxy { ports: ports.to_vec(), tasks: Vec::new() };
        for mapping in ports {
            let host_port = mapping.host_port.unwrap_or(mapping.port);
            let bind = SocketAddr::from((Ipv4Addr::UNSPECIFIED, host_port));
            let doing = format!("exposing port {} as {bind}/{}", mapping.port, mapping.protocol);
            let task = match mapping.protocol {
                Protocol::Tcp => {
                    let listener = netns::run_in(host_ns, || {
                        let l = std::net::TcpListener::bind(bind)?;
                        l.set_nonblocking(true)?;
                        Ok::<_, io::Error>(l)
                    })
                    .and_then(|r| r)
                    .and_then(TcpListener::from_std)
                    .map_err(os(doing))?;
                    tokio::spawn(serve_tcp(listener, instance_ns.clone(), SocketAddr::from((target, mapping.port))))
                }
                Protocol::Udp => {
                    let socket = netns::run_in(host_ns, || {
                        let s = std::net::UdpSocket::bind(bind)?;
                        s.set_nonblocking(true)?;
                        Ok::<_, io::Error>(s)
                    })
                    .and_then(|r| r)
                    .and_then(UdpSocket::from_std)
                    .map_err(os(doing))?;
                    tokio::spawn(serve_udp(
                        Arc::new(socket),
                        instance_ns.clone(),
                        SocketAddr::from((target, mapping.port)),
                    ))
                }
            };
            proxy.tasks.push(task);
        }
        Ok(proxy)
    }

    /// Whether this proxy exposes exactly `ports`.
    pub fn exposes(&self, ports: &[PortMapping]) -> bool {
        self.ports == ports
    }
}

/// Connects to `target` from inside the namespace `ns`.
async fn connect_inside(ns: Arc<File>, target: SocketAddr) -> io::Result<TcpStream> {
    let stream = tokio::task::spawn_blocking(move || {
        netns::run_in(&ns, || {
            let s = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
            s.set_nonblocking(true)?;
            Ok::<_, io::Error>(s)
        })
    })
    .await
    .map_err(io::Error::other)???;
    TcpStream::from_std(stream)
}

async fn serve_tcp(listener: TcpListener, ns: Arc<File>, target: SocketAddr) {
    loop {
        let Ok((mut client, peer)) = listener.accept().await else {
            continue;
        };
        let ns = ns.clone();
        tokio::spawn(async move {
            match connect_inside(ns, target).await {
                Ok(mut upstream) => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(e) => tracing::debug!(%peer, %target, error = %e, "exposed port: instance not answering"),
            }
        });
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, ns: Arc<File>, target: SocketAddr) {
    let sessions: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let existing = sessions.lock().await.get(&peer).cloned();
        let upstream = match existing {
            Some(u) => u,
            None => {
                let ns2 = ns.clone();
                let opened = tokio::task::spawn_blocking(move || {
                    netns::run_in(&ns2, || {
                        let local = if target.ip().is_loopback() { Ipv4Addr::LOCALHOST } else { Ipv4Addr::UNSPECIFIED };
                        let s = std::net::UdpSocket::bind((local, 0))?;
                        s.connect(target)?;
                        s.set_nonblocking(true)?;
                        Ok::<_, io::Error>(s)
                    })
                })
                .await;
                let Ok(Ok(Ok(s))) = opened else { continue };
                let Ok(s) = UdpSocket::from_std(s) else { continue };
                let upstream = Arc::new(s);
                sessions.lock().await.insert(peer, upstream.clone());
                tokio::spawn(relay_back(socket.clone(), upstream.clone(), peer, sessions.clone()));
                upstream
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

async fn relay_back(
    socket: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    peer: SocketAddr,
    sessions: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)).await {
        let _ = socket.send_to(&buf[..n], peer).await;
    }
    sessions.lock().await.remove(&peer);
}
