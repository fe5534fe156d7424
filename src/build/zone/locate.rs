//! Locating an error: hickory names neither file nor line, so when the
//! check fails the zone's entries are parsed one by one, in the order they
//! were assembled, until the one that fails (or repeats a record, or
//! stands beside a CNAME) is found.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use super::{zone_err, Assembled, Rendered, Sources, ZoneError};
use crate::build::source::{Entry, Expander, Sink};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

impl Sources<'_> {
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
        let (soa, primary) = (self.soa_path(&a.zone), self.primary_path(&a.zone));
        // A zone kept in one file is read once.
        if soa != primary {
            expander.expand(&soa, scope.clone(), &mut sink)?;
        }
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
    pub(super) fn locate_parse_error(
        &self,
        a: &Assembled,
        records: &[Rendered],
        whole: String,
    ) -> ZoneError {
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
    pub(super) fn locate(
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
