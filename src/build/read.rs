//! What a build reads before it checks a zone, stage by stage: the
//! operator's sources (each zone's part assembled, the challenge aliases
//! learnt on the way), the drop directories judged with those aliases, and
//! the TLSA and SSHFP records, each sorted by zone for [`Read::settle`].

use crate::base::config::{persist_owner, Config, ZoneConf};
use crate::base::name::printable_path;
use crate::build::report::{RecordLine, Report};
use crate::build::whitelist::{self, Sorted};
use crate::build::zone::{self, quote_txt, Assembled, Rendered, Settled, Sources, ZoneError};
use crate::build::zones::{self, Records, ZoneRecord};
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
    /// The zones being built whose sources are as their input record says:
    /// not read (yet), their aliases taken from the record.
    deferred: HashMap<String, ZoneRecord>,
    /// The challenge aliases of each zone's own sources, as read.
    own_aliases: HashMap<String, Vec<(String, String)>>,
    /// The digest of each zone's entries in extra/ (none: no entries).
    extra_digests: HashMap<String, String>,
    /// The zones whose checked sources came from their cache.
    from_cache: HashSet<String>,
    /// Accepted challenges, by zone.
    challenges: HashMap<String, Vec<Rendered>>,
    /// TLSA and SSHFP records, by zone.
    keys: HashMap<String, Vec<Rendered>>,
    /// The zones the rollover memory holds back (it failed).
    held: keys::Held,
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
///
/// With `records` (the per-zone input record), a zone whose sources are as
/// recorded is not read: its aliases come from the record, and it is read
/// only if its records changed ([`Read::settle`]); `drops_only`: only
/// drop directories changed since the last build (the watcher's events),
/// so the recorded source stamps are not looked at.
pub fn read_sources<'c>(
    config: &'c Config,
    zones: &[&ZoneConf],
    records: Option<&Records>,
    drops_only: bool,
) -> Result<Read<'c>, ZoneError> {
    let mut sources = Sources::reusing(config, drops_only)?;
    let building: HashSet<&str> = zones.iter().map(|z| z.name.as_str()).collect();
    let mut assembled = HashMap::new();
    let mut deferred = HashMap::new();
    let mut own_aliases = HashMap::new();
    let extra_digests = sources.extra_digests();
    let no_extra = String::new();
    for z in &config.zones {
        let extra = extra_digests.get(&z.name).unwrap_or(&no_extra);
        let prior = records.and_then(|r| r.unchanged_sources(&z.name, extra, drops_only));
        if let Some(prior) = prior {
            sources
                .aliases
                .extend(prior.aliases.iter().cloned().collect());
            if building.contains(z.name.as_str()) {
                deferred.insert(z.name.clone(), prior.clone());
            }
        } else if building.contains(z.name.as_str()) {
            let read = sources
                .assemble_sources_noting(&z.name)
                .map(|(a, aliases)| {
                    let mut own: Vec<(String, String)> = aliases
                        .iter()
                        .map(|(o, t)| (o.to_string(), t.to_string()))
                        .collect();
                    own.sort();
                    own_aliases.insert(z.name.clone(), own);
                    a
                });
            assembled.insert(z.name.clone(), read);
        } else {
            let _ = sources.scan_aliases(&z.name);
        }
    }
    Ok(Read {
        config,
        sources,
        assembled,
        deferred,
        own_aliases,
        extra_digests,
        from_cache: HashSet::new(),
        challenges: HashMap::new(),
        keys: HashMap::new(),
        held: keys::Held::Nothing,
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
        self.held = keys.held;
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

    /// Whether `zone` must keep its last published version because the
    /// rollover memory could not be read or written ([`keys::Held`]).
    pub fn held(&self, zone: &str) -> bool {
        let config = self.config;
        self.held
            .holds(|owner| config.zone_of(owner).is_some_and(|z| z.name == zone))
    }

    /// Whether a drop directory that feeds `zone` could not be listed: the
    /// zone fails (in [`Read::settle`]) even if its records look unchanged.
    pub fn blocked(&self, zone: &str) -> bool {
        self.blocked.contains_key(zone)
    }

    /// The record of `zone` if its sources were not read (they are as its
    /// input record says).
    pub fn deferred(&self, zone: &str) -> Option<&ZoneRecord> {
        self.deferred.get(zone)
    }

    /// The digest of the TLSA, SSHFP and challenge records `zone` gets
    /// ([`zones::records_digest`]).
    pub fn records_digest(&self, zone: &str) -> String {
        let none = Vec::new();
        zones::records_digest(
            self.keys.get(zone).unwrap_or(&none),
            self.challenges.get(zone).unwrap_or(&none),
        )
    }

    /// The digest of `zone`'s entries in extra/ (empty: none).
    pub fn extra_digest(&self, zone: &str) -> String {
        self.extra_digests.get(zone).cloned().unwrap_or_default()
    }

    /// Whether `zone`'s checked sources came from its cache.
    pub fn from_cache(&self, zone: &str) -> bool {
        self.from_cache.contains(zone)
    }

    /// The records zonedrop renders into `zone` (keys, then challenges),
    /// as they go into [`Read::settle`].
    pub fn rendered(&self, zone: &str) -> Vec<RecordLine> {
        let line = |r: &Rendered| RecordLine {
            owner: r.owner.clone(),
            ttl: r.ttl,
            rtype: r.rtype.to_string(),
            rdata: r.rdata.clone(),
        };
        let keys = self.keys.get(zone).into_iter().flatten();
        let challenges = self.challenges.get(zone).into_iter().flatten();
        keys.chain(challenges).map(line).collect()
    }

    /// The files of `zone`'s challenges, in the order of [`Read::rendered`]
    /// after its keys.
    pub fn challenge_files(&self, zone: &str) -> Vec<std::path::PathBuf> {
        let challenges = self.challenges.get(zone).into_iter().flatten();
        challenges.map(|r| r.source.clone()).collect()
    }

    /// The challenge aliases of `zone`'s own sources, sorted.
    pub fn own_aliases(&self, zone: &str) -> Vec<(String, String)> {
        match self.deferred.get(zone) {
            Some(r) => r.aliases.clone(),
            None => self.own_aliases.get(zone).cloned().unwrap_or_default(),
        }
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
    /// that would break it ([`zone::settle`]); `None` for a zone not being
    /// built. A zone whose reading was deferred is read now.
    pub fn settle(&mut self, zone: &str) -> Option<Settled> {
        if let Some(prior) = self.deferred.get(zone) {
            if !self.assembled.contains_key(zone) {
                let state = &self.config.paths.state;
                let key = prior.cache_key();
                let kept = zone::cache::recall(zone, &key);
                let loaded = match kept {
                    Some(a) => {
                        log::debug!("zone {zone}: checked sources kept in memory");
                        Ok(Some(a))
                    }
                    None => zone::cache::load(state, zone, &key).inspect(|a| {
                        if let Some(a) = a {
                            log::debug!("zone {zone}: checked sources from its cache file");
                            zone::cache::remember(a, &key);
                        }
                    }),
                };
                let read = match loaded {
                    Ok(Some(a)) => {
                        self.from_cache.insert(zone.to_string());
                        Ok(a)
                    }
                    Ok(None) => self.sources.assemble_sources(zone),
                    Err(why) => {
                        log::info!("{why}: zone {zone} is read from its sources");
                        self.sources.assemble_sources(zone)
                    }
                };
                self.assembled.insert(zone.to_string(), read);
            }
        }
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
                accepted: Vec::new(),
            });
        }
        let keys = self.keys.remove(zone).unwrap_or_default();
        let challenges = self.challenges.remove(zone).unwrap_or_default();
        Some(match assembled {
            Ok(a) => zone::settle(&self.sources, a, keys, challenges),
            Err(e) => Settled {
                zone: Err(e),
                challenges: 0,
                accepted: Vec::new(),
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
