//! Live rebuilding: watch the drop directories, the zone sources and the
//! certificate/key files, and run a build whenever something moved.
//!
//! notify's native watcher by default (inotify on Linux); with `--poll`, for
//! nullfs/NFS mounts where change events never arrive, a build every
//! interval (the manifest check is the poll). A burst of hook
//! writes becomes one build (a short quiet period is awaited). Directories
//! that disappear are re-watched when they come back (their parents are
//! watched too), and a build also runs every few seconds regardless: the
//! build's manifest makes that a handful of `stat` calls when nothing moved,
//! and it lets fragments expire and rollover deadlines pass on time.
//! When to build is `pace.rs`'s: a burst of changes waits for a short
//! quiet period, and builds the drop side sets off are rate-limited (a
//! lone change is built at once, churn is held to `[build] max_rate`).
//! SIGHUP reads the config file again (systemd's `ExecReload`, rc.d's
//! `reload`): a config that loads is used from the next build on, with the
//! folders it names watched; one that does not is logged and the one in use
//! stays. A zone left out of the new config is no longer built (its last
//! published file stays where it is).

use crate::base::config::Config;
use crate::build::inputs::{inputs, Kind};
use crate::build::refusals::{Cap, Memory};
use crate::build::report::Shown;
use crate::build::{self, Report};
use crate::live::pace::{Pace, Wake};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use thiserror::Error;

/// A build runs at least this often, events or not.
pub const TICK: Duration = Duration::from_secs(5);
/// At most this many drop entries named by events are remembered between
/// two builds; past it the next build reads every entry.
const CHANGED_MAX: usize = 20_000;

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("cannot start the file watcher: {0}")]
    Start(notify::Error),
    #[error("cannot watch for SIGHUP: {0}")]
    Signal(std::io::Error),
}

/// What to watch, and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Poll every this long instead of using change events.
    pub poll: Option<Duration>,
    /// The responder of `zonedrop run`, handed each published zone.
    pub serving: Option<std::sync::Arc<dyn crate::build::effects::Serving>>,
}

/// Every folder whose change can change a zone (the folders of the build's
/// [`inputs`]), with how deep to watch it.
pub fn watched_paths(config: &Config) -> BTreeMap<PathBuf, RecursiveMode> {
    let mut out = BTreeMap::new();
    // A folder asked for twice is watched as deep as either asks.
    let mut watch = |dir: &Path, mode| {
        let slot = out
            .entry(dir.to_path_buf())
            .or_insert(RecursiveMode::NonRecursive);
        if mode == RecursiveMode::Recursive {
            *slot = mode;
        }
    };
    for input in inputs(config, None) {
        let (dir, mode) = match input.kind {
            Kind::Drop => (input.path, RecursiveMode::NonRecursive),
            Kind::SourceFolder | Kind::Extra => (input.path, RecursiveMode::Recursive),
            // Renewals replace files by rename: watch the folder.
            Kind::Key if !input.path.is_dir() => {
                if let Some(dir) = input.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    watch(dir, RecursiveMode::NonRecursive);
                }
                continue;
            }
            Kind::Key => {
                watch(&input.path, RecursiveMode::NonRecursive);
                continue;
            }
            // A zone file in a source folder is watched with it; one kept
            // elsewhere (`[[zone]] file`) through its folder. The config
            // is read at the start and at SIGHUP.
            Kind::ZoneFile => {
                if let Some(dir) = input.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    watch(dir, RecursiveMode::NonRecursive);
                }
                continue;
            }
            Kind::Config => continue,
        };
        watch(&dir, mode);
        // The parent sees the folder itself vanish and come back.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            watch(parent, RecursiveMode::NonRecursive);
        }
    }
    out
}

/// The folders watched only as parents of an input folder (to see it
/// vanish and come back), and the folders watched for themselves: in a
/// parent, only the input folder itself is news, not a log file or any
/// other neighbour (written at every build, a log beside the drop
/// directory would start the next build, and under churn that build would
/// hold back the real changes that come while it waits for its token).
#[derive(Debug, Default)]
struct Neighbours {
    parents: HashSet<PathBuf>,
    own: HashSet<PathBuf>,
    /// The drop directories: an event about entries in them alone lets the
    /// next build look at the drop side only (`build::Options::drops_only`).
    drops: HashSet<PathBuf>,
}

