//! SSHFP record data (RFC 4255, RFC 6594, RFC 7479, RFC 8709) computed from
//! OpenSSH public keys: `.pub` lines, host certificates (`*-cert.pub`), and
//! `ssh-keyscan` / `known_hosts` lines.
//!
//! This module owns reading those lines and the SSH wire format of key
//! blobs (RFC 4251 §5 strings, RFC 4253 §6.6 key formats, OpenSSH's
//! PROTOCOL.certkeys), and prints `alg type hex` RDATA text byte for byte
//! as `ssh-keygen -r` does. Owner names, TTLs and rollover live in
//! [`crate::dane::keys`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use crate::base::config::SshfpHash;
use crate::base::hex;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a file gives no SSHFP record. Every message names the file (and line).
#[derive(Debug, Error)]
pub enum SshfpError {
    #[error("{}: cannot read: {source}", crate::base::name::printable_path(.path))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}: {message}", crate::base::name::printable_path(.path))]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{}: no SSH public key in it (expected `TYPE BASE64 [COMMENT]` or known_hosts lines)", crate::base::name::printable_path(.path)
    )]
    NoKeys { path: PathBuf },
}

/// A host key, reduced to what SSHFP needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// RFC 4255 §3.1.1 algorithm number (1 RSA, 2 DSA, 3 ECDSA, 4 Ed25519, 6 Ed448).
    pub algorithm: u8,
    /// The plain public key blob (RFC 4253 §6.6), also for a certificate.
    pub blob: Vec<u8>,
    /// Where it was read (1-based line).
    pub line: usize,
}

/// Key types: (plain name, SSHFP algorithm, fields after the name).
///
/// SSHFP algorithm numbers: RFC 4255 §3.1.1 (RSA 1, DSA 2), RFC 6594
/// (ECDSA 3), RFC 7479 (Ed25519 4), RFC 8709 (Ed448 6). Fields are the length-prefixed
/// strings/mpints after the type name: RFC 4253 §6.6 `e, n` and
/// `p, q, g, y`; RFC 5656 §3.1 curve identifier and Q; RFC 8709 §4 the key.
const TYPES: [(&str, u8, usize); 7] = [
    ("ssh-rsa", 1, 2),
    ("ssh-dss", 2, 4),
    ("ecdsa-sha2-nistp256", 3, 2),
    ("ecdsa-sha2-nistp384", 3, 2),
    ("ecdsa-sha2-nistp521", 3, 2),
    ("ssh-ed25519", 4, 1),
    ("ssh-ed448", 6, 1),
];

const CERT_SUFFIX: &str = "-cert-v01@openssh.com";

/// Read `path` (`-` is standard input) and return every host key in it.
pub fn load(path: &Path) -> Result<Vec<HostKey>, SshfpError> {
    let read_err = |source| SshfpError::Read {
        path: path.to_path_buf(),
        source,
    };
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map_err(read_err)?;
        return parse(&String::from_utf8_lossy(&buf), Path::new("(stdin)"));
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    parse(&String::from_utf8_lossy(&bytes), path)
}

