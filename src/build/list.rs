//! `zonedrop list`: what the drop directories hold, and what the builder
//! would make of it: the whitelist with the challenge aliases of the zone
//! sources, as a build judges. Whether an accepted challenge would also
//! break its zone (a copy of a record it has, data beside a CNAME) is what
//! `zonedrop check` says. Reads only; never removes an expired fragment.

use crate::base::config::{persist_owner, Config, DropDir};
use crate::base::name::printable_path;
use crate::build::whitelist;
use crate::build::zone::alias::Aliases;
use crate::hook::drop::{DropError, DropHandle};
use serde::Serialize;
use std::time::SystemTime;

/// One drop file as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// The file's path, escaped ([`printable_path`]): a name that is not
    /// UTF-8 or holds control characters is shown, never printed raw.
    pub file: String,
    pub owner: Option<String>,
    pub value: Option<String>,
    pub ttl: Option<u32>,
    /// Seconds since the file was written.
    pub age: u64,
    /// With a config: whether the builder would publish it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
    /// Where an accepted challenge is published: the zone, and the owner
    /// in it (the end of its CNAME chain for an aliased challenge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    /// Why not, when not (or why the file could not be read at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A `[[persist]]` record of the config: `current`, or `expired` once
    /// its `persistUntil` has passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persist: Option<&'static str>,
}

/// List `dirs`; with `config`, judge each entry against the whitelist with
/// the challenge `aliases` of its zone sources ([`crate::build::zone::read_aliases`]).
pub fn list(
    dirs: &[DropDir],
    config: Option<&Config>,
    aliases: &Aliases,
    now: SystemTime,
) -> Result<Vec<Listed>, DropError> {
    let max = config.map_or(4096, |c| c.policy.max_fragment_bytes);
    let mut out = Vec::new();
    for dir in dirs {
        for entry in DropHandle::open(&dir.path)?.read_all(max)? {
            let age = now
                .duration_since(entry.modified)
                .unwrap_or_default()
                .as_secs();
            let verdict = config.map(|c| whitelist::judge(c, dir, &entry, aliases, now));
            let (owner, value, ttl, mut reason) = match &entry.fragment {
                Ok(f) => (Some(f.owner.clone()), Some(f.value.clone()), f.ttl, None),
                Err(why) => (None, None, None, Some(why.to_string())),
            };
            let (mut zone, mut published_at) = (None, None);
            match &verdict {
                Some(Err(v)) => reason = Some(v.reason().to_string()),
                Some(Ok(c)) => {
                    zone = Some(c.zone.clone());
                    published_at = Some(c.owner.clone());
                }
                None => {}
            }
            out.push(Listed {
                file: printable_path(&entry.path),
                owner,
                value,
                ttl,
                age,
                accepted: verdict.map(|v| v.is_ok()),
                zone,
                published_at,
                reason,
                persist: None,
            });
        }
    }
    Ok(out)
}

/// The `[[persist]]` records of `config`, as `list` shows them after the
/// drop directories' files: FILE is the config, the verdict says whether
/// its `persistUntil` has passed.
pub fn persisted(config: &Config, now: SystemTime) -> Vec<Listed> {
    let file = printable_path(config.file.clone().unwrap_or_default());
    let mut out = Vec::new();
    for p in &config.persists {
        let expired = p.expired(now);
        for name in &p.names {
            let owner = persist_owner(name);
            out.push(Listed {
                file: file.clone(),
                owner: Some(owner.clone()),
                value: Some(p.value()),
                ttl: Some(p.ttl),
                age: 0,
                accepted: None,
                zone: config.zone_of(&owner).map(|z| z.name.clone()),
                published_at: Some(owner),
                reason: expired.then(|| {
                    format!(
                        "persistUntil {} has passed",
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH
                                + std::time::Duration::from_secs(p.until.unwrap_or(0))
                        )
                    )
                }),
                persist: Some(if expired { "expired" } else { "current" }),
            });
        }
    }
    out
}

/// The plain-text table: a header, then one line per file. ZONE and AT
/// say where an accepted challenge is published (an aliased one lands at
/// the end of its CNAME chain, maybe in another zone).
pub fn render_text(items: &[Listed]) -> String {
    let mut s = String::from("OWNER\tVALUE\tTTL\tAGE\tZONE\tAT\tFILE\tVERDICT\n");
    for i in items {
        let verdict = match (i.persist, i.accepted, &i.reason) {
            (Some(_), _, Some(r)) => format!("persist, expired: {r}"),
            (Some(_), _, None) => "persist".to_string(),
            (None, Some(true), _) => "accepted".to_string(),
            (None, _, Some(r)) => format!("refused: {r}"),
            (None, Some(false), None) | (None, None, None) => String::new(),
        };
        s.push_str(&format!(
            "{}\t{}\t{}\t{}s\t{}\t{}\t{}\t{}\n",
            i.owner.as_deref().unwrap_or("-"),
            i.value.as_deref().unwrap_or("-"),
            i.ttl.map_or("-".to_string(), |t| t.to_string()),
            i.age,
            i.zone.as_deref().unwrap_or("-"),
            i.published_at.as_deref().unwrap_or("-"),
            i.file,
            verdict
        ));
    }
    s
}
