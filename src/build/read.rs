//! What a build reads before it checks a zone, stage by stage: the
//! operator's sources (each zone's part assembled, the challenge aliases
//! learnt on the way), the drop directories judged with those aliases, and
//! the TLSA and SSHFP records, each sorted by zone for [`Read::settle`].

use crate::base::config::{persist_owner, Config, ZoneConf};
use crate::base::name::printable_path;
use crate::build::report::Report;
use crate::build::whitelist::{self, Sorted};
use crate::build::zone::{self, quote_txt, Assembled, Rendered, Settled, Sources, ZoneError};
use crate::dane::keys;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// What has been read for the zones being built.
pub struct Read<'c> {
    config: &'c Config,
    /// extra/ (shared by all zones) and the challenge aliases of every
    /// zone's sources.
    pub sources: Sources<'c>,
    /// The operator's part of each zone being built, or why it could not
    /// be read (reported in the zone's turn).
    assembled: HashMap<String, Result<Assembled, ZoneError>>,
    /// Accepted challenges, by zone.
    challenges: HashMap<String, Vec<Rendered>>,
    /// TLSA and SSHFP records, by zone.
    keys: HashMap<String, Vec<Rendered>>,
    /// Zones fed by a drop directory that could not be read, and why: they
    /// fail (and keep their last good output) rather than lose challenges.
    blocked: HashMap<String, Vec<String>>,
    /// Unix seconds at which what was read goes stale by itself: the
    /// earliest accepted fragment's `max_age`, or the end of a rollover hold.
    pub until: Option<u64>,
}

/// The operator's sources: each of `zones` assembled (read once: the same
/// pass learns its challenge aliases), the other zones' primary parts read
/// for their aliases only. An error in extra/, which every zone shares,
/// fails them all.
pub fn read_sources<'c>(config: &'c Config, zones: &[&ZoneConf]) -> Result<Read<'c>, ZoneError> {
    let mut sources = Sources::new(config)?;
    let building: HashSet<&str> = zones.iter().map(|z| z.name.as_str()).collect();
    let mut assembled = HashMap::new();
    for z in &config.zones {
        if building.contains(z.name.as_str()) {
            assembled.insert(z.name.clone(), sources.assemble_sources(&z.name));
        } else {
            let _ = sources.scan_aliases(&z.name);
        }
    }
    Ok(Read {
        config,
        sources,
        assembled,
        challenges: HashMap::new(),
        keys: HashMap::new(),
        blocked: HashMap::new(),
        until: None,
    })
}

