//! Zone assembly and whole-zone checks.
//!
//! DESIGN.md, "Zone assembly": for each zone, `$ORIGIN zone.`, the SOA part
//! (its serial set later by policy), the primary part, the extra entries
//! whose owners fall in the zone (closest enclosing zone wins), TLSA/SSHFP
//! records, then the accepted challenges. Every part starts at the zone's
//! origin and default TTL, so a directive in one part cannot change the
//! meaning of another. Owners are written relative to the `$ORIGIN` in
//! force where they lie under it.
//!
//! The check (the fast path) has hickory parse the assembled text in
//! slices of [`CHUNK`] entries on every core, keeping nothing of a slice
//! but one 128-bit key per record (owner hash, kind, data hash): sorted,
//! the keys show duplicates, second CNAMEs and data beside a CNAME across
//! the whole zone in a few bytes per record. When a slice fails to parse or
//! a check fails, the entries are parsed one by one to name the file and
//! line (hickory reports neither).

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::config::Config;
use crate::base::cores;
use crate::base::name;
use crate::build::source::{self, Entry, Expander, Scope, Sink};
use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use hickory_proto::serialize::txt::{parse_ttl, Parser};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use xxhash_rust::xxh3::Xxh3;

/// Stands where the SOA serial goes until the policy has chosen it.
const SERIAL_MARK: &str = "4294967295";

/// What is wrong with a zone, and where (the file and line when known).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ZoneError {
    #[error("{}:{line}: {message}", file.display())]
    At {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("zone {zone}: {message}")]
    Zone { zone: String, message: String },
}

impl From<source::SourceError> for ZoneError {
    fn from(e: source::SourceError) -> Self {
        ZoneError::At {
            file: e.file,
            line: e.line,
            message: e.message,
        }
    }
}

/// The SOA as found in soa/<zone>.
#[derive(Debug, Clone)]
pub struct Soa {
    pub file: PathBuf,
    pub line: usize,
    /// The serial as written.
    pub serial: u32,
    /// The zone's default TTL: soa/'s `$TTL`, else the SOA minimum.
    pub default_ttl: String,
}

/// An extra entry, owned, with its zone.
#[derive(Debug, Clone)]
struct ExtraEntry {
    zone: String,
    file: Arc<PathBuf>,
    line: usize,
    scope: Scope,
    owner: String,
    rest: String,
}

/// A record zonedrop renders itself (challenge, TLSA, SSHFP), with where it came from.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub owner: String,
    pub ttl: u32,
    pub rtype: &'static str,
    /// Zone-file text of the data (a TXT value already quoted).
    pub rdata: String,
    pub source: PathBuf,
}

/// A zone assembled: its text with the serial still open.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub zone: String,
    /// The text so far, and where its slices start.
    em: Emitter,
    /// Byte offset of the serial mark in the text.
    serial_at: usize,
    pub soa: Soa,
    /// Every source file read for it (soa, primary, included files).
    pub inputs: Vec<PathBuf>,
    /// Where the operator's sources end and the rendered records begin.
    sources_end: Mark,
    /// The sources' slices, if they were checked while being read.
    checked: Checked,
    /// Seeds the record keys of this zone's check.
    seed: u64,
}

/// The emitter's state where the sources end (at its `sealed_at`), to go
/// back to.
#[derive(Debug, Clone)]
struct Mark {
    entries: usize,
    chunks: usize,
    origin: String,
    ttl: String,
}

impl Assembled {
    /// The text with the serial filled in.
    pub fn with_serial(&self, serial: u32) -> String {
        self.parts_with_serial(&serial.to_string()).concat()
    }

    /// The text with `serial` filled in, as the three pieces to write one
    /// after the other (a copy of a big zone's text would double its
    /// memory).
    pub fn parts_with_serial<'s>(&'s self, serial: &'s str) -> [&'s str; 3] {
        let text = &self.em.out;
        [
            &text[..self.serial_at],
            serial,
            &text[self.serial_at + SERIAL_MARK.len()..],
        ]
    }

    /// The text with the serial left open: what "content changed" compares.
    pub fn content(&self) -> &str {
        &self.em.out
    }

    /// Put `records` (keys, then challenges) after the operator's sources,
    /// in place of any records set before.
    pub fn set_records(&mut self, records: &[Rendered]) {
        let m = &self.sources_end;
        let em = &mut self.em;
        em.out.truncate(em.sealed_at);
        em.entries = m.entries;
        em.chunks.truncate(m.chunks);
        em.origin.clone_from(&m.origin);
        em.ttl.clone_from(&m.ttl);
        if !records.is_empty() {
            em.reset_scope();
            for r in records {
                em.begin_entry();
                let _ = writeln!(em.out, "{} {} IN {} {}", r.owner, r.ttl, r.rtype, r.rdata);
            }
        }
    }
}

