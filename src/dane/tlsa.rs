//! TLSA record data (DANE, RFC 6698 and RFC 7671) computed from key
//! material on disk: PEM bundles (a `fullchain.pem`), single DER
//! certificates, PEM or DER CSRs, and PEM or DER SubjectPublicKeyInfo.
//!
//! This module owns reading and classifying those files and turning them into
//! `usage selector matching hex` RDATA text, byte for byte what `ldns-dane`
//! prints. It does not know about owner names, TTLs or rollover: those live
//! in [`crate::dane::keys`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use crate::base::config::TlsaParams;
use crate::base::hex;
use sha2::{Digest, Sha256, Sha512};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Why a file gives no TLSA record. Every message names the file.
#[derive(Debug, Error)]
pub enum DaneError {
    #[error("{}: cannot read: {source}", crate::base::name::printable_path(.path))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: empty file (still being written?)", crate::base::name::printable_path(.path))]
    Empty { path: PathBuf },
    #[error("{}: truncated PEM block `{label}` (half-written file?)", crate::base::name::printable_path(.path))]
    HalfWritten { path: PathBuf, label: String },
    #[error("{}: broken PEM block ({why})", crate::base::name::printable_path(.path))]
    BadPem { path: PathBuf, why: String },
    #[error("{}: PEM block `{label}` does not hold valid DER ({why})", crate::base::name::printable_path(.path))]
    BadDer {
        path: PathBuf,
        label: String,
        why: String,
    },
    #[error("{}: `RSA PUBLIC KEY` (PKCS #1) is not a SubjectPublicKeyInfo: convert it with `openssl rsa -RSAPublicKey_in -pubout`", crate::base::name::printable_path(.path))]
    Pkcs1 { path: PathBuf },
    #[error("{}: not a certificate, CSR or public key", crate::base::name::printable_path(.path))]
    NotKeyMaterial { path: PathBuf },
    #[error("{}: selector 0 (full certificate) needs a certificate, and this file holds {what}: use selector 1", crate::base::name::printable_path(.path))]
    NeedsCertificate { path: PathBuf, what: &'static str },
    #[error("{}: usage {usage} needs an issuer (CA) certificate, and the file holds only the server's: give the full chain (e.g. fullchain.pem) or the CA certificate", crate::base::name::printable_path(.path))]
    NoIssuer { path: PathBuf, usage: u8 },
}

/// One certificate of a bundle, reduced to what TLSA needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    /// The whole certificate, DER (selector 0).
    pub der: Vec<u8>,
    /// The DER SubjectPublicKeyInfo (selector 1).
    pub spki: Vec<u8>,
    /// notAfter.
    pub not_after: SystemTime,
    /// A CA certificate (basicConstraints cA) or a self-issued one.
    pub is_ca: bool,
}

/// What a file holds, as far as TLSA is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// One or more certificates, the server's (leaf) first, as in
    /// `fullchain.pem` (RFC 8446 §4.4.2: the sender's certificate comes first).
    Certs(Vec<Cert>),
    /// A certificate signing request: only its public key is used.
    Csr { spki: Vec<u8> },
    /// A bare SubjectPublicKeyInfo.
    PublicKey { spki: Vec<u8> },
}

impl Material {
    fn what(&self) -> &'static str {
        match self {
            Material::Certs(_) => "certificates",
            Material::Csr { .. } => "a CSR",
            Material::PublicKey { .. } => "a public key",
        }
    }
}

/// Read and classify `path`.
pub fn load(path: &Path) -> Result<Material, DaneError> {
    let bytes = std::fs::read(path).map_err(|source| DaneError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes, path)
}

