//! The per-zone input record (state/zones.json): what each zone was last
//! built from, so that a build reads, checks and publishes only the zones
//! whose inputs moved ([`Records::unchanged_sources`],
//! [`ZoneRecord::records`]), while the others cost a `stat` per source file.
//!
//! A zone's inputs: its soa and primary files and the files they include
//! (stamped once read), its entries in extra/ (a digest: extra/ is read by
//! every build that reads at all, being shared), the challenge aliases its
//! sources hold (kept, so the drop directories can be judged without
//! reading every zone), the TLSA, SSHFP and challenge records it got (a
//! digest of the records themselves), and its published file. The config
//! is every zone's input: a record made under another config stamp is not
//! used. The record is rebuildable and never required: missing, damaged or
//! of another version, every zone is read from its sources.
//!
//! A zone is recorded only when its build succeeded, nothing after its
//! publish failed, and no source file was too young to vouch for (the
//! racy-clean rule of [`crate::build::manifest`]): such a zone is read
//! again next time.

use crate::base::config::Config;
use crate::base::fs::{stamp, Stamp};
use crate::build::manifest::racy;
use crate::build::publish::PublishError;
use crate::build::report::RecordLine;
use crate::build::zone::Rendered;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The record's format: another number is read as no record.
const VERSION: u32 = 1;

/// What each zone was last built from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Records {
    version: u32,
    /// The config file's stamp when recorded.
    config: Option<Stamp>,
    zones: BTreeMap<String, ZoneRecord>,
}

/// One zone's inputs at its last build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoneRecord {
    /// soa, primary and included files, stamped after reading.
    pub sources: Vec<(PathBuf, Option<Stamp>)>,
    /// [`crate::build::zone::Sources::extra_digests`] of the zone (empty:
    /// no entries in extra/).
    pub extra: String,
    /// The challenge aliases of its own sources (owner, target).
    pub aliases: Vec<(String, String)>,
    /// [`records_digest`] of the TLSA, SSHFP and challenge records.
    pub records: String,
    /// Those records as published (refused challenges left out): the old
    /// side of the next [`crate::build::Delta`].
    pub rendered: Vec<RecordLine>,
    /// The published file's stamp.
    pub output: Option<Stamp>,
}

impl Records {
    pub fn path(state: &Path) -> PathBuf {
        state.join("zones.json")
    }

    /// The records, if there are usable ones: made by this version under
    /// this config. Anything else is no record (logged when there was a
    /// file that could not be used).
    pub fn load(config: &Config) -> Records {
        let path = Records::path(&config.paths.state);
        let fresh = Records {
            version: VERSION,
            config: config.file.as_deref().and_then(stamp),
            zones: BTreeMap::new(),
        };
        if let Some(kept) = take_kept(&path) {
            if kept.config == fresh.config {
                return kept;
            }
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return fresh,
            Err(e) => {
                log::info!(
                    "{}: cannot read the per-zone input record ({e}); every zone is read from its sources",
                    path.display()
                );
                return fresh;
            }
        };
        match serde_json::from_slice::<Records>(&bytes) {
            Ok(r) if r.version == VERSION && r.config == fresh.config => r,
            Ok(_) => fresh,
            Err(e) => {
                log::info!(
                    "{}: the per-zone input record is damaged ({e}); every zone is read from its sources",
                    path.display()
                );
                fresh
            }
        }
    }

    /// The record of `zone` if its sources are as they were: every source
    /// file has its stamp (unless `trusted`: the watcher saw no change to
    /// any), and its entries in extra/ have `extra` as digest.
    pub fn unchanged_sources(&self, zone: &str, extra: &str, trusted: bool) -> Option<&ZoneRecord> {
        let r = self.zones.get(zone)?;
        let same = |r: &ZoneRecord| trusted || r.sources.iter().all(|(p, s)| stamp(p) == *s);
        (r.extra == extra && same(r)).then_some(r)
    }

    /// Whether `zone` has nothing to publish: sources as they were (`prior`),
    /// the same records, and its published file as it was left (`output`;
    /// none: the watcher saw no change to it).
    pub fn unchanged(prior: &ZoneRecord, records: &str, output: Option<&Path>) -> bool {
        prior.records == records && output.is_none_or(|o| stamp(o) == prior.output)
    }

