//! What a build reads before it checks a zone, stage by stage: the
//! operator's sources (each zone's part assembled, the challenge aliases
//! learnt on the way), the drop directories judged with those aliases, and
//! the TLSA and SSHFP records, each sorted by zone for [`Read::settle`].

use crate::base::config::{Config, ZoneConf};
use crate::base::fs::stamp;
use crate::build::report::{RecordLine, Report};
use crate::build::whitelist::{self, Sorted};
use crate::build::zone::{self, quote_txt, Assembled, Rendered, Settled, Sources, ZoneError};
use crate::build::zones::{self, Records, ZoneRecord};
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
/// only if its records changed ([`Read::settle`]).
pub fn read_sources<'c>(
    config: &'c Config,
    zones: &[&ZoneConf],
    records: Option<&Records>,
) -> Result<Read<'c>, ZoneError> {
    let mut sources = Sources::new(config)?;
    let building: HashSet<&str> = zones.iter().map(|z| z.name.as_str()).collect();
    let mut assembled = HashMap::new();
    let mut deferred = HashMap::new();
    let mut own_aliases = HashMap::new();
    let extra_digests = sources.extra_digests();
    let no_extra = String::new();
    for z in &config.zones {
        let extra = extra_digests.get(&z.name).unwrap_or(&no_extra);
        let prior = records.and_then(|r| r.unchanged_sources(&z.name, extra));
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
