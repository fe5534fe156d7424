//! `zonedrop.toml`: where it is found, its schema, and its validation.
//!
//! Every table uses `deny_unknown_fields`, and values that have a syntax of
//! their own (names, durations, TLSA parameters, addresses) are checked while
//! deserialising, so a mistake is reported with the file, the line and the
//! key. Relative paths are resolved against the config file's folder. The
//! hook side runs without any config: [`Config::default`] is what it sees.

use crate::base::name;
use crate::base::server::{self, Server};
use serde::{Deserialize, Deserializer};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Where the config is looked for when neither `--config` nor
/// `$ZONEDROP_CONFIG` names one, in order.
pub const SEARCH_PATH: [&str; 3] = [
    "zonedrop.toml",
    "/usr/local/etc/zonedrop/zonedrop.toml",
    "/etc/zonedrop/zonedrop.toml",
];

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {message}{context}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
        context: String,
    },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("no config file: give --config FILE, set ZONEDROP_CONFIG, or create one of {}", SEARCH_PATH.join(", "))]
    NotFound,
}

/// The whole configuration, paths already resolved.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file this came from (None: built-in defaults, hook side only).
    #[serde(skip)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub paths: Paths,
    #[serde(default, rename = "drop")]
    pub drops: Vec<DropDir>,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default, rename = "zone")]
    pub zones: Vec<ZoneConf>,
    #[serde(default)]
    pub build: Build,
    #[serde(default)]
    pub hook: Hook,
    #[serde(default)]
    pub serve: Serve,
    #[serde(default)]
    pub tlsa: Vec<Tlsa>,
    #[serde(default)]
    pub sshfp: Vec<Sshfp>,
    #[serde(default)]
    pub dane: Dane,
}

/// Key rollover of the `[[tlsa]]` and `[[sshfp]]` records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dane {
    /// How long a published change takes to reach every server that
    /// answers for the zone (signing, reloads, transfers to secondaries):
    /// a new key is safe to use once it was published this long plus its
    /// TTL ago.
    #[serde(deserialize_with = "duration")]
    pub propagation_margin: Duration,
}

impl Default for Dane {
    fn default() -> Self {
        Dane {
            propagation_margin: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    pub soa: PathBuf,
    pub primary: PathBuf,
    pub extra: PathBuf,
    pub unsigned: PathBuf,
    pub state: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            soa: "zones/soa".into(),
            primary: "zones/primary".into(),
            extra: "zones/extra".into(),
            unsigned: "unsigned".into(),
            state: "state".into(),
        }
    }
}

/// One directory that hooks write into.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropDir {
    pub path: PathBuf,
    /// Names this directory may carry challenges for; `None`: any managed name.
    #[serde(default, deserialize_with = "patterns")]
    pub names: Option<Vec<String>>,
}

/// What the value of an accepted challenge may look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ValueShape {
    /// 43 characters of base64url: an RFC 8555 §8.4 SHA-256 digest.
    #[default]
    Acme,
    /// Any single token of up to 255 printable characters without quotes,
    /// spaces, backslashes or semicolons.
    Token,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub labels: Vec<String>,
    pub ttl_min: u32,
    pub ttl_default: u32,
    pub ttl_max: u32,
    #[serde(deserialize_with = "duration")]
    pub max_age: Duration,
    pub max_fragment_bytes: u64,
    pub max_values_per_name: usize,
    pub value: ValueShape,
    pub max_files: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            labels: vec!["_acme-challenge".into()],
            ttl_min: 30,
            ttl_default: 60,
            ttl_max: 3600,
            max_age: Duration::from_secs(24 * 3600),
            max_fragment_bytes: 4096,
            max_values_per_name: 8,
            value: ValueShape::Acme,
            max_files: 1000,
        }
    }
}