/// Reads the operator's sources for all zones of a config.
pub struct Sources<'c> {
    config: &'c Config,
    roots: Vec<PathBuf>,
    extras: Vec<ExtraEntry>,
    /// Extra files (for the manifest).
    pub extra_files: Vec<PathBuf>,
    /// Challenge owners that hold a CNAME in zone data: owner → target.
    pub aliases: HashMap<String, String>,
}

impl<'c> Sources<'c> {
    /// Read extra/ (every regular file, recursively; dot-files skipped) and
    /// assign its entries to zones.
    pub fn new(config: &'c Config) -> Result<Sources<'c>, ZoneError> {
        let roots: Vec<PathBuf> = [
            &config.paths.soa,
            &config.paths.primary,
            &config.paths.extra,
        ]
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
        let mut s = Sources {
            config,
            roots,
            extras: Vec::new(),
            extra_files: Vec::new(),
            aliases: HashMap::new(),
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
                Ok(())
            }
        }
        let mut sink = Collect {
            config: self.config,
            out: Vec::new(),
        };
        let expander = Expander::new(&self.roots);
        for f in &files {
            let scope = Scope {
                origin: ".".into(),
                ttl: None,
            };
            expander.expand(f, scope, &mut sink)?;
        }
        for e in &sink.out {
            self.note_alias(&e.owner, &e.scope, &e.rest);
        }
        self.extras = sink.out;
        self.extra_files = files;
        Ok(())
    }

    /// Remember a CNAME at a challenge owner (the "challenge alias" pattern).
    fn note_alias(&mut self, owner: &str, scope: &Scope, rest: &str) {
        let owner = owner.to_ascii_lowercase();
        let label = name::first_label(&owner);
        if !self
            .config
            .policy
            .labels
            .iter()
            .any(|l| l.eq_ignore_ascii_case(label))
        {
            return;
        }
        let mut tokens = rest
            .split(|c: char| c.is_ascii_whitespace() || c == '(' || c == ')')
            .filter(|t| !t.is_empty());
        let is_cname = tokens
            .by_ref()
            .find(|t| !t.as_bytes()[0].is_ascii_digit() && !t.eq_ignore_ascii_case("IN"));
        if is_cname.is_some_and(|t| t.eq_ignore_ascii_case("CNAME")) {
            if let Some(target) = tokens.next() {
                let target = source::absolute(target, &scope.origin).to_ascii_lowercase();
                self.aliases.insert(owner, target);
            }
        }
    }

    fn soa_path(&self, zone: &str) -> PathBuf {
        self.config.paths.soa.join(zone.trim_end_matches('.'))
    }

    fn primary_path(&self, zone: &str) -> PathBuf {
        self.config.paths.primary.join(zone.trim_end_matches('.'))
    }

