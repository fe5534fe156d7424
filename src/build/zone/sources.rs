//! Reading the operator's sources: extra/ once for all zones (each entry
//! assigned to the closest enclosing zone), then per zone the SOA part,
//! the primary part (streamed, and for a big file checked while it is
//! read) and its extra entries, emitted into one [`Assembled`] text.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use super::alias::Aliases;
use super::check::{check_batches, CheckContext, Checked, Feed, PIPELINE_BYTES};
use super::emit::{Emitter, Slice};
use super::{Assembled, Mark, Rendered, Soa, ZoneError, SERIAL_MARK};
use crate::base::config::{Config, Policy, ZoneConf};
use crate::base::cores;
use crate::build::source::{Entry, Expander, Scope, Sink};
use hickory_proto::serialize::txt::parse_ttl;
use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What the last full read of the folders found ([`Sources::reusing`]).
struct Kept {
    extra: PathBuf,
    roots: Vec<PathBuf>,
    extras: Vec<ExtraEntry>,
    extra_files: Vec<PathBuf>,
}

static KEPT: std::sync::Mutex<Option<Kept>> = std::sync::Mutex::new(None);

/// An extra entry, owned, with its zone.
#[derive(Debug, Clone)]
pub(super) struct ExtraEntry {
    pub(super) zone: String,
    pub(super) file: Arc<PathBuf>,
    pub(super) line: usize,
    pub(super) scope: Scope,
    pub(super) owner: String,
    pub(super) rest: String,
}

/// Reads the operator's sources for all zones of a config.
pub struct Sources<'c> {
    config: &'c Config,
    pub(super) roots: Vec<PathBuf>,
    pub(super) extras: Vec<ExtraEntry>,
    /// Extra files (for the manifest).
    pub extra_files: Vec<PathBuf>,
    /// The challenge aliases in the sources read so far.
    pub aliases: Aliases,
}

/// The challenge aliases of every configured zone (extra/ and each
/// primary/ part), for judging drop fragments without building: what
/// `zonedrop list` judges with. Sources that cannot be read come back as
/// errors beside the aliases found in the rest.
pub fn read_aliases(config: &Config) -> (Aliases, Vec<ZoneError>) {
    match Sources::new(config) {
        Err(e) => (Aliases::default(), vec![e]),
        Ok(mut sources) => {
            let errors = config
                .zones
                .iter()
                .filter_map(|z| sources.scan_aliases(&z.name).err())
                .collect();
            (sources.aliases, errors)
        }
    }
}