    /// Remember `zone` as built from `record`, unless one of its source
    /// files is too young to vouch for (stamped within the tick of
    /// `time_ns`): then forget it, and the next build reads it again.
    pub fn set(&mut self, zone: &str, record: ZoneRecord, time_ns: i64) {
        if !record.vouches(time_ns) {
            self.zones.remove(zone);
        } else {
            self.zones.insert(zone.to_string(), record);
        }
    }

    /// Forget `zone` (it failed, or something after its publish did).
    pub fn forget(&mut self, zone: &str) {
        self.zones.remove(zone);
    }

    /// Keep only the configured zones (a zone removed from the config
    /// drops out), and write the record atomically.
    pub fn save(mut self, config: &Config) -> Result<(), PublishError> {
        let configured: std::collections::HashSet<&str> =
            config.zones.iter().map(|c| c.name.as_str()).collect();
        self.zones.retain(|z, _| configured.contains(z.as_str()));
        let text = serde_json::to_vec(&self).unwrap_or_default();
        let path = Records::path(&config.paths.state);
        // Rebuildable: no fsync (a torn file after a power loss reads as
        // damaged; an old one is caught by the stamps it holds).
        crate::base::fs::write_replace(&path, &[&text]).map_err(|source| PublishError::Write {
            path: path.clone(),
            source,
        })?;
        keep(&path, self);
        Ok(())
    }
}

/// `watch` and `run` keep the record in memory as well as in
/// state/zones.json: a build takes it back instead of parsing the file
/// again, if the file is still the one the last build wrote (its stamp:
/// every save replaces it, a new inode; a cron build in between writes
/// its own). None: not kept (a single build); Some(None): kept, empty.
static KEPT: Mutex<Option<Option<(Stamp, Records)>>> = Mutex::new(None);

/// Keep the record in memory from now on (`watch`, `run`).
pub fn keep_in_memory() {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    if kept.is_none() {
        *kept = Some(None);
    }
}

fn keep(path: &Path, records: Records) {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(slot) = kept.as_mut() {
        *slot = stamp(path).map(|s| (s, records));
    }
}

/// The kept record, taken out, if `path` is still the file it was saved as.
fn take_kept(path: &Path) -> Option<Records> {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    let (at, records) = kept.as_mut()?.take()?;
    (stamp(path) == Some(at)).then_some(records)
}

impl ZoneRecord {
    /// Whether its source stamps can vouch for the sources: none was
    /// stamped within the tick of `time_ns` ([`racy`]).
    pub fn vouches(&self, time_ns: i64) -> bool {
        !self
            .sources
            .iter()
            .any(|(_, s)| s.is_some_and(|s| racy(&s, time_ns)))
    }

    /// The key of the zone's cache of checked sources
    /// ([`crate::build::zone::cache`]): its source files' stamps and the
    /// digest of its extra entries. Another key, other sources.
    pub fn cache_key(&self) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for (p, s) in &self.sources {
            let p = p.as_os_str().as_encoded_bytes();
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
            match s {
                Some(s) => {
                    for n in [s.dev, s.ino, s.size, s.mtime_ns as u64, s.ctime_ns as u64] {
                        h.update(&n.to_le_bytes());
                    }
                }
                None => h.update(b"absent"),
            }
        }
        h.update(self.extra.as_bytes());
        format!("{:032x}", h.digest128())
    }
}