    /// Read primary/ of `zone` only to learn its challenge aliases (needed
    /// before the drop directories are judged), for a zone that is not
    /// being assembled ([`Sources::assemble_sources`] learns them itself).
    pub fn scan_aliases(&mut self, zone: &str) -> Result<(), ZoneError> {
        struct Aliases<'l>(&'l [String], Vec<AliasEntry>);
        impl Sink for Aliases<'_> {
            fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
                if is_alias(e, self.0) {
                    self.1.push((
                        e.owner.to_string(),
                        e.scope.clone(),
                        e.rest_text().into_owned(),
                    ));
                }
                Ok(())
            }
        }
        let mut sink = Aliases(&self.config.policy.labels, Vec::new());
        let scope = self.zone_scope(zone, None);
        let expander = Expander::new(&self.roots);
        let primary = self.primary_path(zone);
        if primary.exists() {
            expander.expand(&primary, scope, &mut sink)?;
        }
        for (owner, scope, rest) in sink.1 {
            self.note_alias(&owner, &scope, &rest);
        }
        Ok(())
    }

    fn zone_scope(&self, zone: &str, ttl: Option<&str>) -> Scope {
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
        for (owner, scope, rest) in aliases {
            self.note_alias(&owner, &scope, &rest);
        }
        Ok(a)
    }

    /// soa + primary + extra of `zone`, and the CNAMEs at challenge labels
    /// its primary part holds (owner, scope, data).
    ///
    /// A big primary part is checked while it is read: its finished
    /// slices go to a worker per core as the reader goes on, so reading
    /// and parsing overlap.
    fn read_zone(&self, zone: &str) -> Result<(Assembled, Vec<AliasEntry>), ZoneError> {
        let seed = RandomState::new().hash_one(zone);
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
    ) -> Result<(Assembled, Vec<AliasEntry>), ZoneError> {
        let expander = Expander::new(&self.roots);
        let soa_path = self.soa_path(zone);
        let primary_path = self.primary_path(zone);
        let mut inputs = Vec::new();

        // The SOA part.
        let mut soa_sink = SoaSink::default();
        expander.expand(&soa_path, self.zone_scope(zone, None), &mut soa_sink)?;
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
            labels: &self.config.policy.labels,
            aliases: Vec::new(),
            feed: feed.as_mut(),
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

    /// Parse and check an assembled zone; on failure, find the file and line.
    pub fn check(&self, a: &Assembled, records: &[Rendered]) -> Result<(), ZoneError> {
        let zone = &a.zone;
        let ctx = CheckContext::new(zone, a.seed)?;
        // The slices not checked while the sources were read, on every
        // core; each worker reports what the whole-zone checks need and
        // the first problem it met.
        let pending = a.checked.upto..a.em.chunks.len();
        let workers = cores().min(pending.len()).max(1);
        let results: Vec<Checked> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (a, ctx, pending) = (&a, &ctx, pending.clone());
                    scope.spawn(move || {
                        let mut checked = Checked::default();
                        for i in pending.skip(w).step_by(workers) {
                            checked.add(a.em.slice(i), ctx);
                        }
                        // Sorted here, in parallel: the merge below then
                        // only joins sorted runs.
                        checked.keys.sort_unstable();
                        checked
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| Checked {
                        problem: Some((0, Problem::Parse("a parsing thread failed".into()))),
                        ..Checked::default()
                    })
                })
                .collect()
        });
        let mut all = a.checked.clone();
        for r in &results {
            all.absorb(r);
        }
        let Checked {
            soas,
            apex_ns,
            merged,
            mut keys,
            problem: first_problem,
            ..
        } = all;
        let mut duplicate = merged;
        match first_problem {
            Some((_, Problem::Parse(e))) => return Err(self.locate_parse_error(a, records, e)),
            Some((
                _,
                Problem::At {
                    name,
                    rtype,
                    message,
                },
            )) => return Err(self.locate(a, records, &name, rtype.as_deref(), message)),
            None => {}
        }
        // A stable sort finds the workers' sorted runs and merges them.
        keys.sort();
        duplicate |= conflicts(&keys);
        if soas == 0 {
            return Err(zone_err(zone, "no SOA record at the apex".into()));
        }
        if !apex_ns {
            return Err(ZoneError::At {
                file: self.primary_path(zone),
                line: 1,
                message: format!("no NS record at the apex {zone}"),
            });
        }
        if duplicate {
            // A duplicate record or a second CNAME (hickory merges both).
            return Err(self.locate_parse_error(a, records, "duplicate records".into()));
        }
        Ok(())
    }

    /// Walk the zone's entries in order, as assembled, calling `f` with
    /// (file, line, per-entry text).
    fn each_entry(
        &self,
        a: &Assembled,
        records: &[Rendered],
        f: &mut dyn FnMut(&Path, usize, &str, &str) -> bool,
    ) -> Result<(), ZoneError> {
        struct Each<'f> {
            default_ttl: String,
            f: &'f mut dyn FnMut(&Path, usize, &str, &str) -> bool,
            stop: bool,
        }
        impl Sink for Each<'_> {
            fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
                if self.stop {
                    return Ok(());
                }
                let ttl = e.scope.ttl.as_deref().unwrap_or(&self.default_ttl);
                let text = format!(
                    "$ORIGIN {}\n$TTL {ttl}\n{} {}\n",
                    e.scope.origin,
                    e.owner,
                    e.rest_text()
                );
                self.stop = !(self.f)(e.file, e.line, e.owner, &text);
                Ok(())
            }
        }
        let expander = Expander::new(&self.roots);
        let mut sink = Each {
            default_ttl: a.soa.default_ttl.clone(),
            f,
            stop: false,
        };
        let scope = self.zone_scope(&a.zone, None);
        expander.expand(&self.soa_path(&a.zone), scope.clone(), &mut sink)?;
        let primary = self.primary_path(&a.zone);
        expander.expand(&primary, scope, &mut sink)?;
        for e in self.extras.iter().filter(|e| e.zone == a.zone) {
            if sink.stop {
                break;
            }
            let ttl = e.scope.ttl.as_deref().unwrap_or(&a.soa.default_ttl);
            let text = format!(
                "$ORIGIN {}\n$TTL {ttl}\n{} {}\n",
                e.scope.origin, e.owner, e.rest
            );
            sink.stop = !(sink.f)(&e.file, e.line, &e.owner, &text);
        }
        for r in records {
            if sink.stop {
                break;
            }
            let text = format!(
                "$ORIGIN {}\n$TTL {}\n{} {} IN {} {}\n",
                a.zone, a.soa.default_ttl, r.owner, r.ttl, r.rtype, r.rdata
            );
            sink.stop = !(sink.f)(&r.source, 0, &r.owner, &text);
        }
        Ok(())
    }

    /// Parse entry by entry to find the one that fails, or the duplicate.
    fn locate_parse_error(&self, a: &Assembled, records: &[Rendered], whole: String) -> ZoneError {
        let mut found: Option<ZoneError> = None;
        let mut seen: HashMap<(Name, RecordType), Vec<RData>> = HashMap::new();
        let mut cnames: HashSet<Name> = HashSet::new();
        // The first type other than CNAME at each name, for the message.
        let mut others: HashMap<Name, RecordType> = HashMap::new();
        let origin = Name::from_str(&a.zone).ok();
        let walk = self.each_entry(a, records, &mut |file, line, _owner, text| {
            let at = |message: String| ZoneError::At {
                file: file.to_path_buf(),
                line,
                message,
            };
            match Parser::new(text, None, origin.clone()).parse() {
                Err(e) => {
                    found = Some(at(format!("{e}")));
                    false
                }
                Ok((_, map)) => {
                    for (key, set) in map {
                        let name = Name::from(&key.name);
                        for r in set.records_without_rrsigs() {
                            let list = seen.entry((name.clone(), key.record_type)).or_default();
                            if key.record_type == RecordType::CNAME && !cnames.insert(name.clone())
                            {
                                found = Some(at(format!("`{name}` has more than one CNAME")));
                                return false;
                            }
                            if !matches!(
                                key.record_type,
                                RecordType::CNAME | RecordType::RRSIG | RecordType::NSEC
                            ) {
                                others.entry(name.clone()).or_insert(key.record_type);
                            }
                            if let (true, Some(other)) = (cnames.contains(&name), others.get(&name)) {
                                found = Some(at(format!(
                                    "`{name}` has a CNAME and other data ({other}) beside it (RFC 1034 §3.6.2)"
                                )));
                                return false;
                            }
                            if key.record_type == RecordType::SOA && !list.is_empty() {
                                found = Some(at(format!("`{name}` has more than one SOA record")));
                                return false;
                            }
                            if list.contains(&r.data) {
                                found = Some(at(format!(
                                    "duplicate record: `{name}` {} {}",
                                    key.record_type, r.data
                                )));
                                return false;
                            }
                            list.push(r.data.clone());
                        }
                    }
                    true
                }
            }
        });
        match (walk, found) {
            (Err(e), _) => e,
            (Ok(()), Some(e)) => e,
            (Ok(()), None) => zone_err(&a.zone, whole),
        }
    }

    /// Find the first entry with owner `name` (and type `rtype`) for a message.
    fn locate(
        &self,
        a: &Assembled,
        records: &[Rendered],
        name: &Name,
        rtype: Option<&str>,
        message: String,
    ) -> ZoneError {
        let want = name.to_ascii().to_ascii_lowercase();
        let mut at: Option<(PathBuf, usize)> = None;
        let _ = self.each_entry(a, records, &mut |file, line, owner, text| {
            let owner_matches = owner.eq_ignore_ascii_case(&want);
            let type_matches = rtype.is_none_or(|t| {
                text.lines()
                    .nth(2)
                    .is_some_and(|l| l.split_whitespace().any(|w| w.eq_ignore_ascii_case(t)))
            });
            if owner_matches && type_matches {
                at = Some((file.to_path_buf(), line));
                return false;
            }
            true
        });
        match at {
            Some((file, line)) => ZoneError::At {
                file,
                line,
                message,
            },
            None => zone_err(&a.zone, message),
        }
    }
}