impl Neighbours {
    fn new(config: &Config) -> Neighbours {
        let mut n = Neighbours::default();
        for input in inputs(config, None) {
            if input.kind == Kind::Drop {
                n.drops.insert(input.path.clone());
            }
            match input.kind {
                Kind::Drop | Kind::SourceFolder | Kind::Extra => {
                    if let Some(p) = input.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                        n.parents.insert(p.to_path_buf());
                    }
                    n.own.insert(input.path);
                }
                Kind::Key if input.path.is_dir() => {
                    n.own.insert(input.path);
                }
                Kind::Key | Kind::ZoneFile => {
                    if let Some(p) = input.path.parent() {
                        n.own.insert(p.to_path_buf());
                    }
                }
                Kind::Config => {}
            }
        }
        // A parent that is an input itself, or lies in a source folder
        // (watched with everything under it), is no mere parent.
        let deep: Vec<PathBuf> = inputs(config, None)
            .into_iter()
            .filter(|i| matches!(i.kind, Kind::SourceFolder | Kind::Extra))
            .map(|i| i.path)
            .collect();
        let own = &n.own;
        n.parents
            .retain(|p| !own.contains(p) && !deep.iter().any(|d| p.starts_with(d)));
        n
    }

    /// Whether an event about `paths` is only about entries of drop
    /// directories.
    fn in_drops(&self, paths: &[PathBuf]) -> bool {
        !paths.is_empty()
            && paths
                .iter()
                .all(|p| p.parent().is_some_and(|d| self.drops.contains(d)))
    }

    /// Whether an event about `paths` is only about neighbours.
    fn only(&self, paths: &[PathBuf]) -> bool {
        !paths.is_empty()
            && paths.iter().all(|p| {
                !self.own.contains(p) && p.parent().is_some_and(|d| self.parents.contains(d))
            })
    }
}

/// Whether `path` is a temporary of an atomic write (`base::fs`).
fn temporary(path: &Path) -> bool {
    path.file_name().is_some_and(|n| {
        n.as_encoded_bytes()
            .starts_with(crate::base::fs::TEMP_PREFIX.as_bytes())
    })
}

/// The folders to watch and which of them are watched now.
struct Watched {
    wanted: BTreeMap<PathBuf, RecursiveMode>,
    armed: BTreeMap<PathBuf, bool>,
}

impl Watched {
    fn new(config: &Config) -> Watched {
        Watched {
            wanted: watched_paths(config),
            armed: BTreeMap::new(),
        }
    }

    /// Watch the wanted folders that exist now; stop watching those that
    /// went away or are no longer wanted (a config read again).
    fn arm(&mut self, watcher: &mut Option<RecommendedWatcher>) {
        let Some(watcher) = watcher else { return };
        for (path, was) in self.armed.iter_mut() {
            if *was && !self.wanted.contains_key(path) {
                let _ = watcher.unwatch(path);
                *was = false;
            }
        }
        for (path, mode) in &self.wanted {
            let exists = path.is_dir();
            let was = self.armed.get(path).copied().unwrap_or(false);
            if exists && !was {
                let ok = watcher.watch(path, *mode).is_ok();
                self.armed.insert(path.clone(), ok);
            } else if !exists && was {
                let _ = watcher.unwatch(path);
                self.armed.insert(path.clone(), false);
            }
        }
    }
}

/// Bytes of checked sources `watch` and `run` keep in memory
/// ([`crate::build::zone::cache`]): a million-record zone takes about 50 MB.
const MEMORY_FOR_SOURCES: usize = 256 << 20;

