//! Address syntax used by network rules: CIDR ranges (IPv4 and IPv6) and MAC addresses.

use std::fmt;
use std::net::IpAddr;

/// An IP range `address/prefix`, with the host bits of `address` zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub address: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    fn bits(addr: IpAddr) -> (u128, u8) {
        match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    fn mask(width: u8, prefix: u8) -> u128 {
        let host = u32::from(width - prefix);
        let all = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host) - 1)
        }
    }

    /// True when `ip` is inside the range (same family, same prefix bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.address.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let (net, width) = Cidr::bits(self.address);
        let (x, _) = Cidr::bits(ip);
        let m = Cidr::mask(width, self.prefix);
        net & m == x & m
    }

    /// True when `ip` is the range's network address (all host bits zero) and the range has host bits to spare.
    pub fn is_network_address(&self, ip: IpAddr) -> bool {
        let (_, width) = Cidr::bits(self.address);
        self.prefix < width.saturating_sub(1) && ip == self.address
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// Parses `address/prefix`. On an address with host bits set, the error names the range meant.
pub fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let Some((addr, prefix)) = text.split_once('/') else {
        return Err(format!("`{text}` is not a CIDR range: write address/prefix, e.g. 10.0.0.0/24"));
    };
    let address: IpAddr = addr.parse().map_err(|_| format!("`{addr}` in `{text}` is not an IP address"))?;
    let width = if address.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= width)
        .ok_or_else(|| format!("`{prefix}` in `{text}` is not a prefix length 0..{width}"))?;
    let (bits, _) = Cidr::bits(address);
    let masked = bits & Cidr::mask(width, prefix);
    if masked != bits {
        let net = match address {
            IpAddr::V4(_) => IpAddr::V4((masked as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(masked.into()),
        };
        return Err(format!("`{text}` has host bits set: did you mean {net}/{prefix}?"));
    }
    Ok(Cidr { address, prefix })
}

/// Parses a MAC address written as six `:`-separated pairs of hex digits.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let bad = || format!("`{text}` is not a MAC address: write six hex pairs separated by `:`, e.g. 52:54:00:12:34:56");
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (slot, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return Err(bad());
        }
        *slot = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_contains() {
        let c = parse_cidr("10.10.0.0/24").unwrap();
        assert!(c.contains("10.10.0.1".parse().unwrap()));
        assert!(!c.contains("10.10.1.1".parse().unwrap()));
        assert!(!c.contains("fd00::1".parse().unwrap()));
        assert!(c.is_network_address("10.10.0.0".parse().unwrap()));
        let c6 = parse_cidr("fd00::/64").unwrap();
        assert!(c6.contains("fd00::1".parse().unwrap()));
        assert!(parse_cidr("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.300/24").is_err());
        let e = parse_cidr("10.0.0.1/24").unwrap_err();
        assert!(e.contains("did you mean 10.0.0.0/24"), "{e}");
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("d2:e3:ed:6f:e3:ef").unwrap(), [0xd2, 0xe3, 0xed, 0x6f, 0xe3, 0xef]);
        for bad in ["d2:e3:ed:6f:e3", "d2-e3-ed-6f-e3-ef", "g2:e3:ed:6f:e3:ef", "d2:e3:ed:6f:e3:eff", ""] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