/// Every host key in `text`, one per line; `path` is only used in messages.
///
/// Lines are `.pub` lines (`TYPE BASE64 [COMMENT]`) or known_hosts /
/// `ssh-keyscan` lines (`HOSTS TYPE BASE64 [COMMENT]`, the host field,
/// hashed or not, is ignored). Blank lines and `#` comments (`ssh-keyscan`
/// prints its banners as comments) are skipped, and so are `@cert-authority`
/// lines (a CA key is not the host's key) and `@revoked` ones (a revoked key
/// must not be published).
pub fn parse(text: &str, path: &Path) -> Result<Vec<HostKey>, SshfpError> {
    let mut keys = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| SshfpError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        if let Some(marker) = line
            .split_whitespace()
            .next()
            .filter(|w| w.starts_with('@'))
        {
            match marker {
                "@cert-authority" | "@revoked" => continue,
                _ => return Err(err(format!("unknown known_hosts marker `{marker}`"))),
            }
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `TYPE BASE64` (a .pub line) or `HOSTS TYPE BASE64` (known_hosts).
        // A host may itself be called `ssh-…`: the pair whose key data
        // carries the type name written before it wins.
        let candidates: Vec<(&str, &str)> = [(0, 1), (1, 2)]
            .iter()
            .filter_map(|&(t, b)| Some((*fields.get(t)?, *fields.get(b)?)))
            .filter(|(t, _)| looks_like_type(t))
            .collect();
        let Some(&first) = candidates.first() else {
            return Err(err(
                "not an OpenSSH public key, host certificate or known_hosts line".into(),
            ));
        };
        let (name, b64) = candidates
            .iter()
            .copied()
            .find(|(t, b)| {
                STANDARD
                    .decode(b)
                    .is_ok_and(|blob| Reader(&blob).string() == Some(t.as_bytes()))
            })
            .unwrap_or(first);
        let blob = STANDARD
            .decode(b64)
            .map_err(|e| err(format!("the `{name}` key is not valid base64 ({e})")))?;
        let (algorithm, blob) = plain_blob(&blob, name).map_err(err)?;
        keys.push(HostKey {
            algorithm,
            blob,
            line: i + 1,
        });
    }
    if keys.is_empty() {
        return Err(SshfpError::NoKeys {
            path: path.to_path_buf(),
        });
    }
    Ok(keys)
}

/// A key type name as OpenSSH writes them (known or not): `ssh-…`,
/// `ecdsa-…`, `sk-…`, or anything with OpenSSH's `@` vendor suffix.
fn looks_like_type(word: &str) -> bool {
    ["ssh-", "ecdsa-", "sk-"]
        .iter()
        .any(|p| word.starts_with(p))
        || word.contains('@')
}

/// Check `blob` against the type `name` written before it, and return the
/// SSHFP algorithm and the plain key blob to fingerprint.
///
/// RFC 4255 §3.1.3: "The fingerprint is calculated over the public key
/// blob" of RFC 4253. For an OpenSSH certificate (PROTOCOL.certkeys:
/// type name, nonce, the key's own fields, then serial, principals, …) that
/// is the certified key: its fields re-encoded under the plain type name,
/// which is what `ssh-keygen -r` prints for the key the certificate holds.
fn plain_blob(blob: &[u8], name: &str) -> Result<(u8, Vec<u8>), String> {
    let mut r = Reader(blob);
    let inner = r.string().ok_or("the key data is truncated")?.to_vec();
    let inner = String::from_utf8_lossy(&inner).into_owned();
    if inner != name {
        return Err(format!(
            "the key data is of type `{inner}`, but the line says `{name}`"
        ));
    }
    let (base, is_cert) = match name.strip_suffix(CERT_SUFFIX) {
        Some(base) => (base, true),
        None => (name, false),
    };
    let Some(&(_, algorithm, nfields)) = TYPES.iter().find(|(t, _, _)| *t == base) else {
        return Err(format!(
            "key type `{name}` has no SSHFP algorithm (RSA, DSA, ECDSA, Ed25519 and Ed448 have)"
        ));
    };
    if is_cert {
        r.string().ok_or("the certificate is truncated (nonce)")?;
    }
    let mut out = Vec::new();
    put_string(&mut out, base.as_bytes());
    let mut fields = Vec::new();
    for _ in 0..nfields {
        let f = r.string().ok_or("the key data is truncated")?;
        put_string(&mut out, f);
        fields.push(f);
    }
    if let Some(curve) = base.strip_prefix("ecdsa-sha2-") {
        // RFC 5656 §3.1: the curve identifier repeats the type's curve.
        if fields.first().copied() != Some(curve.as_bytes()) {
            return Err(format!("the `{base}` key names another curve"));
        }
    }
    let want = match base {
        "ssh-ed25519" => Some(32),
        "ssh-ed448" => Some(57),
        _ => None,
    };
    if let (Some(n), Some(k)) = (want, fields.first()) {
        if k.len() != n {
            return Err(format!("the `{base}` key is {} bytes, not {n}", k.len()));
        }
    }
    if !is_cert && !r.0.is_empty() {
        return Err(format!("{} bytes after the key data", r.0.len()));
    }
    Ok((algorithm, out))
}