/// Watch and build until the event channel closes (never, in practice).
/// `on_build` sees every build's report (it logs and swaps in zones). At
/// SIGHUP the config file is read again: a good one is used from the next
/// build on (and handed to `on_reload`: the responder serves its zones), a
/// bad one is logged and the one in use stays.
pub fn run(
    config: &Config,
    opts: &Options,
    mut on_build: impl FnMut(&Report),
    mut on_reload: impl FnMut(&Config),
) -> Result<(), WatchError> {
    let mut config = config.clone();
    // Builds after this one keep zones' checked sources in memory too.
    crate::build::zone::cache::keep_in_memory(MEMORY_FOR_SOURCES);
    crate::build::zones::keep_in_memory();
    crate::build::zone::memo::keep();
    let (tx, rx) = mpsc::channel::<Wake>();
    // Registered before the first build: from here on SIGHUP no longer
    // ends the process.
    hangups(tx.clone())?;
    let neighbours = Arc::new(RwLock::new(Neighbours::new(&config)));
    let seen_by_handler = neighbours.clone();
    // An event about anything but drop entries (or a lost event: notify's
    // errors and rescans) since the last build: the next one is full.
    let beyond_drops = Arc::new(AtomicBool::new(true));
    let beyond_by_handler = beyond_drops.clone();
    // The drop entries events named since the last build.
    let changed = Arc::new(Mutex::new(HashSet::new()));
    let changed_by_handler = changed.clone();
    let handler = move |event: notify::Result<Event>| {
        // inotify reports opens and closes of the files a build reads
        // (notify asks for IN_OPEN): they change nothing, and taken as
        // changes they would start the next build, which reads again.
        if matches!(&event, Ok(e) if e.kind.is_access()) {
            return;
        }
        // A writer's temporary (zonedrop's own atomic writes) is not read
        // by a build; only its rename into place is a change. Taken as
        // one, it would start a build in the middle of a hook's write.
        if matches!(&event, Ok(e) if !e.paths.is_empty() && e.paths.iter().all(|p| temporary(p))) {
            return;
        }
        let neighbours = seen_by_handler.read().unwrap_or_else(|e| e.into_inner());
        if matches!(&event, Ok(e) if neighbours.only(&e.paths)) {
            return;
        }
        match &event {
            Ok(e) if !e.need_rescan() && neighbours.in_drops(&e.paths) => {
                let mut changed = changed_by_handler.lock().unwrap_or_else(|e| e.into_inner());
                changed.extend(e.paths.iter().cloned());
                // A flood is read in full: the set stays bounded.
                if changed.len() > CHANGED_MAX {
                    changed.clear();
                    beyond_by_handler.store(true, Ordering::SeqCst);
                }
            }
            _ => beyond_by_handler.store(true, Ordering::SeqCst),
        }
        let _ = tx.send(Wake::Changed(Instant::now()));
    };
    // Polling is not notify's PollWatcher: it compares mtimes in whole
    // seconds, so a fragment added and removed between two of its scans
    // within one second makes no event at all, and the removal would wait
    // for the next TICK. A build checks the manifest (size, inode and
    // nanosecond mtime of every input): running one every interval is the
    // poll, and it sees every change.
    let mut watcher: Option<RecommendedWatcher> = match opts.poll {
        // `handler` (the sender) lives on unused: the channel stays open.
        Some(_) => None,
        None => Some(
            RecommendedWatcher::new(handler, notify::Config::default())
                .map_err(WatchError::Start)?,
        ),
    };
    let tick = opts
        .poll
        .map_or(TICK, |p| p.clamp(Duration::from_millis(10), TICK));
    let mut watched = Watched::new(&config);
    watched.arm(&mut watcher);
    log::info!(
        "watching {} folders{}",
        watched.wanted.len(),
        opts.poll.map_or(String::new(), |p| format!(
            " (polling every {})",
            humantime::format_duration(p)
        ))
    );
    let mut pace = Pace::new(config.build.max_rate);
    let mut refusals = Refusals::new(&config);
    // `run`'s first build reads every zone even when nothing changed, so
    // that the responder learns what each served version holds and takes
    // the first challenge as a delta too.
    let mut full = Full {
        at: Instant::now(),
        events: watcher.is_some(),
    };
    build_once(
        &config,
        (opts.serving.is_some(), false),
        opts.serving.clone(),
        &mut refusals,
        &mut on_build,
    );
    loop {
        let Some(reload) = pace.next(&rx, tick, opts.poll.is_some()) else {
            return Ok(());
        };
        // A config read again is built whole: the manifest stamps the
        // file, which a build under the old config may have stamped
        // already after it was edited.
        let mut force = false;
        if reload {
            if let Some(new) = read_again(&config) {
                config = new;
                watched.wanted = watched_paths(&config);
                *neighbours.write().unwrap_or_else(|e| e.into_inner()) = Neighbours::new(&config);
                on_reload(&config);
                pace.set_rate(config.build.max_rate);
                force = true;
            }
        }
        watched.arm(&mut watcher);
        let drops_only = full.drops_only(force, beyond_drops.swap(false, Ordering::SeqCst));
        let seen = std::mem::take(&mut *changed.lock().unwrap_or_else(|e| e.into_inner()));
        let mut build = || {
            build_once(
                &config,
                (force, drops_only),
                opts.serving.clone(),
                &mut refusals,
                &mut on_build,
            )
        };
        let published = match drops_only {
            true => crate::hook::drop::going_by_events(seen, build),
            false => build(),
        };
        match published {
            Some(published) => pace.built(published),
            // What moved is looked at again, in full.
            None => beyond_drops.store(true, Ordering::SeqCst),
        }
    }
}

