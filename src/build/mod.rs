//! The build side: one build (or the dry run behind `zonedrop check`) over
//! the configured zones, as a pipeline of stages, each a function of its
//! own (see [`run`]):
//!
//! 1. which zones, and the build lock;
//! 2. the no-change decision ([`manifest`]): a run in which nothing moved
//!    since the last one costs a `stat` per input ([`inputs`]) and reads
//!    nothing;
//! 3. reading ([`read`]): the operator's sources ([`source`], [`zone`]),
//!    the drop directories through the [`whitelist`], the TLSA and SSHFP
//!    records ([`crate::dane::keys`]);
//! 4. per zone: settling ([`zone::settle`]: challenges that would break the
//!    zone are refused), publishing ([`publish`], [`serial`]), and the
//!    effects of a publish ([`effects`]: NOTIFY, `on_change`);
//! 5. recording what was read ([`manifest`]).
//!
//! A zone that fails keeps its last good output and the others still
//! publish.

pub mod effects;
pub mod inputs;
pub mod list;
pub mod manifest;
pub mod publish;
pub mod read;
pub mod refusals;
pub mod report;
pub mod serial;
pub mod source;
pub mod whitelist;
pub mod zone;

pub use report::{Published, Report};

use crate::base::config::{Config, SerialPolicy, ZoneConf};
use crate::base::fs;
use publish::{Lock, PublishError};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;
use zone::ZoneError;

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error("--zone {0}: no such zone in the config")]
    UnknownZone(String),
    #[error("--bump: zone {0} keeps the serial written in its SOA (serial = \"keep\"): raise it there, or give --zone for the other zones")]
    KeepSerial(String),
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
    /// Give every selected zone a new serial by its policy and publish it,
    /// changed or not (`build --bump`: re-signing needs a serial that moves).
    pub bump: bool,
}

impl Options {
    /// A build of every zone, whose inputs the manifest can vouch for.
    fn whole(&self) -> bool {
        self.zones.is_empty()
    }
}

/// Run one build (or, with `dry_run`, one check). `memory` says which
/// refusals were reported before ([`refusals::Memory`]: a stored one is read
/// and written under the build lock); a check neither consults nor
/// advances it, and all its refusals count as new.
pub fn run(
    config: &Config,
    opts: &Options,
    now: SystemTime,
    memory: &mut refusals::Memory,
) -> Result<Report, BuildError> {
    let zones = selected(config, opts)?;
    if opts.bump {
        if let Some(z) = zones.iter().find(|z| z.serial == SerialPolicy::Keep) {
            return Err(BuildError::KeepSerial(
                z.name.trim_end_matches('.').to_string(),
            ));
        }
    }
    let _lock = lock(config, opts)?;
    let now_unix = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if opts.whole()
        && !opts.force
        && !opts.bump
        && !opts.dry_run
        && manifest::unchanged(config, now_unix)
    {
        return Ok(Report {
            skipped: true,
            ..Report::default()
        });
    }
    if !opts.dry_run {
        fs::clean_temporaries(&config.paths.unsigned);
    }
    let listed = inputs::inputs(config, None);
    let first = manifest::stamp_first(&listed);
    let mut report = Report::default();
    let mut read = match read::read_sources(config, &zones) {
        Ok(read) => read,
        Err(e) => {
            // extra/ is shared by all zones: without it no zone is right.
            report.errors.push(e.to_string());
            return Ok(report);
        }
    };
    let drops = read.read_drops(now, !opts.dry_run, &mut report);
    report.refusals = drops.refusals;
    read.read_keys(now, opts.dry_run, &mut report);
    let mut files: Vec<PathBuf> = listed
        .into_iter()
        .filter(|i| !i.kind.stamped_first())
        .map(|i| i.path)
        .collect();
    files.extend(read.sources.extra_files.iter().cloned());
    for zone in zones {
        files.extend(build_zone(
            config,
            opts,
            &mut read,
            zone,
            now_unix,
            &mut report,
        ));
    }
    if !opts.dry_run {
        remember(memory, &mut report);
        files.extend(drops.challenges.into_iter().map(|c| c.file));
        files.extend(report.refusals.iter().map(|r| r.file.clone()));
        manifest::record(config, opts.whole(), &report, first, &files, read.until)?;
    }
    Ok(report)
}

/// Mark which of the build's refusals are new, and remember them; a memory
/// that cannot be read or written is one alert, never a failed zone.
fn remember(memory: &mut refusals::Memory, report: &mut Report) {
    report.alerts.extend(memory.load());
    report.fresh = memory.sort(&report.refusals);
    report.alerts.extend(memory.save());
}

/// One zone, once everything is read: settled ([`zone::settle`]), then,
/// unless this is a check, published and followed by the effects of
/// publishing. Returns the files its sources came from (none when it
/// failed: the manifest is not recorded then).
fn build_zone(
    config: &Config,
    opts: &Options,
    read: &mut read::Read<'_>,
    zone: &ZoneConf,
    now_unix: u64,
    report: &mut Report,
) -> Vec<PathBuf> {
    let Some(settled) = read.settle(&zone.name) else {
        return Vec::new();
    };
    report.refusals.extend(settled.refusals);
    let assembled = match settled.zone {
        Ok(a) => a,
        Err(e) => {
            report.errors.push(e.to_string());
            return Vec::new();
        }
    };
    if opts.dry_run {
        return assembled.inputs;
    }
    let published = match publish::publish_zone(
        config,
        zone.serial,
        &assembled,
        settled.challenges,
        now_unix,
        opts.bump,
    ) {
        Ok(Some(p)) => {
            if serial::date_ran_out(zone.serial, p.old_serial, p.serial, now_unix as i64) {
                report.alerts.push(format!(
                    "{}: serial {} is past today's last date serial (YYYYMMDD99): the 100 changes a day of serial = \"date\" ran out, and serials run ahead of the date until it catches up",
                    zone.name.trim_end_matches('.'),
                    p.serial
                ));
            }
            report.published.push(p);
            true
        }
        Ok(None) => false,
        Err(e) => {
            report.errors.push(e.to_string());
            false
        }
    };
    report
        .errors
        .extend(effects::after_publish(config, &zone.name, published));
    assembled.inputs
}

/// The zones to build, in config order: all, or those named (each must be
/// configured).
fn selected<'c>(config: &'c Config, opts: &Options) -> Result<Vec<&'c ZoneConf>, BuildError> {
    for z in &opts.zones {
        if !config.zones.iter().any(|c| &c.name == z) {
            return Err(BuildError::UnknownZone(z.trim_end_matches('.').to_string()));
        }
    }
    Ok(config
        .zones
        .iter()
        .filter(|z| opts.whole() || opts.zones.contains(&z.name))
        .collect())
}

/// The build lock (a check takes none: it writes nothing).
fn lock(config: &Config, opts: &Options) -> Result<Option<Lock>, BuildError> {
    if opts.dry_run {
        return Ok(None);
    }
    Ok(Some(Lock::acquire(
        &config.paths.state,
        config.build.lock_wait,
    )?))
}