const HAS_CNAME: u8 = 1;
const HAS_OTHER: u8 = 2;

/// What the whole-zone checks need from the slices parsed so far, and the
/// first problem met.
#[derive(Debug, Clone, Default)]
struct Checked {
    /// Slices `0..upto` are in here (the ones checked while the sources
    /// were read); the rest are for [`Sources::check`].
    upto: usize,
    soas: usize,
    apex_ns: bool,
    /// hickory merged records inside a slice (duplicates).
    merged: bool,
    /// One [`record_key`] per record, for duplicates and CNAME conflicts
    /// across slices.
    keys: Vec<u128>,
    /// The first slice that failed, and how.
    problem: Option<(usize, Problem)>,
}

impl Checked {
    /// Parse one slice into this summary; after a problem, slices are
    /// skipped (a worker's slices come in order, so its first is its least).
    fn add(&mut self, slice: Slice, ctx: &CheckContext) {
        if self.problem.is_none() {
            if let Err(p) = summarise(slice.text, slice.entries, ctx, self) {
                self.problem = Some((slice.index, p));
            }
        }
    }

    /// Take in another worker's summary; the earlier problem wins.
    fn absorb(&mut self, other: &Checked) {
        self.soas += other.soas;
        self.apex_ns |= other.apex_ns;
        self.merged |= other.merged;
        self.keys.extend_from_slice(&other.keys);
        if let Some((i, p)) = &other.problem {
            if self.problem.as_ref().is_none_or(|(j, _)| i < j) {
                self.problem = Some((*i, p.clone()));
            }
        }
    }
}

