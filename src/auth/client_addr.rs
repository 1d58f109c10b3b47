//! Who is calling, by address: the one function every per-address limit keys on.
//!
//! Anyone can send `X-Forwarded-For` or `Forwarded`, so they are read only when the TCP
//! peer is one of the operator's proxies (`TWOBOT_TRUSTED_PROXIES`, IPs or CIDRs). Then
//! the client is the right-most address in the header that is not itself a trusted
//! proxy: each proxy appends the address it saw, so everything left of the last
//! untrusted hop was written by the caller and is ignored. Addresses are grouped into
//! [`AddressKey`]s: an IPv4 address alone, an IPv6 address by its /64 (one customer's
//! network; a host picks any of its 2^64 addresses at will), an IPv4-mapped IPv6 address
//! as the IPv4 address it is.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::HeaderMap;

/// The operator's proxies: the only peers whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

/// A `TWOBOT_TRUSTED_PROXIES` entry that is not an IP address or CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not an IP address or CIDR (such as 127.0.0.1, 10.0.0.0/8 or fd00::/8)")]
pub struct BadProxy {
    /// The entry as written.
    pub entry: String,
}

impl TrustedProxies {
    /// Parse comma-separated entries (already split); blanks are skipped.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, BadProxy> {
        let mut nets = Vec::new();
        for entry in entries.iter().map(|e| e.as_ref().trim()) {
            if entry.is_empty() {
                continue;
            }
            let bad = || BadProxy {
                entry: entry.to_owned(),
            };
            let (addr, prefix) = match entry.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix)),
                None => (entry, None),
            };
            let ip = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
                None => max,
            };
            nets.push((ip, prefix));
        }
        Ok(Self(nets))
    }

    /// Whether no proxy is trusted (forwarding headers are never read).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(net, prefix)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(|(ip, p)| format!("{ip}/{p}")).collect();
        f.write_str(&list.join(","))
    }
}

/// The client's address as [`client_ip`] found it, put into a request's extensions by
/// the per-address layer so every layer below keys on the same address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client address of `request`: the one the per-address layer found, else worked
/// out here the same way.
pub fn request_client<B>(request: &http::Request<B>, trusted: &TrustedProxies) -> Option<IpAddr> {
    if let Some(ClientAddr(ip)) = request.extensions().get::<ClientAddr>() {
        return Some(*ip);
    }
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    client_ip(peer, request.headers(), trusted)
}

/// The caller's address: what a trusted proxy reports, else the peer.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer.map(|p| p.to_canonical());
    match peer {
        Some(p) if trusted.contains(p) => forwarded_client(headers, trusted).or(Some(p)),
        _ => peer,
    }
}

/// The right-most forwarded address that is not a trusted proxy (`X-Forwarded-For`,
/// else `Forwarded: for=`); the left-most when every hop is trusted; `None` when the
/// hop a trusted proxy wrote cannot be read.
fn forwarded_client(headers: &HeaderMap, trusted: &TrustedProxies) -> Option<IpAddr> {
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let hops = if xff.is_empty() {
        headers
            .get_all(http::header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([',', ';']))
            .filter_map(|part| {
                let (k, v) = part.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| v.trim().trim_matches('"'))
            })
            .collect()
    } else {
        xff
    };
    let mut leftmost = None;
    for hop in hops.iter().rev() {
        let ip = parse_ip(hop)?.to_canonical();
        if !trusted.contains(ip) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    leftmost
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| s.trim_start_matches('[').split(']').next()?.parse().ok())
}

/// What per-address limits count: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    /// The group `ip` belongs to.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & (u128::MAX << 64);
                Self(IpAddr::V6(Ipv6Addr::from(bits)))
            }
            v4 => Self(v4),
        }
    }
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_their_64_and_ipv4_stands_alone() {
        for (a, b, same) in [
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true),
            ("2001:db8:1:2::1", "2001:db8:1:3::1", false),
            ("::ffff:192.0.2.1", "192.0.2.1", true),
            ("192.0.2.1", "192.0.2.2", false),
            ("::1", "::2", true),
        ] {
            assert_eq!(
                AddressKey::of(ip(a)) == AddressKey::of(ip(b)),
                same,
                "{a} {b}"
            );
        }
        assert_eq!(
            AddressKey::of(ip("2001:db8:1:2:3:4:5:6")).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            AddressKey::of(ip("::ffff:10.1.2.3")).to_string(),
            "10.1.2.3"
        );
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_cidrs_and_refuse_anything_else() {
        let t = TrustedProxies::parse(&["127.0.0.1", " 10.0.0.0/8", "fd00::/8", ""]).unwrap();
        for (addr, inside) in [
            ("127.0.0.1", true),
            ("127.0.0.2", false),
            ("10.200.3.4", true),
            ("11.0.0.1", false),
            ("fd12::1", true),
            ("fe80::1", false),
            ("::ffff:127.0.0.1", true),
        ] {
            assert_eq!(t.contains(ip(addr)), inside, "{addr}");
        }
        assert!(
            TrustedProxies::parse(&["0.0.0.0/0"])
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        for bad in ["nginx", "10.0.0.0/33", "::/129", "1.2.3.4/x", "1.2.3"] {
            let e = TrustedProxies::parse(&[bad]).unwrap_err();
            assert_eq!(e.entry, bad);
        }
        assert!(TrustedProxies::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn forwarding_headers_count_only_from_a_trusted_peer_and_only_their_last_untrusted_hop() {
        let trusted = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).unwrap();
        let xff = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
            h
        };
        let fwd = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::FORWARDED, HeaderValue::from_str(v).unwrap());
            h
        };
        let none = HeaderMap::new();
        let cases: [(&str, HeaderMap, &str); 10] = [
            // An untrusted peer's headers are ignored: spoofing changes nothing.
            ("203.0.113.9", xff("6.6.6.6"), "203.0.113.9"),
            ("127.0.0.2", xff("6.6.6.6"), "127.0.0.2"),
            // Through our proxy: the hop it appended.
            ("127.0.0.1", xff("198.51.100.7"), "198.51.100.7"),
            // A caller's own entries left of it do not count.
            ("127.0.0.1", xff("6.6.6.6, 198.51.100.7"), "198.51.100.7"),
            // Two trusted proxies: skip the inner one.
            ("127.0.0.1", xff("198.51.100.7, 10.1.1.1"), "198.51.100.7"),
            // Every hop trusted: the left-most.
            ("127.0.0.1", xff("10.2.2.2, 10.1.1.1"), "10.2.2.2"),
            // Garbage where the proxy wrote: the peer.
            ("127.0.0.1", xff("unknown"), "127.0.0.1"),
            ("127.0.0.1", none, "127.0.0.1"),
            (
                "127.0.0.1",
                fwd("for=192.0.2.60;proto=https, for=\"[2001:db8::1]:4711\""),
                "2001:db8::1",
            ),
            ("::ffff:127.0.0.1", xff("198.51.100.8"), "198.51.100.8"),
        ];
        for (peer, headers, want) in cases {
            assert_eq!(
                client_ip(Some(ip(peer)), &headers, &trusted),
                Some(ip(want)),
                "{peer} {headers:?}"
            );
        }
        assert_eq!(client_ip(None, &xff("1.2.3.4"), &trusted), None);
    }
}
