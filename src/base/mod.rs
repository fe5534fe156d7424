//! The foundation every side imports: the config ([`config`]), domain
//! names as zonedrop accepts them ([`name`]). Nothing here knows about
//! hooks, builds, keys or the network.

pub mod config;
pub mod name;