/// A digest of the records zonedrop renders into a zone (TLSA and SSHFP,
/// then challenges, in the order given): equal digests, equal records.
pub fn records_digest(keys: &[Rendered], challenges: &[Rendered]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (i, list) in [keys, challenges].iter().enumerate() {
        h.update(&[i as u8]);
        for r in *list {
            for part in [r.owner.as_bytes(), r.rtype.as_bytes(), r.rdata.as_bytes()] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part);
            }
            h.update(&r.ttl.to_le_bytes());
        }
    }
    format!("{:032x}", h.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(owner: &str, value: &str) -> Rendered {
        Rendered {
            owner: owner.into(),
            ttl: 60,
            rtype: "TXT",
            rdata: value.into(),
            source: PathBuf::from("/drop/x"),
        }
    }

    #[test]
    fn records_digest_tells_records_apart_but_not_their_files() {
        let a = txt("_acme-challenge.a.test.", "\"v\"");
        let mut same = a.clone();
        same.source = PathBuf::from("/drop/y");
        assert_eq!(
            records_digest(&[], std::slice::from_ref(&a)),
            records_digest(&[], &[same])
        );
        assert_ne!(
            records_digest(&[], std::slice::from_ref(&a)),
            records_digest(std::slice::from_ref(&a), &[])
        );
        let mut other = a.clone();
        other.rdata = "\"w\"".into();
        assert_ne!(records_digest(&[], &[a]), records_digest(&[], &[other]));
    }

    #[test]
    fn a_young_source_is_not_recorded() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("primary");
        std::fs::write(&f, "x").unwrap();
        let rec = || ZoneRecord {
            sources: vec![(f.clone(), stamp(&f))],
            extra: String::new(),
            aliases: Vec::new(),
            records: String::new(),
            rendered: Vec::new(),
            output: None,
        };
        let mut r = Records::default();
        r.set("a.test.", rec(), crate::build::manifest::now_ns());
        assert!(r.zones.is_empty());
        r.set(
            "a.test.",
            rec(),
            crate::build::manifest::now_ns() + 10_000_000_000,
        );
        assert!(r.unchanged_sources("a.test.", "", false).is_some());
        assert!(r
            .unchanged_sources("a.test.", "other extra", false)
            .is_none());
        std::fs::write(&f, "xy").unwrap();
        assert!(r.unchanged_sources("a.test.", "", false).is_none());
        // Trusted (the watcher saw no change): the stamps are not looked at.
        assert!(r.unchanged_sources("a.test.", "", true).is_some());
    }
}

#[cfg(test)]
mod delta_tests {
    use crate::base::config::Config;
    use crate::build::{run, Options};
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    const V1: &str = "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo";
    const V2: &str = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A challenge-only change is published with the same base (what the
    /// responder of `run` takes as a delta) and its challenges; a source
    /// change with another base.
    #[test]
    fn a_challenge_only_publish_keeps_its_base() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(
            &p.join("zonedrop.toml"),
            "[[drop]]\npath = \"drop\"\n[[zone]]\nname = \"example.test\"\n",
        );
        write(
            &p.join("zones/soa/example.test"),
            "$TTL 3600\n@ IN SOA ns1 h 1 7200 3600 1209600 300\n",
        );
        write(
            &p.join("zones/primary/example.test"),
            "@ IN NS ns1\nns1 IN A 192.0.2.1\n",
        );
        std::fs::create_dir_all(p.join("drop")).unwrap();
        std::thread::sleep(Duration::from_millis(2200));
        let config = Config::load(&p.join("zonedrop.toml")).unwrap();
        let build = || {
            let mut memory = crate::build::refusals::Memory::kept();
            run(&config, &Options::default(), SystemTime::now(), &mut memory).unwrap()
        };
        let first = build();
        assert_eq!(first.published.len(), 1);
        let base = first.published[0].parts.base;
        let txt = |value: &str| crate::build::report::Txt {
            owner: "_acme-challenge.example.test.".into(),
            ttl: 60,
            value: value.into(),
        };

        let owner = "_acme-challenge.example.test.";
        write(&p.join("drop/a"), &format!("{owner} 60 IN TXT \"{V1}\"\n"));
        let r = build();
        assert_eq!(r.published[0].parts.base, base, "a challenge-only change");
        assert_eq!(r.published[0].parts.challenges, vec![txt(V1)]);

        write(&p.join("drop/b"), &format!("{owner} 60 IN TXT \"{V2}\"\n"));
        std::fs::remove_file(p.join("drop/a")).unwrap();
        let r = build();
        assert_eq!(r.published[0].parts.base, base, "a challenge-only change");
        assert_eq!(r.published[0].parts.challenges, vec![txt(V2)]);

        std::thread::sleep(Duration::from_millis(10));
        write(
            &p.join("zones/primary/example.test"),
            "@ IN NS ns1\nns1 IN A 192.0.2.1\nwww IN A 192.0.2.2\n",
        );
        let r = build();
        assert_eq!(r.published.len(), 1);
        assert_ne!(r.published[0].parts.base, base, "the sources changed");
    }
}
