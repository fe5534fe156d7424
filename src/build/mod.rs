//! One build: read the sources and the drop directories, apply the
//! whitelist, assemble and check every zone, choose serials, publish what
//! changed, and run `on_change`. Also the dry run behind `zonedrop check`.
//!
//! A zone that fails keeps its last good output and the others still
//! publish. A run in which nothing moved costs a `stat` per input: the
//! manifest in state/ records every input's device, inode, size, mtime
//! and ctime.

pub mod list;
pub mod publish;
pub mod serial;
pub mod source;
pub mod whitelist;
pub mod zone;

use crate::base::config::{Config, SerialPolicy};
use crate::base::fs::{self, stamp, Stamp};
use crate::base::hex;
use crate::base::name;
use crate::dane::keys;
use crate::live::notify;
use publish::{Lock, Manifest, PublishError, ZoneState};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;
use whitelist::{Challenge, Refusal};
use zone::{Rendered, Sources, ZoneError};

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error("--zone {0}: no such zone in the config")]
    UnknownZone(String),
}

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only these zones (absolute names); empty: all.
    pub zones: Vec<String>,
    /// Ignore the manifest.
    pub force: bool,
    /// Dry run (`zonedrop check`): publish nothing, write nothing, remove nothing.
    pub dry_run: bool,
}

/// A zone that was published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub zone: String,
    pub file: PathBuf,
    pub old_serial: Option<u32>,
    pub serial: u32,
    pub challenges: usize,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let zone = self.zone.trim_end_matches('.');
        let old = self
            .old_serial
            .map_or("none".to_string(), |s| s.to_string());
        let s = if self.challenges == 1 { "" } else { "s" };
        write!(
            f,
            "{zone}: serial {old} -> {}, {} challenge{s}",
            self.serial, self.challenges
        )
    }
}

