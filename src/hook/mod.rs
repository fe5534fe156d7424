//! The hook side: how each ACME client hands over a DNS-01 challenge, turned
//! into additions and removals of drop fragments.
//!
//! Each client has its own calling convention (arguments, environment,
//! events it sends that are not about DNS at all); [`plan`] maps one call to
//! a list of [`Change`]s or to a plain exit status, without touching the
//! disk. [`apply`] validates every change first, so a call with one bad value
//! writes nothing, then writes or removes the fragments.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod drop;
pub mod fragment;
pub mod prune;

use crate::base::config::Policy;
use crate::base::name::{self, NameError};
use crate::base::rules;
use base64::Engine;
use drop::DropError;
use fragment::Fragment;
use sha2::{Digest, Sha256};
use std::path::Path;
use thiserror::Error;

/// The ACME clients zonedrop speaks for, by their hook conventions.
pub const CLIENTS: [&str; 6] = [
    "certbot",
    "lego",
    "dehydrated",
    "uacme",
    "acmetool",
    "getssl",
];

#[derive(Debug, Error)]
pub enum HookError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Name(#[from] NameError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Drop(#[from] DropError),
    #[error("no drop directory: give --drop DIR, set ZONEDROP_DROP, or set [hook] drop or a [[drop]] in the config")]
    NoDrop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Del,
}

/// One challenge to add or remove, as the client gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub op: Op,
    /// The TXT owner as given (any case, with or without the final dot).
    pub owner: String,
    pub value: String,
    pub ttl: Option<u32>,
}

/// What a hook call amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Changes(Vec<Change>),
    /// Nothing to do for us; exit with this status, silently.
    Exit(i32),
}

/// `_acme-challenge.` + a domain as clients pass it (a wildcard's `*.` dropped:
/// RFC 8555 §8.4 puts both on the same name).
pub fn challenge_owner(domain: &str) -> String {
    let domain = domain.strip_prefix("*.").unwrap_or(domain);
    format!("_acme-challenge.{domain}")
}

/// The DNS-01 TXT value for a key authorization: base64url without padding of
/// its SHA-256 digest (RFC 8555 §8.4).
pub fn dns01_value(key_authorization: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(key_authorization.as_bytes()))
}

fn change(op: Op, owner: String, value: &str) -> Change {
    Change {
        op,
        owner,
        value: value.to_string(),
        ttl: None,
    }
}

fn usage(client: &str, text: &str) -> HookError {
    // main prints "zonedrop: " before it.
    HookError::Usage(format!("hook {client}: {text}"))
}

