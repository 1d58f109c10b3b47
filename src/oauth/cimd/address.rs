//! The SSRF guard's one decision: may 2Bot open a connection to this address to fetch a
//! client's metadata document? The client id is a URL anyone can type, so without this a
//! stranger could make 2Bot reach its own loopback services, the LAN, or a cloud metadata
//! service (169.254.169.254), and read the answers back in error messages.
//!
//! Two kinds of refusal: addresses of the operator's own networks (loopback, RFC 1918,
//! CGNAT, unique-local), which `TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE` lets through for closed
//! networks and tests; and addresses nothing legitimate serves a document from
//! (link-local, unspecified, multicast, broadcast, documentation, benchmarking, reserved),
//! refused always. IPv6 forms that carry an IPv4 address (mapped, compatible, translated,
//! NAT64, 6to4) are judged by the IPv4 address inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused, and whether `allow_private` lifts the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// One of the operator's own networks.
    Private(&'static str),
    /// Never a place to fetch a document from.
    Never(&'static str),
}

const LINK_LOCAL: &str = "a link-local address (never fetched: cloud metadata services live there)";
const LOOPBACK: &str = "a loopback address";
const UNSPECIFIED: &str = "the unspecified address (it reaches this host)";
const MULTICAST: &str = "a multicast address";
const DOCUMENTATION: &str = "a documentation address";
const BENCHMARKING: &str = "a benchmarking address";

/// Why `ip` may not be fetched from (`None`: it may). See the [module docs](self).
pub fn forbidden_address(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    match classify(ip)? {
        Class::Private(_) if allow_private => None,
        Class::Private(reason) | Class::Never(reason) => Some(reason),
    }
}

/// Whether `allow_private` would let `ip` through (for the hint in the error).
pub(super) fn allowed_when_private(ip: IpAddr) -> bool {
    matches!(classify(ip), Some(Class::Private(_)))
}

fn classify(ip: IpAddr) -> Option<Class> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Class> {
    use Class::*;
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => Never(UNSPECIFIED),
        (0, _, _) => Never("a \"this network\" address (0.0.0.0/8, which reaches this host)"),
        (127, _, _) => Private(LOOPBACK),
        (10, _, _) | (192, 168, _) => Private("a private address (RFC 1918)"),
        (172, 16..=31, _) => Private("a private address (RFC 1918)"),
        (100, 64..=127, _) => Private("a shared (CGNAT) address (100.64.0.0/10)"),
        (169, 254, _) => Never(LINK_LOCAL),
        (192, 0, 0) => Never("an IETF protocol assignment (192.0.0.0/24)"),
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Never(DOCUMENTATION),
        (198, 18..=19, _) => Never(BENCHMARKING),
        (192, 88, 99) => Never("a 6to4 relay anycast address (192.88.99.0/24)"),
        (224..=239, _, _) => Never(MULTICAST),
        _ if ip.is_broadcast() => Never("the broadcast address"),
        (240..=255, _, _) => Never("a reserved address (240.0.0.0/4)"),
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Class> {
    use Class::*;
    let s = ip.segments();
    let tail_v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    Some(match s {
        _ if ip.is_unspecified() => Never(UNSPECIFIED),
        _ if ip.is_loopback() => Private(LOOPBACK),
        // ::ffff:a.b.c.d (mapped): the kernel connects to a.b.c.d itself.
        [0, 0, 0, 0, 0, 0xffff, _, _] => return classify_v4(tail_v4),
        // ::ffff:0:a.b.c.d (SIIT translated) and 64:ff9b::a.b.c.d (NAT64): a translator does.
        [0, 0, 0, 0, 0xffff, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => {
            return classify_v4(tail_v4);
        }
        // ::a.b.c.d (IPv4-compatible, deprecated): no legitimate use, judged by what it names.
        [0, 0, 0, 0, 0, 0, _, _] => classify_v4(tail_v4)
            .unwrap_or(Never("a deprecated IPv4-compatible IPv6 address (::/96)")),
        // 6to4: the IPv4 address of the site is in the second and third groups.
        [0x2002, hi, lo, ..] => {
            let v4 = Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            return classify_v4(v4);
        }
        [0x64, 0xff9b, 1, ..] => Private("a local-use NAT64 address (64:ff9b:1::/48)"),
        [0x100, 0, 0, 0, ..] => Never("a discard-only address (100::/64)"),
        [0x2001, 0xdb8, ..] => Never(DOCUMENTATION),
        [0x3fff, 0..=0x0fff, ..] => Never(DOCUMENTATION),
        [0x2001, 2, 0, ..] => Never(BENCHMARKING),
        [0x2001, 0..=0x1ff, ..] => {
            Never("an IETF protocol assignment (2001::/23, Teredo among them)")
        }
        [0xfc00..=0xfdff, ..] => Private("a unique-local address (fc00::/7)"),
        [0xfe80..=0xfebf, ..] => Never(LINK_LOCAL),
        [0xfec0..=0xfeff, ..] => Private("a site-local address (fec0::/10, deprecated)"),
        [0xff00..=0xffff, ..] => Never(MULTICAST),
        [0x2000..=0x3fff, ..] => return None,
        _ => Never("a reserved address (outside global unicast 2000::/3)"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Every range, with and without `allow_private`.
    #[test]
    fn every_forbidden_range_is_refused_and_only_private_ones_can_be_allowed() {
        // (address, refused without allow_private, refused with it, reason contains)
        let cases: &[(&str, bool, bool, &str)] = &[
            ("127.0.0.1", true, false, "loopback"),
            ("127.255.255.254", true, false, "loopback"),
            ("::1", true, false, "loopback"),
            ("::ffff:127.0.0.1", true, false, "loopback"),
            ("::127.0.0.1", true, false, "loopback"),
            ("::ffff:0:127.0.0.1", true, false, "loopback"),
            ("64:ff9b::127.0.0.1", true, false, "loopback"),
            ("2002:7f00:1::1", true, false, "loopback"),
            ("10.1.2.3", true, false, "RFC 1918"),
            ("172.16.0.1", true, false, "RFC 1918"),
            ("172.31.255.255", true, false, "RFC 1918"),
            ("192.168.1.1", true, false, "RFC 1918"),
            ("::ffff:10.0.0.1", true, false, "RFC 1918"),
            ("100.64.0.1", true, false, "CGNAT"),
            ("100.127.255.255", true, false, "CGNAT"),
            ("fc00::1", true, false, "unique-local"),
            ("fd12:3456::1", true, false, "unique-local"),
            ("fec0::1", true, false, "site-local"),
            ("64:ff9b:1::1", true, false, "local-use NAT64"),
            // Never, even with allow_private.
            ("169.254.169.254", true, true, "link-local"),
            ("::ffff:169.254.169.254", true, true, "link-local"),
            ("64:ff9b::169.254.169.254", true, true, "link-local"),
            ("2002:a9fe:a9fe::1", true, true, "link-local"),
            ("fe80::1", true, true, "link-local"),
            ("febf::1", true, true, "link-local"),
            ("0.0.0.0", true, true, "unspecified"),
            ("0.1.2.3", true, true, "this network"),
            ("::", true, true, "unspecified"),
            ("::ffff:0.0.0.0", true, true, "unspecified"),
            ("224.0.0.1", true, true, "multicast"),
            ("239.255.255.250", true, true, "multicast"),
            ("ff02::1", true, true, "multicast"),
            ("255.255.255.255", true, true, "broadcast"),
            ("240.0.0.1", true, true, "reserved"),
            ("192.0.0.1", true, true, "IETF protocol assignment"),
            ("192.0.2.1", true, true, "documentation"),
            ("198.51.100.7", true, true, "documentation"),
            ("203.0.113.9", true, true, "documentation"),
            ("2001:db8::1", true, true, "documentation"),
            ("3fff::1", true, true, "documentation"),
            ("198.18.0.1", true, true, "benchmarking"),
            ("198.19.255.255", true, true, "benchmarking"),
            ("2001:2::1", true, true, "benchmarking"),
            ("192.88.99.1", true, true, "6to4 relay"),
            ("2001::1", true, true, "Teredo"),
            ("100::1", true, true, "discard-only"),
            ("::8.8.8.8", true, true, "IPv4-compatible"),
            ("4000::1", true, true, "reserved"),
            // Public addresses pass.
            ("93.184.215.14", false, false, ""),
            ("8.8.8.8", false, false, ""),
            ("172.32.0.1", false, false, ""),
            ("100.128.0.1", false, false, ""),
            ("169.255.0.1", false, false, ""),
            ("198.20.0.1", false, false, ""),
            ("::ffff:8.8.8.8", false, false, ""),
            ("64:ff9b::8.8.8.8", false, false, ""),
            ("2606:4700::1111", false, false, ""),
            ("2a00:1450:4001::200e", false, false, ""),
            ("2002:808:808::1", false, false, ""),
        ];
        let mut wrong = Vec::new();
        for &(ip, refused, refused_private, reason) in cases {
            let addr: IpAddr = ip.parse().unwrap();
            let strict = forbidden_address(addr, false);
            let lax = forbidden_address(addr, true);
            let reason_ok = strict.is_none_or(|r| r.contains(reason));
            if strict.is_some() != refused || lax.is_some() != refused_private || !reason_ok {
                wrong.push(format!("{ip}: strict {strict:?}, allow_private {lax:?}"));
            }
            if allowed_when_private(addr) != (refused && !refused_private) {
                wrong.push(format!("{ip}: allowed_when_private is wrong"));
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }
}
