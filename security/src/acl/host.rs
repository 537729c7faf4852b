//! An entry's host against the client's address: `*`, the exact address text, or (Kafka 4.4,
//! `CidrUtils`) a CIDR block. Kafka compares the text Java's `InetAddress.getHostAddress()`
//! prints, so [`host_address`] prints a peer address the same way; a host an operator wrote in
//! another spelling (`::1` for IPv6 loopback) never matches, in Kafka as here.

use std::cell::OnceCell;
use std::net::{IpAddr, Ipv6Addr};

use super::types::WILDCARD_HOST;

/// The text Kafka compares ACL hosts with: Java's `getHostAddress()` of the peer. IPv4 is
/// dotted; IPv6 is eight lower-case hex groups without `::` compression (`0:0:0:0:0:0:0:1`);
/// an IPv4-mapped IPv6 peer is the IPv4 address, because Java turns such peers into
/// `Inet4Address`.
pub fn host_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:x}")).collect();
                groups.join(":")
            }
        },
    }
}

/// A CIDR block as an inclusive address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cidr {
    V4 { low: u32, high: u32 },
    V6 { low: u128, high: u128 },
}

/// An entry's host, parsed once when the snapshot is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostPattern {
    Wildcard,
    /// Compared as text; also a host with `/` that is no valid CIDR block (Kafka's range
    /// check fails quietly for it).
    Exact,
    Cidr(Cidr),
}

/// The client's host text, with its numeric forms parsed on first use: one decision may test
/// it against many CIDR entries.
pub(crate) struct HostQuery<'a> {
    text: &'a str,
    v4: OnceCell<Option<u32>>,
    v6: OnceCell<Option<u128>>,
}

impl Cidr {
    /// Parses `address/bits` as commons-net's `SubnetUtils` (IPv4) or `SubnetUtils6` (any text
    /// with `:`) does, returning its complaint on failure.
    pub(crate) fn parse(text: &str) -> Result<Cidr, String> {
        if text.contains(':') {
            parse_v6_block(text)
        } else {
            parse_v4_block(text)
        }
    }

    fn contains(&self, query: &HostQuery<'_>) -> bool {
        match *self {
            // SubnetUtils rejects the all-zero address before the range test.
            Cidr::V4 { low, high } => query.v4().is_some_and(|a| a != 0 && low <= a && a <= high),
            Cidr::V6 { low, high } => query.v6().is_some_and(|a| low <= a && a <= high),
        }
    }
}

impl HostPattern {
    pub(crate) fn compile(acl_host: &str) -> HostPattern {
        if acl_host == WILDCARD_HOST {
            return HostPattern::Wildcard;
        }
        if acl_host.contains('/') {
            if let Ok(cidr) = Cidr::parse(acl_host) {
                return HostPattern::Cidr(cidr);
            }
        }
        HostPattern::Exact
    }

    /// `StandardAuthorizerData.findResult`'s host test; `acl_host` is the text it was compiled
    /// from.
    pub(crate) fn matches(&self, acl_host: &str, query: &HostQuery<'_>) -> bool {
        match self {
            HostPattern::Wildcard => true,
            HostPattern::Exact => acl_host == query.text,
            HostPattern::Cidr(cidr) => acl_host == query.text || cidr.contains(query),
        }
    }
}

impl<'a> HostQuery<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        HostQuery {
            text,
            v4: OnceCell::new(),
            v6: OnceCell::new(),
        }
    }

    fn v4(&self) -> Option<u32> {
        *self
            .v4
            .get_or_init(|| dotted_octets(self.text).and_then(octets_to_u32))
    }

    fn v6(&self) -> Option<u128> {
        *self.v6.get_or_init(|| {
            // Java's parser accepts and ignores a scope (`fe80:0:0:0:0:0:0:1%eth0`).
            let text = self
                .text
                .split_once('%')
                .map_or(self.text, |(address, _)| address);
            ipv6_literal(text).map(u128::from)
        })
    }
}

/// The test reference: Kafka's host rule straight from the text, parsing every time.
#[cfg(test)]
pub(crate) fn host_matches(acl_host: &str, host: &str) -> bool {
    HostPattern::compile(acl_host).matches(acl_host, &HostQuery::new(host))
}

fn parse_v4_block(text: &str) -> Result<Cidr, String> {
    let unparsable = || format!("Could not parse [{text}]");
    let (address, bits) = text.split_once('/').ok_or_else(unparsable)?;
    let octets = dotted_octets(address).ok_or_else(unparsable)?;
    if bits.is_empty() || bits.len() > 2 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unparsable());
    }
    if let Some(&bad) = octets.iter().find(|&&o| o > 255) {
        return Err(format!("Value [{bad}] not in range [0,255]"));
    }
    let bits: u32 = bits.parse().map_err(|_| unparsable())?;
    if bits > 32 {
        return Err(format!("Value [{bits}] not in range [0,32]"));
    }
    let address = octets_to_u32(octets).ok_or_else(unparsable)?;
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    let low = address & mask;
    Ok(Cidr::V4 {
        low,
        high: low | !mask,
    })
}

fn parse_v6_block(text: &str) -> Result<Cidr, String> {
    let Some((address, bits)) = text.split_once('/') else {
        return Err(format!("Could not parse [{text}] - missing prefix length"));
    };
    let bits: i32 = bits
        .parse()
        .map_err(|_| format!("Could not parse [{text}] - invalid prefix length"))?;
    if !(0..=128).contains(&bits) {
        return Err(format!(
            "Could not parse [{text}] - prefix length must be between 0 and 128"
        ));
    }
    let parsed: Ipv6Addr = address
        .parse()
        .map_err(|_| format!("Could not parse [{address}]"))?;
    if parsed.to_ipv4_mapped().is_some() {
        return Err(format!("Could not parse [{address}] - not an IPv6 address"));
    }
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    let low = u128::from(parsed) & mask;
    Ok(Cidr::V6 {
        low,
        high: low | !mask,
    })
}

