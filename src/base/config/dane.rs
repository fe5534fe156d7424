//! `[[tlsa]]` and `[[sshfp]]`: which certificates and host keys become
//! DANE records, and how their rollover is held.

use super::de::*;
use super::serve::Proto;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// TLSA certificate usage, selector and matching type (RFC 6698 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsaParams {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
}

impl Default for TlsaParams {
    fn default() -> Self {
        TlsaParams {
            usage: 3,
            selector: 1,
            matching: 1,
        }
    }
}

impl std::str::FromStr for TlsaParams {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("`{s}` is not TLSA parameters: write usage (0-3), selector (0-1) and matching type (0-2), e.g. \"3 1 1\"")
        };
        let parts: Vec<u8> = s
            .split_whitespace()
            .map(|p| p.parse::<u8>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [u, s, m] if u <= 3 && s <= 1 && m <= 2 => Ok(TlsaParams {
                usage: u,
                selector: s,
                matching: m,
            }),
            _ => Err(bad()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tlsa {
    pub cert: PathBuf,
    #[serde(deserialize_with = "fqdns")]
    pub names: Vec<String>,
    pub ports: Vec<u16>,
    #[serde(default)]
    pub proto: Proto,
    #[serde(default, deserialize_with = "from_str")]
    pub params: TlsaParams,
    /// The key that will be used next (CSR or public key), published beside.
    #[serde(default)]
    pub next: Option<PathBuf>,
    /// How long a retired fingerprint stays; default 2 × ttl + 1 h.
    #[serde(default, deserialize_with = "opt_duration")]
    pub hold: Option<Duration>,
    #[serde(default = "default_record_ttl")]
    pub ttl: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SshfpHash {
    Sha1,
    #[default]
    Sha256,
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sshfp {
    #[serde(deserialize_with = "fqdn")]
    pub name: String,
    /// Public key files, host certificates, known_hosts files, or folders of them.
    pub keys: Vec<PathBuf>,
    #[serde(default)]
    pub hash: SshfpHash,
    #[serde(default, deserialize_with = "opt_duration")]
    pub hold: Option<Duration>,
    #[serde(default = "default_record_ttl")]
    pub ttl: u32,
}

fn default_record_ttl() -> u32 {
    3600
}