/// RFC 4251 §5 `string`: uint32 length, then that many bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (s, rest) = rest.split_at(len);
        self.0 = rest;
        Some(s)
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// The RDATA texts (`alg type hex`) for `key`: type 1 first, as `ssh-keygen -r`.
///
/// RFC 4255 §3.1.2: fingerprint type 1 is SHA-1; RFC 6594 adds type 2,
/// SHA-256; RFC 4255 §3.2: the presentation form of the digest is
/// hexadecimal (lowercase here, as `ssh-keygen -r` prints it).
pub fn rdata(key: &HostKey, hash: SshfpHash) -> Vec<String> {
    let mut out = Vec::new();
    if matches!(hash, SshfpHash::Sha1 | SshfpHash::All) {
        out.push(format!(
            "{} 1 {}",
            key.algorithm,
            hex(&Sha1::digest(&key.blob))
        ));
    }
    if matches!(hash, SshfpHash::Sha256 | SshfpHash::All) {
        out.push(format!(
            "{} 2 {}",
            key.algorithm,
            hex(&Sha256::digest(&key.blob))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // `ssh-keygen -t ed25519`, and `ssh-keygen -r host` of it.
    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIP/+VMZXanuZdNOgY0Dqh1BZuz0I18gg9UCUDqGIElv me";
    const ED_SHA1: &str = "4 1 bec399de980b3aec2db7f8d0a766bf664367f5da";
    const ED_SHA256: &str = "4 2 ade8381471969a7d9491c7d9731fce3f69670776668a506a219720d746b40eff";

    fn one(text: &str) -> Result<Vec<HostKey>, String> {
        parse(text, Path::new("k.pub")).map_err(|e| e.to_string())
    }

    #[test]
    fn pub_line_known_hosts_and_keyscan_agree() {
        let a = one(ED).unwrap();
        let body = ED.split_once(' ').unwrap().1;
        let b = one(&format!("host.example,192.0.2.1 ssh-ed25519 {body}")).unwrap();
        let c = one(&format!(
            "# host:22 SSH-2.0-OpenSSH_9.2\n|1|abc=|def= ssh-ed25519 {body}\n"
        ))
        .unwrap();
        assert_eq!(a[0].blob, b[0].blob);
        assert_eq!(a[0].blob, c[0].blob);
        assert_eq!(rdata(&a[0], SshfpHash::Sha1), vec![ED_SHA1]);
        assert_eq!(rdata(&a[0], SshfpHash::All).len(), 2);
        assert_eq!(rdata(&a[0], SshfpHash::Sha256), vec![ED_SHA256]);
    }

    #[test]
    fn markers_and_comments_are_skipped() {
        let body = ED.split_once(' ').unwrap().1;
        let text = format!(
            "\n# comment\n@cert-authority *.example ssh-ed25519 {body}\n@revoked * ssh-ed25519 {body}\n{ED}\n"
        );
        let keys = one(&text).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].line, 5);
        let e = one(&format!("@weird * {ED}")).unwrap_err();
        assert_eq!(e, "k.pub: line 1: unknown known_hosts marker `@weird`");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        assert_eq!(
            one("").unwrap_err(),
            "k.pub: no SSH public key in it (expected `TYPE BASE64 [COMMENT]` or known_hosts lines)"
        );
        assert_eq!(
            one("hello world").unwrap_err(),
            "k.pub: line 1: not an OpenSSH public key, host certificate or known_hosts line"
        );
        let e = one("ssh-rsa !!!").unwrap_err();
        assert!(
            e.starts_with("k.pub: line 1: the `ssh-rsa` key is not valid base64"),
            "{e}"
        );
        // The ed25519 blob under another name.
        let body = ED.split_once(' ').unwrap().1;
        let e = one(&format!("ssh-rsa {body}")).unwrap_err();
        assert_eq!(
            e,
            "k.pub: line 1: the key data is of type `ssh-ed25519`, but the line says `ssh-rsa`"
        );
        // Half a key.
        let e = one(&format!("ssh-ed25519 {}", &body[..40])).unwrap_err();
        assert!(e.contains("truncated") || e.contains("base64"), "{e}");
    }

    #[test]
    fn a_host_called_ssh_something_is_not_a_key_type() {
        let body = ED.split_once(' ').unwrap().1;
        let keys = one(&format!("ssh-gw.example ssh-ed25519 {body}")).unwrap();
        assert_eq!(rdata(&keys[0], SshfpHash::Sha1), vec![ED_SHA1]);
    }

    #[test]
    fn dsa_and_ed448_have_their_numbers() {
        // `ssh-keygen -t dsa`, and what `ssh-keygen -r` prints for it.
        let dsa = one("ssh-dss AAAAB3NzaC1kc3MAAACBANOcMuw8i1lRbYRdACa0wPXMf1atIw58HPyzLGM5/QiJXjPvcToPpNMrScD2cKYWeqLjkaAqZgLy02870aR1KtLE5fuxUCspyKJ0JZq5cAB2a/PwnnCqWPWaBhHVmGrm1qggDRwVRE3kEGdp+zixEhKtLqAPgSfi8XTECaXLYktZAAAAFQCEWG8Iv7HF4sPTKQCJu3oUoQSvPQAAAIAg24Wv0YX3rS9BJxJ/Z6jQB3+Bhz11MuPLONAe9/jCJylud6jjsjclgCuACxNRLhdtY5mE5U7/C3W/ocYHU6eTlxo8HQCxdk1CNwe2cgBX6BQrXgfFsoVhf0plL6iEIzv58Rd/FzbcoodGKgmauMPzuoKOo7nkZxIjg+I2a/H3yQAAAIAagjxf8h8dCP6+4NI6vIdbJoyma7/Lr4q+Hl26ytQgd9N7AoC7COD+owfUwhy0hSb6cxCt25Na4WAszeaFQketsp+i8TUDU4RnOEj5ktxtu8L9313m67V9ru1BLfC2xT1E/bbjeMuOAf2Rs+DJ/IahkDXIIcYkljIWoaseyWhBzg==").unwrap();
        assert_eq!(
            rdata(&dsa[0], SshfpHash::All),
            vec![
                "2 1 ab0960ee97638ff5bd2e1f055e1c2b74f60aa33e",
                "2 2 223fc71f95b86c63ee8e9b0caba9c446b77fcc7d53d213475d6ead12fce232a6"
            ]
        );
        // RFC 8709 §4: an Ed448 key is 57 bytes (no OpenSSH tool makes one).
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-ed448");
        put_string(&mut blob, &[5; 57]);
        let key = &one(&format!("ssh-ed448 {}", STANDARD.encode(&blob))).unwrap()[0];
        assert_eq!(key.algorithm, 6);
        assert_eq!(key.blob, blob);
        let mut short = Vec::new();
        put_string(&mut short, b"ssh-ed448");
        put_string(&mut short, &[5; 32]);
        let e = one(&format!("ssh-ed448 {}", STANDARD.encode(&short))).unwrap_err();
        assert_eq!(e, "k.pub: line 1: the `ssh-ed448` key is 32 bytes, not 57");
    }

    #[test]
    fn unknown_types_are_refused() {
        let mut blob = Vec::new();
        put_string(&mut blob, b"sk-ssh-ed25519@openssh.com");
        put_string(&mut blob, &[0; 32]);
        put_string(&mut blob, b"ssh:");
        let line = format!("sk-ssh-ed25519@openssh.com {}", STANDARD.encode(&blob));
        let e = one(&line).unwrap_err();
        assert!(e.contains("has no SSHFP algorithm"), "{e}");
    }

    #[test]
    fn a_certificate_is_fingerprinted_by_the_key_it_certifies() {
        let key = &one(ED).unwrap()[0];
        let mut fields = Reader(&key.blob);
        fields.string().unwrap();
        let pk = fields.string().unwrap();
        let mut cert = Vec::new();
        put_string(&mut cert, b"ssh-ed25519-cert-v01@openssh.com");
        put_string(&mut cert, &[7; 32]); // nonce
        put_string(&mut cert, pk);
        cert.extend_from_slice(&[0; 8]); // serial, and the rest is not read
        let line = format!(
            "ssh-ed25519-cert-v01@openssh.com {} host",
            STANDARD.encode(&cert)
        );
        let c = &one(&line).unwrap()[0];
        assert_eq!(
            c,
            &HostKey {
                line: 1,
                ..key.clone()
            }
        );
    }
}
