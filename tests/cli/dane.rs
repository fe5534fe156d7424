//! TLSA and SSHFP from the real binary, compared byte for byte with the
//! reference tools: `ldns-dane` (Debian package ldnsutils) for every
//! usage/selector/matching combination, and `ssh-keygen -r` (openssh-client)
//! for RSA, ECDSA, Ed25519 keys and an OpenSSH host certificate. Keys and
//! certificates are made fresh with `openssl` and `ssh-keygen`.
//!
//! A missing tool fails the test with the package to install
//! (`bash .ci/install-deps` installs them all).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Debian package that provides each tool.
fn package(tool: &str) -> &'static str {
    match tool {
        "openssl" => "openssl",
        "ldns-dane" => "ldnsutils",
        _ => "openssh-client",
    }
}

/// Run `tool args` in `dir`; it must succeed. A missing tool fails with the
/// package to install.
fn run(dir: &Path, tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{tool}` ({e}): install the Debian package `{}` (bash .ci/install-deps does)",
                package(tool)
            )
        });
    assert!(
        out.status.success(),
        "`{tool} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn zonedrop(dir: &Path, args: &[&str]) -> Output {
    crate::support::zonedrop()
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stdout_ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "zonedrop failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The last field of each line: the RDATA for `ldns-dane` (tab-separated)
/// and our own output; for SSHFP the three last fields.
fn rdata_fields(text: &str, fields: usize) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f[f.len() - fields..].join(" ")
        })
        .collect()
}

/// A root CA, an intermediate, and leaves with the four key types the
/// issue names, each in a `NAME-chain.pem` of leaf, intermediate, root.
struct Pki {
    dir: tempfile::TempDir,
    leaves: Vec<&'static str>,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca_ext = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
    std::fs::write(d.join("ca.ext"), ca_ext).unwrap();
    run(
        d,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-subj",
            "/CN=Test Root",
            "-days",
            "30",
        ],
    );
    run(
        d,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "int.key",
            "-out",
            "int.csr",
            "-subj",
            "/CN=Test Intermediate",
        ],
    );
    run(
        d,
        "openssl",
        &[
            "x509", "-req", "-in", "int.csr", "-CA", "root.pem", "-CAkey", "root.key", "-out",
            "int.pem", "-days", "20", "-extfile", "ca.ext",
        ],
    );
    let leaves: Vec<(&str, Vec<&str>)> = vec![
        ("rsa", vec!["-newkey", "rsa:2048"]),
        (
            "p256",
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        (
            "p384",
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        ),
        ("ed25519", vec!["-newkey", "ed25519"]),
    ];
    for (name, newkey) in &leaves {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let mut args = vec!["req", "-new"];
        args.extend(newkey);
        args.extend([
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=host.example",
        ]);
        run(d, "openssl", &args);
        run(
            d,
            "openssl",
            &[
                "x509", "-req", "-in", &csr, "-CA", "int.pem", "-CAkey", "int.key", "-out", &pem,
                "-days", "10",
            ],
        );
        let chain = [&pem, "int.pem", "root.pem"]
            .iter()
            .map(|f| std::fs::read_to_string(d.join(f)).unwrap())
            .collect::<String>();
        std::fs::write(d.join(format!("{name}-chain.pem")), chain).unwrap();
    }
    Pki {
        dir,
        leaves: leaves.iter().map(|(n, _)| *n).collect(),
    }
}

/// What `ldns-dane` makes of `chain` for `u s m`: for usage 0 and 2 one
/// record per issuer (`-o 1` the intermediate, `-o 0` the root, in chain
/// order), else the leaf's. `-s`: no PKIX validation (no CA file here).
fn ldns_dane(dir: &Path, chain: &str, u: u8, s: u8, m: u8) -> Vec<String> {
    let (u, s, m) = (u.to_string(), s.to_string(), m.to_string());
    let offsets: &[&str] = if u == "0" || u == "2" {
        &["1", "0"]
    } else {
        &["-1"]
    };
    offsets
        .iter()
        .flat_map(|o| {
            let out = run(
                dir,
                "ldns-dane",
                &[
                    "-n",
                    "-s",
                    "-o",
                    o,
                    "-c",
                    chain,
                    "create",
                    "host.example",
                    "443",
                    &u,
                    &s,
                    &m,
                ],
            );
            rdata_fields(&out, 4)
        })
        .collect()
}

fn tlsa(dir: &Path, file: &str, u: u8, s: u8, m: u8) -> Vec<String> {
    let (u, s, m) = (u.to_string(), s.to_string(), m.to_string());
    let out = stdout_ok(zonedrop(
        dir,
        &[
            "tlsa",
            "--name",
            "host.example",
            "--port",
            "443",
            "--usage",
            &u,
            "--selector",
            &s,
            "--matching",
            &m,
            file,
        ],
    ));
    for line in out.lines() {
        assert!(
            line.starts_with("_443._tcp.host.example. 3600 IN TLSA "),
            "{line}"
        );
    }
    rdata_fields(&out, 4)
}

