//! The DANE side: TLSA data from certificates, CSRs and public keys
//! ([`tlsa`], RFC 6698), SSHFP data from OpenSSH keys ([`sshfp`], RFC
//! 4255), the files the `[[tlsa]]` and `[[sshfp]]` entries name
//! ([`entries`]), and the records a build publishes from them, with
//! rollover ([`keys`]).

pub mod entries;
pub mod keys;
pub mod sshfp;
pub mod tlsa;