/// What every slice of one zone is checked against.
struct CheckContext {
    origin: Name,
    apex: LowerName,
    zone: String,
    /// Seeds the record keys: random per build.
    seed: u64,
}

impl CheckContext {
    fn new(zone: &str, seed: u64) -> Result<CheckContext, ZoneError> {
        let origin = Name::from_str(zone).map_err(|e| zone_err(zone, e.to_string()))?;
        Ok(CheckContext {
            apex: LowerName::new(&origin),
            zone: origin.to_string(),
            origin,
            seed,
        })
    }
}

/// One slice of the assembled text, as the parser gets it.
struct Slice {
    index: usize,
    /// The `$ORIGIN`/`$TTL` it starts under, then its entries.
    text: String,
    entries: usize,
}

/// Slices handed to the pipeline's workers at a time.
const BATCH: usize = 16;

/// A primary file at least this big is checked while it is read (below,
/// starting threads costs more than it saves).
const PIPELINE_BYTES: u64 = 256 * 1024;

/// A pipeline worker: parse the batches the reader sends until it is done.
fn check_batches(batches: &Mutex<Receiver<Vec<Slice>>>, ctx: &CheckContext) -> Checked {
    let mut checked = Checked::default();
    loop {
        let batch = match batches.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(batch) => batch,
            Err(_) => break,
        };
        for slice in batch {
            checked.add(slice, ctx);
        }
    }
    checked.keys.sort_unstable();
    checked
}

/// Hands completed slices of the text being emitted to the workers.
struct Feed {
    tx: SyncSender<Vec<Slice>>,
    /// Slices `0..sent` are handed over (or in `batch`).
    sent: usize,
    batch: Vec<Slice>,
}

impl Feed {
    /// Hand over every slice the emitter has finished; with `all`, the
    /// last one too (the sources are complete).
    fn push(&mut self, em: &Emitter, all: bool) {
        let done = if all {
            em.chunks.len()
        } else {
            em.chunks.len().saturating_sub(1)
        };
        while self.sent < done {
            self.batch.push(em.slice(self.sent));
            self.sent += 1;
            if self.batch.len() >= BATCH || (all && self.sent == done) {
                // A send fails only when every worker is gone: the check
                // then parses what is missing itself.
                let _ = self.tx.send(std::mem::take(&mut self.batch));
            }
        }
    }
}