#[test]
fn tlsa_matches_ldns_dane_for_every_key_type_and_parameter() {
    let pki = pki();
    let d = pki.dir.path();
    let mut compared = 0;
    for leaf in &pki.leaves {
        let chain = format!("{leaf}-chain.pem");
        for u in 0..=3 {
            for s in 0..=1 {
                for m in 0..=2 {
                    let want = ldns_dane(d, &chain, u, s, m);
                    assert!(!want.is_empty());
                    assert_eq!(tlsa(d, &chain, u, s, m), want, "{chain} {u} {s} {m}");
                    compared += want.len();
                }
            }
        }
    }
    assert_eq!(compared, 4 * (2 * 6 * 2 + 2 * 6));
}

#[test]
fn tlsa_from_der_csr_and_public_key_match_the_certificate() {
    let pki = pki();
    let d = pki.dir.path();
    for leaf in &pki.leaves {
        let pem = format!("{leaf}.pem");
        let der = format!("{leaf}.der");
        let pubkey = format!("{leaf}.pub.pem");
        let pubder = format!("{leaf}.pub.der");
        run(
            d,
            "openssl",
            &["x509", "-in", &pem, "-outform", "DER", "-out", &der],
        );
        run(
            d,
            "openssl",
            &[
                "pkey",
                "-in",
                &format!("{leaf}.key"),
                "-pubout",
                "-out",
                &pubkey,
            ],
        );
        run(
            d,
            "openssl",
            &[
                "pkey",
                "-in",
                &format!("{leaf}.key"),
                "-pubout",
                "-outform",
                "DER",
                "-out",
                &pubder,
            ],
        );
        for (s, m) in [(0, 0), (0, 1), (1, 1), (1, 2)] {
            assert_eq!(tlsa(d, &der, 3, s, m), ldns_dane(d, &pem, 3, s, m), "{der}");
        }
        let want = ldns_dane(d, &pem, 3, 1, 1);
        for other in [format!("{leaf}.csr"), pubkey, pubder] {
            assert_eq!(tlsa(d, &other, 3, 1, 1), want, "{other}");
        }
    }
    // Several names and ports: one record per name × port, in that order.
    let out = stdout_ok(zonedrop(
        d,
        &[
            "tlsa",
            "--name",
            "A.example",
            "--name",
            "b.example.",
            "--port",
            "443",
            "--port",
            "853",
            "--proto",
            "udp",
            "--ttl",
            "300",
            "rsa.pem",
        ],
    ));
    let owners: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        owners,
        [
            "_443._udp.a.example.",
            "_853._udp.a.example.",
            "_443._udp.b.example.",
            "_853._udp.b.example."
        ]
    );
    assert!(
        out.lines().all(|l| l.contains(" 300 IN TLSA 3 1 1 ")),
        "{out}"
    );
}

