//! `[[persist]]`: dns-persist-01 records (draft-ietf-acme-dns-persist)
//! rendered into the zones from the config, and the value's syntax, shared
//! by the `persist` command and the whitelist (`[policy] persist_from_drop`).
//!
//! The record is `_validation-persist.<domain>` TXT
//! `"<issuer>; accounturi=<URL>[; policy=wildcard][; persistUntil=<unix>]"`:
//! an issue-value of RFC 8659 §4.2 with the `accounturi` parameter of RFC
//! 8657 §3. It grants issuance for as long as it stands, so the drop side
//! never carries one unless the policy says so.

use super::de::*;
use crate::base::name;
use serde::{Deserialize, Deserializer};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first label of a dns-persist-01 owner.
pub const PERSIST_LABEL: &str = "_validation-persist";

/// One `[[persist]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persist {
    /// The domains (absolute) that get `_validation-persist.<domain>`.
    #[serde(deserialize_with = "fqdns")]
    pub names: Vec<String>,
    /// The CA's issuer domain name (as in its CAA records), no final dot.
    #[serde(deserialize_with = "issuer")]
    pub issuer: String,
    /// The ACME account URL the CA may issue to.
    #[serde(deserialize_with = "account_uri")]
    pub account_uri: String,
    /// `policy=wildcard`: wildcard certificates too.
    #[serde(default)]
    pub wildcard: bool,
    /// `persistUntil`: unix seconds (given as a date, an RFC 3339 time or a number).
    #[serde(default, deserialize_with = "until")]
    pub until: Option<u64>,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

fn default_ttl() -> u32 {
    3600
}

impl Persist {
    /// The TXT value.
    pub fn value(&self) -> String {
        persist_value(&self.issuer, &self.account_uri, self.wildcard, self.until)
    }

    /// Whether `persistUntil` has passed at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.until
            .is_some_and(|u| UNIX_EPOCH + Duration::from_secs(u) <= now)
    }
}

/// The owner of the dns-persist-01 record for `domain` (absolute).
pub fn persist_owner(domain: &str) -> String {
    format!("{PERSIST_LABEL}.{domain}")
}

/// The TXT value of a dns-persist-01 record (the form acme.sh prints with
/// `--make-dns-persist-value`).
pub fn persist_value(
    issuer: &str,
    account_uri: &str,
    wildcard: bool,
    until: Option<u64>,
) -> String {
    let mut v = format!("{issuer}; accounturi={account_uri}");
    if wildcard {
        v.push_str("; policy=wildcard");
    }
    if let Some(u) = until {
        v.push_str(&format!("; persistUntil={u}"));
    }
    v
}

/// Check an issuer domain name (RFC 8659 §4.2: labels of letters, digits
/// and hyphens); returns it lowercase, without a final dot.
pub fn check_issuer(s: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "`{}` is not an issuer domain name (e.g. \"letsencrypt.org\")",
            name::printable(s)
        )
    };
    let s = s.trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !labels_ok || s.len() > 253 {
        return Err(bad());
    }
    Ok(s)
}