/// Where a record sorts among the keys: its owner's position first, then
/// CNAMEs, DNSSEC types, other data.
const KIND_CNAME: u128 = 0;
const KIND_DNSSEC: u128 = 1;
const KIND_OTHER: u128 = 2;

/// A record as 128 bits: a 64-bit hash of the owner, the record's kind in
/// the next 2 bits, a 62-bit hash of type and data. Sorted, equal keys are
/// duplicate records and one owner's keys lie together, CNAMEs first.
/// The hashes are seeded per build, so drop content cannot aim at a
/// collision; a collision would only send the zone down the slow path,
/// which compares the records themselves.
fn record_key(owner: u64, kind: u128, seed: u64, rtype: RecordType, data: &RData) -> u128 {
    let mut h = Xxh3::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
    (rtype, data).hash(&mut h);
    (u128::from(owner) << 64) | (kind << 62) | u128::from(h.finish() >> 2)
}

/// In sorted keys: a duplicate record, a second CNAME at one owner, or a
/// CNAME with other data beside it (RFC 1034 §3.6.2).
fn conflicts(keys: &[u128]) -> bool {
    let owner = |k: u128| (k >> 64) as u64;
    let kind = |k: u128| (k >> 62) & 3;
    keys.windows(2).any(|w| w[0] == w[1])
        || keys.chunk_by(|x, y| owner(*x) == owner(*y)).any(|group| {
            let cnames = group.iter().filter(|k| kind(**k) == KIND_CNAME).count();
            cnames > 1 || (cnames == 1 && group.iter().any(|k| kind(*k) == KIND_OTHER))
        })
}

/// The first thing wrong in a slice.
#[derive(Debug, Clone)]
enum Problem {
    Parse(String),
    At {
        name: Box<Name>,
        rtype: Option<String>,
        message: String,
    },
}

fn owner_hash(seed: u64, name: &LowerName) -> u64 {
    let mut h = Xxh3::with_seed(seed);
    name.hash(&mut h);
    h.finish()
}

/// Parse one slice's text (`entries` entries) and add it to `s`.
fn summarise(
    text: String,
    entries: usize,
    ctx: &CheckContext,
    s: &mut Checked,
) -> Result<(), Problem> {
    let CheckContext {
        origin,
        apex,
        zone,
        seed,
    } = ctx;
    let (apex, seed) = (apex, *seed);
    // The serial mark is itself a valid serial: the text parses as it is.
    let map = match Parser::new(text, None, Some(origin.clone())).parse() {
        Ok((_, map)) => map,
        Err(e) => return Err(Problem::Parse(e.to_string())),
    };
    let mut count = 0usize;
    let mut flags = 0u8;
    let mut cnames = 0u8;
    let mut group: Vec<RecordType> = Vec::new();
    let mut keys = map.iter().peekable();
    while let Some((key, set)) = keys.next() {
        if !apex.zone_of(&key.name) {
            let name = Name::from(&key.name);
            let message = format!("the owner `{name}` lies outside the zone {zone}");
            return Err(Problem::At {
                name: Box::new(name),
                rtype: None,
                message,
            });
        }
        match key.record_type {
            RecordType::SOA if key.name != *apex => {
                let name = Name::from(&key.name);
                let message =
                    format!("an SOA record belongs only at the apex {zone}, not at `{name}`");
                return Err(Problem::At {
                    name: Box::new(name),
                    rtype: Some("SOA".into()),
                    message,
                });
            }
            RecordType::SOA => s.soas += 1,
            RecordType::NS if key.name == *apex => s.apex_ns = true,
            _ => {}
        }
        let owner = owner_hash(seed, &key.name);
        let kind = match key.record_type {
            RecordType::CNAME => KIND_CNAME,
            RecordType::RRSIG | RecordType::NSEC => KIND_DNSSEC,
            _ => KIND_OTHER,
        };
        for r in set.records_without_rrsigs() {
            count += 1;
            s.keys
                .push(record_key(owner, kind, seed, key.record_type, &r.data));
        }
        match key.record_type {
            RecordType::CNAME => {
                flags |= HAS_CNAME;
                cnames = cnames.saturating_add(set.records_without_rrsigs().count() as u8);
            }
            // DNSSEC types may stand beside a CNAME.
            RecordType::RRSIG | RecordType::NSEC => {}
            _ => flags |= HAS_OTHER,
        }
        group.push(key.record_type);
        if keys.peek().is_some_and(|(next, _)| next.name == key.name) {
            continue;
        }
        // RFC 1034 §3.6.2: a CNAME stands alone.
        if flags & (HAS_CNAME | HAS_OTHER) == HAS_CNAME | HAS_OTHER {
            let name = Name::from(&key.name);
            let other = group
                .iter()
                .find(|t| !matches!(t, RecordType::CNAME | RecordType::RRSIG | RecordType::NSEC))
                .map_or(String::new(), |t| t.to_string());
            let message = format!(
                "`{name}` has a CNAME and other data ({other}) beside it (RFC 1034 §3.6.2)"
            );
            return Err(Problem::At {
                name: Box::new(name),
                rtype: Some(other),
                message,
            });
        }
        flags = 0;
        cnames = 0;
        group.clear();
    }
    s.merged |= count != entries;
    Ok(())
}

