//! A thin layer over `rtnetlink` with the operations the network manager needs — links, addresses, routes and the
//! VxLAN forwarding database — each failing with what it was doing and the kernel's reason.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVlan, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage};
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use super::{netns, NetworkError};

/// `ENODEV`: no such device.
const ENODEV: i32 = 19;

/// Turns an rtnetlink error into the kernel's reason (an errno where there is one).
fn kernel_reason(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// Wraps a failed netlink request with what was being done.
fn failed(doing: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let doing = doing.into();
    move |e| NetworkError::Kernel { doing, source: kernel_reason(e) }
}

/// The IP address of a forwarding entry's destination (bridge-family messages carry it as raw bytes).
fn destination(address: &NeighbourAddress) -> Option<IpAddr> {
    match address {
        NeighbourAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        NeighbourAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(bytes.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

/// What fos reads back from a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Link kind (`bridge`, `vxlan`, `vlan`, `veth`, ...), if the kernel reports one.
    pub kind: Option<InfoKind>,
    /// MTU.
    pub mtu: u32,
    /// The bridge it is enslaved to.
    pub controller: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// MAC address.
    pub mac: Vec<u8>,
    /// The lower device (VLAN parent, VxLAN device).
    pub lower: Option<u32>,
    /// VxLAN: the VNI.
    pub vni: Option<u32>,
    /// VxLAN: the multicast group.
    pub group: Option<Ipv4Addr>,
    /// VLAN: the id.
    pub vlan_id: Option<u16>,
}

impl LinkView {
    fn from_message(msg: &LinkMessage) -> LinkView {
        let mut view = LinkView {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            mtu: 0,
            controller: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            mac: Vec::new(),
            lower: None,
            vni: None,
            group: None,
            vlan_id: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => view.name = n.clone(),
                LinkAttribute::Mtu(m) => view.mtu = *m,
                LinkAttribute::Controller(c) => view.controller = Some(*c),
                LinkAttribute::Address(a) => view.mac = a.clone(),
                LinkAttribute::Link(l) => view.lower = Some(*l),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(k) => view.kind = Some(k.clone()),
                            LinkInfo::Data(InfoData::Vxlan(data)) => {
                                for d in data {
                                    match d {
                                        InfoVxlan::Id(id) => view.vni = Some(*id),
                                        InfoVxlan::Group(g) => view.group = Some(*g),
                                        InfoVxlan::Link(l) => view.lower = Some(*l),
                                        _ => {}
                                    }
                                }
                            }
                            LinkInfo::Data(InfoData::Vlan(data)) => {
                                for d in data {
                                    if let InfoVlan::Id(id) = d {
                                        view.vlan_id = Some(*id);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        view
    }
}

/// A netlink connection bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a netlink connection in the network namespace `ns` (the caller's when `None`); its driver task runs on
    /// the current tokio runtime.
    pub fn connect(ns: Option<&File>) -> Result<Netlink, NetworkError> {
        let os = |source: io::Error| NetworkError::Os { doing: "opening a netlink socket".into(), source };
        let runtime = tokio::runtime::Handle::current();
        let open = || {
            let _entered = runtime.enter();
            rtnetlink::new_connection()
        };
        let (connection, handle, _) = match ns {
            Some(ns) => netns::run_in(ns, open).map_err(os)?.map_err(os)?,
            None => open().map_err(os)?,
        };
        runtime.spawn(connection);
        Ok(Netlink { handle })
    }

    /// The link named `name`, if it exists.
    pub async fn link(&self, name: &str) -> Result<Option<LinkView>, NetworkError> {
        let mut links = self.handle.link().get().match_name(name.to_string()).execute();
        match links.try_next().await {
            Ok(msg) => Ok(msg.as_ref().map(LinkView::from_message)),
            Err(rtnetlink::Error::NetlinkError(e)) if e.code.map(|c| -c.get()) == Some(ENODEV) => Ok(None),
            Err(e) => Err(failed(format!("looking up link {name}"))(e)),
        }
    }

    /// The link named `name`, which must exist.
    pub async fn require_link(&self, name: &str, doing: &str) -> Result<LinkView, NetworkError> {
        self.link(name).await?.ok_or_else(|| NetworkError::Kernel {
            doing: doing.to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, format!("no interface {name}")),
        })
    }

    /// The link with index `index`, if it exists.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<LinkView>, NetworkError> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(msg) => Ok(msg.as_ref().map(LinkView::from_message)),
            Err(rtnetlink::Error::NetlinkError(e)) if e.code.map(|c| -c.get()) == Some(ENODEV) => Ok(None),
            Err(e) => Err(failed(format!("looking up link #{index}"))(e)),
        }
    }

    /// Every link of the namespace.
    pub async fn links(&self) -> Result<Vec<LinkView>, NetworkError> {
        let msgs: Vec<LinkMessage> =
            self.handle.link().get().execute().try_collect().await.map_err(failed("listing links"))?;
        Ok(msgs.iter().map(LinkView::from_message).collect())
    }

    /// Creates a link from `message`.
    pub async fn add_link(&self, message: LinkMessage, doing: &str) -> Result<(), NetworkError> {
        self.handle.link().add(message).execute().await.map_err(failed(doing))
    }

    /// Changes a link's attributes with `message` (built with [`LinkUnspec::new_with_index`]).
    pub async fn set_link(&self, message: LinkMessage, doing: &str) -> Result<(), NetworkError> {
        self.handle.link().set(message).execute().await.map_err(failed(doing))
    }

    /// Brings a link up.
    pub async fn set_up(&self, link: &LinkView) -> Result<(), NetworkError> {
        if link.up {
            return Ok(());
        }
        self.set_link(LinkUnspec::new_with_index(link.index).up().build(), &format!("bringing {} up", link.name)).await
    }

    /// Sets a link's MTU.
    pub async fn set_mtu(&self, link: &LinkView, mtu: u32) -> Result<(), NetworkError> {
        if link.mtu == mtu {
            return Ok(());
        }
        let doing = format!("setting the MTU of {} to {mtu}", link.name);
        self.set_link(LinkUnspec::new_with_index(link.index).mtu(mtu).build(), &doing).await
    }

    /// Enslaves a link to a bridge.
    pub async fn set_controller(&self, link: &LinkView, bridge: &LinkView) -> Result<(), NetworkError> {
        if link.controller == Some(bridge.index) {
            return Ok(());
        }
        let doing = format!("attaching {} to bridge {}", link.name, bridge.name);
        self.set_link(LinkUnspec::new_with_index(link.index).controller(bridge.index).build(), &doing).await
    }

    /// Deletes a link (and, for a veth, its peer).
    pub async fn delete_link(&self, link: &LinkView) -> Result<(), NetworkError> {
        match self.handle.link().del(link.index).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.code.map(|c| -c.get()) == Some(ENODEV) => Ok(()),
            Err(e) => Err(failed(format!("deleting {}", link.name))(e)),
        }
    }

    /// The IPv4 addresses of a link, with their prefix lengths.
    pub async fn addresses(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, NetworkError> {
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(failed(format!("listing the addresses of link #{index}")))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.index == index)
            .filter_map(|m| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(IpAddr::V4(ip)) => Some((*ip, m.header.prefix_len)),
                    _ => None,
                })
            })
            .collect())
    }

    /// Makes the IPv4 addresses of `link` exactly `wanted`.
    pub async fn set_addresses(&self, link: &LinkView, wanted: &[(Ipv4Addr, u8)]) -> Result<(), NetworkError> {
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute()
            .try_collect()
            .await
            .map_err(failed(format!("listing the addresses of {}", link.name)))?;
        let mut present = Vec::new();
        for msg in msgs.into_iter().filter(|m| m.header.index == link.index) {
            let Some(ip) = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            }) else {
                continue;
            };
            let entry = (ip, msg.header.prefix_len);
            if wanted.contains(&entry) {
                present.push(entry);
            } else {
                let doing = format!("removing {ip}/{} from {}", entry.1, link.name);
                self.handle.address().del(msg).execute().await.map_err(failed(doing))?;
            }
        }
        for &(ip, prefix) in wanted.iter().filter(|w| !present.contains(w)) {
            let doing = format!("adding {ip}/{prefix} to {}", link.name);
            self.handle.address().add(link.index, IpAddr::V4(ip), prefix).execute().await.map_err(failed(doing))?;
        }
        Ok(())
    }

    /// The IPv4 routes of the main table.
    async fn routes(&self) -> Result<Vec<RouteMessage>, NetworkError> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        self.handle.route().get(query).execute().try_collect().await.map_err(failed("listing routes"))
    }

    /// The interface of the IPv4 default route, if there is one.
    pub async fn default_route_interface(&self) -> Result<Option<u32>, NetworkError> {
        Ok(self.routes().await?.iter().filter(|r| r.header.destination_prefix_length == 0).find_map(|r| {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })
        }))
    }

    /// Makes sure the IPv4 default route goes via `gateway`.
    pub async fn set_default_route(&self, gateway: Ipv4Addr) -> Result<(), NetworkError> {
        let has_it = self.routes().await?.iter().any(|r| {
            r.header.destination_prefix_length == 0
                && r.attributes.iter().any(|a| matches!(a, RouteAttribute::Gateway(g) if *g == gateway.into()))
        });
        if has_it {
            return Ok(());
        }
        let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).build();
        self.handle.route().add(route).execute().await.map_err(failed(format!("adding a default route via {gateway}")))
    }

    /// The forwarding entries of a VxLAN device that send to a remote endpoint: (MAC, destination). The all-zero
    /// MAC entries are the flooding destinations fos sets; the others the kernel learned.
    pub async fn remote_entries(&self, link: &LinkView) -> Result<Vec<([u8; 6], IpAddr)>, NetworkError> {
        let msgs: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute()
            .try_collect()
            .await
            .map_err(failed(format!("listing the forwarding entries of {}", link.name)))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.ifindex == link.index)
            .filter_map(|m| {
                let mac = m.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::LinkLayerAddress(l) => <[u8; 6]>::try_from(l.as_slice()).ok(),
                    _ => None,
                })?;
                let dst = m.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::Destination(address) => destination(address),
                    _ => None,
                })?;
                Some((mac, dst))
            })
            .collect())
    }

    fn fdb_entry(link: &LinkView, mac: [u8; 6], dst: IpAddr) -> NeighbourMessage {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = link.index;
        msg.header.state = rtnetlink::packet_route::neighbour::NeighbourState::Permanent;
        msg.header.flags = NeighbourFlags::Own;
        msg.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        msg.attributes.push(NeighbourAttribute::Destination(match dst {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        msg
    }

    /// Appends an all-zero-MAC forwarding entry to `dst` (`bridge fdb append 00:00:00:00:00:00 dev <link> dst
    /// <dst>`), so broadcast and unknown unicast reach that node.
    pub async fn add_flood_destination(&self, link: &LinkView, dst: IpAddr) -> Result<(), NetworkError> {
        let doing = format!("adding forwarding entry to {dst} on {}", link.name);
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(Self::fdb_entry(link, [0; 6], dst)));
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
        let mut handle = self.handle.clone();
        let mut response = handle.request(req).map_err(failed(doing.clone()))?;
        while let Some(msg) = futures::StreamExt::next(&mut response).await {
            if let NetlinkPayload::Error(e) = msg.payload {
                return Err(NetworkError::Kernel { doing, source: e.to_io() });
            }
        }
        Ok(())
    }

    /// Removes the forwarding entry for `mac` to `dst` (already gone is fine).
    pub async fn remove_remote_entry(&self, link: &LinkView, mac: [u8; 6], dst: IpAddr) -> Result<(), NetworkError> {
        const ENOENT: i32 = 2;
        match self.handle.neighbours().del(Self::fdb_entry(link, mac, dst)).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.code.map(|c| -c.get()) == Some(ENOENT) => Ok(()),
            Err(e) => Err(failed(format!("removing forwarding entry to {dst} from {}", link.name))(e)),
        }
    }
}
