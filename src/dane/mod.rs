//! The DANE side: TLSA data from certificates, CSRs and public keys
//! ([`tlsa`], RFC 6698), SSHFP data from OpenSSH keys ([`sshfp`], RFC
//! 4255), and the records a build publishes from the `[[tlsa]]` and
//! `[[sshfp]]` entries, with rollover ([`keys`]).

pub mod keys;
pub mod sshfp;
pub mod tlsa;
