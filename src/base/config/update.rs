//! `[[update_key]]`: the TSIG keys that may send RFC 2136 updates to the
//! responder of `serve` and `run`, and what each may touch.
//!
//! Only the shape is checked here (the algorithm, one of `secret` and
//! `secret_file`, the names within the drop directory's names); the secret
//! itself is read by `live::update` when the responder starts or reloads,
//! so `build` and the hooks never need to read it.

use super::de::*;
use crate::base::name;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// The MAC algorithms a key may use (RFC 8945 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TsigAlg {
    #[serde(rename = "hmac-sha1")]
    HmacSha1,
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha384")]
    HmacSha384,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

impl TsigAlg {
    /// The algorithm's name as written in TSIG records and key files.
    pub fn name(self) -> &'static str {
        match self {
            TsigAlg::HmacSha1 => "hmac-sha1",
            TsigAlg::HmacSha256 => "hmac-sha256",
            TsigAlg::HmacSha384 => "hmac-sha384",
            TsigAlg::HmacSha512 => "hmac-sha512",
        }
    }

    /// The algorithm called `name` (any case, trailing dot optional).
    pub fn from_name(name: &str) -> Option<TsigAlg> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        [
            TsigAlg::HmacSha1,
            TsigAlg::HmacSha256,
            TsigAlg::HmacSha384,
            TsigAlg::HmacSha512,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }
}

/// A source address prefix (`192.0.2.0/24`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{}` is not an address or prefix (e.g. \"192.0.2.0/24\" or \"::1\")",
                name::printable(s)
            )
        };
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(max);
        if len > max {
            return Err(bad());
        }
        Ok(Prefix { addr, len })
    }
}

impl Prefix {
    /// Whether `ip` lies in this prefix (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(i)) => (
                u128::from(u32::from(p)) << 96,
                u128::from(u32::from(i)) << 96,
                self.len,
            ),
            (IpAddr::V6(p), IpAddr::V6(i)) => (u128::from(p), u128::from(i), self.len),
            _ => return false,
        };
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(bits))
        };
        a & mask == b & mask
    }
}

fn prefixes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<Prefix>>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect::<Result<_, _>>()
        .map(Some)
}

fn required_patterns<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(patterns(d)?.unwrap_or_default())
}

/// One `[[update_key]]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// The key's name, as the TSIG record carries it.
    #[serde(deserialize_with = "fqdn")]
    pub name: String,
    pub algorithm: TsigAlg,
    /// The base64 secret, inline.
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the base64 secret, or a BIND key file (`tsig-keygen`).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The names the key may place challenges at, as `[[drop]] names`.
    #[serde(deserialize_with = "required_patterns")]
    pub names: Vec<String>,
    /// The `[[drop]] path` its fragments go to.
    pub drop: PathBuf,
    /// Source addresses or prefixes the key is accepted from; none: any.
    #[serde(default, deserialize_with = "prefixes")]
    pub allow: Option<Vec<Prefix>>,
    /// At most this many values written by the key at once.
    #[serde(default)]
    pub max_values: Option<usize>,
    /// The ACME accounts (URLs) whose dns-account-01 labels it may place; none: any.
    #[serde(default, deserialize_with = "accounts")]
    pub accounts: Option<Vec<String>>,
}

// Never print the secret.
impl std::fmt::Debug for UpdateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "(hidden)"))
            .field("secret_file", &self.secret_file)
            .field("names", &self.names)
            .field("drop", &self.drop)
            .field("allow", &self.allow)
            .field("max_values", &self.max_values)
            .field("accounts", &self.accounts)
            .finish()
    }
}

/// Whether the names `pattern` allows (as in `[[drop]] names`) all lie within
/// what `within` allows; `within` None: any managed name.
pub fn pattern_within(pattern: &str, within: Option<&[String]>) -> bool {
    let Some(within) = within else { return true };
    within.iter().any(
        |w| match (w.strip_prefix("*."), pattern.strip_prefix("*.")) {
            (None, None) => w == pattern,
            (None, Some(_)) => false,
            (Some(base), None) => pattern != base && name::in_zone(pattern, base),
            (Some(base), Some(sub)) => name::in_zone(sub, base),
        },
    )
}

/// Check the `[[update_key]]` tables against the drops: `(key, message)` for the first problem.
pub(crate) fn validate(config: &super::Config) -> Result<(), (&'static str, String)> {
    let mut seen = std::collections::HashSet::new();
    for key in &config.update_keys {
        let k = &key.name;
        if !seen.insert(k.as_str()) {
            return Err(("update_key.name", format!("key `{k}` is configured twice")));
        }
        match (&key.secret, &key.secret_file) {
            (Some(_), Some(_)) => {
                return Err((
                    "update_key.secret",
                    format!("key `{k}`: give `secret` or `secret_file`, not both"),
                ))
            }
            (None, None) => {
                return Err((
                    "update_key.secret",
                    format!("key `{k}`: `secret` or `secret_file` is needed"),
                ))
            }
            _ => {}
        }
        if key.names.is_empty() {
            return Err((
                "update_key.names",
                format!("key `{k}`: at least one name is needed"),
            ));
        }
        let Some(drop) = config.drops.iter().find(|d| d.path == key.drop) else {
            return Err((
                "update_key.drop",
                format!(
                    "key `{k}`: `{}` is not the path of a configured [[drop]]",
                    key.drop.display()
                ),
            ));
        };
        for pattern in &key.names {
            let base = pattern.strip_prefix("*.").unwrap_or(pattern);
            if config.zone_of(base).is_none() {
                return Err((
                    "update_key.names",
                    format!("key `{k}`: `{pattern}` lies in no configured zone"),
                ));
            }
            if !pattern_within(pattern, drop.names.as_deref()) {
                return Err((
                    "update_key.names",
                    format!(
                        "key `{k}`: `{pattern}` is outside the names of the [[drop]] {} (the builder would refuse what the key writes)",
                        key.drop.display()
                    ),
                ));
            }
        }
        if key.max_values == Some(0) {
            return Err((
                "update_key.max_values",
                format!("key `{k}`: must be at least 1"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match() {
        let p: Prefix = "192.0.2.0/24".parse().unwrap();
        assert!(p.contains("192.0.2.9".parse().unwrap()));
        assert!(p.contains("::ffff:192.0.2.9".parse().unwrap()));
        assert!(!p.contains("192.0.3.1".parse().unwrap()));
        let one: Prefix = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn names_within_a_drop() {
        let d = vec![
            "example.test.".to_string(),
            "*.sub.example.test.".to_string(),
        ];
        let d = Some(d.as_slice());
        assert!(pattern_within("example.test.", d));
        assert!(pattern_within("a.sub.example.test.", d));
        assert!(pattern_within("*.a.sub.example.test.", d));
        assert!(pattern_within("*.sub.example.test.", d));
        assert!(!pattern_within("sub.example.test.", d));
        assert!(!pattern_within("*.example.test.", d));
        assert!(!pattern_within("www.example.test.", d));
        assert!(pattern_within("anything.test.", None));
    }
}
