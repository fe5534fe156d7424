//! TLSA records for 100 certificates: `zonedrop tlsa` (one call with all of
//! them, and a loop of one process per certificate) against a loop of
//! `ldns-dane`, the established tool, in one run, median of 5
//! (`cargo bench --bench tlsa`).
//! The certificates (ECDSA P-256, self-signed) are made first with openssl
//! and are not timed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CERTS: usize = 100;
const RUNS: usize = 5;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for i in 0..CERTS {
        let key = dir.path().join(format!("k{i}.pem"));
        let cert = dir.path().join(format!("c{i}.pem"));
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
            ])
            .args(["-subj", &format!("/CN=host{i}.example.test")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "openssl is needed (Debian package openssl)");
        files.push(cert);
    }
    let zonedrop = env!("CARGO_BIN_EXE_zonedrop");
    let ours = median(|| {
        let ok = Command::new(zonedrop)
            .args(["tlsa", "--name", "www.example.test", "--port", "443"])
            .args(&files)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "zonedrop tlsa failed");
    });
    // The same shape as the ldns-dane loop: one process per certificate.
    let ours_loop = median(|| {
        for f in &files {
            let ok = Command::new(zonedrop)
                .args(["tlsa", "--name", "www.example.test", "--port", "443"])
                .arg(f)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "zonedrop tlsa failed");
        }
    });
    let theirs = median(|| {
        for f in &files {
            let ok = Command::new("ldns-dane")
                .args(["-n", "-c"])
                .arg(f)
                .args(["create", "www.example.test", "443", "3", "1", "1"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ldns-dane failed (Debian package ldnsutils)");
        }
    });
    println!("# TLSA 3 1 1 for {CERTS} certificates, median of {RUNS} runs");
    println!("zonedrop tlsa, one call        {:>8.1} ms", ms(ours));
    println!(
        "zonedrop tlsa, loop of {CERTS}     {:>8.1} ms",
        ms(ours_loop)
    );
    println!("ldns-dane, loop of {CERTS}         {:>8.1} ms", ms(theirs));
    println!(
        "ratio, both looped             {:>8.3}",
        ours_loop.as_secs_f64() / theirs.as_secs_f64()
    );
    println!(
        "ratio, one call / ldns-dane    {:>8.4}",
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}
