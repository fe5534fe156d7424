//! The TSIG keys of `[[update_key]]` with their secrets read, and the
//! MACs of RFC 8945 made and checked with them.
//!
//! Secrets come inline (`secret`, base64) or from `secret_file`: a file
//! holding the base64 secret alone, or a BIND key file as `tsig-keygen`
//! writes it (`key "name" { algorithm hmac-sha256; secret "..."; };`). A
//! secret file that group or others can read is refused; an inline secret
//! in a config file they can read is warned about. A secret is never
//! printed: [`Key`]'s `Debug` leaves it out and no error carries it.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::config::{Config, DropDir, Prefix, TsigAlg, UpdateKey};
use crate::base::name;
use base64::Engine;
use ring::hmac;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{path}: cannot read the secret of key `{key}`: {source}")]
    Read {
        path: PathBuf,
        key: String,
        source: std::io::Error,
    },
    #[error("{path}: the secret of key `{key}` is readable by group or others (mode {mode:o}): chmod 600 it")]
    Exposed {
        path: PathBuf,
        key: String,
        mode: u32,
    },
    #[error("{file}: key `{key}`: {message}")]
    Bad {
        file: String,
        key: String,
        message: String,
    },
    #[error("key `{key}`: the drop directory {path} is not writable by this process: {reason}")]
    Drop {
        key: String,
        path: PathBuf,
        reason: String,
    },
}

/// One usable key.
pub struct Key {
    /// Absolute, lowercase.
    pub name: String,
    pub algorithm: TsigAlg,
    secret: Vec<u8>,
    pub names: Vec<String>,
    pub drop: DropDir,
    pub allow: Option<Vec<Prefix>>,
    pub max_values: Option<usize>,
    pub accounts: Option<Vec<String>>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} {})", self.name, self.algorithm.name())
    }
}

fn ring_alg(alg: TsigAlg) -> hmac::Algorithm {
    match alg {
        TsigAlg::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        TsigAlg::HmacSha256 => hmac::HMAC_SHA256,
        TsigAlg::HmacSha384 => hmac::HMAC_SHA384,
        TsigAlg::HmacSha512 => hmac::HMAC_SHA512,
    }
}

impl Key {
    /// A key from its parts (tests and the fuzz target).
    pub fn new(name: &str, algorithm: TsigAlg, secret: Vec<u8>, drop: DropDir) -> Key {
        Key {
            name: name.to_ascii_lowercase(),
            algorithm,
            secret,
            names: drop.names.clone().unwrap_or_default(),
            drop,
            allow: None,
            max_values: None,
            accounts: None,
        }
    }

    /// The MAC of `data`.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(ring_alg(self.algorithm), &self.secret);
        hmac::sign(&key, data).as_ref().to_vec()
    }

    /// Whether `mac` is the full MAC of `data` (constant time; truncated
    /// MACs, RFC 8945 §5.2.2.1, are not accepted).
    pub fn verify(&self, data: &[u8], mac: &[u8]) -> bool {
        let key = hmac::Key::new(ring_alg(self.algorithm), &self.secret);
        hmac::verify(&key, data, mac).is_ok()
    }
}

/// Every key, by name.
#[derive(Debug, Default)]
pub struct Keys {
    by_name: HashMap<String, Arc<Key>>,
}

impl Keys {
    /// Read every `[[update_key]]` of `config`: secrets, and a check that
    /// its drop directory can be written here.
    pub fn load(config: &Config) -> Result<Keys, KeyError> {
        let mut by_name = HashMap::new();
        for k in &config.update_keys {
            let key = load_key(config, k)?;
            by_name.insert(key.name.clone(), Arc::new(key));
        }
        Ok(Keys { by_name })
    }

    /// A set of keys made elsewhere (tests, the fuzz target).
    pub fn from_keys(keys: Vec<Key>) -> Keys {
        Keys {
            by_name: keys
                .into_iter()
                .map(|k| (k.name.clone(), Arc::new(k)))
                .collect(),
        }
    }

    /// The key called `name` (absolute, any case).
    pub fn get(&self, name: &str) -> Option<Arc<Key>> {
        self.by_name.get(&name.to_ascii_lowercase()).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }
}

fn load_key(config: &Config, k: &UpdateKey) -> Result<Key, KeyError> {
    let config_file = config
        .file
        .as_deref()
        .map_or_else(|| "config".to_string(), |p| p.display().to_string());
    let bad = |file: String, message: String| KeyError::Bad {
        file,
        key: k.name.clone(),
        message,
    };
    let secret = match (&k.secret, &k.secret_file) {
        (Some(inline), _) => {
            if let Some(file) = config.file.as_deref() {
                if let Ok(meta) = std::fs::metadata(file) {
                    if meta.mode() & 0o044 != 0 {
                        log::warn!(
                            "{}: key `{}` has its secret inline in a file group or others can read (mode {:o}): use secret_file with mode 600, or chmod 600 the config",
                            file.display(),
                            k.name,
                            meta.mode() & 0o777
                        );
                    }
                }
            }
            decode(inline).map_err(|m| bad(config_file.clone(), m))?
        }
        (None, Some(path)) => read_secret_file(path, k)?,
        (None, None) => return Err(bad(config_file, "no secret".into())),
    };
    if secret.is_empty() {
        return Err(bad(config_file, "the secret is empty".into()));
    }
    let drop = config
        .drops
        .iter()
        .find(|d| d.path == k.drop)
        .cloned()
        .ok_or_else(|| {
            bad(
                config_file.clone(),
                format!("{} is not a configured [[drop]]", k.drop.display()),
            )
        })?;
    writable(&drop.path).map_err(|reason| KeyError::Drop {
        key: k.name.clone(),
        path: drop.path.clone(),
        reason,
    })?;
    Ok(Key {
        name: k.name.clone(),
        algorithm: k.algorithm,
        secret,
        names: k.names.clone(),
        drop,
        allow: k.allow.clone(),
        max_values: k.max_values,
        accounts: k.accounts.clone(),
    })
}