#[test]
fn a_bad_certificate_is_one_line_naming_the_file_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("certs")).unwrap();
    std::fs::write(d.join("certs/www.pem"), "this is not a certificate\n").unwrap();
    let out = zonedrop(
        d,
        &[
            "tlsa",
            "--name",
            "www.example",
            "--port",
            "443",
            "certs/www.pem",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "zonedrop: certs/www.pem: not a certificate, CSR or public key\n"
    );
    // Half-written: the first lines of a certificate only.
    std::fs::write(
        d.join("certs/half.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIBLjCB4aADAgECAhRiUfSVtKg81gOfTeJZDSGp1gtMnjAFBgMrZXAwDDEKMAgG\n",
    )
    .unwrap();
    let out = zonedrop(
        d,
        &[
            "tlsa",
            "--name",
            "www.example",
            "--port",
            "443",
            "certs/half.pem",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "zonedrop: certs/half.pem: truncated PEM block `CERTIFICATE` (half-written file?)\n"
    );
    let out = zonedrop(d, &["sshfp", "--name", "www.example", "certs/www.pem"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "zonedrop: certs/www.pem: line 1: not an OpenSSH public key, host certificate or known_hosts line\n"
    );
    let out = zonedrop(
        d,
        &[
            "tlsa",
            "--name",
            "www.example",
            "--port",
            "443",
            "certs/missing.pem",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("zonedrop: certs/missing.pem: cannot read: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // Usage errors are 2.
    let out = zonedrop(
        d,
        &[
            "tlsa",
            "--name",
            "www.example",
            "--port",
            "443",
            "--usage",
            "4",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = zonedrop(
        d,
        &[
            "tlsa",
            "--name",
            "bad name",
            "--port",
            "443",
            "certs/www.pem",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// `ssh-keygen -r host -f FILE`'s records, as `alg type hex`.
fn ssh_keygen_r(dir: &Path, file: &str) -> Vec<String> {
    rdata_fields(
        &run(dir, "ssh-keygen", &["-r", "host.example", "-f", file]),
        3,
    )
}

fn sshfp(dir: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["sshfp", "--name", "host.example", "--hash", "all"];
    all.extend(args);
    let out = stdout_ok(zonedrop(dir, &all));
    for line in out.lines() {
        assert!(line.starts_with("host.example. IN SSHFP "), "{line}");
    }
    rdata_fields(&out, 3)
}

fn ssh_keys(d: &Path) -> Vec<PathBuf> {
    let kinds: [(&str, &[&str]); 5] = [
        ("rsa", &["-t", "rsa", "-b", "2048"]),
        ("p256", &["-t", "ecdsa", "-b", "256"]),
        ("p384", &["-t", "ecdsa", "-b", "384"]),
        ("p521", &["-t", "ecdsa", "-b", "521"]),
        ("ed25519", &["-t", "ed25519"]),
    ];
    kinds
        .iter()
        .map(|(name, args)| {
            let mut a = vec!["-q", "-N", "", "-C", "root@host", "-f", name];
            a.extend(*args);
            run(d, "ssh-keygen", &a);
            d.join(format!("{name}.pub"))
        })
        .collect()
}

#[test]
fn sshfp_matches_ssh_keygen_for_keys_certificates_and_known_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = ssh_keys(d);
    run(
        d,
        "ssh-keygen",
        &["-q", "-N", "", "-t", "ed25519", "-f", "ca"],
    );
    let mut known_hosts = String::new();
    for key in &keys {
        let file = key.file_name().unwrap().to_str().unwrap();
        let want = ssh_keygen_r(d, file);
        assert_eq!(want.len(), 2, "{want:?}");
        assert_eq!(sshfp(d, &[file]), want, "{file}");
        // A host certificate gives the fingerprints of the key it certifies.
        run(
            d,
            "ssh-keygen",
            &[
                "-q",
                "-s",
                "ca",
                "-h",
                "-I",
                "id",
                "-n",
                "host.example",
                file,
            ],
        );
        let cert = file.replace(".pub", "-cert.pub");
        assert_eq!(sshfp(d, &[&cert]), want, "{cert}");
        let line = std::fs::read_to_string(key).unwrap();
        known_hosts.push_str(&format!("host.example,192.0.2.1 {line}"));
    }
    // The default is SHA-256 only.
    let out = stdout_ok(zonedrop(
        d,
        &[
            "sshfp",
            "--name",
            "host.example",
            "--ttl",
            "60",
            "ed25519.pub",
        ],
    ));
    assert_eq!(
        out,
        format!(
            "host.example. 60 IN SSHFP {}\n",
            ssh_keygen_r(d, "ed25519.pub")[1]
        )
    );
    // known_hosts, plain and hashed (`ssh-keygen -H`), with markers and
    // comments around; and the same lines on standard input.
    let want: Vec<String> = keys
        .iter()
        .flat_map(|k| ssh_keygen_r(d, k.file_name().unwrap().to_str().unwrap()))
        .collect();
    let ca = std::fs::read_to_string(d.join("ca.pub")).unwrap();
    let text =
        format!("# host.example:22 SSH-2.0-OpenSSH\n@cert-authority *.example {ca}{known_hosts}");
    std::fs::write(d.join("known_hosts"), &text).unwrap();
    assert_eq!(sshfp(d, &["known_hosts"]), want);
    run(d, "ssh-keygen", &["-H", "-f", "known_hosts"]);
    let hashed = std::fs::read_to_string(d.join("known_hosts")).unwrap();
    assert!(hashed.contains("|1|"), "{hashed}");
    assert_eq!(sshfp(d, &["known_hosts"]), want);
    let mut child = crate::support::zonedrop()
        .args(["sshfp", "--name", "host.example", "--hash", "all", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = stdout_ok(child.wait_with_output().unwrap());
    assert_eq!(rdata_fields(&out, 3), want);
}

#[test]
fn list_dane_shows_each_fingerprint_and_its_state() {
    let pki = pki();
    let d = pki.dir.path();
    std::fs::write(
        d.join("zonedrop.toml"),
        "[[tlsa]]\ncert = \"rsa-chain.pem\"\nnames = [\"www.example\"]\nports = [443]\nnext = \"p256.csr\"\n",
    )
    .unwrap();
    let out = stdout_ok(zonedrop(
        d,
        &["--config", "zonedrop.toml", "list", "--dane"],
    ));
    let current = &ldns_dane(d, "rsa-chain.pem", 3, 1, 1)[0];
    let next = &ldns_dane(d, "p256.pem", 3, 1, 1)[0];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (rdata, state, file) in [
        (current, "current", "rsa-chain.pem"),
        (next, "next", "p256.csr"),
    ] {
        let line = format!(
            "_443._tcp.www.example. 3600 IN TLSA {rdata} ; {state} ({})",
            d.canonicalize().unwrap().join(file).display()
        );
        assert!(lines.iter().any(|l| *l == line), "{line}\nnot in\n{out}");
    }
    // `list --dane` reads the rollover memory but never writes it.
    assert!(!d.join("state/keys.json").exists());
}
