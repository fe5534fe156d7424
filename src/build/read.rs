//! What a build reads before it checks a zone, stage by stage: the
//! operator's sources (each zone's part assembled, the challenge aliases
//! learnt on the way), the drop directories judged with those aliases, and
//! the TLSA and SSHFP records, each sorted by zone for [`Read::settle`].

use crate::base::config::{persist_owner, Config, ZoneConf};
use crate::base::fs::stamp;
use crate::build::report::Report;
use crate::build::whitelist::{self, Sorted};
use crate::build::zone::{self, quote_txt, Assembled, Rendered, Settled, Sources, ZoneError};
use crate::dane::keys;
use std::collections::{HashMap, HashSet};
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
        until: None,
    })
}

impl Read<'_> {
    /// The drop directories, judged with the aliases of the sources; with
    /// `prune`, expired fragments are removed where the builder may write.
    pub fn read_drops(&mut self, now: SystemTime, prune: bool) -> Sorted {
        let config = self.config;
        let sorted = whitelist::sort_drops_with(config, &self.sources.aliases, now, prune);
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
            let expires = stamp(&c.file).map(|s| {
                (s.mtime_ns / 1_000_000_000).max(0) as u64 + config.policy.max_age.as_secs() + 1
            });
            self.stale_at(expires);
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
