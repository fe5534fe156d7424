//! The responder of `zonedrop run` taking a published zone from the
//! builder ([`Serving`]: offered by `build::publish` before the file is
//! written, called by `build::effects` right after the publish, before
//! NOTIFY).
//!
//! When the served version and the new one have the same base (the
//! builder's digest of everything but the challenge records: sources,
//! TLSA, SSHFP), the change is challenges and serial only, and it is
//! applied as a delta: the TXT RRsets at the owners whose challenges
//! moved and the SOA, changed in the zone's record map under the zone
//! handler's write lock, so a query sees the old version or the new one,
//! never a mix. Nothing is parsed: a challenge costs the same in a zone of
//! ten records and in one of a million. Otherwise (the first publish after
//! the start, an edited source, a file the poll picked up from another
//! builder) the published file is read again, as `serve` does.
//!
//! Either way the UDP path's cached answers are dropped (a new
//! generation), those of every zone: an answer that follows a CNAME
//! alias from another zone into this one (`chase.rs`) is cached under
//! the other zone's name.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::fs::Stamp;
use crate::build::effects::Serving;
use crate::build::report::{Parts, Published, Txt};
use crate::live::negative;
use crate::live::serve::{Handler, Responder};
use hickory_server::proto::rr::rdata::TXT;
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Serving for Responder {
    fn ahead(&self, zone: &str, serial: u32, parts: &Parts) -> bool {
        let Ok((zone, file)) = self.inner.zone(zone) else {
            return false;
        };
        // An error leaves the served version as it is; `published` tries
        // again once the file is written, and says it.
        self.delta(&zone, &file, serial, parts, false)
            .unwrap_or(false)
    }

    fn serial(&self, zone: &str) -> Option<u32> {
        let zone = self.inner.zone(zone).ok()?.0;
        let slots = self.inner.lock();
        slots.get(&zone)?.served.as_ref().map(|l| l.serial)
    }

    fn published(&self, p: &Published) -> Result<(), String> {
        let inner = &self.inner;
        let (zone, file) = inner.zone(&p.zone).map_err(|e| e.to_string())?;
        if self.delta(&zone, &file, p.serial, &p.parts, true)? {
            return Ok(());
        }
        let mut slots = inner.lock();
        inner
            .reload_locked(&mut slots, &zone, &file, Some(p.parts.clone()))
            .map_err(|e| e.to_string())
    }

    fn current(&self, zone: &str) -> Result<(), String> {
        let (zone, file) = self.inner.zone(zone).map_err(|e| e.to_string())?;
        let mut slots = self.inner.lock();
        let now = std::fs::metadata(&file).ok().map(|m| Stamp::of(&m));
        let served = slots
            .get(&zone)
            .and_then(|s| s.served.as_ref())
            .map(|l| l.stamp);
        if now.is_some() && served == now {
            return Ok(());
        }
        self.inner
            .reload_locked(&mut slots, &zone, &file, None)
            .map_err(|e| e.to_string())
    }

    fn same(&self, zone: &str, serial: u32, parts: Parts) {
        let Ok((zone, file)) = self.inner.zone(zone) else {
            return;
        };
        let mut slots = self.inner.lock();
        let Some(slot) = slots.get_mut(&zone) else {
            return;
        };
        if slot.known.as_ref() == Some(&parts) {
            return;
        }
        // The served version is this one if it has its serial and was
        // read from the file as it is now.
        let now = std::fs::metadata(&file).ok().map(|m| Stamp::of(&m));
        if slot
            .served
            .as_ref()
            .is_some_and(|l| l.serial == serial && Some(l.stamp) == now)
        {
            slot.known = Some(parts);
        }
    }
}

