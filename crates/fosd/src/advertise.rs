//! The address other nodes call this node's API at: `--advertise` (a host or `host:port`; the listen port when it
//! has none), else the listen address when it names one, else the source address of the node's default route with
//! the listen port (the listen address itself when the node has no default route).

use std::net::{IpAddr, SocketAddr, UdpSocket};

use crate::options::Options;

/// This node's API address (`host:port`).
pub fn api_address(opts: &Options) -> String {
    let port = opts.listen.port();
    if let Some(a) = &opts.advertise {
        return with_port(a, port);
    }
    let ip = opts.listen.ip();
    if !ip.is_unspecified() {
        return opts.listen.to_string();
    }
    match default_route_source(ip.is_ipv6()) {
        Some(source) => SocketAddr::new(source, port).to_string(),
        None => SocketAddr::new(if ip.is_ipv6() { "::1".parse().unwrap_or(ip) } else { [127, 0, 0, 1].into() }, port)
            .to_string(),
    }
}

/// `address` with `port` appended when it has none (`10.0.0.4` → `10.0.0.4:7887`, `[::1]` → `[::1]:7887`).
pub fn with_port(address: &str, port: u16) -> String {
    if address.parse::<SocketAddr>().is_ok() {
        return address.to_string();
    }
    match address.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) if address.starts_with('[') => format!("{address}:{port}"),
        Err(_) if address.contains(':') => address.to_string(),
        Err(_) => format!("{address}:{port}"),
    }
}

/// The address the kernel would send from on the default route (a UDP "connect" sends nothing).
fn default_route_source(v6: bool) -> Option<IpAddr> {
    let (bind, probe) = if v6 { ("[::]:0", "[2001:db8::1]:9") } else { ("0.0.0.0:0", "192.0.2.1:9") };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(probe).ok()?;
    socket.local_addr().ok().map(|a| a.ip()).filter(|ip| !ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_addresses_get_the_listen_port() {
        assert_eq!(with_port("10.0.0.4", 7887), "10.0.0.4:7887");
        assert_eq!(with_port("10.0.0.4:9000", 7887), "10.0.0.4:9000");
        assert_eq!(with_port("node-a", 7887), "node-a:7887");
        assert_eq!(with_port("node-a:1", 7887), "node-a:1");
        assert_eq!(with_port("::1", 7887), "[::1]:7887");
    }
}