/// Classify `bytes` (PEM or DER); `path` is only used in messages.
///
/// PEM blocks other than certificates, CSRs and public keys (a private key in
/// a combined file, for instance) are skipped. Any broken block fails the
/// whole file, so a bundle caught half-written never yields a partial chain.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Material, DaneError> {
    let path_buf = || path.to_path_buf();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DaneError::Empty { path: path_buf() });
    }
    if !contains(bytes, b"-----BEGIN ") {
        return parse_der(bytes).ok_or_else(|| DaneError::NotKeyMaterial { path: path_buf() });
    }
    let mut certs = Vec::new();
    let mut csrs = Vec::new();
    let mut keys = Vec::new();
    for block in Pem::iter_from_buffer(bytes) {
        let block = block.map_err(|e| match e {
            x509_parser::error::PEMError::IncompletePEM => DaneError::HalfWritten {
                path: path_buf(),
                label: truncated_label(bytes),
            },
            other => DaneError::BadPem {
                path: path_buf(),
                why: other.to_string(),
            },
        })?;
        let bad_der = |why: String| DaneError::BadDer {
            path: path_buf(),
            label: block.label.clone(),
            why,
        };
        match block.label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" => {
                certs.push(parse_cert(&block.contents).map_err(bad_der)?);
            }
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {
                csrs.push(parse_csr(&block.contents).map_err(bad_der)?);
            }
            "PUBLIC KEY" => keys.push(parse_spki(&block.contents).map_err(bad_der)?),
            "RSA PUBLIC KEY" => return Err(DaneError::Pkcs1 { path: path_buf() }),
            _ => {}
        }
    }
    if !certs.is_empty() {
        Ok(Material::Certs(certs))
    } else if let Some(spki) = csrs.into_iter().next() {
        Ok(Material::Csr { spki })
    } else if let Some(spki) = keys.into_iter().next() {
        Ok(Material::PublicKey { spki })
    } else {
        Err(DaneError::NotKeyMaterial { path: path_buf() })
    }
}

/// The label of the first block that has no END line (for messages only):
/// the BEGIN line after as many BEGINs as there are ENDs.
fn truncated_label(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let ends = text.lines().filter(|l| l.starts_with("-----END ")).count();
    text.lines()
        .filter_map(|l| l.strip_prefix("-----BEGIN "))
        .nth(ends)
        .map_or("?".to_string(), |l| {
            l.trim_end().trim_end_matches('-').to_string()
        })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A DER file: a certificate, a CSR or a SubjectPublicKeyInfo, tried in that order.
fn parse_der(der: &[u8]) -> Option<Material> {
    if let Ok(cert) = parse_cert(der) {
        return Some(Material::Certs(vec![cert]));
    }
    if let Ok(spki) = parse_csr(der) {
        return Some(Material::Csr { spki });
    }
    parse_spki(der)
        .ok()
        .map(|spki| Material::PublicKey { spki })
}

fn parse_cert(der: &[u8]) -> Result<Cert, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the certificate", rest.len()));
    }
    let secs = cert.validity().not_after.timestamp();
    let not_after = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH
    };
    let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
    Ok(Cert {
        der: cert.as_raw().to_vec(),
        spki: cert.public_key().raw.to_vec(),
        not_after,
        is_ca: cert.is_ca() || self_issued,
    })
}

fn parse_csr(der: &[u8]) -> Result<Vec<u8>, String> {
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the CSR", rest.len()));
    }
    Ok(csr.certification_request_info.subject_pki.raw.to_vec())
}

fn parse_spki(der: &[u8]) -> Result<Vec<u8>, String> {
    let (rest, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the public key", rest.len()));
    }
    Ok(spki.raw.to_vec())
}

/// The certificates a record is made of, for `usage`.
///
/// RFC 6698 §2.1.1: usages 1 (PKIX-EE) and 3 (DANE-EE) match "the end
/// entity certificate given by the server in TLS", the first of the chain.
/// Usage 0 (PKIX-TA) specifies "a CA certificate, or the public key of such
/// a certificate, that MUST be found in any of the PKIX certification
/// paths", usage 2 (DANE-TA) one "that MUST be used as the trust anchor":
/// zonedrop cannot tell which issuer the operator means, so it gives one
/// record per issuer certificate of the bundle, in chain order; each is what
/// `ldns-dane -s -o N` prints for the N that selects it. A file holding a
/// single CA certificate stands for itself.
pub fn select(material: &Material, usage: u8, path: &Path) -> Result<Vec<Cert>, DaneError> {
    let Material::Certs(certs) = material else {
        return Ok(Vec::new());
    };
    match usage {
        1 | 3 => Ok(certs.iter().take(1).cloned().collect()),
        _ => match certs.as_slice() {
            [only] if only.is_ca => Ok(vec![only.clone()]),
            [_] | [] => Err(DaneError::NoIssuer {
                path: path.to_path_buf(),
                usage,
            }),
            [_, issuers @ ..] => Ok(issuers.to_vec()),
        },
    }
}