/// Map one hook call of `client` to what it asks for. `env` looks up an
/// environment variable (certbot passes its challenge that way).
pub fn plan(
    client: &str,
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, HookError> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match client {
        "certbot" => {
            let op = match a.first() {
                Some(&"auth") => Op::Add,
                Some(&"cleanup") => Op::Del,
                _ => return Err(usage(
                    client,
                    "expected `auth` or `cleanup` (for --manual-auth-hook / --manual-cleanup-hook)",
                )),
            };
            let get = |k: &str| {
                env(k).filter(|v| !v.is_empty()).ok_or_else(|| {
                    usage(
                        client,
                        &format!("{k} is not set; run this as certbot's manual hook"),
                    )
                })
            };
            let domain = get("CERTBOT_DOMAIN")?;
            let value = get("CERTBOT_VALIDATION")?;
            Ok(Plan::Changes(vec![change(
                op,
                challenge_owner(&domain),
                &value,
            )]))
        }
        "lego" => {
            let op = match a.first() {
                Some(&"present") => Op::Add,
                Some(&"cleanup") => Op::Del,
                // Mentioned in some lego docs, never sent by lego itself.
                Some(&"timeout") => return Ok(Plan::Exit(0)),
                _ => return Err(usage(client, "expected `present`, `cleanup` or `timeout`")),
            };
            match &a[1..] {
                // EXEC_MODE=RAW: `-- DOMAIN TOKEN KEYAUTH`
                ["--", domain, _token, keyauth] => Ok(Plan::Changes(vec![change(
                    op,
                    challenge_owner(domain),
                    &dns01_value(keyauth),
                )])),
                ["--", ..] => Err(usage(client, "RAW mode expects `-- DOMAIN TOKEN KEYAUTH`")),
                // Default mode: `FQDN VALUE`, old lego versions append a TTL.
                [fqdn, value] | [fqdn, value, _] => {
                    Ok(Plan::Changes(vec![change(op, fqdn.to_string(), value)]))
                }
                _ => Err(usage(
                    client,
                    "expected `FQDN VALUE` or, with EXEC_MODE=RAW, `-- DOMAIN TOKEN KEYAUTH`",
                )),
            }
        }
        "dehydrated" => {
            let op = match a.first() {
                Some(&"deploy_challenge") => Op::Add,
                Some(&"clean_challenge") => Op::Del,
                // Every other event (deploy_cert, startup_hook, the deliberately
                // unknown one, generate_csr whose stdout would be read as a CSR):
                // nothing to do, nothing to print.
                _ => return Ok(Plan::Exit(0)),
            };
            let rest = &a[1..];
            if rest.is_empty() || !rest.len().is_multiple_of(3) {
                return Err(usage(
                    client,
                    "expected one or more `DOMAIN TOKEN_FILENAME TOKEN_VALUE` triples",
                ));
            }
            Ok(Plan::Changes(
                rest.chunks(3)
                    .map(|t| change(op, challenge_owner(t[0]), t[2]))
                    .collect(),
            ))
        }
        "uacme" => {
            let [method, kind, ident, _token, auth] = a[..] else {
                return Err(usage(client, "expected `METHOD TYPE IDENT TOKEN AUTH`"));
            };
            let op = match method {
                "begin" => Op::Add,
                "done" | "failed" => Op::Del,
                _ => return Err(usage(client, "METHOD must be begin, done or failed")),
            };
            if kind != "dns-01" {
                // Declining `begin` makes uacme try its next challenge type.
                return Ok(Plan::Exit(if op == Op::Add { 1 } else { 0 }));
            }
            Ok(Plan::Changes(vec![change(
                op,
                challenge_owner(ident),
                auth,
            )]))
        }
        "acmetool" => {
            let op = match a.first() {
                Some(&"challenge-dns-start") => Op::Add,
                Some(&"challenge-dns-stop") => Op::Del,
                // acmetool's "this hook does not handle that event".
                _ => return Ok(Plan::Exit(42)),
            };
            let [host, _target_file, value] = a[1..] else {
                return Err(usage(client, "expected `HOSTNAME TARGETFILE TXTVALUE`"));
            };
            Ok(Plan::Changes(vec![change(
                op,
                challenge_owner(host),
                value,
            )]))
        }
        "getssl" => {
            let op = match a.first() {
                Some(&"add") => Op::Add,
                Some(&"del") => Op::Del,
                _ => {
                    return Err(usage(
                        client,
                        "expected `add DOMAIN VALUE` or `del DOMAIN VALUE`",
                    ))
                }
            };
            let [domain, value] = a[1..] else {
                return Err(usage(
                    client,
                    "expected `add DOMAIN VALUE` or `del DOMAIN VALUE`",
                ));
            };
            Ok(Plan::Changes(vec![change(
                op,
                challenge_owner(domain),
                value,
            )]))
        }
        _ => Err(HookError::Usage(format!(
            "zonedrop hook: unknown client `{}`; known: {}",
            name::printable(client),
            CLIENTS.join(", ")
        ))),
    }
}

/// A change checked and normalised, ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub op: Op,
    pub fragment: Fragment,
}