impl Read<'_> {
    /// The drop directories, judged with the aliases of the sources; with
    /// `prune`, expired fragments are removed where the builder may write.
    /// A drop directory that cannot be read fails the zones it feeds; one
    /// that does not exist is said once per process (`warnings`).
    pub fn read_drops(&mut self, now: SystemTime, prune: bool, report: &mut Report) -> Sorted {
        let config = self.config;
        let sorted = whitelist::sort_drops_with(config, &self.sources.aliases, now, prune);
        for (dir, e) in &sorted.unreadable {
            for zone in whitelist::fed_zones(config, dir, &self.sources.aliases) {
                self.blocked.entry(zone).or_default().push(e.to_string());
            }
        }
        report.warnings.extend(missing_once(&sorted.missing));
        // A fragment refused as dated in the future is looked at again
        // once it comes within policy.max_future: no skipping past that.
        self.stale_at(
            sorted
                .future_until
                .map(|t| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 1),
        );
        for c in &sorted.challenges {
            self.challenges
                .entry(c.zone.clone())
                .or_default()
                .push(Rendered {
                    owner: c.owner.clone(),
                    ttl: c.ttl,
                    rtype: "TXT",
                    rdata: quote_txt(&c.value),
                    source: c.file.clone(),
                });
            let written = c
                .modified
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.stale_at(Some(written + config.policy.max_age.as_secs() + 1));
        }
        sorted
    }

    /// The TLSA and SSHFP records: a bad source keeps its last good records
    /// and is reported; a check (`dry_run`) only reads the rollover memory.
    /// Errors and warnings go to `report`.
    pub fn read_keys(&mut self, now: SystemTime, dry_run: bool, report: &mut Report) {
        let config = self.config;
        let keys = if dry_run {
            keys::key_status(config, now).1
        } else {
            keys::zone_key_records(config, now)
        };
        report.errors.extend(keys.errors);
        report.warnings.extend(keys.warnings);
        report.alerts.extend(keys.alerts);
        let source = config.file.clone().unwrap_or_default();
        for k in keys.records {
            match config.zone_of(&k.owner) {
                Some(z) => self.keys.entry(z.name.clone()).or_default().push(Rendered {
                    owner: k.owner,
                    ttl: k.ttl,
                    rtype: k.rtype,
                    rdata: k.rdata,
                    source: source.clone(),
                }),
                None => report.errors.push(format!(
                    "{} record for `{}`: the name lies in no configured zone",
                    k.rtype, k.owner
                )),
            }
        }
        self.read_persist(now, report);
        self.stale_at(
            keys::next_key_change(config)
                .map(|t| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())),
        );
    }

    /// The dns-persist-01 records of `[[persist]]`, with the config's
    /// records; a `persistUntil` that has passed is warned about (the
    /// record stays until the operator removes or renews it).
    fn read_persist(&mut self, now: SystemTime, report: &mut Report) {
        let config = self.config;
        let source = config.file.clone().unwrap_or_default();
        for p in &config.persists {
            let value = p.value();
            if !p.expired(now) {
                // The first build after it passes warns.
                self.stale_at(p.until);
            }
            if p.expired(now) {
                report.warnings.push(format!(
                    "{}: [[persist]] for {}: persistUntil {} has passed: CAs no longer honour the record; renew `until` or remove the table",
                    source.display(),
                    p.names.join(", "),
                    p.until.map_or(String::new(), |u| humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(u)).to_string())
                ));
            }
            for name in &p.names {
                let owner = persist_owner(name);
                if let Some(z) = config.zone_of(&owner) {
                    self.keys.entry(z.name.clone()).or_default().push(Rendered {
                        owner,
                        ttl: p.ttl,
                        rtype: "TXT",
                        rdata: quote_txt(&value),
                        source: source.clone(),
                    });
                }
            }
        }
    }

    /// Check `zone` with its keys and challenges, refusing the challenges
    /// that would break it ([`zone::settle`]); `None` for a zone not read.
    pub fn settle(&mut self, zone: &str) -> Option<Settled> {
        let assembled = self.assembled.remove(zone)?;
        if let Some(why) = self.blocked.remove(zone) {
            return Some(Settled {
                zone: Err(ZoneError::Zone {
                    zone: zone.trim_end_matches('.').to_string(),
                    message: format!(
                        "{}; the zone keeps its last published version, challenges included",
                        why.join("; ")
                    ),
                }),
                challenges: 0,
                refusals: Vec::new(),
            });
        }
        let keys = self.keys.remove(zone).unwrap_or_default();
        let challenges = self.challenges.remove(zone).unwrap_or_default();
        Some(match assembled {
            Ok(a) => zone::settle(&self.sources, a, keys, challenges),
            Err(e) => Settled {
                zone: Err(e),
                challenges: 0,
                refusals: Vec::new(),
            },
        })
    }

    fn stale_at(&mut self, at: Option<u64>) {
        self.until = match (self.until, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// The missing drop directories not yet reported by this process (`watch`
/// and `run` build again and again): one warning each, until it appears.
fn missing_once(missing: &[PathBuf]) -> Vec<String> {
    static SAID: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let Ok(mut said) = SAID.lock() else {
        return Vec::new();
    };
    said.retain(|p| missing.contains(p));
    let mut out = Vec::new();
    for p in missing {
        if !said.contains(p) {
            said.push(p.clone());
            out.push(format!(
                "drop directory {} does not exist (yet): it counts as empty",
                printable_path(p)
            ));
        }
    }
    out
}
