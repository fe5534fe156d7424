//! `zonedrop.toml`: where it is found, its schema, and its validation.
//!
//! Every table uses `deny_unknown_fields`, and values that have a syntax of
//! their own (names, durations, TLSA parameters, addresses) are checked while
//! deserialising, so a mistake is reported with the file, the line and the
//! key. Relative paths are resolved against the config file's folder. The
//! hook side runs without any config: [`Config::default`] is what it sees.

use crate::base::name;
use crate::base::server::{self, Server};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

mod dane;
mod de;
mod overlap;
mod persist;
mod serve;
#[cfg(test)]
mod tests;
mod update;

pub use dane::*;
pub use de::parse_duration;
use de::*;
pub use persist::*;
pub use serve::*;
pub use update::*;

/// Where the config is looked for when neither `--config` nor
/// `$ZONEDROP_CONFIG` names one, in order.
pub const SEARCH_PATH: [&str; 3] = [
    "zonedrop.toml",
    "/usr/local/etc/zonedrop/zonedrop.toml",
    "/etc/zonedrop/zonedrop.toml",
];

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{}: cannot read the config: {source}", crate::base::name::printable_path(.path))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}: {message}{context}", crate::base::name::printable_path(.path))]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
        context: String,
    },
    #[error("{}: {key}: {message}", crate::base::name::printable_path(.path))]
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
    #[serde(default, rename = "update_key")]
    pub update_keys: Vec<UpdateKey>,
    #[serde(default, rename = "persist")]
    pub persists: Vec<Persist>,
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
    /// The ACME accounts (URLs) whose dns-account-01 labels it may carry; `None`: any.
    #[serde(default, deserialize_with = "accounts")]
    pub accounts: Option<Vec<String>>,
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
    /// How far in the future a fragment's mtime may lie (clock skew
    /// between a jail and the host): beyond it, refused, or a future date
    /// would outlive `max_age` and win every `max_values_per_name` contest.
    #[serde(deserialize_with = "duration")]
    pub max_future: Duration,
    pub max_fragment_bytes: u64,
    pub max_values_per_name: usize,
    pub value: ValueShape,
    pub max_files: usize,
    /// Accept dns-account-01 owners (`_<label>._acme-challenge.<domain>`).
    pub dns_account: bool,
    /// Accept dns-persist-01 records (`_validation-persist.<domain>`) from
    /// the drop side; otherwise only `[[persist]]` publishes them.
    pub persist_from_drop: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            labels: vec!["_acme-challenge".into()],
            ttl_min: 30,
            ttl_default: 60,
            ttl_max: 3600,
            max_age: Duration::from_secs(24 * 3600),
            max_future: Duration::from_secs(5 * 60),
            max_fragment_bytes: 4096,
            max_values_per_name: 8,
            value: ValueShape::Acme,
            max_files: 1000,
            dns_account: false,
            persist_from_drop: false,
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
    /// `watch`/`run`: at most this many publishing builds a second while
    /// the inputs keep changing (a lone change is built at once).
    pub max_rate: f64,
    /// A refusal not reported before makes `build` exit 1 (as `--strict`).
    pub strict: bool,
    /// New refusals shown one by one per build (`build`) or per
    /// `refusal_interval` (`watch`, `run`); the rest are summed up in a line.
    pub refusal_lines: usize,
    #[serde(deserialize_with = "duration")]
    pub refusal_interval: Duration,
}

impl Default for Build {
    fn default() -> Self {
        Build {
            on_change: None,
            notify: Vec::new(),
            lock_wait: Duration::from_secs(30),
            max_rate: 4.0,
            strict: false,
            refusal_lines: 20,
            refusal_interval: Duration::from_secs(60),
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
        overlap::check(&config).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "drop.path".into(),
            message,
        })?;
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
        let rate = self.build.max_rate;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(invalid(
                "build.max_rate",
                format!("{rate} is not a number of builds a second above 0"),
            ));
        }
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
        update::validate(self).map_err(|(key, message)| invalid(key, message))?;
        persist::validate(self).map_err(|(key, message)| invalid(key, message))?;
        for t in &self.tlsa {
            if t.ports.is_empty() {
                return Err(invalid(
                    "tlsa.ports",
                    format!(
                        "{}: at least one port is needed",
                        crate::base::name::printable_path(&t.cert)
                    ),
                ));
            }
        }
        // A retired fingerprint leaving before the caches of its RRset
        // expire breaks the connections of every client that cached it.
        let holds = self
            .tlsa
            .iter()
            .map(|t| {
                (
                    "tlsa.hold",
                    crate::base::name::printable_path(&t.cert).to_string(),
                    t.hold,
                    t.ttl,
                )
            })
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
        for k in &mut self.update_keys {
            join(&mut k.drop);
            if let Some(f) = k.secret_file.as_mut() {
                join(f);
            }
        }
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