/// How a zone's SOA serial moves when its content changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SerialPolicy {
    Keep,
    #[default]
    Increment,
    Date,
    Unixtime,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConf {
    #[serde(deserialize_with = "fqdn")]
    pub name: String,
    #[serde(default)]
    pub serial: SerialPolicy,
    /// One zone file holding the SOA and the records, as name servers keep
    /// them (e.g. an existing `example.org.zone`), instead of soa/<zone> and
    /// primary/<zone>.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The SOA part under another name than soa/<zone>.
    #[serde(default)]
    pub soa: Option<PathBuf>,
    /// The records under another name than primary/<zone>.
    #[serde(default)]
    pub primary: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Build {
    /// Run once per changed zone; `{zone}` and `{file}` are substituted.
    pub on_change: Option<String>,
    /// Where to send DNS NOTIFY after a zone changed (names resolved at
    /// each NOTIFY, port 53 unless given).
    #[serde(deserialize_with = "server::servers")]
    pub notify: Vec<Server>,
    /// How long a second builder waits for the lock.
    #[serde(deserialize_with = "duration")]
    pub lock_wait: Duration,
}

impl Default for Build {
    fn default() -> Self {
        Build {
            on_change: None,
            notify: Vec::new(),
            lock_wait: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hook {
    /// Where hooks write; default: the first `[[drop]]` path.
    pub drop: Option<PathBuf>,
    /// Wait until the record is visible, up to this long (0: don't wait).
    #[serde(deserialize_with = "duration")]
    pub wait: Duration,
    /// Where to look (names resolved at each wait, port 53 unless given);
    /// default: the zone's NS.
    #[serde(deserialize_with = "server::servers")]
    pub servers: Vec<Server>,
}

/// The embedded responder: where it listens, who may transfer zones, and
/// the limits that bound what a network peer can make it do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Serve {
    /// IP addresses, port 53 unless given.
    #[serde(deserialize_with = "server::listen")]
    pub listen: Vec<SocketAddr>,
    pub allow_axfr: Vec<IpAddr>,
    /// TCP connections open at once, in total (clamped to what the
    /// descriptor limit leaves after a reserve for the builder).
    pub tcp_max: usize,
    /// TCP connections open at once from one IPv4 address or IPv6 /64.
    pub tcp_max_per_source: usize,
    /// A TCP connection that sends no query for this long is closed.
    #[serde(deserialize_with = "duration")]
    pub tcp_idle: Duration,
    /// No query is read on a TCP connection older than this.
    #[serde(deserialize_with = "duration")]
    pub tcp_lifetime: Duration,
    /// Queries answered on one TCP connection before it is closed.
    pub tcp_max_queries: usize,
    /// Refused, malformed and rate-limited queries and refused connections
    /// are logged one line for the first, then one summary per interval.
    #[serde(deserialize_with = "duration")]
    pub log_interval: Duration,
    /// UDP answers per second to one source prefix (response rate
    /// limiting); 0 turns it off. Unset: on (at [`RRL_RATE`]) for listen
    /// addresses that are not loopback, off on loopback.
    pub rrl_rate: Option<u32>,
    /// Answers a prefix may get at once before the rate applies.
    pub rrl_burst: u32,
    /// Every n-th answer over the rate goes out truncated (TC=1, so a real
    /// client retries over TCP); the rest are dropped. 0: drop them all.
    pub rrl_slip: u32,
    pub rrl_ipv4_prefix: u8,
    pub rrl_ipv6_prefix: u8,
    /// Prefixes tracked at once (a fixed table: a flood of spoofed sources
    /// costs entries, never memory).
    pub rrl_table_size: usize,
}

/// The response rate limit a non-loopback listen address gets by default:
/// Knot's per-prefix default (its `rate-limit`), far above what ACME
/// validation asks of one network.
pub const RRL_RATE: u32 = 20;

impl Default for Serve {
    fn default() -> Self {
        Serve {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            allow_axfr: Vec::new(),
            tcp_max: 256,
            tcp_max_per_source: 16,
            tcp_idle: Duration::from_secs(10),
            tcp_lifetime: Duration::from_secs(60),
            tcp_max_queries: 1000,
            log_interval: Duration::from_secs(60),
            rrl_rate: None,
            rrl_burst: 50,
            rrl_slip: 2,
            rrl_ipv4_prefix: 24,
            rrl_ipv6_prefix: 56,
            rrl_table_size: 65_536,
        }
    }
}

impl Serve {
    /// The response rate limit (answers per second per prefix) for a UDP
    /// socket on `addr`; `None`: off.
    pub fn rrl_rate_on(&self, addr: SocketAddr) -> Option<u32> {
        match self.rrl_rate {
            Some(0) => None,
            Some(rate) => Some(rate),
            None if addr.ip().is_loopback() => None,
            None => Some(RRL_RATE),
        }
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let at_least_one = [
            ("serve.tcp_max", self.tcp_max),
            ("serve.tcp_max_per_source", self.tcp_max_per_source),
            ("serve.tcp_max_queries", self.tcp_max_queries),
            ("serve.rrl_burst", self.rrl_burst as usize),
            ("serve.rrl_table_size", self.rrl_table_size),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if self.rrl_table_size > 1 << 24 {
            return Err((
                "serve.rrl_table_size",
                format!("{} is more than 16777216 prefixes", self.rrl_table_size),
            ));
        }
        let at_least_a_second = [
            ("serve.tcp_idle", self.tcp_idle),
            ("serve.tcp_lifetime", self.tcp_lifetime),
            ("serve.log_interval", self.log_interval),
        ];
        for (key, value) in at_least_a_second {
            if value < Duration::from_secs(1) {
                return Err((key, "must be at least 1s".into()));
            }
        }
        if !(1..=32).contains(&self.rrl_ipv4_prefix) {
            return Err((
                "serve.rrl_ipv4_prefix",
                format!(
                    "/{} is not an IPv4 prefix length (1 to 32)",
                    self.rrl_ipv4_prefix
                ),
            ));
        }
        if !(1..=128).contains(&self.rrl_ipv6_prefix) {
            return Err((
                "serve.rrl_ipv6_prefix",
                format!(
                    "/{} is not an IPv6 prefix length (1 to 128)",
                    self.rrl_ipv6_prefix
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

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

impl Config {
    /// Find the config file: `explicit` (from `--config` or
    /// `$ZONEDROP_CONFIG`, which must exist), else the first of
    /// [`SEARCH_PATH`] that exists.
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_path_buf());
        }
        SEARCH_PATH.iter().map(PathBuf::from).find(|p| p.is_file())
    }

    /// Load the config if one is found; `Ok(None)` when none exists and none
    /// was asked for.
    pub fn load_optional(explicit: Option<&Path>) -> Result<Option<Config>, ConfigError> {
        match Config::locate(explicit) {
            Some(path) => Config::load(&path).map(Some),
            None => Ok(None),
        }
    }

    /// Load a config that must exist (the builder side).
    pub fn load_required(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_optional(explicit)?.ok_or(ConfigError::NotFound)
    }

    /// Read, parse, validate and resolve one config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        // Relative to the real file's folder, so a symlinked config
        // (/etc/zonedrop/zonedrop.toml -> /srv/zones/zonedrop.toml) works.
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let base = real
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        config.resolve(base);
        config.file = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parse and validate config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, context) = match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    let src = text.lines().nth(line - 1).unwrap_or("").trim();
                    (
                        line,
                        if src.is_empty() {
                            String::new()
                        } else {
                            format!(" (in `{src}`)")
                        },
                    )
                }
                None => (1, String::new()),
            };
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                message: e.message().trim().replace('\n', " "),
                context,
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let p = &self.policy;
        if !(p.ttl_min <= p.ttl_default && p.ttl_default <= p.ttl_max) {
            return Err(invalid(
                "policy",
                format!(
                    "ttl_min ({}) <= ttl_default ({}) <= ttl_max ({}) does not hold",
                    p.ttl_min, p.ttl_default, p.ttl_max
                ),
            ));
        }
        if p.ttl_max > i32::MAX as u32 {
            return Err(invalid(
                "policy.ttl_max",
                "a TTL is at most 2147483647".into(),
            ));
        }
        if p.labels.is_empty() {
            return Err(invalid(
                "policy.labels",
                "at least one label is needed (usually \"_acme-challenge\")".into(),
            ));
        }
        for label in &p.labels {
            if label.contains('.') || name::parse_fqdn(label).is_err() {
                return Err(invalid(
                    "policy.labels",
                    format!("`{}` is not a single DNS label", name::printable(label)),
                ));
            }
        }
        if p.max_values_per_name == 0 {
            return Err(invalid(
                "policy.max_values_per_name",
                "must be at least 1".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for zone in &self.zones {
            if !seen.insert(zone.name.as_str()) {
                return Err(invalid(
                    "zone.name",
                    format!("zone `{}` is configured twice", zone.name),
                ));
            }
            if zone.file.is_some() && (zone.soa.is_some() || zone.primary.is_some()) {
                return Err(invalid(
                    "zone.file",
                    format!(
                        "zone `{}`: `file` holds the SOA and the records: give it alone, or `soa` and `primary`",
                        zone.name
                    ),
                ));
            }
        }
        for drop in &self.drops {
            for pattern in drop.names.iter().flatten() {
                let base = pattern.strip_prefix("*.").unwrap_or(pattern);
                if !self.zones.is_empty() && self.zone_of(base).is_none() {
                    return Err(invalid(
                        "drop.names",
                        format!("`{pattern}` lies in no configured zone"),
                    ));
                }
            }
        }
        self.serve
            .validate()
            .map_err(|(key, message)| invalid(key, message))?;
        for t in &self.tlsa {
            if t.ports.is_empty() {
                return Err(invalid(
                    "tlsa.ports",
                    format!("{}: at least one port is needed", t.cert.display()),
                ));
            }
        }
        // A retired fingerprint leaving before the caches of its RRset
        // expire breaks the connections of every client that cached it.
        let holds = self
            .tlsa
            .iter()
            .map(|t| ("tlsa.hold", t.cert.display().to_string(), t.hold, t.ttl))
            .chain(
                self.sshfp
                    .iter()
                    .map(|s| ("sshfp.hold", s.name.clone(), s.hold, s.ttl)),
            );
        for (key, what, hold, ttl) in holds {
            if let Some(hold) = hold.filter(|h| h.as_secs() < u64::from(ttl)) {
                return Err(invalid(
                    key,
                    format!(
                        "{what}: hold = \"{}\" is shorter than the TTL ({ttl} s): a retired fingerprint must stay at least as long as resolvers may cache its record set",
                        humantime::format_duration(hold)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn resolve(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        join(&mut self.paths.soa);
        join(&mut self.paths.primary);
        join(&mut self.paths.extra);
        join(&mut self.paths.unsigned);
        join(&mut self.paths.state);
        self.drops.iter_mut().for_each(|d| join(&mut d.path));
        for z in &mut self.zones {
            for p in [&mut z.file, &mut z.soa, &mut z.primary]
                .into_iter()
                .flatten()
            {
                join(p);
            }
        }
        if let Some(d) = self.hook.drop.as_mut() {
            join(d);
        }
        for t in &mut self.tlsa {
            join(&mut t.cert);
            if let Some(n) = t.next.as_mut() {
                join(n);
            }
        }
        for s in &mut self.sshfp {
            s.keys.iter_mut().for_each(join);
        }
    }

    /// The configured zone that holds `name` (closest enclosing one), if any.
    pub fn zone_of(&self, name: &str) -> Option<&ZoneConf> {
        self.zones
            .iter()
            .filter(|z| name::in_zone(name, &z.name))
            .max_by_key(|z| z.name.len())
    }

    /// The file the SOA part of `zone` is read from: its `file`, its `soa`,
    /// else `soa/<zone>`.
    pub fn soa_file(&self, zone: &ZoneConf) -> PathBuf {
        zone.file
            .clone()
            .or_else(|| zone.soa.clone())
            .unwrap_or_else(|| self.paths.soa.join(zone.name.trim_end_matches('.')))
    }

    /// The file the records of `zone` are read from: its `file` (the same
    /// as [`Config::soa_file`]), its `primary`, else `primary/<zone>`.
    pub fn primary_file(&self, zone: &ZoneConf) -> PathBuf {
        zone.file
            .clone()
            .or_else(|| zone.primary.clone())
            .unwrap_or_else(|| self.paths.primary.join(zone.name.trim_end_matches('.')))
    }

    /// Where `zone` (absolute) is published: `unsigned/<zone without the
    /// final dot>`. The builder writes it, the responder, NOTIFY and `wait`
    /// read it.
    pub fn published_path(&self, zone: &str) -> PathBuf {
        self.paths.unsigned.join(zone.trim_end_matches('.'))
    }

    /// The directory hooks write into: `[hook] drop`, else the first `[[drop]]`.
    pub fn hook_drop(&self) -> Option<&Path> {
        self.hook
            .drop
            .as_deref()
            .or_else(|| self.drops.first().map(|d| d.path.as_path()))
    }
}

fn fqdn<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    name::parse_fqdn(&s).map_err(serde::de::Error::custom)
}

fn fqdns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| name::parse_fqdn(s).map_err(serde::de::Error::custom))
        .collect()
}

fn patterns<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| name::parse_pattern(s).map_err(serde::de::Error::custom))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Parse a duration such as `90s`, `15m`, `24h` or `0s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write e.g. \"90s\", \"15m\" or \"24h\"")
    })
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("z.toml"))
    }

    #[test]
    fn published_path_drops_the_final_dot() {
        let mut c = Config::default();
        c.paths.unsigned = "/u".into();
        assert_eq!(
            c.published_path("example.test."),
            Path::new("/u/example.test")
        );
    }

    #[test]
    fn the_example_parses() {
        let text = include_str!("../../examples/zonedrop.toml");
        let c = parse(text).unwrap();
        assert!(!c.zones.is_empty());
        assert_eq!(c.policy.labels, vec!["_acme-challenge"]);
    }

    #[test]
    fn the_example_shows_the_serve_defaults() {
        let c = parse(include_str!("../../examples/zonedrop.toml")).unwrap();
        let (shown, default) = (format!("{:?}", c.serve), Serve::default());
        let default = Serve {
            listen: c.serve.listen.clone(),
            allow_axfr: c.serve.allow_axfr.clone(),
            ..default
        };
        assert_eq!(shown, format!("{default:?}"));
    }

    #[test]
    fn rrl_is_on_off_loopback_unless_configured() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let s = parse("").unwrap().serve;
        assert_eq!(s.rrl_rate_on(addr("192.0.2.1:53")), Some(RRL_RATE));
        assert_eq!(s.rrl_rate_on(addr("0.0.0.0:53")), Some(RRL_RATE));
        assert_eq!(s.rrl_rate_on(addr("[::]:53")), Some(RRL_RATE));
        assert_eq!(s.rrl_rate_on(addr("127.0.0.1:53")), None);
        assert_eq!(s.rrl_rate_on(addr("[::1]:53")), None);
        let s = parse("[serve]\nrrl_rate = 5\n").unwrap().serve;
        assert_eq!(s.rrl_rate_on(addr("127.0.0.1:53")), Some(5));
        let s = parse("[serve]\nrrl_rate = 0\n").unwrap().serve;
        assert_eq!(s.rrl_rate_on(addr("192.0.2.1:53")), None);
    }

    #[test]
    fn serve_limits_are_checked() {
        for (text, want) in [
            ("tcp_max = 0", "z.toml: serve.tcp_max: must be at least 1"),
            (
                "tcp_lifetime = \"0s\"",
                "z.toml: serve.tcp_lifetime: must be at least 1s",
            ),
            (
                "log_interval = \"10ms\"",
                "z.toml: serve.log_interval: must be at least 1s",
            ),
            (
                "rrl_ipv4_prefix = 33",
                "z.toml: serve.rrl_ipv4_prefix: /33 is not an IPv4 prefix length (1 to 32)",
            ),
            (
                "rrl_burst = 0",
                "z.toml: serve.rrl_burst: must be at least 1",
            ),
        ] {
            let e = parse(&format!("[serve]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert_eq!(e, want);
        }
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("[policy]\nttl_min = 30\nttl_mxa = 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("z.toml: line 3: unknown field `ttl_mxa`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let e = parse("[policy]\n\nttl_min = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("z.toml: line 3: invalid type"), "{e}");
        assert!(e.contains("ttl_min"), "{e}");
    }

    #[test]
    fn bad_values_are_caught_while_parsing() {
        let e = parse("[[zone]]\nname = \"bad name\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("bad name"), "{e}");
        let e = parse("[policy]\nmax_age = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("not a duration"), "{e}");
        let e = parse("[[zone]]\nname = \"a.b\"\nserial = \"often\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("often"), "{e}");
        let e =
            parse("[[tlsa]]\ncert = \"c\"\nnames = [\"a.b\"]\nports = [443]\nparams = \"3 1 9\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("line 5") && e.contains("TLSA parameters"), "{e}");
    }

    #[test]
    fn ttl_order_is_checked() {
        let e = parse("[policy]\nttl_min = 100\nttl_default = 60\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("z.toml: policy: ttl_min (100)"), "{e}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zonedrop.toml");
        std::fs::write(&path, "[[drop]]\npath = \"drop\"\n").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.drops[0].path, dir.path().join("drop"));
        assert_eq!(c.hook_drop(), Some(dir.path().join("drop").as_path()));
        assert_eq!(c.paths.soa, dir.path().join("zones/soa"));
    }

    #[test]
    fn closest_zone_wins() {
        let c = parse("[[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"sub.example.test\"\n")
            .unwrap();
        assert_eq!(
            c.zone_of("a.sub.example.test.").unwrap().name,
            "sub.example.test."
        );
        assert_eq!(c.zone_of("a.example.test.").unwrap().name, "example.test.");
        assert!(c.zone_of("example.net.").is_none());
    }
}