fn writable(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| "a NUL in the path".to_string())?;
    // SAFETY: a valid NUL-terminated path; access() only reads it.
    if unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(())
}

fn decode(secret: &str) -> Result<Vec<u8>, String> {
    let compact: String = secret.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| "the secret is not base64".to_string())
}

fn read_secret_file(path: &Path, k: &UpdateKey) -> Result<Vec<u8>, KeyError> {
    let read = |source| KeyError::Read {
        path: path.to_path_buf(),
        key: k.name.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if meta.mode() & 0o044 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_path_buf(),
            key: k.name.clone(),
            mode: meta.mode() & 0o777,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let bad = |message: String| KeyError::Bad {
        file: path.display().to_string(),
        key: k.name.clone(),
        message,
    };
    let blocks = bind_keys(&text).map_err(bad)?;
    if blocks.is_empty() {
        return decode(&text).map_err(bad);
    }
    let want = k.name.trim_end_matches('.');
    let block = match blocks
        .iter()
        .find(|b| b.name.trim_end_matches('.').eq_ignore_ascii_case(want))
    {
        Some(b) => b,
        None => {
            let names: Vec<String> = blocks.iter().map(|b| name::printable(&b.name)).collect();
            return Err(bad(format!(
                "the file holds no key of that name (it holds {})",
                names.join(", ")
            )));
        }
    };
    match TsigAlg::from_name(&block.algorithm) {
        Some(a) if a == k.algorithm => {}
        _ => {
            return Err(bad(format!(
                "the file gives algorithm `{}`, the config `{}`",
                name::printable(&block.algorithm),
                k.algorithm.name()
            )))
        }
    }
    decode(&block.secret).map_err(bad)
}

/// One `key "name" { algorithm ...; secret "..."; };` of a BIND file.
#[derive(Debug, PartialEq, Eq)]
struct BindKey {
    name: String,
    algorithm: String,
    secret: String,
}

/// The key blocks of BIND configuration text (comments `#`, `//` and
/// `/* */` skipped); none when the text has no `key` statement.
fn bind_keys(text: &str) -> Result<Vec<BindKey>, String> {
    let tokens = tokenize(text)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] != "key" {
            i += 1;
            continue;
        }
        let name = tokens.get(i + 1).ok_or("a `key` without a name")?.clone();
        if tokens.get(i + 2).map(String::as_str) != Some("{") {
            return Err(format!("key `{}`: `{{` expected", name::printable(&name)));
        }
        i += 3;
        let (mut algorithm, mut secret) = (None, None);
        while i < tokens.len() && tokens[i] != "}" {
            let word = tokens[i].as_str();
            let value = tokens.get(i + 1).cloned();
            match word {
                "algorithm" => algorithm = value,
                "secret" => secret = value,
                ";" => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            // Skip to the end of the statement.
            while i < tokens.len() && tokens[i] != ";" && tokens[i] != "}" {
                i += 1;
            }
        }
        i += 1;
        match (algorithm, secret) {
            (Some(algorithm), Some(secret)) => out.push(BindKey {
                name,
                algorithm,
                secret,
            }),
            _ => {
                return Err(format!(
                    "key `{}` lacks its algorithm or secret",
                    name::printable(&name)
                ))
            }
        }
    }
    Ok(out)
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                loop {
                    match chars.next() {
                        Some('/') if last == '*' => break,
                        Some(c) => last = c,
                        None => return Err("an unterminated comment".into()),
                    }
                }
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err("an unterminated string".into()),
                    }
                }
                tokens.push(s);
            }
            '{' | '}' | ';' => tokens.push(c.to_string()),
            c => {
                let mut s = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '"') {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                tokens.push(s);
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_key_files_are_read() {
        let text = "# made by tsig-keygen\nkey \"acme-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0c2VjcmV0c2VjcmV0\";\n};\n/* another */ key other { algorithm hmac-sha512; secret \"eA==\"; };\n";
        let keys = bind_keys(text).unwrap();
        assert_eq!(
            keys,
            vec![
                BindKey {
                    name: "acme-key".into(),
                    algorithm: "hmac-sha256".into(),
                    secret: "c2VjcmV0c2VjcmV0c2VjcmV0".into()
                },
                BindKey {
                    name: "other".into(),
                    algorithm: "hmac-sha512".into(),
                    secret: "eA==".into()
                }
            ]
        );
        assert!(bind_keys("c2VjcmV0\n").unwrap().is_empty());
        assert!(bind_keys("key \"x\" { algorithm hmac-sha256; };").is_err());
    }

    #[test]
    fn macs_match_rfc_4231() {
        // RFC 4231 §4.2, test case 1.
        let k = Key::new(
            "k.",
            TsigAlg::HmacSha256,
            vec![0x0b; 20],
            DropDir {
                path: "/nonexistent".into(),
                names: None,
                accounts: None,
            },
        );
        let mac = k.sign(b"Hi There");
        assert_eq!(
            crate::base::hex(&mac),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert!(k.verify(b"Hi There", &mac));
        assert!(!k.verify(b"Hi There", &mac[..16]));
        assert!(!k.verify(b"Hi there", &mac));
    }
}