/// Validate a change against the name rules and the policy.
pub fn check(change: &Change, policy: &Policy) -> Result<Checked, HookError> {
    let owner = name::parse_fqdn(&change.owner)?;
    rules::check_label(&owner, policy).map_err(HookError::Refused)?;
    rules::check_value_at(&owner, &change.value, policy).map_err(HookError::Refused)?;
    if let Some(ttl) = change.ttl {
        if ttl > i32::MAX as u32 {
            return Err(HookError::Refused(format!(
                "the TTL {ttl} is larger than 2147483647"
            )));
        }
    }
    Ok(Checked {
        op: change.op,
        fragment: Fragment {
            owner,
            ttl: change.ttl,
            value: change.value.clone(),
        },
    })
}

/// Check every change, then apply them to `dir`. Nothing is written unless
/// all of them are valid.
///
/// `gate` sees every change once all are valid, before anything is
/// written: an error from it writes nothing (the caller's own refusals:
/// a zone the config does not manage, no server to wait on).
pub fn apply(
    dir: &Path,
    changes: &[Change],
    policy: &Policy,
    gate: impl FnOnce(&[Checked]) -> Result<(), HookError>,
) -> Result<Vec<Checked>, HookError> {
    let checked = changes
        .iter()
        .map(|c| check(c, policy))
        .collect::<Result<Vec<_>, _>>()?;
    gate(&checked)?;
    drop::check_dir(dir)?;
    for c in &checked {
        match c.op {
            Op::Add => {
                drop::add(dir, &c.fragment, policy.ttl_default)?;
            }
            Op::Del => {
                drop::del(
                    dir,
                    &c.fragment.owner,
                    &c.fragment.value,
                    policy.max_fragment_bytes,
                )?;
            }
        }
    }
    // The writable side keeps its directory clean as it goes (a builder
    // behind a read-only mount cannot), a bounded part of it per call:
    // best effort, `zonedrop prune` says what it could not remove.
    let _ = prune::prune_some(dir, policy.max_age, std::time::SystemTime::now());
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn rfc8555_key_authorization_digest() {
        // Key authorization = token || '.' || base64url(JWK thumbprint);
        // the TXT value is base64url(SHA-256(key authorization)) without padding.
        // Vector: the token of RFC 8555 §8.3 with the RFC 7638 §3.1 thumbprint;
        // expected value computed independently with `openssl dgst -sha256 -binary | basenc --base64url`.
        let keyauth = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        assert_eq!(
            dns01_value(keyauth),
            "ZTRx1Ckl1-tM05o5zaizTTA0yUy5AGereMgSNWC6Ll8"
        );
        assert_eq!(dns01_value(keyauth).len(), 43);
    }

    #[test]
    fn lego_modes() {
        let p = plan(
            "lego",
            &args(&["present", "_acme-challenge.a.test.", "v", "120"]),
            &no_env,
        )
        .unwrap();
        assert_eq!(
            p,
            Plan::Changes(vec![change(Op::Add, "_acme-challenge.a.test.".into(), "v")])
        );
        let p = plan(
            "lego",
            &args(&["cleanup", "--", "*.a.test", "tok", "ka"]),
            &no_env,
        )
        .unwrap();
        assert_eq!(
            p,
            Plan::Changes(vec![change(
                Op::Del,
                "_acme-challenge.a.test".into(),
                &dns01_value("ka")
            )])
        );
        assert_eq!(
            plan("lego", &args(&["timeout"]), &no_env).unwrap(),
            Plan::Exit(0)
        );
    }

    #[test]
    fn quiet_events() {
        assert_eq!(plan("dehydrated", &args(&["this_hookscript_is_broken__dehydrated_is_working_fine__please_ignore_unknown_hooks_in_your_script"]), &no_env).unwrap(), Plan::Exit(0));
        assert_eq!(
            plan("acmetool", &args(&["live-updated"]), &no_env).unwrap(),
            Plan::Exit(42)
        );
        assert_eq!(
            plan(
                "uacme",
                &args(&["begin", "http-01", "a.test", "t", "x"]),
                &no_env
            )
            .unwrap(),
            Plan::Exit(1)
        );
        assert_eq!(
            plan(
                "uacme",
                &args(&["done", "http-01", "a.test", "t", "x"]),
                &no_env
            )
            .unwrap(),
            Plan::Exit(0)
        );
    }
}