/// The RDATA texts (`u s m hex`) for `material` with `params`, in chain order.
///
/// RFC 6698 §2.1.2: selector 0 matches the "Full certificate: the
/// Certificate binary structure as defined in [RFC5280]", selector 1 the
/// "SubjectPublicKeyInfo: DER-encoded binary structure as defined in
/// [RFC5280]". §2.1.3: matching type 0 is the "Exact match on selected
/// content", 1 its SHA-256 hash, 2 its SHA-512 hash. §2.2: the presentation
/// form is the three numbers, then the data as hexadecimal.
pub fn rdata(
    material: &Material,
    params: TlsaParams,
    path: &Path,
) -> Result<Vec<String>, DaneError> {
    let data: Vec<Vec<u8>> = match material {
        Material::Certs(_) => select(material, params.usage, path)?
            .into_iter()
            .map(|c| if params.selector == 0 { c.der } else { c.spki })
            .collect(),
        Material::Csr { spki } | Material::PublicKey { spki } => {
            if params.selector == 0 {
                return Err(DaneError::NeedsCertificate {
                    path: path.to_path_buf(),
                    what: material.what(),
                });
            }
            vec![spki.clone()]
        }
    };
    Ok(data
        .iter()
        .map(|d| {
            let hex = match params.matching {
                0 => hex(d),
                1 => hex(&Sha256::digest(d)),
                _ => hex(&Sha512::digest(d)),
            };
            format!(
                "{} {} {} {}",
                params.usage, params.selector, params.matching, hex
            )
        })
        .collect())
}

