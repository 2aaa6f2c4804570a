//! Benchmarks of the Flotta API server. `bench-api` starts a `flotta-apiserver`, drives it
//! over HTTPS as the admin client, and prints its figures next to the targets and
//! a kube-apiserver + etcd peer.
//!
//! Phases, in order ([`suite::run`]): durable creates from concurrent HTTP/1.1 clients
//! ([`create`]), full lists as JSON and Table and a first page ([`list`]), server memory
//! ([`server::Server::memory`]), and one update fanned out to many watchers ([`watch`]).
//! Limits: client and server share the machine, so the client's CPU use is part of every
//! figure; Linux only (`/proc` for memory).

pub mod args;
pub mod client;
pub mod create;
pub mod fixture;
pub mod fleet;
pub mod list;
pub mod report;
pub mod server;
pub mod stats;
pub mod suite;
pub mod watch;