impl<'c> Sources<'c> {
    /// Read extra/ (every regular file, recursively; dot-files skipped) and
    /// assign its entries to zones.
    /// [`Sources::new`], or, with `unmoved` (a build after drop-only
    /// events in `watch`/`run`: no source folder changed since the last
    /// full build), the folders and extra/ entries that build found,
    /// without reading extra/ again. Every full build keeps what it read.
    pub fn reusing(config: &'c Config, unmoved: bool) -> Result<Sources<'c>, ZoneError> {
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = kept
            .as_ref()
            .filter(|k| unmoved && k.extra == config.paths.extra)
        {
            return Ok(Sources {
                config,
                roots: k.roots.clone(),
                extras: k.extras.clone(),
                extra_files: k.extra_files.clone(),
                aliases: Aliases::default(),
            });
        }
        let s = Sources::new(config)?;
        *kept = Some(Kept {
            extra: config.paths.extra.clone(),
            roots: s.roots.clone(),
            extras: s.extras.clone(),
            extra_files: s.extra_files.clone(),
        });
        Ok(s)
    }

    pub fn new(config: &'c Config) -> Result<Sources<'c>, ZoneError> {
        // `$INCLUDE` reaches the source folders, and the folder of a zone
        // file kept elsewhere (`[[zone]] file`, `soa`, `primary`).
        let own_folders = config.zones.iter().flat_map(|z| {
            [&z.file, &z.soa, &z.primary]
                .into_iter()
                .flatten()
                .filter_map(|f| f.parent().map(PathBuf::from))
        });
        let mut roots: Vec<PathBuf> = [
            config.paths.soa.clone(),
            config.paths.primary.clone(),
            config.paths.extra.clone(),
        ]
        .into_iter()
        .chain(own_folders)
        .filter_map(|p| p.canonicalize().ok())
        .collect();
        roots.sort();
        roots.dedup();
        let mut s = Sources {
            config,
            roots,
            extras: Vec::new(),
            extra_files: Vec::new(),
            aliases: Aliases::default(),
        };
        s.read_extras()?;
        Ok(s)
    }

    fn read_extras(&mut self) -> Result<(), ZoneError> {
        let dir = &self.config.paths.extra;
        if !dir.exists() {
            return Ok(());
        }
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect();
        files.sort();
        struct Collect<'a> {
            config: &'a Config,
            out: Vec<ExtraEntry>,
            aliases: Aliases,
        }
        impl Sink for Collect<'_> {
            fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
                let owner = e.owner.to_ascii_lowercase();
                let zone = self
                    .config
                    .zone_of(&owner)
                    .ok_or_else(|| format!("the owner `{}` lies in no configured zone", e.owner))?;
                self.out.push(ExtraEntry {
                    zone: zone.name.clone(),
                    file: e.file.clone(),
                    line: e.line,
                    scope: e.scope.clone(),
                    owner: e.owner.to_string(),
                    rest: e.rest_text().into_owned(),
                });
                self.aliases.note(e, &self.config.policy);
                Ok(())
            }
        }
        let mut sink = Collect {
            config: self.config,
            out: Vec::new(),
            aliases: Aliases::default(),
        };
        let expander = Expander::new(&self.roots);
        for f in &files {
            let scope = Scope {
                origin: ".".into(),
                ttl: None,
            };
            expander.expand(f, scope, &mut sink)?;
        }
        self.aliases.extend(sink.aliases);
        self.extras = sink.out;
        self.extra_files = files;
        Ok(())
    }

    fn zone_conf(&self, zone: &str) -> Option<&ZoneConf> {
        self.config.zones.iter().find(|z| z.name == zone)
    }

    pub(super) fn soa_path(&self, zone: &str) -> PathBuf {
        match self.zone_conf(zone) {
            Some(z) => self.config.soa_file(z),
            None => self.config.paths.soa.join(zone.trim_end_matches('.')),
        }
    }

    pub(super) fn primary_path(&self, zone: &str) -> PathBuf {
        match self.zone_conf(zone) {
            Some(z) => self.config.primary_file(z),
            None => self.config.paths.primary.join(zone.trim_end_matches('.')),
        }
    }

    /// Whether `zone` is kept in one file with its SOA (`[[zone]] file`).
    pub(super) fn single_file(&self, zone: &str) -> bool {
        self.zone_conf(zone).is_some_and(|z| z.file.is_some())
    }

    /// Read primary/ of `zone` only to learn its challenge aliases (needed
    /// before the drop directories are judged), for a zone that is not
    /// being assembled ([`Sources::assemble_sources`] learns them itself).
    pub fn scan_aliases(&mut self, zone: &str) -> Result<(), ZoneError> {
        struct Note<'p>(&'p Policy, Aliases);
        impl Sink for Note<'_> {
            fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
                self.1.note(e, self.0);
                Ok(())
            }
        }
        let mut sink = Note(&self.config.policy, Aliases::default());
        let scope = self.zone_scope(zone, None);
        let expander = Expander::new(&self.roots);
        let primary = self.primary_path(zone);
        if primary.exists() {
            expander.expand(&primary, scope, &mut sink)?;
        }
        self.aliases.extend(sink.1);
        Ok(())
    }

    pub(super) fn zone_scope(&self, zone: &str, ttl: Option<&str>) -> Scope {
        Scope {
            origin: zone.into(),
            ttl: ttl.map(Into::into),
        }
    }

    /// Assemble `zone`: soa + primary + extra + `records` (keys, then challenges).
    pub fn assemble(&self, zone: &str, records: &[Rendered]) -> Result<Assembled, ZoneError> {
        let (mut a, _) = self.read_zone(zone)?;
        a.set_records(records);
        Ok(a)
    }

    /// Assemble the operator's part of `zone` (soa + primary + extra; the
    /// records come with [`Assembled::set_records`]) and, in the same pass,
    /// learn its challenge aliases: a million-record primary is read once.
    pub fn assemble_sources(&mut self, zone: &str) -> Result<Assembled, ZoneError> {
        let (a, aliases) = self.read_zone(zone)?;
        self.aliases.extend(aliases);
        Ok(a)
    }

    /// [`Sources::assemble_sources`], also giving the challenge aliases of
    /// the zone's own sources (for its per-zone input record).
    pub fn assemble_sources_noting(
        &mut self,
        zone: &str,
    ) -> Result<(Assembled, Aliases), ZoneError> {
        let (a, aliases) = self.read_zone(zone)?;
        self.aliases.extend(aliases.clone());
        Ok((a, aliases))
    }

    /// A digest of the entries of extra/ that fall in each zone (file,
    /// line, scope and text), in one pass: equal digests, equal
    /// contribution to the zone. A zone with none is not in the map.
    pub fn extra_digests(&self) -> std::collections::HashMap<String, String> {
        let mut hashers: std::collections::HashMap<&str, xxhash_rust::xxh3::Xxh3> =
            std::collections::HashMap::new();
        for e in &self.extras {
            let h = hashers.entry(e.zone.as_str()).or_default();
            for part in [
                e.file.as_os_str().as_encoded_bytes(),
                &e.line.to_le_bytes(),
                e.scope.origin.as_bytes(),
                e.scope.ttl.as_deref().unwrap_or("\\0").as_bytes(),
                e.owner.as_bytes(),
                e.rest.as_bytes(),
            ] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part);
            }
        }
        hashers
            .into_iter()
            .map(|(z, h)| (z.to_string(), format!("{:032x}", h.digest128())))
            .collect()
    }

    /// soa + primary + extra of `zone`, and the CNAMEs at challenge labels
    /// its primary part holds (owner, scope, data).
    ///
    /// A big primary part is checked while it is read: its finished
    /// slices go to a worker per core as the reader goes on, so reading
    /// and parsing overlap.
    fn read_zone(&self, zone: &str) -> Result<(Assembled, Aliases), ZoneError> {
        // Random per process, the same for a zone all its life: `watch`
        // and `run` reuse record lines checked under it (`memo.rs`).
        static KEYS: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
        let seed = KEYS.get_or_init(RandomState::new).hash_one(zone);
        let primary_path = self.primary_path(zone);
        let big = std::fs::metadata(&primary_path).is_ok_and(|m| m.len() >= PIPELINE_BYTES);
        let ctx = match CheckContext::new(zone, seed) {
            Ok(ctx) if big => ctx,
            // Checked later, all at once (and a bad name reported there).
            _ => return self.read_zone_with(zone, seed, None),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Slice>>(2 * cores());
        let rx = Mutex::new(rx);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..cores())
                .map(|_| scope.spawn(|| check_batches(&rx, &ctx)))
                .collect();
            let feed = Feed {
                tx,
                sent: 0,
                batch: Vec::new(),
            };
            // On an error the feed is dropped here and the workers end.
            let (mut a, aliases) = self.read_zone_with(zone, seed, Some(feed))?;
            let mut checked = Checked::default();
            for w in workers {
                match w.join() {
                    Ok(c) => checked.absorb(&c),
                    // The check parses the sources again itself.
                    Err(_) => return Ok((a, aliases)),
                }
            }
            checked.keys.sort();
            checked.upto = a.sources_end.chunks;
            a.checked = checked;
            Ok((a, aliases))
        })
    }

    fn read_zone_with(
        &self,
        zone: &str,
        seed: u64,
        mut feed: Option<Feed>,
    ) -> Result<(Assembled, Aliases), ZoneError> {
        let expander = Expander::new(&self.roots);
        let soa_path = self.soa_path(zone);
        let primary_path = self.primary_path(zone);
        let mut inputs = Vec::new();

        // The SOA part; in a zone kept in one file, its SOA record alone
        // (read up to it), the rest comes with the records below.
        let single = self.single_file(zone);
        let mut soa_sink = SoaSink {
            single,
            ..SoaSink::default()
        };
        match expander.expand(&soa_path, self.zone_scope(zone, None), &mut soa_sink) {
            Err(e) if single && e.message == SOA_FOUND => {}
            r => r?,
        }
        inputs.append(&mut soa_sink.files);
        let soa_entry = match soa_sink.soa.take() {
            Some(s) => s,
            None => {
                return Err(ZoneError::At {
                    file: soa_path,
                    line: 1,
                    message: format!("no SOA record for {zone}"),
                })
            }
        };
        let default_ttl = soa_entry.default_ttl.clone();
        let mut em = Emitter::new(zone, &default_ttl);
        let _ = writeln!(
            em.out,
            "; {zone} built by zonedrop from soa/, primary/ and extra/ sources and the drop directories.\n; Do not edit: the next build replaces this file."
        );
        em.directives(&soa_entry.scope.origin, Some(&default_ttl));
        let serial_at;
        {
            let t = &soa_entry;
            em.begin_entry();
            let _ = write!(
                em.out,
                "{} {} IN SOA {} {} ",
                t.owner, t.ttl, t.rdata[0], t.rdata[1]
            );
            serial_at = em.out.len();
            let _ = writeln!(
                em.out,
                "{SERIAL_MARK} {} {} {} {}",
                t.rdata[3], t.rdata[4], t.rdata[5], t.rdata[6]
            );
        }
        for other in &soa_sink.others {
            em.directives(&other.scope.origin, other.scope.ttl.as_deref());
            em.entry(&other.owner, &other.rest);
        }

        // The primary part, streamed.
        em.reset_scope();
        if !primary_path.exists() {
            return Err(ZoneError::At {
                file: primary_path,
                line: 0,
                message: "no such file: every zone needs primary/<zone> (its NS records at least)"
                    .into(),
            });
        }
        let mut sink = EmitSink {
            em: &mut em,
            files: Vec::new(),
            policy: &self.config.policy,
            aliases: Aliases::default(),
            feed: feed.as_mut(),
            soa_at: single.then(|| (soa_entry.file.clone(), soa_entry.line)),
        };
        expander.expand(&primary_path, self.zone_scope(zone, None), &mut sink)?;
        inputs.append(&mut sink.files);
        let aliases = sink.aliases;

        // Extra entries of this zone.
        em.reset_scope();
        for e in self.extras.iter().filter(|e| e.zone == zone) {
            em.directives(&e.scope.origin, e.scope.ttl.as_deref());
            em.entry(&e.owner, &e.rest);
        }

        em.sealed_at = em.out.len();
        if let Some(feed) = feed.as_mut() {
            feed.push(&em, true);
        }
        drop(feed);
        let sources_end = Mark {
            entries: em.entries,
            chunks: em.chunks.len(),
            origin: em.origin.clone(),
            ttl: em.ttl.clone(),
        };
        let a = Assembled {
            zone: zone.to_string(),
            em,
            serial_at,
            soa: Soa {
                file: soa_path,
                line: soa_entry.line,
                serial: soa_entry.serial,
                default_ttl,
            },
            inputs,
            sources_end,
            checked: Checked::default(),
            seed,
        };
        Ok((a, aliases))
    }
}

