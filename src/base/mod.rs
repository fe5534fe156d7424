//! The foundation every side imports: the config ([`config`]), domain
//! names as zonedrop accepts them ([`name`]), the label and value rules of
//! a challenge ([`rules`]), server and listen addresses ([`server`]), file plumbing ([`fs`]), and two small helpers. Nothing here knows about hooks, builds, keys or the
//! network.

pub mod config;
pub mod fs;
pub mod name;
pub mod rules;
pub mod server;

/// Lowercase hexadecimal, as RFC 6698 §2.2 and RFC 4255 §3.1 present
/// fingerprints (and as digests are written in file names and state).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The cores to spread work over: parsing slices, UDP sockets.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lowercase() {
        assert_eq!(super::hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
