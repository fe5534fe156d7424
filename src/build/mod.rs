//! The build side: one build (or the dry run behind `zonedrop check`) over
//! the configured zones, as a pipeline of stages, each a function of its
//! own (see [`run`]):
//!
//! 1. which zones, and the build lock;
//! 2. the no-change decision ([`manifest`]): a run in which nothing moved
//!    since the last one costs a `stat` per input ([`inputs`]) and reads
//!    nothing;
//! 3. reading ([`read`]): the operator's sources ([`source`], [`zone`]) of
//!    the zones whose input record ([`zones`]) does not vouch for them,
//!    the drop directories through the [`whitelist`], the TLSA and SSHFP
//!    records ([`crate::dane::keys`]);
//! 4. per zone: skipped when nothing it depends on moved; settling (from
//!    its cache of checked sources when only its records moved:
//!    [`zone::cache`]; [`zone::settle`]: challenges that would break the
//!    zone are refused), publishing ([`publish`], [`serial`]), and the
//!    effects of a publish ([`effects`]: NOTIFY, `on_change`);
//! 5. recording what was read ([`manifest`], [`zones`]).
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
pub mod zones;

pub use report::{Published, RecordLine, Report};

use crate::base::config::{Config, SerialPolicy, ZoneConf};
use crate::base::fs::{self, stamp};
use publish::{Lock, PublishError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;
use zone::ZoneError;
use zones::{Records, ZoneRecord};

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
    /// The responder of `zonedrop run`: it takes each published zone
    /// before the zone's NOTIFY goes out ([`effects`]).
    pub serving: Option<Arc<dyn effects::Serving>>,
    /// Only drop directories changed since the last build, as the change
    /// events of `watch` and `run` tell (never from polling, never for
    /// long: the watcher builds in full at least every [`crate::live::watch::TICK`]).
    /// The zones' sources and published files are taken as their input
    /// records say, not stat'ed, the build's inputs are not stamped, and
    /// the manifest is dropped: the next full build looks at everything.
    pub drops_only: bool,
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
    let drops_only = opts.drops_only && !opts.force && !opts.bump && !opts.dry_run;
    // A temporary is left only by a killed build: a full one looks.
    if !opts.dry_run && !drops_only {
        fs::clean_temporaries(&config.paths.unsigned);
    }
    let listed = match drops_only {
        true => Vec::new(),
        false => inputs::inputs(config, None),
    };
    let first = match drops_only {
        true => manifest::First {
            time_ns: manifest::now_ns(),
            ..Default::default()
        },
        false => manifest::stamp_first(&listed),
    };
    let mut report = Report::default();
    // The per-zone input record: a zone whose inputs did not move is not
    // read, checked or published (`--force`, `--bump` and `check` read all).
    let mut records = (!opts.dry_run).then(|| Records::load(config));
    let trusted = records.as_ref().filter(|_| !opts.force && !opts.bump);
    let mut read = match read::read_sources(config, &zones, trusted, drops_only) {
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
    for zone in moved_first(zones, &read) {
        let (read_from, record) = build_zone(
            config,
            opts,
            &mut read,
            zone,
            (now_unix, first.time_ns, drops_only),
            &mut report,
        );
        if let Some(records) = records.as_mut() {
            match record {
                Some(r) => records.set(&zone.name, r, first.time_ns),
                None => records.forget(&zone.name),
            }
        }
        files.extend(read_from);
    }
    if let Some(records) = records {
        if let Err(e) = records.save(config) {
            report.errors.push(e.to_string());
        }
        zone::cache::prune(
            &config.paths.state,
            config.zones.iter().map(|z| z.name.as_str()),
        );
    }
    in_config_order(config, &mut report);
    if !opts.dry_run {
        remember(memory, &mut report);
        files.extend(drops.challenges.into_iter().map(|c| c.file));
        files.extend(report.refusals.iter().map(|r| r.file.clone()));
        // The zones are out: a manifest that cannot be written costs the
        // next build its skip, and is said.
        let recorded = match drops_only {
            true => manifest::forget(config),
            false => manifest::record(config, opts.whole(), &report, first, &files, read.until),
        };
        if let Err(e) = recorded {
            report.errors.push(e.to_string());
        }
    }
    Ok(report)
}

/// The zones to build, those whose records (challenges, TLSA, SSHFP) moved
/// first: the responder of `run`, and the validator asking it, get a new
/// challenge before the other zones are looked at.
fn moved_first<'c>(zones: Vec<&'c ZoneConf>, read: &read::Read<'_>) -> Vec<&'c ZoneConf> {
    let (mut moved, still): (Vec<_>, Vec<_>) = zones.into_iter().partition(|z| {
        read.deferred(&z.name)
            .is_none_or(|prior| prior.records != read.records_digest(&z.name))
    });
    moved.extend(still);
    moved
}

/// The published zones in the config's order, whatever order they were
/// built in.
fn in_config_order(config: &Config, report: &mut Report) {
    let at: std::collections::HashMap<&str, usize> = config
        .zones
        .iter()
        .enumerate()
        .map(|(i, z)| (z.name.as_str(), i))
        .collect();
    report
        .published
        .sort_by_key(|p| at.get(p.zone.as_str()).copied().unwrap_or(usize::MAX));
}

/// Mark which of the build's refusals are new, and remember them; a memory
/// that cannot be read or written is one alert, never a failed zone.
fn remember(memory: &mut refusals::Memory, report: &mut Report) {
    report.alerts.extend(memory.load());
    report.fresh = memory.sort(&report.refusals);
    report.alerts.extend(memory.save());
}

/// One zone, once everything is read: skipped if its input record says
/// nothing moved, else settled ([`zone::settle`]), then, unless this is a
/// check, published and followed by the effects of publishing. Returns the
/// files its sources came from (none when it failed: the manifest is not
/// recorded then), and its new input record (none when it failed, or an
/// effect of its publish did: it is read again next time).
fn build_zone(
    config: &Config,
    opts: &Options,
    read: &mut read::Read<'_>,
    zone: &ZoneConf,
    (now_unix, time_ns, drops_only): (u64, i64, bool),
    report: &mut Report,
) -> (Vec<PathBuf>, Option<ZoneRecord>) {
    if !opts.dry_run && read.held(&zone.name) {
        // The error line names the state file; the zone stays as it was.
        return (Vec::new(), None);
    }
    let records = read.records_digest(&zone.name);
    let out = config.published_path(&zone.name);
    if let Some(prior) = read.deferred(&zone.name) {
        let output = (!drops_only).then_some(out.as_path());
        if !read.blocked(&zone.name) && Records::unchanged(prior, &records, output) {
            let files = prior.sources.iter().map(|(p, _)| p.clone()).collect();
            return (files, Some(prior.clone()));
        }
    }
    let (rendered, files) = (read.rendered(&zone.name), read.challenge_files(&zone.name));
    let Some(settled) = read.settle(&zone.name) else {
        return (Vec::new(), None);
    };
    let rendered = accepted(rendered, &files, &settled.refusals);
    report.refusals.extend(settled.refusals);
    let assembled = match settled.zone {
        Ok(a) => a,
        Err(e) => {
            report.errors.push(e.to_string());
            return (Vec::new(), None);
        }
    };
    if opts.dry_run {
        return (assembled.inputs, None);
    }
    let mut record = Some(ZoneRecord {
        sources: zone_sources(config, zone, &assembled.inputs),
        extra: read.extra_digest(&zone.name),
        aliases: read.own_aliases(&zone.name),
        records,
        rendered,
        output: None,
    });
    // The checked sources are kept once a zone was read although its
    // sources had not moved (its challenges or keys had), or under
    // --force: a build whose sources moved does not pay for a cache that
    // the next source change would make useless. Sources read while they
    // moved are never kept.
    let unmoved = opts.force || read.deferred(&zone.name).is_some();
    if let Some(r) = record
        .as_ref()
        .filter(|r| unmoved && !read.from_cache(&zone.name) && r.vouches(time_ns))
    {
        keep_checked_sources(config, &assembled, r);
    }
    let published = match publish::publish_zone(
        config,
        zone.serial,
        &assembled,
        &settled.accepted,
        (now_unix, opts.bump),
        opts.serving.as_deref(),
    ) {
        Ok(publish::Publish::New(p)) => {
            if serial::date_ran_out(zone.serial, p.old_serial, p.serial, now_unix as i64) {
                report.alerts.push(format!(
                    "{}: serial {} is past today's last date serial (YYYYMMDD99): the 100 changes a day of serial = \"date\" ran out, and serials run ahead of the date until it catches up",
                    zone.name.trim_end_matches('.'),
                    p.serial
                ));
            }
            effects::Version::New(p)
        }
        Ok(publish::Publish::Same { serial, parts }) => effects::Version::Same(serial, parts),
        Err(e) => {
            report.errors.push(e.to_string());
            record = None;
            effects::Version::Unknown
        }
    };
    let effects = effects::after_publish(
        config,
        &zone.name,
        &published,
        opts.serving.as_deref(),
        now_unix,
    );
    if !effects.errors.is_empty() || effects.retry_at.is_some() {
        // Owed (a failed on_change, an unacknowledged NOTIFY): the next
        // build must look at this zone again.
        record = None;
    }
    report.errors.extend(effects.errors);
    read.until = match (read.until, effects.retry_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let effects::Version::New(p) = published {
        report.published.push(p);
    }
    if let Some(r) = record.as_mut() {
        r.output = stamp(&out);
    }
    (assembled.inputs, record)
}

/// The records of a zone (keys, then the challenges from `files`) less the
/// challenges settling refused: what its published file holds of them.
fn accepted(
    mut rendered: Vec<RecordLine>,
    files: &[PathBuf],
    refusals: &[whitelist::Refusal],
) -> Vec<RecordLine> {
    let challenges = rendered.split_off(rendered.len().saturating_sub(files.len()));
    let refused = |f: &PathBuf| refusals.iter().any(|r| &r.file == f);
    rendered.extend(
        challenges
            .into_iter()
            .zip(files)
            .filter(|(_, f)| !refused(f))
            .map(|(c, _)| c),
    );
    rendered
}

/// Keep the checked sources of a zone just read in its cache, if they are
/// worth one ([`zone::cache::worth`]); the cache is never required, so a
/// failure is only logged.
fn keep_checked_sources(config: &Config, a: &zone::Assembled, record: &ZoneRecord) {
    let state = &config.paths.state;
    if !zone::cache::worth(a) {
        zone::cache::remove(state, &a.zone);
    } else {
        let key = record.cache_key();
        zone::cache::remember(a, &key);
        if let Err(e) = zone::cache::save(state, a, &key) {
            log::info!(
                "{}: cannot keep the checked sources: {e}",
                zone::cache::path(state, &a.zone).display()
            );
        }
    }
}

/// The source files of `zone` for its input record: the ones read, and its
/// soa and primary files even when absent (one that appears is a change).
fn zone_sources(
    config: &Config,
    zone: &ZoneConf,
    read_from: &[PathBuf],
) -> Vec<(PathBuf, Option<fs::Stamp>)> {
    let mut paths: Vec<PathBuf> = read_from.to_vec();
    let own = inputs::inputs(config, Some(&zone.name))
        .into_iter()
        .filter(|i| i.kind == inputs::Kind::ZoneFile);
    for i in own {
        if !paths.contains(&i.path) {
            paths.push(i.path);
        }
    }
    paths
        .into_iter()
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect()
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