impl Responder {
    /// Serve `zone`'s version `serial`, holding `parts`, as a delta of the
    /// served version if it is one (same base); whether it is served now.
    /// `written`: its file is in place, so its stamp is the served one
    /// (the file is ours, the build lock is held, and the poll leaves a
    /// file alone whose stamp is served). Taken ahead of its write, the
    /// old file's stamp stays until the write is done.
    fn delta(
        &self,
        zone: &str,
        file: &std::path::Path,
        serial: u32,
        parts: &Parts,
        written: bool,
    ) -> Result<bool, String> {
        let inner = &self.inner;
        let mut slots = inner.lock();
        let Some(slot) = slots.get_mut(zone) else {
            return Ok(false);
        };
        let (Some(loaded), Some(known)) = (&mut slot.served, &slot.known) else {
            return Ok(false);
        };
        if known.base != parts.base {
            return Ok(false);
        }
        let stamp = || {
            std::fs::metadata(file)
                .ok()
                .filter(|_| written)
                .map(|m| Stamp::of(&m))
        };
        if loaded.serial == serial && known == parts {
            // Taken ahead of its write: only the stamp is new.
            if let Some(s) = stamp() {
                loaded.stamp = s;
            }
            return Ok(true);
        }
        let started = std::time::Instant::now();
        let old = loaded.serial;
        apply(&loaded.handler, &loaded.names, known, parts, serial)?;
        loaded.serial = serial;
        if let Some(s) = stamp() {
            loaded.stamp = s;
        }
        slot.known = Some(parts.clone());
        slot.failed = None;
        drop(slots);
        inner.generation.fetch_add(1, Ordering::AcqRel);
        log::info!(
            "zone {zone}: serial {old} -> {serial} taken as a delta ({} challenges) in {} µs",
            parts.challenges.len(),
            started.elapsed().as_micros()
        );
        Ok(true)
    }
}

/// Change `handler`'s records from the challenges `from` to those of `to`
/// and its SOA serial to `serial`, all under its write lock, and its
/// `names` with them (an owner whose last record went leaves the index,
/// with its empty parents). Everything is prepared first: on error nothing
/// has changed.
fn apply(
    handler: &Handler,
    names: &negative::Shared,
    from: &Parts,
    to: &Parts,
    serial: u32,
) -> Result<(), String> {
    let origin = handler_origin(handler);
    let old: HashSet<&Txt> = from.challenges.iter().collect();
    let new: HashSet<&Txt> = to.challenges.iter().collect();
    let mut owners: BTreeMap<&str, (Vec<&Txt>, Vec<&Txt>)> = BTreeMap::new();
    for t in old.difference(&new) {
        owners.entry(&t.owner).or_default().0.push(t);
    }
    for t in new.difference(&old) {
        owners.entry(&t.owner).or_default().1.push(t);
    }
    block_on(async {
        let mut records = handler.records_mut().await;
        let soa_key = RrKey::new(LowerName::from(&origin), RecordType::SOA);
        let soa = records
            .get(&soa_key)
            .and_then(|set| set.records_without_rrsigs().next().cloned())
            .and_then(|mut r| match &mut r.data {
                RData::SOA(soa) => {
                    soa.serial = serial;
                    Some(r)
                }
                _ => None,
            })
            .ok_or_else(|| format!("zone {origin}: no SOA in the served zone"))?;
        let mut sets: Vec<(RrKey, Option<RecordSet>)> = Vec::new();
        for (owner, (removed, added)) in owners {
            let name = Name::from_ascii(owner)
                .map_err(|e| format!("zone {origin}: challenge owner {owner}: {e}"))?;
            if !origin.zone_of(&name) {
                return Err(format!(
                    "zone {origin}: challenge owner {owner} is outside it"
                ));
            }
            let key = RrKey::new(LowerName::from(&name), RecordType::TXT);
            let mut set = match records.get(&key) {
                Some(set) => RecordSet::clone(set),
                None => RecordSet::new(name.clone(), RecordType::TXT, 0),
            };
            for t in removed {
                set.remove(&record(&set, t), 0);
            }
            for t in added {
                set.insert(record(&set, t), 0);
            }
            sets.push((key, (!set.is_empty()).then_some(set)));
        }
        let soa = RecordSet::from(soa);
        // The index changes while the records are locked: a question
        // hickory answers meanwhile waits for both.
        let mut index = names.write().unwrap_or_else(|e| e.into_inner());
        index.set_soa(&soa);
        for (key, set) in &sets {
            index.set(key.name(), RecordType::TXT, set.is_some());
        }
        drop(index);
        records.insert(soa_key, Arc::new(soa));
        for (key, set) in sets {
            match set {
                Some(set) => records.insert(key, Arc::new(set)),
                None => records.remove(&key),
            };
        }
        Ok(())
    })
}

