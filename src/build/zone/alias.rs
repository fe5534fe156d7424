//! The challenge alias: a challenge owner that holds a CNAME in the
//! operator's zone data (`_acme-challenge.www.example.test. CNAME
//! _acme-challenge.www.example.net.`) gets its TXT at the end of the CNAME
//! chain, where a CA that follows the CNAME (RFC 8555 §8.4 leaves DNS
//! resolution to the resolver, which follows it) looks, and never beside
//! the CNAME (RFC 1034 §3.6.2). [`Aliases::note`] is the one rule that finds
//! them in the sources; [`Aliases::follow`] the one that follows them when a
//! drop fragment is judged. (`wait` follows CNAMEs in answers from the
//! network: that is the resolver's view, not this rule.)

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::config::Policy;
use crate::base::rules::is_challenge_owner;
use crate::build::source::{self, Entry};
use std::collections::HashMap;

/// How many aliases a challenge may go through.
pub const MAX_HOPS: usize = 8;

/// The challenge aliases found so far: owner → CNAME target, both
/// absolute and lowercase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aliases(HashMap<String, String>);

impl Aliases {
    /// Remember `e` if it is a challenge alias: a CNAME at an owner whose
    /// first label is a challenge label (`policy.labels`).
    pub fn note(&mut self, e: &Entry<'_>, policy: &Policy) {
        if !is_challenge_owner(e.owner, policy) || e.rtype().as_deref() != Some("CNAME") {
            return;
        }
        if let Some(target) = e.rdata().first() {
            let target = source::absolute(target, &e.scope.origin).to_ascii_lowercase();
            self.0.insert(e.owner.to_ascii_lowercase(), target);
        }
    }

    /// Take in aliases found elsewhere (another zone's sources).
    pub fn extend(&mut self, other: Aliases) {
        self.0.extend(other.0);
    }

    /// Where a challenge at `owner` (absolute, lowercase) is published:
    /// `owner` itself, or the end of its chain of aliases; an error for a
    /// chain longer than [`MAX_HOPS`] (or a loop).
    pub fn follow(&self, owner: &str) -> Result<String, String> {
        let mut at = owner;
        for _ in 0..MAX_HOPS {
            match self.0.get(at) {
                Some(target) => at = target,
                None => return Ok(at.to_string()),
            }
        }
        match self.0.get(at) {
            Some(_) => Err(format!(
                "the CNAME chain from `{owner}` is longer than {MAX_HOPS} or loops"
            )),
            None => Ok(at.to_string()),
        }
    }

    /// Every alias: (owner, target).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(o, t)| (o.as_str(), t.as_str()))
    }
}

impl FromIterator<(String, String)> for Aliases {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        Aliases(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::source::{Expander, Scope, Sink};

    /// The aliases in zone text, read as the builder reads sources.
    fn found(text: &str) -> Aliases {
        struct Note<'p>(&'p Policy, Aliases);
        impl Sink for Note<'_> {
            fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
                self.1.note(e, self.0);
                Ok(())
            }
        }
        let policy = Policy::default();
        let mut sink = Note(&policy, Aliases::default());
        let scope = Scope {
            origin: "example.test.".into(),
            ttl: None,
        };
        let file = std::sync::Arc::new(std::path::PathBuf::from("z"));
        Expander::new(&[])
            .expand_text(text, file, scope, &mut sink, 0)
            .unwrap();
        sink.1
    }

    #[test]
    fn a_cname_at_a_challenge_owner_is_an_alias_and_nothing_else_is() {
        let a = found(
            "_ACME-challenge.www 300 IN CNAME _acme-challenge.www.Example.NET.\n\
             _acme-challenge.rel CNAME there ; a comment\n\
             _acme-challenge.par IN CNAME ( @ )\n\
             www IN CNAME elsewhere.example.org.\n\
             _acme-challenge.txt IN TXT \"CNAME x\"\n",
        );
        let mut got: Vec<_> = a.iter().collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("_acme-challenge.par.example.test.", "example.test."),
                ("_acme-challenge.rel.example.test.", "there.example.test."),
                (
                    "_acme-challenge.www.example.test.",
                    "_acme-challenge.www.example.net."
                ),
            ]
        );
    }

    #[test]
    fn chains_are_followed_up_to_the_limit() {
        let chain = |n: usize| -> Aliases {
            (0..n)
                .map(|i| {
                    (
                        format!("_acme-challenge.h{i}."),
                        format!("_acme-challenge.h{}.", i + 1),
                    )
                })
                .collect()
        };
        assert_eq!(
            chain(0).follow("_acme-challenge.h0."),
            Ok("_acme-challenge.h0.".into())
        );
        assert_eq!(
            chain(MAX_HOPS).follow("_acme-challenge.h0."),
            Ok(format!("_acme-challenge.h{MAX_HOPS}."))
        );
        assert!(chain(MAX_HOPS + 1).follow("_acme-challenge.h0.").is_err());
        let looped: Aliases = [
            ("a.".to_string(), "b.".to_string()),
            ("b.".into(), "a.".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            looped.follow("a."),
            Err(format!(
                "the CNAME chain from `a.` is longer than {MAX_HOPS} or loops"
            ))
        );
    }
}