/// What a build did.
#[derive(Debug, Default)]
pub struct Report {
    /// Nothing moved since the last build: nothing was read.
    pub skipped: bool,
    pub published: Vec<Published>,
    pub refusals: Vec<Refusal>,
    /// One line each: zones that failed, on_change commands that failed.
    pub errors: Vec<String>,
    /// Informational lines (expired certificates and the like).
    pub warnings: Vec<String>,
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// Run one build (or, with `dry_run`, one check).
pub fn run(config: &Config, opts: &Options, now: SystemTime) -> Result<Report, BuildError> {
    for z in &opts.zones {
        if !config.zones.iter().any(|c| &c.name == z) {
            return Err(BuildError::UnknownZone(z.trim_end_matches('.').to_string()));
        }
    }
    let state = &config.paths.state;
    let _lock = if opts.dry_run {
        None
    } else {
        Some(Lock::acquire(state, config.build.lock_wait)?)
    };
    let now_unix = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let whole = opts.zones.is_empty();
    if whole && !opts.force && !opts.dry_run {
        if let Some(m) = Manifest::load(state) {
            if m.still_current(now_unix) {
                return Ok(Report {
                    skipped: true,
                    ..Report::default()
                });
            }
        }
    }
    if !opts.dry_run {
        fs::clean_temporaries(&config.paths.unsigned);
    }
    // Directories are stamped before they are read, so a file that arrives
    // during the build makes the next build look again.
    let mut stamps: Vec<(PathBuf, Option<Stamp>)> = Vec::new();
    let mut stamp_now = |p: &Path| stamps.push((p.to_path_buf(), stamp(p)));
    if let Some(f) = &config.file {
        stamp_now(f);
    }
    for d in [&config.paths.soa, &config.paths.primary] {
        stamp_now(d);
    }
    for e in walkdir::WalkDir::new(&config.paths.extra)
        .into_iter()
        .flatten()
    {
        if e.file_type().is_dir() {
            stamp_now(e.path());
        }
    }
    if !config.paths.extra.exists() {
        stamp_now(&config.paths.extra);
    }
    for d in &config.drops {
        stamp_now(&d.path);
    }

    let mut report = Report::default();
    let mut sources = match Sources::new(config) {
        Ok(s) => s,
        Err(e) => {
            // extra/ is shared by all zones: without it no zone is right.
            report.errors.push(e.to_string());
            return Ok(report);
        }
    };
    // The operator's part of each zone to build, read once: the same pass
    // finds the challenge aliases, which the drops are judged with. An
    // error is reported with its zone below.
    let mut assembled_sources: HashMap<&str, Result<zone::Assembled, ZoneError>> = HashMap::new();
    for z in &config.zones {
        if whole || opts.zones.contains(&z.name) {
            assembled_sources.insert(z.name.as_str(), sources.assemble_sources(&z.name));
        } else {
            let _ = sources.scan_aliases(&z.name);
        }
    }
    let sorted = whitelist::sort_drops_with(config, &sources.aliases, now, !opts.dry_run);
    report.refusals = sorted.refusals;
    let mut challenges: HashMap<&str, Vec<&Challenge>> = HashMap::new();
    for c in &sorted.challenges {
        challenges.entry(c.zone.as_str()).or_default().push(c);
    }
    let mut until: Option<u64> = None;
    for c in &sorted.challenges {
        let expires = stamp(&c.file).map(|s| {
            (s.mtime_ns / 1_000_000_000).max(0) as u64 + config.policy.max_age.as_secs() + 1
        });
        until = match (until, expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    // TLSA and SSHFP records; a bad source keeps its last good records and
    // is reported. A check only reads the rollover memory.
    let keys = if opts.dry_run {
        keys::key_status(config, now).1
    } else {
        keys::zone_key_records(config, now)
    };
    report.errors.extend(keys.errors.iter().cloned());
    report.warnings.extend(keys.warnings.iter().cloned());
    let key_source = config.file.clone().unwrap_or_default();
    let mut key_records: HashMap<&str, Vec<Rendered>> = HashMap::new();
    for k in &keys.records {
        match config.zone_of(&k.owner) {
            Some(z) => key_records
                .entry(z.name.as_str())
                .or_default()
                .push(Rendered {
                    owner: k.owner.clone(),
                    ttl: k.ttl,
                    rtype: k.rtype,
                    rdata: k.rdata.clone(),
                    source: key_source.clone(),
                }),
            None => report.errors.push(format!(
                "{} record for `{}`: the name lies in no configured zone",
                k.rtype, k.owner
            )),
        }
    }
    if let Some(t) = keys::next_key_change(config) {
        let t = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        until = Some(until.map_or(t, |u| u.min(t)));
    }

    let mut inputs: Vec<PathBuf> = sources.extra_files.clone();
    inputs.extend(keys::key_inputs(config));
    for zone_conf in &config.zones {
        let zone = &zone_conf.name;
        if !whole && !opts.zones.contains(zone) {
            continue;
        }
        let zone_challenges = challenges
            .get(zone.as_str())
            .map_or(&[][..], |v| v.as_slice());
        let mut n_challenges = zone_challenges.len();
        let mut records: Vec<Rendered> = key_records.remove(zone.as_str()).unwrap_or_default();
        let first_challenge = records.len();
        records.extend(zone_challenges.iter().map(|c| Rendered {
            owner: c.owner.clone(),
            ttl: c.ttl,
            rtype: "TXT",
            rdata: zone::quote_txt(&c.value),
            source: c.file.clone(),
        }));
        // A challenge must never break a zone (a TXT beside a CNAME chain,
        // a copy of a record the zone already has): when the check blames
        // one, it is refused and the zone is checked again without it.
        let mut assembled = match assembled_sources.remove(zone.as_str()) {
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                report.errors.push(e.to_string());
                continue;
            }
            None => continue,
        };
        let assembled = loop {
            assembled.set_records(&records);
            match sources.check(&assembled, &records) {
                Ok(()) => break Ok(assembled),
                Err(ZoneError::At { file, message, .. })
                    if records[first_challenge..].iter().any(|r| r.source == file) =>
                {
                    records.retain(|r| r.source != file);
                    n_challenges -= 1;
                    report.refusals.push(Refusal {
                        file,
                        reason: format!(
                            "it would break zone {}: {message}",
                            zone.trim_end_matches('.')
                        ),
                    });
                }
                Err(e) => break Err(e),
            }
        };
        let assembled = match assembled {
            Ok(a) => a,
            Err(e) => {
                report.errors.push(e.to_string());
                continue;
            }
        };
        inputs.extend(assembled.inputs.iter().cloned());
        if opts.dry_run {
            continue;
        }
        match publish_zone(config, zone_conf.serial, &assembled, n_challenges, now_unix) {
            Ok(Some(p)) => {
                // RFC 1996: tell the secondaries the zone changed.
                if !config.build.notify.is_empty() {
                    match notify::notify_zone(config, zone, &[]) {
                        Ok(errors) => report.errors.extend(errors.iter().map(|e| e.to_string())),
                        Err(e) => report.errors.push(e.to_string()),
                    }
                }
                report.published.push(p)
            }
            Ok(None) => {}
            Err(e) => report.errors.push(e.to_string()),
        }
        if let Err(e) = run_on_change(config, zone) {
            report.errors.push(e);
        }
    }

    if !opts.dry_run && whole {
        if report.failed() {
            // Look again next time, so cron reports the problem again.
            Manifest::remove(state);
        } else {
            let mut entries = stamps;
            for p in inputs
                .iter()
                .chain(sorted.challenges.iter().map(|c| &c.file))
                .chain(report.refusals.iter().map(|r| &r.file))
            {
                entries.push((p.clone(), stamp(p)));
            }
            for z in &config.zones {
                let out = config.published_path(&z.name);
                entries.push((out.clone(), stamp(&out)));
            }
            Manifest { entries, until }.save(state)?;
        }
    } else if !opts.dry_run && !report.published.is_empty() {
        Manifest::remove(state);
    }
    Ok(report)
}

/// Publish one checked zone if its content changed; choose its serial.
fn publish_zone(
    config: &Config,
    policy: SerialPolicy,
    a: &zone::Assembled,
    challenges: usize,
    now_unix: u64,
) -> Result<Option<Published>, PublishError> {
    let state_dir = &config.paths.state;
    let out = config.published_path(&a.zone);
    let mut hasher = Sha256::new();
    hasher.update(a.content().as_bytes());
    if policy == SerialPolicy::Keep {
        hasher.update(a.soa.serial.to_be_bytes());
    }
    let hash = hex(&hasher.finalize());
    let previous = publish::load_zone_state(state_dir, &a.zone);
    if let Some(p) = &previous {
        if p.hash == hash && out.exists() {
            return Ok(None);
        }
    }
    let old_serial = previous
        .as_ref()
        .map(|p| p.serial)
        .or_else(|| publish::published_serial(&out));
    let new_serial = match previous.as_ref().filter(|p| p.hash == hash) {
        // Same content, output lost: publish it again as it was.
        Some(p) => p.serial,
        None => serial::next(policy, old_serial, a.soa.serial, now_unix as i64),
    };
    let serial = new_serial.to_string();
    publish::write_atomic(&out, &a.parts_with_serial(&serial).map(str::as_bytes))?;
    publish::save_zone_state(
        state_dir,
        &a.zone,
        &ZoneState {
            serial: new_serial,
            hash,
            on_change_pending: config.build.on_change.is_some(),
        },
    )?;
    Ok(Some(Published {
        zone: a.zone.clone(),
        file: out,
        old_serial,
        serial: new_serial,
        challenges,
    }))
}

/// Run `build.on_change` for `zone` if its state says it is due; clear the
/// mark on success. `{zone}` and `{file}` are substituted in each argument
/// after splitting, so they cannot inject arguments; there is no shell
/// unless the command names one.
fn run_on_change(config: &Config, zone: &str) -> Result<(), String> {
    let Some(cmd) = &config.build.on_change else {
        return Ok(());
    };
    let state_dir = &config.paths.state;
    let Some(mut st) = publish::load_zone_state(state_dir, zone) else {
        return Ok(());
    };
    if !st.on_change_pending {
        return Ok(());
    }
    let zone_s = zone.trim_end_matches('.');
    let file = config.published_path(zone);
    let words = shell_words::split(cmd)
        .map_err(|e| format!("build.on_change: cannot split `{cmd}`: {e}"))?;
    let words: Vec<String> = words
        .iter()
        .map(|w| {
            w.replace("{zone}", zone_s)
                .replace("{file}", &file.to_string_lossy())
        })
        .collect();
    let Some((program, args)) = words.split_first() else {
        return Err("build.on_change is empty".into());
    };
    let result = Command::new(program).args(args).status();
    match result {
        Ok(s) if s.success() => {
            st.on_change_pending = false;
            publish::save_zone_state(state_dir, zone, &st).map_err(|e| e.to_string())
        }
        Ok(s) => Err(format!(
            "{zone_s}: on_change `{cmd}` failed ({s}); it runs again on the next build"
        )),
        Err(e) => Err(format!(
            "{zone_s}: on_change `{cmd}`: cannot run {}: {e}; it runs again on the next build",
            name::printable(program)
        )),
    }
}