/// SubnetUtils's address pattern: four groups of one to three ASCII digits. Values above 255
/// are returned as they are, for the caller's range check.
fn dotted_octets(text: &str) -> Option<[u16; 4]> {
    let mut octets = [0u16; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then_some(octets)
}

fn octets_to_u32(octets: [u16; 4]) -> Option<u32> {
    octets.iter().try_fold(0u32, |acc, &o| {
        (o <= 255).then(|| (acc << 8) | u32::from(o))
    })
}

/// An IPv6 literal as Java's `InetAddress.getByName` sees it: an IPv4-mapped literal is an
/// IPv4 address there, so it is not IPv6 here either.
fn ipv6_literal(text: &str) -> Option<Ipv6Addr> {
    let parsed: Ipv6Addr = text.parse().ok()?;
    parsed.to_ipv4_mapped().is_none().then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn host_address_prints_like_java() {
        assert_eq!(
            host_address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            "10.0.0.1"
        );
        assert_eq!(
            host_address(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            "0:0:0:0:0:0:0:1"
        );
        let v6: Ipv6Addr = "2001:db8::ab:1".parse().unwrap();
        assert_eq!(host_address(IpAddr::V6(v6)), "2001:db8:0:0:0:0:ab:1");
        let mapped = Ipv4Addr::new(192, 168, 1, 2).to_ipv6_mapped();
        assert_eq!(host_address(IpAddr::V6(mapped)), "192.168.1.2");
    }

    #[test]
    fn wildcard_and_exact_hosts() {
        assert!(host_matches("*", "10.0.0.1"));
        assert!(host_matches("*", "anything"));
        assert!(host_matches("10.0.0.1", "10.0.0.1"));
        assert!(!host_matches("10.0.0.1", "10.0.0.2"));
        // Text comparison: another spelling of the same address does not match.
        assert!(!host_matches("::1", "0:0:0:0:0:0:0:1"));
        assert!(!host_matches("010.0.0.1", "10.0.0.1"));
    }

    #[test]
    fn ipv4_blocks() {
        assert!(host_matches("10.1.0.0/16", "10.1.255.7"));
        assert!(host_matches("10.1.0.0/16", "10.1.0.0"));
        assert!(!host_matches("10.1.0.0/16", "10.2.0.1"));
        // The block's address is masked to its network.
        assert!(host_matches("10.1.2.3/24", "10.1.2.200"));
        assert!(
            host_matches("10.1.2.3/32", "10.1.2.3") && !host_matches("10.1.2.3/32", "10.1.2.4")
        );
        assert!(host_matches("0.0.0.0/0", "255.255.255.255"));
        // SubnetUtils never puts 0.0.0.0 in a range, and reads leading zeros as decimal.
        assert!(!host_matches("0.0.0.0/0", "0.0.0.0"));
        assert!(host_matches("10.0.0.0/8", "010.1.1.1"));
        // An IPv6 client is in no IPv4 block.
        assert!(!host_matches("0.0.0.0/0", "0:0:0:0:0:0:0:1"));
        assert!(!host_matches("10.0.0.0/8", "10.0.0.256"));
    }

    #[test]
    fn ipv6_blocks() {
        assert!(host_matches("2001:db8::/32", "2001:db8:0:0:0:0:0:1"));
        assert!(host_matches("2001:db8::/32", "2001:db8:ffff::1"));
        assert!(!host_matches("2001:db8::/32", "2001:db9:0:0:0:0:0:1"));
        assert!(host_matches("::/0", "fe80:0:0:0:0:0:0:1%eth0"));
        assert!(!host_matches("::/0", "10.0.0.1"));
        assert!(host_matches("0:0:0:0:0:0:0:1/128", "0:0:0:0:0:0:0:1"));
    }

    #[test]
    fn block_parse_errors_name_the_fault() {
        let err = |t: &str| Cidr::parse(t).unwrap_err();
        assert_eq!(err("10.0.0.0/33"), "Value [33] not in range [0,32]");
        assert_eq!(err("10.0.0.300/8"), "Value [300] not in range [0,255]");
        assert_eq!(err("10.0.0.0/"), "Could not parse [10.0.0.0/]");
        assert_eq!(err("10.0.0.0/123"), "Could not parse [10.0.0.0/123]");
        assert_eq!(err("host.example/8"), "Could not parse [host.example/8]");
        assert_eq!(
            err("::/129"),
            "Could not parse [::/129] - prefix length must be between 0 and 128"
        );
        assert_eq!(
            err("::/x"),
            "Could not parse [::/x] - invalid prefix length"
        );
        assert_eq!(err("::g/8"), "Could not parse [::g]");
        assert_eq!(
            err("::ffff:1.2.3.4/96"),
            "Could not parse [::ffff:1.2.3.4] - not an IPv6 address"
        );
        assert_eq!(
            Cidr::parse("1.2.3.4/0"),
            Ok(Cidr::V4 {
                low: 0,
                high: u32::MAX
            })
        );
        // An invalid block in a stored entry only ever matches its own text.
        assert_eq!(HostPattern::compile("10.0.0.0/40"), HostPattern::Exact);
    }
}
