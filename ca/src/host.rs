//! Host names as they go into a leaf certificate: a DNS name or an IP address, normalised so that
//! one host gets one cache entry. Owns only parsing and validation; knows nothing of certificates.

use std::fmt;
use std::net::IpAddr;

use crate::error::HostProblem;

/// The longest DNS name (RFC 1035: 255 octets on the wire, 253 in text form).
pub const MAX_DNS_NAME_LEN: usize = 253;

/// A host a leaf certificate is minted for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name without a trailing dot, letter case kept as given (harmless: clients match the SAN
    /// case-insensitively, and the viewer's own case-sensitive CN check is off, see lib.rs).
    Dns(String),
    /// An IPv4 or IPv6 address (OpenSim grids are often reached by bare address).
    Ip(IpAddr),
}

impl Host {
    /// Parses what a client sent as SNI or as the CONNECT host: a DNS name, an IPv4 address, an
    /// IPv6 address with or without `[...]`. A trailing dot is dropped; letter case is kept
    /// (`Grid.Example` and `grid.example` get separate certificates, each valid for both). Ports are rejected: pass the bare host.
    pub fn parse(raw: &str) -> Result<Host, HostProblem> {
        let trimmed = raw.trim();
        let unbracketed = trimmed
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(trimmed);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let name = unbracketed.strip_suffix('.').unwrap_or(unbracketed);
        if name.is_empty() {
            return Err(HostProblem::Empty);
        }
        if name.len() > MAX_DNS_NAME_LEN {
            return Err(HostProblem::TooLong {
                max: MAX_DNS_NAME_LEN,
            });
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*')))
        {
            return Err(HostProblem::BadCharacter(bad));
        }
        if name.split('.').any(str::is_empty) {
            return Err(HostProblem::EmptyLabel);
        }
        Ok(Host::Dns(name.to_owned()))
    }
}

impl fmt::Display for Host {
    /// The form that goes into the certificate's common name and the cache key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Dns(name) => f.write_str(name),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_keep_their_case_and_lose_the_trailing_dot() {
        assert_eq!(
            Host::parse("Sim10128.Agni.LindenLab.com.").unwrap(),
            Host::Dns("Sim10128.Agni.LindenLab.com".into())
        );
    }

    #[test]
    fn ip_addresses_parse_with_or_without_brackets() {
        assert_eq!(
            Host::parse("192.168.1.20").unwrap(),
            Host::Ip("192.168.1.20".parse().unwrap())
        );
        assert_eq!(
            Host::parse("[2001:db8::7]").unwrap(),
            Host::Ip("2001:db8::7".parse().unwrap())
        );
        assert_eq!(Host::parse("::1").unwrap().to_string(), "::1");
    }

    #[test]
    fn bad_hosts_say_why() {
        assert_eq!(Host::parse(""), Err(HostProblem::Empty));
        assert_eq!(Host::parse("[]"), Err(HostProblem::Empty));
        assert_eq!(
            Host::parse("grid.example:8002"),
            Err(HostProblem::BadCharacter(':'))
        );
        assert_eq!(
            Host::parse("grïd.example"),
            Err(HostProblem::BadCharacter('ï'))
        );
        assert_eq!(Host::parse("a..b"), Err(HostProblem::EmptyLabel));
        let long = "a".repeat(MAX_DNS_NAME_LEN + 1);
        assert_eq!(
            Host::parse(&long),
            Err(HostProblem::TooLong {
                max: MAX_DNS_NAME_LEN
            })
        );
    }
}
