//! `zonedrop build --bump`: a new serial for zones whose content did not
//! change, so that a re-signed zone reaches the secondaries (issue 11
//! item 3); refused under the `keep` policy, where zonedrop may not move
//! the serial.

use crate::support::*;
use std::path::Path;

fn serial_of(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.contains(" IN SOA ")).unwrap();
    line.split_whitespace().nth(6).unwrap().parse().unwrap()
}

/// Two zones: example.test under `policy`, example.net under `increment`.
fn two_zones(policy: &str) -> Tree {
    let t = Tree::one_zone(&format!("serial = \"{policy}\"\n"), "");
    let text = std::fs::read_to_string(t.path("zonedrop.toml")).unwrap();
    t.write(
        "zonedrop.toml",
        &format!("{text}[[zone]]\nname = \"example.net\"\nserial = \"increment\"\n"),
    );
    t.write(
        "zones/soa/example.net",
        "$TTL 3600\n@ IN SOA ns1.example.net. hostmaster.example.net. 7 7200 3600 1209600 300\n",
    );
    t.write(
        "zones/primary/example.net",
        "@ IN NS ns1\nns1 IN A 192.0.2.54\n",
    );
    t
}

#[test]
fn bump_gives_an_unchanged_zone_a_new_serial_and_publishes_it() {
    let t = two_zones("increment");
    assert_eq!(t.run(&["build", "--quiet"]).code, 0);
    let (test, net) = (
        t.path("unsigned/example.test"),
        t.path("unsigned/example.net"),
    );
    let (s_test, s_net) = (serial_of(&test), serial_of(&net));
    // Nothing changed: a plain or forced build leaves both alone.
    assert_eq!(t.run(&["build", "--force"]).stdout, "");
    // --bump --zone: that zone, and only that one, moves by its policy.
    let r = t.run(&["build", "--bump", "--zone", "example.test"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "example.test: serial {s_test} -> {}, 0 challenges\n",
            s_test + 1
        )
    );
    assert_eq!((serial_of(&test), serial_of(&net)), (s_test + 1, s_net));
    // The zone is the same but for its serial.
    let body = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.contains(" IN SOA "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = body(&test);
    // --bump alone: every zone; a build after it has nothing to do.
    let r = t.run(&["build", "--bump", "--quiet"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!((serial_of(&test), serial_of(&net)), (s_test + 2, s_net + 1));
    assert_eq!(body(&test), before);
    let r = t.run(&["build"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
}

#[test]
fn bump_follows_the_serial_policy() {
    let t = two_zones("unixtime");
    assert_eq!(t.run(&["build", "--quiet"]).code, 0);
    let out = t.path("unsigned/example.test");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    // The last serial as state/ remembers it: a day ahead of the clock it
    // can only count on by one; a day behind, it jumps to now.
    let state = t.path("state/zone-example.test.json");
    let remember = |serial: u32| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        v["serial"] = serial.into();
        std::fs::write(&state, v.to_string()).unwrap();
    };
    remember(now + 86_400);
    assert_eq!(
        t.run(&["build", "--bump", "--zone", "example.test"]).code,
        0
    );
    assert_eq!(serial_of(&out), now + 86_401);
    remember(now - 86_400);
    assert_eq!(
        t.run(&["build", "--bump", "--zone", "example.test"]).code,
        0
    );
    let s = serial_of(&out);
    assert!((now..now + 60).contains(&s), "{s} is not about {now}");
}

#[test]
fn bump_refuses_a_zone_that_keeps_its_serial() {
    let t = two_zones("keep");
    assert_eq!(t.run(&["build", "--quiet"]).code, 0);
    let test = t.path("unsigned/example.test");
    let net = t.path("unsigned/example.net");
    let before = (std::fs::read(&test).unwrap(), std::fs::read(&net).unwrap());
    for args in [
        vec!["build", "--bump", "--zone", "example.test"],
        vec!["build", "--bump"],
    ] {
        let r = t.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(
            r.stderr,
            "zonedrop: --bump: zone example.test keeps the serial written in its SOA \
             (serial = \"keep\"): raise it there, or give --zone for the other zones\n"
        );
        // Nothing published, not even the zone that could have moved.
        assert_eq!(
            (std::fs::read(&test).unwrap(), std::fs::read(&net).unwrap()),
            before
        );
    }
    let r = t.run(&["build", "--bump", "--zone", "example.net"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(serial_of(&net), 8);
}
