//! Who may call, and which numbers answer: checked on each new request before anything else.
//!
//! - **Trunks**: with a list of networks (the carrier's or the PBX's addresses), a request
//!   from anywhere else gets 403 Forbidden (RFC 3261 section 21.4.4: understood, refused,
//!   do not retry). The same list is the trust domain of RFC 3325: only a listed peer's
//!   `P-Asserted-Identity` names the caller. An empty list admits everyone and believes their
//!   assertions (an open server believes a From just as much).
//! - **Digest**: with accounts configured, a peer outside the trunks is challenged instead
//!   (401, RFC 3261 section 22.2; `digest`) and let in with the right credentials; an
//!   authenticated peer is trusted like a trunk.
//! - **Numbers**: the dialled number (`identity::dialled_number`) selects the hotline. Without
//!   a default hotline, a number none answers gets 404 Not Found (RFC 3261 section 21.4.5:
//!   the user does not exist at the domain), never some other hotline's greeting.

use std::collections::BTreeSet;
use std::net::IpAddr;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let base: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an address or network (like 10.0.0.0/8)"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Self { base, prefix })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl Network {
    /// Whether `ip` is in the block. An IPv4 peer on a dual-stack socket arrives as
    /// `::ffff:a.b.c.d` and is matched as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                prefix_equal(&base.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                prefix_equal(&base.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn prefix_equal(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

/// The endpoint's admission rules.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    /// The trunks: empty admits everyone.
    pub trunks: Vec<Network>,
    /// The numbers answered (cleaned, `identity::clean_dialled`); None answers every number
    /// (there is a default hotline, or none is configured at all).
    pub numbers: Option<BTreeSet<String>>,
    /// Peers outside the trunks may call with these digest credentials (401 challenge);
    /// None: they get 403.
    pub digest: Option<super::digest::DigestConfig>,
}

impl Admission {
    /// Whether a request from `ip` is let in.
    pub fn admits(&self, ip: IpAddr) -> bool {
        self.trunks.is_empty() || self.is_trunk(ip)
    }

    /// Whether `ip` is a listed trunk (whose asserted identities are believed).
    pub fn is_trunk(&self, ip: IpAddr) -> bool {
        self.trunks.iter().any(|n| n.contains(ip))
    }

    /// Whether a hotline answers `dialled` (None: the INVITE named no number).
    pub fn answers(&self, dialled: Option<&str>) -> bool {
        match &self.numbers {
            None => true,
            Some(numbers) => dialled.is_some_and(|d| numbers.contains(d)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Network {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        assert!(net("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("192.0.2.0/25").contains(ip("192.0.2.127")));
        assert!(!net("192.0.2.0/25").contains(ip("192.0.2.128")));
        assert!(net("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!net("192.0.2.7").contains(ip("192.0.2.8")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!net("2001:db8::/32").contains(ip("2001:db9::5")));
        // An IPv4 peer seen through a dual-stack socket.
        assert!(net("127.0.0.0/8").contains(ip("::ffff:127.0.0.2")));
        assert!(!net("::1").contains(ip("127.0.0.1")));
        assert_eq!(net("10.1.2.3/16").to_string(), "10.1.2.3/16");
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0",
            "example.com/8",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn admission_by_trunk_and_number() {
        let open = Admission::default();
        assert!(open.admits(ip("203.0.113.9")));
        assert!(open.answers(None));
        let closed = Admission {
            trunks: vec![net("127.0.0.0/8"), net("192.0.2.10")],
            numbers: Some(["4000".to_string(), "sales".to_string()].into()),
            digest: None,
        };
        assert!(closed.admits(ip("127.0.0.3")) && closed.admits(ip("192.0.2.10")));
        assert!(!closed.admits(ip("192.0.2.11")));
        assert!(closed.answers(Some("sales")));
        assert!(!closed.answers(Some("4001")));
        assert!(!closed.answers(None));
    }
}