/// The certificates of `material` used for `usage` that expired before `now`,
/// as warning lines naming the file.
pub fn expired(material: &Material, usage: u8, path: &Path, now: SystemTime) -> Vec<String> {
    select(material, usage, path)
        .unwrap_or_default()
        .iter()
        .filter(|c| c.not_after < now)
        .map(|c| {
            format!(
                "{}: certificate expired {}; its TLSA record is published anyway: renew it",
                crate::base::name::printable_path(path),
                humantime::format_rfc3339_seconds(c.not_after)
            )
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // A self-signed Ed25519 certificate, made with `openssl req -x509
    // -newkey ed25519 -subj /CN=t -days 36500 -nodes`; the fingerprints
    // below are what `ldns-dane -n -c` prints for it.
    pub(crate) const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBLjCB4aADAgECAhRiUfSVtKg81gOfTeJZDSGp1gtMnjAFBgMrZXAwDDEKMAgG
A1UEAwwBdDAgFw0yNjExMjQwODEzNTNaGA8yMTI2MTAzMTA4MTM1M1owDDEKMAgG
A1UEAwwBdDAqMAUGAytlcAMhAMjZk3aeVIZsQi2WxFTpRfMyyWgFWb64EtzqrWEa
bAD8o1MwUTAdBgNVHQ4EFgQUTsdw9PTlOgZWSSkZMogaMSHodOgwHwYDVR0jBBgw
FoAUTsdw9PTlOgZWSSkZMogaMSHodOgwDwYDVR0TAQH/BAUwAwEB/zAFBgMrZXAD
QQA3dekDSqAgAjzlmMSoW9L39I5yUevQkl7OlA+7Eb7ORxmDed9vrVi+XXJU23p4
hGr3uXvBjDwbZ2EmbqojiOkE
-----END CERTIFICATE-----
";

    #[test]
    fn a_pem_certificate_gives_the_ldns_dane_fingerprints() {
        let path = Path::new("t.pem");
        let m = parse(CERT.as_bytes(), path).unwrap();
        assert_eq!(
            rdata(&m, p(3, 1, 1), path).unwrap(),
            vec!["3 1 1 18a39cacc47ec882188ef71f2cc73b7b2d33c2536f63cd5b982425fbf65c3a49"]
        );
        assert_eq!(
            rdata(&m, p(3, 0, 1), path).unwrap(),
            vec!["3 0 1 f83abc91822722bc1221b48856da1ca4f218567ece4ef5c722a6ffe5e2463647"]
        );
        // Self-signed: it can stand for its own trust anchor.
        assert_eq!(rdata(&m, p(2, 1, 1), path).unwrap().len(), 1);
        // A text preamble and a private key in the same file are skipped.
        let combined = format!(
            "subject=CN = t\n{CERT}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        );
        assert_eq!(parse(combined.as_bytes(), path).unwrap(), m);
    }

    fn p(u: u8, s: u8, m: u8) -> TlsaParams {
        TlsaParams {
            usage: u,
            selector: s,
            matching: m,
        }
    }

    #[test]
    fn empty_and_garbage_are_refused_with_the_file_name() {
        let path = Path::new("certs/www.pem");
        let e = parse(b"", path).unwrap_err().to_string();
        assert_eq!(e, "certs/www.pem: empty file (still being written?)");
        let e = parse(b"hello", path).unwrap_err().to_string();
        assert_eq!(e, "certs/www.pem: not a certificate, CSR or public key");
        let e = parse(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            path,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "certs/www.pem: not a certificate, CSR or public key");
    }

    #[test]
    fn a_half_written_bundle_is_an_error_not_a_shorter_chain() {
        let half = &CERT[..CERT.len() / 2];
        let e = parse(half.as_bytes(), Path::new("c.pem"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "c.pem: truncated PEM block `CERTIFICATE` (half-written file?)"
        );
        // The leaf is whole, the chain after it is not: still an error.
        let bundle = format!("{CERT}{half}");
        let e = parse(bundle.as_bytes(), Path::new("c.pem"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "c.pem: truncated PEM block `CERTIFICATE` (half-written file?)"
        );
    }

    #[test]
    fn csr_and_key_need_selector_1() {
        let m = Material::PublicKey { spki: vec![1, 2] };
        let e = rdata(&m, p(3, 0, 1), Path::new("k.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k.pem: selector 0"), "{e}");
        assert_eq!(
            rdata(&m, p(3, 1, 0), Path::new("k.pem")).unwrap(),
            vec!["3 1 0 0102"]
        );
    }

    fn cert(n: u8, is_ca: bool) -> Cert {
        Cert {
            der: vec![n],
            spki: vec![n, n],
            not_after: UNIX_EPOCH,
            is_ca,
        }
    }

    #[test]
    fn usage_picks_leaf_or_issuers() {
        let chain = Material::Certs(vec![cert(1, false), cert(2, true), cert(3, true)]);
        let path = Path::new("f.pem");
        assert_eq!(rdata(&chain, p(3, 0, 0), path).unwrap(), vec!["3 0 0 01"]);
        assert_eq!(rdata(&chain, p(1, 1, 0), path).unwrap(), vec!["1 1 0 0101"]);
        assert_eq!(
            rdata(&chain, p(2, 0, 0), path).unwrap(),
            vec!["2 0 0 02", "2 0 0 03"]
        );
        let leaf = Material::Certs(vec![cert(1, false)]);
        let e = rdata(&leaf, p(0, 1, 1), path).unwrap_err().to_string();
        assert!(e.starts_with("f.pem: usage 0 needs an issuer"), "{e}");
        let ca = Material::Certs(vec![cert(9, true)]);
        assert_eq!(rdata(&ca, p(2, 0, 0), path).unwrap(), vec!["2 0 0 09"]);
    }

    #[test]
    fn matching_types_hash_the_selected_data() {
        let m = Material::PublicKey {
            spki: b"abc".to_vec(),
        };
        let path = Path::new("k");
        assert_eq!(
            rdata(&m, p(3, 1, 1), path).unwrap(),
            vec!["3 1 1 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]
        );
        let sha512 = rdata(&m, p(3, 1, 2), path).unwrap();
        assert!(
            sha512[0].starts_with("3 1 2 ddaf35a193617aba"),
            "{sha512:?}"
        );
    }

    #[test]
    fn expired_certificates_are_named() {
        let m = Material::Certs(vec![cert(1, false)]);
        let w = expired(&m, 3, Path::new("c.pem"), SystemTime::now());
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("c.pem: certificate expired 1970-01-01T00:00:00Z"),
            "{w:?}"
        );
    }
}
