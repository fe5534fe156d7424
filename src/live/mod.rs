//! The live side: the processes that run on and on. The responder
//! ([`serve`], its UDP path in `udp`, the builder's deltas in `delta`),
//! the watcher that runs builds ([`watch`], paced by `pace`), "wait until visible" ([`wait`]), NOTIFY ([`notify`]) and
//! the one DNS exchange the last two share ([`exchange`]). The network
//! limits around the responder live beside it: the sockets (`listen`), TCP
//! with its caps (`tcp`), zone transfers in several messages (`axfr`), CNAME chains followed into
//! another served zone (`chase`), negative answers from an index of each
//! zone's names (`negative`),
//! response rate limiting (`rrl`) and bounded logging (`tally`).

mod axfr;
mod chase;
mod delta;
pub mod exchange;
mod listen;
mod negative;
pub mod notify;
mod pace;
mod rrl;
pub mod serve;
mod tally;
mod tcp;
mod udp;
pub mod update;
pub mod wait;
pub mod watch;
