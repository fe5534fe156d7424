//! The live side: the processes that run on and on. The responder
//! ([`serve`], its UDP path in `udp`), the watcher that runs builds
//! ([`watch`]), "wait until visible" ([`wait`]), NOTIFY ([`notify`]) and
//! the one DNS exchange the last two share ([`exchange`]).

pub mod exchange;
pub mod notify;
pub mod serve;
mod udp;
pub mod wait;
pub mod watch;