/// When the watcher last built in full, and whether it has change events
/// to go by: with them, a build after changes to drop entries alone looks
/// at the drop side only, and a full build comes at least every [`TICK`]
/// (a change that made no event, a published file removed by hand, is
/// seen then); polling builds in full every time.
struct Full {
    at: Instant,
    events: bool,
}

impl Full {
    /// Whether the next build may look at the drop side only: it is not
    /// `forced`, nothing `beyond` the drop entries moved, and the last full
    /// build is less than a [`TICK`] old. Otherwise it is full, from now.
    fn drops_only(&mut self, forced: bool, beyond: bool) -> bool {
        let drops_only = self.events && !forced && !beyond && self.at.elapsed() < TICK;
        if !drops_only {
            self.at = Instant::now();
        }
        drops_only
    }
}

/// The config file of `config` read again, or None (logged) when it does
/// not load.
pub(crate) fn read_again(config: &Config) -> Option<Config> {
    let path = config.file.as_deref()?;
    match Config::load(path) {
        Ok(new) => {
            log::info!(
                "{}: config read again (SIGHUP): {} zones",
                crate::base::name::printable_path(path),
                new.zones.len()
            );
            Some(new)
        }
        Err(e) => {
            log::error!("{e}; SIGHUP: the config in use stays");
            None
        }
    }
}

/// Turn every SIGHUP into a [`Wake::Reload`] on `tx`. The handler is in
/// place when this returns (a thread of its own waits for the signals).
fn hangups(tx: mpsc::Sender<Wake>) -> Result<(), WatchError> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(WatchError::Signal)?;
    let mut hup = {
        let _in = runtime.enter();
        signal(SignalKind::hangup()).map_err(WatchError::Signal)?
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            while hup.recv().await.is_some() {
                if tx.send(Wake::Reload).is_err() {
                    return;
                }
            }
        })
    });
    Ok(())
}

/// Which refusals this process reported, and the lines they may still
/// take in the current interval ([`crate::build::refusals`]).
struct Refusals {
    memory: Memory,
    cap: Cap,
}

impl Refusals {
    fn new(config: &Config) -> Refusals {
        Refusals {
            memory: Memory::kept(),
            cap: Cap::per_interval(config.build.refusal_lines, config.build.refusal_interval),
        }
    }
}

/// One build; whether it published anything (None: it failed as a whole).
fn build_once(
    config: &Config,
    (force, drops_only): (bool, bool),
    serving: Option<std::sync::Arc<dyn crate::build::effects::Serving>>,
    refusals: &mut Refusals,
    on_build: &mut impl FnMut(&Report),
) -> Option<bool> {
    let opts = build::Options {
        force,
        serving,
        drops_only,
        ..Default::default()
    };
    let b = &config.build;
    refusals.cap.set_limits(b.refusal_lines, b.refusal_interval);
    match build::run(config, &opts, SystemTime::now(), &mut refusals.memory) {
        Ok(report) => {
            report.show(Shown::Log, &mut refusals.cap);
            on_build(&report);
            Some(!report.published.is_empty())
        }
        Err(e) => {
            log::error!("{e}");
            None
        }
    }
}
