//! Settling a zone: a challenge must never break a zone (a TXT beside a
//! CNAME chain, a copy of a record the zone already has). When the check
//! blames a challenge's drop file, that challenge is refused and the zone
//! is checked again without it, until the zone passes or the check blames
//! the operator's own data (then the zone fails, as it would without any
//! challenge).

use super::{Assembled, Rendered, Sources, ZoneError};
use crate::build::whitelist::Refusal;

/// A zone after settling.
#[derive(Debug)]
pub struct Settled {
    /// The checked zone, or what is wrong with it.
    pub zone: Result<Assembled, ZoneError>,
    /// How many challenges the checked zone holds.
    pub challenges: usize,
    /// Those challenges: the last records of the zone's text, one line
    /// each (what the responder of `zonedrop run` takes as a delta).
    pub accepted: Vec<Rendered>,
    /// The challenges refused because they would break it.
    pub refusals: Vec<Refusal>,
}

/// Check `assembled` with `keys` (TLSA, SSHFP), then `challenges`, after
/// its sources; refuse each challenge the check blames.
pub fn settle(
    sources: &Sources<'_>,
    mut assembled: Assembled,
    keys: Vec<Rendered>,
    challenges: Vec<Rendered>,
) -> Settled {
    let first_challenge = keys.len();
    let mut records = keys;
    records.extend(challenges);
    let mut refusals = Vec::new();
    let zone = loop {
        assembled.set_records(&records);
        match sources.check(&mut assembled, &records) {
            Ok(()) => break Ok(assembled),
            Err(ZoneError::At { file, message, .. })
                if records[first_challenge..].iter().any(|r| r.source == file) =>
            {
                let challenges = records.split_off(first_challenge);
                records.extend(challenges.into_iter().filter(|r| r.source != file));
                refusals.push(Refusal {
                    version: None,
                    file,
                    reason: format!(
                        "it would break zone {}: {message}",
                        assembled.zone.trim_end_matches('.')
                    ),
                });
            }
            Err(e) => break Err(e),
        }
    };
    let accepted = records.split_off(first_challenge);
    Settled {
        zone,
        challenges: accepted.len(),
        accepted,
        refusals,
    }
}
