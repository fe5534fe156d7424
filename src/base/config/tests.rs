use super::*;
use std::net::SocketAddr;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("z.toml"))
}

#[test]
fn published_path_drops_the_final_dot() {
    let mut c = Config::default();
    c.paths.unsigned = "/u".into();
    assert_eq!(
        c.published_path("example.test."),
        Path::new("/u/example.test")
    );
}

#[test]
fn the_example_parses() {
    let text = include_str!("../../../examples/zonedrop.toml");
    let c = parse(text).unwrap();
    assert!(!c.zones.is_empty());
    assert_eq!(c.policy.labels, vec!["_acme-challenge"]);
}

#[test]
fn the_example_shows_the_serve_defaults() {
    let c = parse(include_str!("../../../examples/zonedrop.toml")).unwrap();
    let (shown, default) = (format!("{:?}", c.serve), Serve::default());
    let default = Serve {
        listen: c.serve.listen.clone(),
        allow_axfr: c.serve.allow_axfr.clone(),
        ..default
    };
    assert_eq!(shown, format!("{default:?}"));
}

#[test]
fn rrl_is_on_off_loopback_unless_configured() {
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    let s = parse("").unwrap().serve;
    assert_eq!(s.rrl_rate_on(addr("192.0.2.1:53")), Some(RRL_RATE));
    assert_eq!(s.rrl_rate_on(addr("0.0.0.0:53")), Some(RRL_RATE));
    assert_eq!(s.rrl_rate_on(addr("[::]:53")), Some(RRL_RATE));
    assert_eq!(s.rrl_rate_on(addr("127.0.0.1:53")), None);
    assert_eq!(s.rrl_rate_on(addr("[::1]:53")), None);
    let s = parse("[serve]\nrrl_rate = 5\n").unwrap().serve;
    assert_eq!(s.rrl_rate_on(addr("127.0.0.1:53")), Some(5));
    let s = parse("[serve]\nrrl_rate = 0\n").unwrap().serve;
    assert_eq!(s.rrl_rate_on(addr("192.0.2.1:53")), None);
}

#[test]
fn serve_limits_are_checked() {
    for (text, want) in [
        ("tcp_max = 0", "z.toml: serve.tcp_max: must be at least 1"),
        (
            "tcp_lifetime = \"0s\"",
            "z.toml: serve.tcp_lifetime: must be at least 1s",
        ),
        (
            "log_interval = \"10ms\"",
            "z.toml: serve.log_interval: must be at least 1s",
        ),
        (
            "rrl_ipv4_prefix = 33",
            "z.toml: serve.rrl_ipv4_prefix: /33 is not an IPv4 prefix length (1 to 32)",
        ),
        (
            "rrl_burst = 0",
            "z.toml: serve.rrl_burst: must be at least 1",
        ),
    ] {
        let e = parse(&format!("[serve]\n{text}\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, want);
    }
}

#[test]
fn unknown_key_names_key_and_line() {
    let e = parse("[policy]\nttl_min = 30\nttl_mxa = 5\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("z.toml: line 3: unknown field `ttl_mxa`"),
        "{e}"
    );
}

#[test]
fn wrong_type_names_line_and_key() {
    let e = parse("[policy]\n\nttl_min = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("z.toml: line 3: invalid type"), "{e}");
    assert!(e.contains("ttl_min"), "{e}");
}

#[test]
fn bad_values_are_caught_while_parsing() {
    let e = parse("[[zone]]\nname = \"bad name\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("bad name"), "{e}");
    let e = parse("[policy]\nmax_age = \"soon\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("not a duration"), "{e}");
    let e = parse("[[zone]]\nname = \"a.b\"\nserial = \"often\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3") && e.contains("often"), "{e}");
    let e = parse("[[tlsa]]\ncert = \"c\"\nnames = [\"a.b\"]\nports = [443]\nparams = \"3 1 9\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 5") && e.contains("TLSA parameters"), "{e}");
}

#[test]
fn ttl_order_is_checked() {
    let e = parse("[policy]\nttl_min = 100\nttl_default = 60\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("z.toml: policy: ttl_min (100)"), "{e}");
}

#[test]
fn relative_paths_follow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zonedrop.toml");
    std::fs::write(&path, "[[drop]]\npath = \"drop\"\n").unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.drops[0].path, dir.path().join("drop"));
    assert_eq!(c.hook_drop(), Some(dir.path().join("drop").as_path()));
    assert_eq!(c.paths.soa, dir.path().join("zones/soa"));
}

#[test]
fn closest_zone_wins() {
    let c = parse("[[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"sub.example.test\"\n")
        .unwrap();
    assert_eq!(
        c.zone_of("a.sub.example.test.").unwrap().name,
        "sub.example.test."
    );
    assert_eq!(c.zone_of("a.example.test.").unwrap().name, "example.test.");
    assert!(c.zone_of("example.net.").is_none());
}