/// Check an account URI (RFC 8657 §3 `accounturi`, a parameter value of
/// RFC 8659 §4.2: printable, no space or `;`; http or https).
pub fn check_account_uri(s: &str) -> Result<String, String> {
    let ok = (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() > "https://".len()
        && s.len() <= 1024
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b'"' && b != b'\\');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{}` is not an ACME account URI (https://..., no spaces, quotes or `;`)",
            name::printable(s)
        ))
    }
}

/// A time as people write it: unix seconds, a date (`2027-06-30`, midnight
/// UTC) or an RFC 3339 time (`2027-06-30T12:00:00Z`).
pub fn parse_until(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map_err(|_| format!("`{s}` is too large for a unix time"));
    }
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    humantime::parse_rfc3339(&full)
        .map(|t| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
        .map_err(|_| {
            format!(
                "`{}` is not a time: write unix seconds, a date (2027-06-30) or an RFC 3339 time (2027-06-30T12:00:00Z)",
                name::printable(s)
            )
        })
}

/// Parse a dns-persist-01 value strictly: the issuer, then `accounturi`,
/// then optionally `policy=wildcard` and `persistUntil`. The form
/// [`persist_value`] writes, with any spacing after the semicolons.
pub fn check_persist_value(v: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!(
            "the value `{}` is not a dns-persist-01 record: {why}",
            name::printable(v)
        )
    };
    if v.len() > 255
        || !v
            .bytes()
            .all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\'))
    {
        return Err(bad(
            "it must be at most 255 printable characters without quotes or backslashes",
        ));
    }
    let mut parts = v.split(';').map(str::trim);
    check_issuer(parts.next().unwrap_or("")).map_err(|e| bad(&e))?;
    let (mut account, mut policy, mut until) = (false, false, false);
    for p in parts {
        let (key, val) = p
            .split_once('=')
            .ok_or_else(|| bad("a parameter without `=`"))?;
        match key {
            "accounturi" if !account => {
                check_account_uri(val).map_err(|e| bad(&e))?;
                account = true;
            }
            "policy" if !policy && val.eq_ignore_ascii_case("wildcard") => policy = true,
            "persistUntil"
                if !until && !val.is_empty() && val.bytes().all(|b| b.is_ascii_digit()) =>
            {
                until = true
            }
            _ => {
                return Err(bad(&format!(
                "the parameter `{}` is not accounturi, policy=wildcard or persistUntil (each once)",
                name::printable(p)
            )))
            }
        }
    }
    if !account {
        return Err(bad("no accounturi"));
    }
    Ok(())
}

fn issuer<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    check_issuer(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn account_uri<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    check_account_uri(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn until<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum When {
        Unix(u64),
        Text(String),
    }
    match When::deserialize(d)? {
        When::Unix(u) => Ok(Some(u)),
        When::Text(s) => parse_until(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Check the `[[persist]]` tables against the zones: `(key, message)` for the first problem.
pub(crate) fn validate(config: &super::Config) -> Result<(), (&'static str, String)> {
    for p in &config.persists {
        if p.names.is_empty() {
            return Err(("persist.names", "at least one name is needed".into()));
        }
        for n in &p.names {
            if config.zone_of(n).is_none() {
                return Err(("persist.names", format!("`{n}` lies in no configured zone")));
            }
        }
        if p.ttl > i32::MAX as u32 {
            return Err(("persist.ttl", "a TTL is at most 2147483647".into()));
        }
        if p.value().len() > 255 {
            return Err((
                "persist.account_uri",
                "the record's value would be longer than 255 characters".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_times() {
        assert_eq!(
            persist_value("letsencrypt.org", "https://acme-v02.api.letsencrypt.org/acme/acct/12345", true, Some(1798761600)),
            "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/12345; policy=wildcard; persistUntil=1798761600"
        );
        assert_eq!(parse_until("2027-01-01").unwrap(), 1798761600);
        assert_eq!(parse_until("2027-01-01T00:00:10Z").unwrap(), 1798761610);
        assert_eq!(parse_until("1798761600").unwrap(), 1798761600);
        assert!(parse_until("next week").is_err());
        assert!(check_issuer("LetsEncrypt.org.").is_ok());
        assert!(check_issuer("lets encrypt").is_err());
        assert!(check_issuer("-x.org").is_err());
        assert!(check_account_uri("https://ca/acct/1;x").is_err());
        assert!(check_account_uri("mailto:x").is_err());
        assert!(check_persist_value("letsencrypt.org; accounturi=https://ca.example/acct/1; policy=wildcard; persistUntil=5").is_ok());
        assert!(
            check_persist_value("letsencrypt.org;accounturi=https://ca.example/acct/1").is_ok()
        );
        assert!(check_persist_value("letsencrypt.org").is_err());
        assert!(check_persist_value(
            "letsencrypt.org; accounturi=https://a/1; accounturi=https://a/2"
        )
        .is_err());
        assert!(check_persist_value("letsencrypt.org; accounturi=https://a/1; foo=bar").is_err());
    }
}
