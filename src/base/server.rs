//! Addresses of DNS servers, as people write them: a server to ask or to
//! notify ([`Server`]: an IP address or a host name, with a port that
//! defaults to 53, resolved at each use so that a renumbered server is
//! found), and an address to listen on ([`parse_listen`]: an IP address,
//! port 53 unless given; a host name would hide which socket is bound).
//!
//! Forms: `192.0.2.1`, `192.0.2.1:5353`, `2001:db8::1`, `[2001:db8::1]`,
//! `[2001:db8::1]:5353`, `ns1.example.org`, `ns1.example.org:5353`,
//! `localhost:5353`.

use serde::{Deserialize, Deserializer};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// The DNS port (RFC 1035 §4.2).
pub const PORT: u16 = 53;

/// A DNS server to ask or to notify.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Server {
    pub host: Host,
    pub port: u16,
}

/// Where a [`Server`] is: an address, or a name resolved at each use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    Ip(IpAddr),
    /// A host name as written, lowercase, without a final dot.
    Name(String),
}

impl Server {
    pub fn ip(addr: SocketAddr) -> Server {
        Server {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }

    /// The server's addresses now: the address itself, or what the system
    /// resolver gives for the name (every address, each with the port).
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        match &self.host {
            Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, self.port)]),
            Host::Name(name) => {
                let mut addrs: Vec<SocketAddr> =
                    (name.as_str(), self.port).to_socket_addrs()?.collect();
                addrs.sort();
                addrs.dedup();
                Ok(addrs)
            }
        }
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Host::Ip(ip) => SocketAddr::new(*ip, self.port).fmt(f),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

impl std::str::FromStr for Server {
    type Err = String;

    fn from_str(s: &str) -> Result<Server, String> {
        let bad = |why: &str| {
            format!(
                "`{}` is not a server address ({why}); write an IP address or a host name, with :PORT if not 53, e.g. 192.0.2.53, [2001:db8::53]:5353 or ns1.example.org",
                crate::base::name::printable(s)
            )
        };
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Server::ip(addr));
        }
        if let Some(ip) = bare_ip(s) {
            return Ok(Server {
                host: Host::Ip(ip),
                port: PORT,
            });
        }
        let (name, port) = match s.rsplit_once(':') {
            Some((name, port)) => {
                let port = port.parse::<u16>().map_err(|_| bad("bad port"))?;
                (name, port)
            }
            None => (s, PORT),
        };
        if port == 0 {
            return Err(bad("port 0"));
        }
        let name = name.strip_suffix('.').unwrap_or(name);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(bad("not an IP address or a host name"));
        }
        Ok(Server {
            host: Host::Name(name.to_ascii_lowercase()),
            port,
        })
    }
}

/// An IP address alone, IPv6 with or without brackets.
fn bare_ip(s: &str) -> Option<IpAddr> {
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    inner.parse().ok()
}

/// A listen address: an IP address with a port, 53 unless given.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    bare_ip(s)
        .map(|ip| SocketAddr::new(ip, PORT))
        .ok_or_else(|| {
            format!(
                "`{}` is not a listen address: write an IP address, with :PORT if not 53, e.g. 127.0.0.1:5353, 192.0.2.53 or [::1]:5353",
                crate::base::name::printable(s)
            )
        })
}

/// Serde: a list of [`Server`]s.
pub fn servers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Server>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// Serde: a list of listen addresses.
pub fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_listen(s).map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_people_write() {
        let shown = |s: &str| s.parse::<Server>().map(|s| s.to_string());
        for (given, want) in [
            ("192.0.2.1", "192.0.2.1:53"),
            ("192.0.2.1:5353", "192.0.2.1:5353"),
            ("2001:db8::1", "[2001:db8::1]:53"),
            ("[2001:db8::1]", "[2001:db8::1]:53"),
            ("[2001:db8::1]:5353", "[2001:db8::1]:5353"),
            ("NS1.Example.org.", "ns1.example.org:53"),
            ("localhost:5353", "localhost:5353"),
        ] {
            assert_eq!(shown(given).as_deref(), Ok(want), "{given}");
        }
        for bad in [
            "",
            "ns1 example",
            "host:",
            "host:99999",
            "host:0",
            "a..b",
            "[::1",
            "é.org",
        ] {
            assert!(shown(bad).is_err(), "{bad}");
        }
        let e = shown("ns1 example").unwrap_err();
        assert!(
            e.starts_with("`ns1 example` is not a server address"),
            "{e}"
        );
    }

    #[test]
    fn names_resolve_at_use_and_addresses_are_themselves() {
        let s: Server = "localhost:5353".parse().unwrap();
        let addrs = s.resolve().unwrap();
        assert!(
            addrs.contains(&"127.0.0.1:5353".parse().unwrap()),
            "{addrs:?}"
        );
        let s: Server = "192.0.2.1".parse().unwrap();
        assert_eq!(s.resolve().unwrap(), ["192.0.2.1:53".parse().unwrap()]);
    }

    #[test]
    fn listen_addresses_are_ip_with_port_53_by_default() {
        assert_eq!(
            parse_listen("192.0.2.1"),
            Ok("192.0.2.1:53".parse().unwrap())
        );
        assert_eq!(parse_listen("[::1]"), Ok("[::1]:53".parse().unwrap()));
        assert_eq!(parse_listen("::1"), Ok("[::1]:53".parse().unwrap()));
        assert_eq!(
            parse_listen("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert!(parse_listen("localhost:53").is_err());
    }
}