struct EmitSink<'e> {
    em: &'e mut Emitter,
    files: Vec<PathBuf>,
    /// The challenge aliases of the primary part.
    policy: &'e Policy,
    aliases: Aliases,
    /// Where finished slices go, when the zone is checked as it is read.
    feed: Option<&'e mut Feed>,
    /// In a zone kept in one file: where its SOA entry is (written
    /// already, with the serial left open), skipped here.
    soa_at: Option<(Arc<PathBuf>, usize)>,
}

impl Sink for EmitSink<'_> {
    fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
        if let Some((file, line)) = &self.soa_at {
            if e.rtype().as_deref() == Some("SOA") {
                if e.line == *line && **e.file == **file {
                    return Ok(());
                }
                return Err(format!(
                    "a second SOA record (the zone's is at {}:{line})",
                    crate::base::name::printable_path(file.as_path())
                ));
            }
        }
        self.em.directives(&e.scope.origin, e.scope.ttl.as_deref());
        let rest = e.rest_text();
        self.em.entry(e.owner, &rest);
        if let Some(feed) = self.feed.as_deref_mut() {
            feed.push(self.em, false);
        }
        self.aliases.note(e, self.policy);
        Ok(())
    }
    fn file(&mut self, path: &Path) {
        self.files.push(path.to_path_buf());
    }
}

