//! The rules every side applies to a challenge: which owners may carry one
//! (`policy.labels`), which characters a value may hold at all and which
//! shape the policy asks for, and which names a drop directory may carry
//! (`[[drop]] names`). The hook checks them before it writes, the builder
//! again when it reads a drop directory, `list` when it judges one.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::config::{check_persist_value, Policy, ValueShape, PERSIST_LABEL};
use crate::base::name;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Whether `owner`'s first label is one of the challenge labels
/// (`policy.labels`, any case): the owners a challenge, or a challenge
/// alias, may stand at. With `policy.dns_account`, also the dns-account-01
/// owners: an account label before a challenge label
/// (`_<label>._acme-challenge.<domain>`).
pub fn is_challenge_owner(owner: &str, policy: &Policy) -> bool {
    let is_label = |label: &str| policy.labels.iter().any(|l| l.eq_ignore_ascii_case(label));
    if is_label(name::first_label(owner)) {
        return true;
    }
    policy.dns_account
        && is_account_label(name::first_label(owner))
        && is_label(name::first_label(name::parent(owner)))
}

/// The dns-account-01 label of an ACME account
/// (draft-ietf-acme-dns-account-label): `_` and the lowercase base32 (RFC
/// 4648) of the first 10 bytes of SHA-256 of the account URL, 16 characters.
pub fn account_label(account_url: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = Sha256::digest(account_url.as_bytes());
    // 10 bytes are 80 bits: 16 groups of 5, no padding.
    let bits = digest[..10]
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let mut label = String::with_capacity(17);
    label.push('_');
    for i in (0..16).rev() {
        label.push(char::from(ALPHABET[((bits >> (i * 5)) & 31) as usize]));
    }
    label
}

/// Whether `label` has the shape of a dns-account-01 label (any case).
pub fn is_account_label(label: &str) -> bool {
    label.len() == 17
        && label.starts_with('_')
        && label[1..]
            .bytes()
            .all(|b| matches!(b.to_ascii_lowercase(), b'a'..=b'z' | b'2'..=b'7'))
}

/// The domain a challenge at `owner` is for: below the challenge label,
/// and below the account label too for a dns-account-01 owner.
pub fn challenge_domain(owner: &str) -> &str {
    let domain = name::parent(owner);
    if is_account_label(name::first_label(owner)) && name::first_label(domain).starts_with('_') {
        name::parent(domain)
    } else {
        domain
    }
}

/// Whether a writer limited to `accounts` (URLs; `None`: any) may place a
/// challenge at `owner`: plain challenge owners always, account-labelled
/// ones only for a listed account.
pub fn account_allows(accounts: Option<&[String]>, owner: &str) -> bool {
    let Some(accounts) = accounts else {
        return true;
    };
    let label = name::first_label(owner);
    if !is_account_label(label) || !name::first_label(name::parent(owner)).starts_with('_') {
        return true;
    }
    accounts
        .iter()
        .any(|a| account_label(a).eq_ignore_ascii_case(label))
}

/// Why a TXT value is not a plausible challenge token, whatever the policy.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ValueError {
    #[error("is empty")]
    Empty,
    #[error("is longer than 255 bytes")]
    TooLong,
    #[error("holds `{}` (quotes, spaces, backslashes, semicolons and control characters are not allowed)", name::printable_char(*.0))]
    BadChar(char),
}

impl ValueError {
    /// The rule broken, without the character (for text that may be anything).
    pub fn rule(&self) -> &'static str {
        match self {
            ValueError::Empty => "is empty",
            ValueError::TooLong => "is longer than 255 bytes",
            ValueError::BadChar(_) => "holds a character a value may not hold (quotes, spaces, backslashes, semicolons, control characters, non-ASCII)",
        }
    }
}

/// The characters a value may hold at all: printable ASCII except space,
/// quote, backslash and semicolon — enough for base64, base64url and hex
/// tokens, and nothing that needs escaping in zone-file text.
pub fn check_chars(value: &str) -> Result<(), ValueError> {
    if value.is_empty() {
        return Err(ValueError::Empty);
    }
    if value.len() > 255 {
        // RFC 1035 §3.3: a <character-string> is at most 255 octets.
        return Err(ValueError::TooLong);
    }
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '"' | '\\' | ';'))
    {
        return Err(ValueError::BadChar(c));
    }
    Ok(())
}

/// The characters a dns-persist-01 value may hold: printable ASCII and
/// spaces, no quote or backslash (its syntax is checked by the whitelist).
pub fn check_persist_chars(value: &str) -> Result<(), ValueError> {
    if value.is_empty() {
        return Err(ValueError::Empty);
    }
    if value.len() > 255 {
        return Err(ValueError::TooLong);
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_graphic() || *c == ' ') || matches!(c, '"' | '\\'))
    {
        return Err(ValueError::BadChar(c));
    }
    Ok(())
}

/// Whether `owner` is a dns-persist-01 owner (`_validation-persist.<domain>`).
pub fn is_persist_owner(owner: &str) -> bool {
    name::first_label(owner).eq_ignore_ascii_case(PERSIST_LABEL)
}