/// The TXT record of challenge `t`, named as `set` is (a record must
/// carry its set's name).
fn record(set: &RecordSet, t: &Txt) -> Record {
    Record::from_rdata(
        set.name().clone(),
        t.ttl,
        RData::TXT(TXT::new(vec![t.value.clone()])),
    )
}

fn handler_origin(handler: &Handler) -> Name {
    use hickory_server::zone_handler::ZoneHandler;
    Name::from(handler.origin().clone())
}

/// Run `f` to completion on this thread (the builder's, outside the
/// async runtime). Only ever given the wait for a zone's write lock,
/// which queries hold for the length of one lookup.
fn block_on<F: Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// The records as a sorted set of lines, for the tests.
#[cfg(test)]
fn sorted<'a>(sets: impl Iterator<Item = &'a RecordSet>) -> std::collections::BTreeSet<String> {
    sets.flat_map(|s| s.records_without_rrsigs())
        .map(|r| r.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::config::Config;

    const HEAD: &str = "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns1 h SERIAL 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n_acme-challenge.www IN TXT \"static\"\n";

    fn text(serial: u32, challenges: &[Txt]) -> String {
        let mut t = HEAD.replace("SERIAL", &serial.to_string());
        for c in challenges {
            t.push_str(&format!("{} {} IN TXT \"{}\"\n", c.owner, c.ttl, c.value));
        }
        t
    }

    fn txt(owner: &str, value: &str) -> Txt {
        Txt {
            owner: owner.into(),
            ttl: 60,
            value: value.into(),
        }
    }

    fn published(serial: u32, base: u8, challenges: Vec<Txt>) -> Published {
        Published {
            zone: "example.test.".into(),
            file: Default::default(),
            old_serial: None,
            serial,
            challenges: challenges.len(),
            parts: Parts {
                base: [base; 32],
                challenges,
            },
        }
    }

    /// A config serving example.test from unsigned/ in a new folder.
    fn site() -> (tempfile::TempDir, std::path::PathBuf, Config) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zonedrop.toml");
        std::fs::write(&path, "[[zone]]\nname = \"example.test\"\n").unwrap();
        std::fs::create_dir(dir.path().join("unsigned")).unwrap();
        let file = dir.path().join("unsigned/example.test");
        let config = Config::load(&path).unwrap();
        (dir, file, config)
    }

    #[test]
    fn a_delta_serves_what_the_file_holds() {
        let (_dir, file, config) = site();
        let a = txt("_acme-challenge.example.test.", "a");
        let b = txt("_acme-challenge.www.example.test.", "b");
        let c = txt("_acme-challenge.example.test.", "c");
        let steps = [
            vec![a.clone()],
            vec![a.clone(), b.clone()],
            vec![c.clone(), b.clone()],
            vec![],
            vec![b.clone()],
        ];
        let mut serial = 10;
        std::fs::write(&file, text(serial, &[])).unwrap();
        let r = Responder::load(&config).unwrap();
        // Handed over once, in full: the base is known from then on.
        r.published(&published(serial, 1, vec![])).unwrap();
        for step in steps {
            serial += 1;
            std::fs::write(&file, text(serial, &step)).unwrap();
            let generation = r.inner.generation.load(Ordering::Acquire);
            let handler = r.inner.lock()["example.test."]
                .served
                .as_ref()
                .unwrap()
                .handler
                .clone();
            r.published(&published(serial, 1, step.clone())).unwrap();
            // The same handler, changed in place: a delta, not a reload.
            let now = r.inner.lock()["example.test."]
                .served
                .as_ref()
                .unwrap()
                .handler
                .clone();
            assert!(Arc::ptr_eq(&handler, &now), "{step:?}");
            assert!(r.inner.generation.load(Ordering::Acquire) > generation);
            let want = crate::live::serve::read_zone(&file, "example.test.").unwrap();
            let got = block_on(now.records()).clone();
            assert_eq!(
                sorted(got.values().map(|s| &**s)),
                sorted(want.values()),
                "{step:?}"
            );
            // No empty RRset is left where a challenge was withdrawn.
            assert_eq!(got.len(), want.len(), "{step:?}");
            // The names of negative answers are those of the file: a
            // withdrawn challenge's owner gone, the new SOA.
            let origin = Name::from_ascii("example.test.").unwrap();
            let index = r.inner.lock()["example.test."]
                .served
                .as_ref()
                .unwrap()
                .names
                .read()
                .unwrap()
                .snapshot();
            assert_eq!(
                index,
                negative::Names::new(&origin, &want).snapshot(),
                "{step:?}"
            );
        }
        // Another base: the file is read again.
        serial += 1;
        std::fs::write(
            &file,
            text(serial, std::slice::from_ref(&a))
                .replace("ns1 IN A", "ns1 IN A 192.0.2.1\nold IN A"),
        )
        .unwrap();
        let before = r.inner.lock()["example.test."]
            .served
            .as_ref()
            .unwrap()
            .handler
            .clone();
        r.published(&published(serial, 2, vec![a])).unwrap();
        let after = r.inner.lock()["example.test."]
            .served
            .as_ref()
            .unwrap()
            .handler
            .clone();
        assert!(!Arc::ptr_eq(&before, &after));
    }

    #[test]
    fn a_version_taken_ahead_is_served_before_its_file_is_written() {
        let (dir, file, config) = site();
        std::fs::write(&file, text(10, &[])).unwrap();
        let r = Responder::load(&config).unwrap();
        r.published(&published(10, 1, vec![])).unwrap();
        let served = |r: &Responder| {
            let slots = r.inner.lock();
            let l = slots["example.test."].served.as_ref().unwrap();
            (l.handler.clone(), l.stamp)
        };
        let a = txt("_acme-challenge.example.test.", "a");
        let next = published(11, 1, vec![a.clone()]);
        assert!(r.ahead("example.test.", 11, &next.parts));
        assert_eq!(r.serial("example.test."), Some(11));
        // Served while the file still holds serial 10.
        let (handler, stamp) = served(&r);
        let held = block_on(handler.records()).clone();
        let want = text(11, std::slice::from_ref(&a));
        std::fs::write(dir.path().join("want"), &want).unwrap();
        let want =
            crate::live::serve::read_zone(&dir.path().join("want"), "example.test.").unwrap();
        assert_eq!(sorted(held.values().map(|s| &**s)), sorted(want.values()));
        // Its file written, the publish changes nothing served but the
        // stamp (so the file poll does not read it again).
        std::fs::write(&file, text(11, std::slice::from_ref(&a))).unwrap();
        let generation = r.inner.generation.load(Ordering::Acquire);
        r.published(&next).unwrap();
        let (after, new_stamp) = served(&r);
        assert!(Arc::ptr_eq(&handler, &after));
        assert_eq!(r.inner.generation.load(Ordering::Acquire), generation);
        assert_ne!(stamp, new_stamp);
        assert_eq!(
            Some(new_stamp),
            std::fs::metadata(&file).ok().map(|m| Stamp::of(&m))
        );
        // Another base is not taken ahead: it waits for its file.
        let other = Parts {
            base: [2; 32],
            challenges: vec![],
        };
        assert!(!r.ahead("example.test.", 12, &other));
        assert_eq!(r.serial("example.test."), Some(11));
    }
}