fn zone_err(zone: &str, message: String) -> ZoneError {
    ZoneError::Zone {
        zone: zone.to_string(),
        message,
    }
}

/// Writes entries, emitting `$ORIGIN`/`$TTL` only when they change.
#[derive(Debug, Clone)]
struct Emitter {
    out: String,
    zone: String,
    default_ttl: String,
    origin: String,
    ttl: String,
    entries: usize,
    chunks: Vec<Chunk>,
    /// Where the sources end: the next entry opens a slice.
    sealed_at: usize,
}

/// Where a slice of the assembled text starts, and the context it needs:
/// the check parses slices of [`CHUNK`] entries in parallel.
#[derive(Debug, Clone)]
struct Chunk {
    start: usize,
    entries_before: usize,
    origin: String,
    ttl: String,
}

/// Entries per parallel parsing slice.
const CHUNK: usize = 1 << 6;

impl Emitter {
    fn new(zone: &str, default_ttl: &str) -> Self {
        Emitter {
            out: String::new(),
            zone: zone.to_string(),
            default_ttl: default_ttl.to_string(),
            origin: String::new(),
            ttl: String::new(),
            entries: 0,
            chunks: Vec::new(),
            sealed_at: usize::MAX,
        }
    }

    /// Call before writing an entry: opens a new slice every CHUNK entries,
    /// and after the sources (the records get slices of their own, so the
    /// sources' slices, checked once, stay as they are).
    fn begin_entry(&mut self) {
        let sealed = self
            .chunks
            .last()
            .is_some_and(|c| c.start < self.sealed_at && self.out.len() >= self.sealed_at);
        if self.entries.is_multiple_of(CHUNK) || sealed {
            self.chunks.push(Chunk {
                start: self.out.len(),
                entries_before: self.entries,
                origin: self.origin.clone(),
                ttl: self.ttl.clone(),
            });
        }
        self.entries += 1;
    }

    /// Slice `i` of the text, with the `$ORIGIN`/`$TTL` it starts under.
    /// Complete once slice `i + 1` has begun (or the text is).
    fn slice(&self, i: usize) -> Slice {
        let chunk = &self.chunks[i];
        let (end, end_entries) = match self.chunks.get(i + 1) {
            Some(next) => (next.start, next.entries_before),
            None => (self.out.len(), self.entries),
        };
        let mut text = String::with_capacity(end - chunk.start + 64);
        if !chunk.origin.is_empty() {
            let _ = writeln!(text, "$ORIGIN {}", chunk.origin);
        }
        if !chunk.ttl.is_empty() {
            let _ = writeln!(text, "$TTL {}", chunk.ttl);
        }
        text.push_str(&self.out[chunk.start..end]);
        Slice {
            index: i,
            text,
            entries: end_entries - chunk.entries_before,
        }
    }

    /// Back to the zone's origin and default TTL at the start of a part.
    fn reset_scope(&mut self) {
        let (zone, ttl) = (self.zone.clone(), self.default_ttl.clone());
        self.directives(&zone, Some(&ttl));
    }

    fn directives(&mut self, origin: &str, ttl: Option<&str>) {
        if self.origin != origin {
            let _ = writeln!(self.out, "$ORIGIN {origin}");
            self.origin = origin.to_string();
        }
        let ttl = ttl.unwrap_or(&self.default_ttl);
        if self.ttl != ttl {
            let _ = writeln!(self.out, "$TTL {ttl}");
            self.ttl = ttl.to_string();
        }
    }