/// Check an owner's first label against `policy.labels`. A
/// dns-persist-01 owner is refused unless `policy.persist_from_drop`,
/// whatever `labels` say: such a record grants issuance for as long as it
/// stands, a decision for the zone's owner (`[[persist]]`), not a hook.
pub fn check_label(owner: &str, policy: &Policy) -> Result<(), String> {
    if is_persist_owner(owner) {
        return match policy.persist_from_drop {
            true => Ok(()),
            false => Err(format!(
                "`{owner}` is a dns-persist-01 record: only [[persist]] in the config publishes those, unless [policy] persist_from_drop = true"
            )),
        };
    }
    if is_challenge_owner(owner, policy) {
        Ok(())
    } else {
        Err(format!(
            "the owner `{owner}` does not start with an allowed label ({})",
            policy.labels.join(", ")
        ))
    }
}

/// Check the value of a record at `owner`: a dns-persist-01 record's
/// syntax at a `_validation-persist` owner, else [`check_value`].
pub fn check_value_at(owner: &str, value: &str, policy: &Policy) -> Result<(), String> {
    if is_persist_owner(owner) {
        check_persist_value(value)
    } else {
        check_value(value, policy)
    }
}

/// Check a value against the policy's value shape.
pub fn check_value(value: &str, policy: &Policy) -> Result<(), String> {
    check_chars(value).map_err(|e| format!("the value `{}` {e}", name::printable(value)))?;
    match policy.value {
        // RFC 8555 §8.4: base64url(SHA-256(key authorization)), no padding:
        // 32 bytes are 43 characters.
        ValueShape::Acme
            if value.len() != 43
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Err(format!(
                "the value `{}` is not an ACME DNS-01 digest (43 characters of base64url)",
                name::printable(value)
            ))
        }
        _ => Ok(()),
    }
}

/// Whether `[[drop]] names` allow a challenge at `owner`: `example.test`
/// allows `<label>.example.test`, `*.example.test` allows `<label>.X` for any
/// X strictly below `example.test`. No names: any managed name.
pub fn drop_allows(names: Option<&[String]>, owner: &str) -> bool {
    let Some(names) = names else { return true };
    let domain = challenge_domain(owner);
    names
        .iter()
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(base) => domain != base && name::in_zone(domain, base),
            None => domain == pattern,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_limit_the_drop() {
        let names = vec![
            "example.test.".to_string(),
            "*.sub.example.test.".to_string(),
        ];
        let n = Some(names.as_slice());
        assert!(drop_allows(n, "_acme-challenge.example.test."));
        assert!(!drop_allows(n, "_acme-challenge.www.example.test."));
        assert!(drop_allows(n, "_acme-challenge.a.sub.example.test."));
        assert!(drop_allows(n, "_acme-challenge.b.a.sub.example.test."));
        assert!(!drop_allows(n, "_acme-challenge.sub.example.test."));
        assert!(drop_allows(None, "_acme-challenge.anything.test."));
    }

    #[test]
    fn account_labels() {
        // The example of draft-ietf-acme-dns-account-label.
        assert_eq!(
            account_label("https://example.com/acme/acct/ExampleAccount"),
            "_ujmmovf2vn55tgye"
        );
        assert_eq!(
            account_label("http://localhost:4000/acme/acct/1"),
            "_vkbgbqfhr6yv2asd"
        );
        assert_eq!(
            account_label("https://acme-v02.api.letsencrypt.org/acme/acct/12345"),
            "_lvrajhh53e27yh7f"
        );
        let mut p = Policy::default();
        let owner = "_ujmmovf2vn55tgye._acme-challenge.example.test.";
        assert!(!is_challenge_owner(owner, &p));
        p.dns_account = true;
        assert!(is_challenge_owner(owner, &p));
        assert!(!is_challenge_owner(
            "_ujmmovf2vn55tgye.www.example.test.",
            &p
        ));
        assert!(!is_challenge_owner(
            "_ujmmovf2vn55tgy1._acme-challenge.example.test.",
            &p
        ));
        let names = vec!["example.test.".to_string()];
        assert!(drop_allows(Some(&names), owner));
        assert!(!drop_allows(
            Some(&names),
            "_ujmmovf2vn55tgye._acme-challenge.www.example.test."
        ));
        let accounts = vec!["https://example.com/acme/acct/ExampleAccount".to_string()];
        assert!(account_allows(Some(&accounts), owner));
        assert!(account_allows(
            Some(&accounts),
            "_acme-challenge.example.test."
        ));
        assert!(!account_allows(
            Some(&accounts),
            "_vkbgbqfhr6yv2asd._acme-challenge.example.test."
        ));
        assert!(account_allows(
            None,
            "_vkbgbqfhr6yv2asd._acme-challenge.example.test."
        ));
    }

    #[test]
    fn value_shapes() {
        let mut p = Policy::default();
        assert!(check_value("LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo", &p).is_ok());
        assert!(check_value("short", &p).is_err());
        assert!(check_value("LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZ=", &p).is_err());
        p.value = ValueShape::Token;
        assert!(check_value("short", &p).is_ok());
        assert!(check_value("a\"b", &p).is_err());
    }
}