/// What [`SoaSink`] stops a one-file zone's first pass with, once it has
/// its SOA: not an error.
const SOA_FOUND: &str = "\u{0}the SOA record is found";

/// The SOA entry of soa/<zone>, taken apart.
struct SoaEntry {
    file: Arc<PathBuf>,
    line: usize,
    owner: String,
    ttl: String,
    rdata: Vec<String>,
    serial: u32,
    scope: Scope,
    default_ttl: String,
}

struct OtherEntry {
    scope: Scope,
    owner: String,
    rest: String,
}

#[derive(Default)]
struct SoaSink {
    soa: Option<SoaEntry>,
    others: Vec<OtherEntry>,
    files: Vec<PathBuf>,
    /// A zone kept in one file: only its SOA is taken here, and reading
    /// stops there ([`SOA_FOUND`]).
    single: bool,
}

impl Sink for SoaSink {
    fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
        if self.single && e.rtype().as_deref() != Some("SOA") {
            return Ok(());
        }
        if e.rtype().as_deref() != Some("SOA") {
            self.others.push(OtherEntry {
                scope: e.scope.clone(),
                owner: e.owner.to_string(),
                rest: e.rest_text().into_owned(),
            });
            return Ok(());
        }
        if self.soa.is_some() {
            return Err("a second SOA record".into());
        }
        let rdata: Vec<String> = e.rdata().iter().map(|t| t.to_string()).collect();
        if rdata.len() != 7 {
            return Err(format!(
                "the SOA record has {} fields, expected 7 (MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM)",
                rdata.len()
            ));
        }
        let serial: u32 = rdata[2].parse().map_err(|_| {
            format!(
                "the SOA serial `{}` is not a number from 0 to 4294967295",
                rdata[2]
            )
        })?;
        let minimum = parse_ttl(&rdata[6])
            .map_err(|_| format!("the SOA minimum `{}` is not a TTL", rdata[6]))?;
        // RFC 2308 §4: without $TTL, the SOA minimum served as the default TTL.
        let default_ttl = e
            .scope
            .ttl
            .as_deref()
            .map_or_else(|| minimum.to_string(), str::to_string);
        let ttl = e
            .ttl_token()
            .map_or_else(|| default_ttl.clone(), str::to_string);
        self.soa = Some(SoaEntry {
            file: e.file.clone(),
            line: e.line,
            owner: e.owner.to_string(),
            ttl,
            rdata,
            serial,
            scope: e.scope.clone(),
            default_ttl,
        });
        if self.single {
            return Err(SOA_FOUND.into());
        }
        Ok(())
    }
    fn file(&mut self, path: &Path) {
        self.files.push(path.to_path_buf());
    }
}