    /// One entry; `owner` is absolute and is written relative to the
    /// `$ORIGIN` in force where it lies under it (the output is smaller and
    /// the check's parser reads one label instead of every label).
    fn entry(&mut self, owner: &str, rest: &str) {
        self.begin_entry();
        self.out.push_str(relative(owner, &self.origin));
        if !rest.starts_with([' ', '\t']) {
            self.out.push(' ');
        }
        self.out.push_str(rest);
        self.out.push('\n');
    }
}

/// A CNAME at a challenge label, as read: owner, scope, data.
type AliasEntry = (String, Scope, String);

/// Is `e` a CNAME whose owner starts with one of the challenge `labels`
/// (a candidate for the "challenge alias" pattern)?
fn is_alias(e: &Entry<'_>, labels: &[String]) -> bool {
    let label = name::first_label(e.owner);
    labels.iter().any(|l| l.eq_ignore_ascii_case(label)) && e.rtype().as_deref() == Some("CNAME")
}

/// `owner` (absolute) relative to `origin` when it lies under it: `@` for
/// the origin itself, `www` for `www.example.test.` under `example.test.`;
/// otherwise `owner` as it is. A dot that a backslash escapes is part of a
/// label, not a label boundary, so `a\.example.test.` stays absolute.
fn relative<'o>(owner: &'o str, origin: &str) -> &'o str {
    if owner.eq_ignore_ascii_case(origin) {
        return "@";
    }
    if origin == "." || origin.is_empty() {
        return owner;
    }
    // `head.` must end with a label boundary, and the rest be the origin.
    let Some(cut) = owner.len().checked_sub(origin.len() + 1) else {
        return owner;
    };
    match (owner.get(..=cut), owner.get(cut + 1..)) {
        (Some(head), Some(tail))
            if cut > 0
                && source::ends_with_unescaped_dot(head)
                && tail.eq_ignore_ascii_case(origin) =>
        {
            &head[..cut]
        }
        _ => owner,
    }
}

struct EmitSink<'e> {
    em: &'e mut Emitter,
    files: Vec<PathBuf>,
    /// The challenge labels (`policy.labels`), to spot aliases.
    labels: &'e [String],
    aliases: Vec<AliasEntry>,
    /// Where finished slices go, when the zone is checked as it is read.
    feed: Option<&'e mut Feed>,
}

impl Sink for EmitSink<'_> {
    fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
        self.em.directives(&e.scope.origin, e.scope.ttl.as_deref());
        let rest = e.rest_text();
        self.em.entry(e.owner, &rest);
        if let Some(feed) = self.feed.as_deref_mut() {
            feed.push(self.em, false);
        }
        if is_alias(e, self.labels) {
            self.aliases
                .push((e.owner.to_string(), e.scope.clone(), rest.into_owned()));
        }
        Ok(())
    }
    fn file(&mut self, path: &Path) {
        self.files.push(path.to_path_buf());
    }
}

/// The SOA entry of soa/<zone>, taken apart.
struct SoaEntry {
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
}

impl Sink for SoaSink {
    fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
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
            line: e.line,
            owner: e.owner.to_string(),
            ttl,
            rdata,
            serial,
            scope: e.scope.clone(),
            default_ttl,
        });
        Ok(())
    }
    fn file(&mut self, path: &Path) {
        self.files.push(path.to_path_buf());
    }
}

/// Render a TXT value as one quoted character-string. Values reaching here
/// were checked by the whitelist: no quote, backslash or control character.
pub fn quote_txt(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_written_relative_to_the_origin_only_where_they_lie_under_it() {
        let o = "example.test.";
        assert_eq!(relative("example.test.", o), "@");
        assert_eq!(relative("Example.TEST.", o), "@");
        assert_eq!(relative("www.example.test.", o), "www");
        assert_eq!(relative("*.wild.EXAMPLE.test.", o), "*.wild");
        assert_eq!(relative("a\\\\.example.test.", o), "a\\\\");
        // An escaped dot joins `a.example` into one label: not under the origin.
        assert_eq!(relative("a\\.example.test.", o), "a\\.example.test.");
        assert_eq!(relative("wwwexample.test.", o), "wwwexample.test.");
        assert_eq!(relative("example.org.", o), "example.org.");
        assert_eq!(relative("test.", o), "test.");
        assert_eq!(relative("www.example.test.", "."), "www.example.test.");
    }
}
